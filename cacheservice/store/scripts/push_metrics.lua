-- Add one web process's aggregated metric deltas to the pending hash, at most once.
--
-- A push that timed out may or may not have been applied; the process retries it with the
-- same id, and the marker makes the retry a no-op if the first attempt went through.
--
-- KEYS[1]  the pending metrics hash (field "<namespace>\t<minute>\t<metric>" -> value)
-- KEYS[2]  the push marker for this push id
-- KEYS[3]  the set of namespaces ever seen
-- KEYS[4 ..]  markers of earlier pushes whose reply arrived (never retried): cut to ARGV[2]
-- ARGV[1]  seconds to remember the marker while the push may be retried
-- ARGV[2]  seconds to keep the markers of answered pushes
-- ARGV[3]  number of namespaces that follow
-- ARGV[4 .. 3+n]  namespaces
-- ARGV[4+n ..]  field/delta pairs (deltas may be fractional: latency sums in ms)
--
-- Returns 1 when applied now, 0 when this push id was already applied.
for i = 4, #KEYS do
  local left = redis.call('TTL', KEYS[i])
  if left > tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local n = tonumber(ARGV[3])
for i = 4, 3 + n do
  redis.call('SADD', KEYS[3], ARGV[i])
end
for i = 4 + n, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
