-- Store one entry and its index memberships atomically.
--
-- KEYS[1]  the entry hash
-- ARGV[1]  bucket prefix, e.g. "cs:{users:3}:" (tag and index keys share the entry's slot)
-- ARGV[2]  cache key
-- ARGV[3]  now (ms)
-- ARGV[4]  overwrite: "1" replaces an existing entry, "0" refuses to
-- ARGV[5]  expiry (ms since the epoch) or "" for none
-- ARGV[6]  tags joined with "\n" ("" for none); tags cannot contain a newline
-- ARGV[7]  n: how many list or set elements follow (0 for other types)
-- ARGV[8 .. 7+n]  the elements of a list (in order) or a set
-- ARGV[8+n ..]  field/value pairs of the entry hash (value, type, ttl, sizes, etag, ...)
--
-- Returns {status, created_at_ms}: status 1 = created, 2 = replaced, 0 = exists (refused).
local entry = KEYS[1]
local prefix, key, now, overwrite, expiry, tags = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local old = redis.call('HMGET', entry, 'ca', 'tg', 'hc', 'la')
local existed = old[1] ~= false
if existed and overwrite == '0' then
  return {0, old[1]}
end

local new_tags = {}
for tag in string.gmatch(tags, '[^\n]+') do
  new_tags[tag] = true
end
-- Replacing an entry replaces its tags: leave no membership behind in tags it lost.
if existed and old[2] then
  for tag in string.gmatch(old[2], '[^\n]+') do
    if not new_tags[tag] then
      redis.call('ZREM', prefix .. 't:' .. tag, key)
    end
  end
end

local created_at = existed and old[1] or now
local items = tonumber(ARGV[7])
local first_field = 8 + items
redis.call('DEL', entry)
local fields = {'ca', created_at, 'ua', now, 'ex', expiry, 'tg', tags,
                'hc', old[3] or '0', 'la', old[4] or ''}
local value_type = nil
for i = first_field, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'ty' then
    value_type = ARGV[i + 1]
  end
end
redis.call('HSET', entry, unpack(fields))

-- A list or set lives in a native Redis collection beside its hash (same slot, same expiry).
local collection = prefix .. 'c:' .. key
redis.call('DEL', collection)
for start = 8, 7 + items, 500 do
  local stop = math.min(start + 499, 7 + items)
  if value_type == 'list' then
    redis.call('RPUSH', collection, unpack(ARGV, start, stop))
  elseif value_type == 'set' then
    redis.call('SADD', collection, unpack(ARGV, start, stop))
  end
end
if expiry ~= '' then
  redis.call('PEXPIREAT', entry, expiry)
  if items > 0 then
    redis.call('PEXPIREAT', collection, expiry)
  end
end

-- Indexes are scored by expiry so that expired members can be cut by score.
local score = expiry == '' and '+inf' or expiry
redis.call('ZADD', prefix .. 'idx', score, key)
for tag in pairs(new_tags) do
  redis.call('ZADD', prefix .. 't:' .. tag, score, key)
  -- The registry of this bucket's tags, scored by the latest expiry of any member, lets
  -- the pruning task find every tag index without scanning the keyspace.
  redis.call('ZADD', prefix .. 'tags', 'GT', score, tag)
end
redis.call('SADD', prefix .. 'fm', key)
return {existed and 2 or 1, created_at}
