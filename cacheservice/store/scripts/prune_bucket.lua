-- Remove expired members from one bucket's namespace index and tag indexes, bounded.
--
-- KEYS[1]  the bucket's namespace index (names the slot)
-- ARGV[1]  bucket prefix
-- ARGV[2]  work budget: the most index members this call may remove
-- ARGV[3]  how many registered tags one call visits (a ZSCAN COUNT hint)
--
-- Returns the number of members removed. Entries expire inside Redis by themselves; only their
-- index memberships are left behind, scored by the same expiry, so cutting by score is exact.
-- "Now" is Redis's own clock, the one that expires the entries: a worker whose clock runs
-- ahead can never cut the membership of an entry Redis still serves.
local prefix, budget, visits = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local removed = 0
local SLICE = 500  -- members per ZREM, well under Lua's unpack limit

local function cut(index)
  while budget > 0 do
    local expired = redis.call('ZRANGE', index, '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0,
                               math.min(budget, SLICE))
    if #expired == 0 then
      return true
    end
    removed = removed + redis.call('ZREM', index, unpack(expired))
    budget = budget - #expired
  end
  return false
end

cut(prefix .. 'idx')

-- A tag whose registry score has passed has no live member left: drop its whole index.
local registry = prefix .. 'tags'
if budget > 0 then
  local dead = redis.call('ZRANGE', registry, '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0,
                          math.min(budget, SLICE))
  for _, tag in ipairs(dead) do
    removed = removed + redis.call('ZCARD', prefix .. 't:' .. tag)
    redis.call('UNLINK', prefix .. 't:' .. tag)
  end
  if #dead > 0 then
    redis.call('ZREM', registry, unpack(dead))
    budget = budget - #dead
  end
end

-- Live tags are visited in turn, continuing a ZSCAN of the registry across calls, so every
-- tag is reached however many there are. The cursor only moves on once every tag of the
-- chunk was cut completely; a chunk left unfinished is taken up again by the next call.
local state = prefix .. 'prune'
local cursor = redis.call('HGET', state, 'cursor') or '0'
local chunk = redis.call('ZSCAN', registry, cursor, 'COUNT', visits)
local finished = true
for i = 1, #chunk[2], 2 do
  if not cut(prefix .. 't:' .. chunk[2][i]) then
    finished = false
    break
  end
end
if finished then
  redis.call('HSET', state, 'cursor', chunk[1])
end
return removed
