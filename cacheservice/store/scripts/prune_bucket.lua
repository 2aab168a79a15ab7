-- Remove expired members from one bucket's namespace index and tag indexes, bounded.
--
-- KEYS[1]  the bucket's namespace index (names the slot)
-- ARGV[1]  bucket prefix
-- ARGV[2]  now (ms)
-- ARGV[3]  work budget: the most members and tags this call may remove or visit
--
-- Returns the number of members removed. Entries expire in Redis by themselves; only their
-- index memberships are left behind, scored by the expiry, so cutting by score is exact.
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local removed = 0

local function cut(index)
  if limit <= 0 then
    return
  end
  local expired = redis.call('ZRANGE', index, '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, limit)
  if #expired > 0 then
    removed = removed + redis.call('ZREM', index, unpack(expired))
    limit = limit - #expired
  end
end

cut(prefix .. 'idx')
if limit <= 0 then
  return removed
end
-- A tag whose registry score has passed has no live member left: drop the whole index.
local registry = prefix .. 'tags'
local dead_tags = redis.call('ZRANGE', registry, '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, limit)
for _, tag in ipairs(dead_tags) do
  removed = removed + redis.call('ZCARD', prefix .. 't:' .. tag)
  redis.call('UNLINK', prefix .. 't:' .. tag)
  redis.call('ZREM', registry, tag)
end
limit = limit - #dead_tags
if limit <= 0 then
  return removed
end
local live_tags = redis.call('ZRANGE', registry, '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, limit)
for _, tag in ipairs(live_tags) do
  limit = limit - 1
  cut(prefix .. 't:' .. tag)
  if limit <= 0 then
    break
  end
end
return removed
