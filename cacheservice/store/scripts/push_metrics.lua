-- Add one web process's aggregated metric deltas to the pending hash, at most once.
--
-- A push that timed out may or may not have been applied; the process retries it with the
-- same id, and the marker makes the retry a no-op if the first attempt went through.
--
-- KEYS[1]  the pending metrics hash (field "<namespace>\t<minute>\t<metric>" -> value)
-- KEYS[2]  the push marker for this push id
-- KEYS[3]  the set of namespaces ever seen
-- ARGV[1]  seconds to remember the marker
-- ARGV[2]  number of namespaces that follow
-- ARGV[3 .. 2+n]  namespaces
-- ARGV[3+n ..]  field/delta pairs (deltas may be fractional: latency sums in ms)
--
-- Returns 1 when applied now, 0 when this push id was already applied.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  redis.call('SADD', KEYS[3], ARGV[i])
end
for i = 3 + n, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
