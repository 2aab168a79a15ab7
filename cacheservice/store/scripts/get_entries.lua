-- Read entries of one bucket and count each hit, atomically and in one round trip.
--
-- KEYS[1]     pending hit counts (hash key -> count) read by the statistics flush
-- KEYS[2]     pending last-access times (hash key -> ms)
-- KEYS[3..n]  entry hashes, all in the same bucket
-- ARGV[1]     now, in milliseconds
-- ARGV[2..]   the cache keys of KEYS[3..n], in the same order
--
-- Returns one element per entry: false for a miss, else the entry hash as a flat
-- field/value list in which hc (hit count) and la (last access) already include this read.
local now = ARGV[1]
local result = {}
for i = 3, #KEYS do
  local entry = KEYS[i]
  local fields = redis.call('HGETALL', entry)
  if #fields == 0 then
    result[#result + 1] = false
  else
    local key = ARGV[i - 1]
    local hits = redis.call('HINCRBY', entry, 'hc', 1)
    redis.call('HSET', entry, 'la', now)
    redis.call('HINCRBY', KEYS[1], key, 1)
    redis.call('HSET', KEYS[2], key, now)
    for f = 1, #fields, 2 do
      if fields[f] == 'hc' then
        fields[f + 1] = tostring(hits)
      elseif fields[f] == 'la' then
        fields[f + 1] = now
      end
    end
    result[#result + 1] = fields
  end
end
return result
