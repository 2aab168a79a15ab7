-- Delete one entry and its index memberships atomically.
--
-- KEYS[1]  the entry hash
-- ARGV[1]  bucket prefix
-- ARGV[2]  cache key
--
-- Returns 1 when the entry existed, else 0.
local entry = KEYS[1]
local prefix, key = ARGV[1], ARGV[2]
local tags = redis.call('HGET', entry, 'tg')
if not tags then
  return 0
end
for tag in string.gmatch(tags, '[^\n]+') do
  redis.call('ZREM', prefix .. 't:' .. tag, key)
end
redis.call('ZREM', prefix .. 'idx', key)
redis.call('UNLINK', entry, prefix .. 'c:' .. key)
redis.call('SADD', prefix .. 'fm', key)
return 1
