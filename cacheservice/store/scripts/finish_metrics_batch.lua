-- Retire a metrics batch once Postgres has committed it.
--
-- Unlike entry batches, a metrics batch is kept for a short while as "done" rather than
-- deleted: a statistics request that took its Postgres snapshot before the commit still
-- finds the batch's figures here, and counts them exactly once (see metrics_snapshot.lua).
--
-- KEYS[1]  the in-flight pointer
-- KEYS[2]  the sorted set of done batch ids, scored by when they were retired (ms)
-- ARGV[1]  prefix of batch key names
-- ARGV[2]  the batch id
-- ARGV[3]  now (ms)
-- ARGV[4]  how long done batches are kept (ms)
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
local batch = ARGV[1] .. ARGV[2] .. ':p'
local now, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', batch) == 1 then
  redis.call('PEXPIRE', batch, keep)
  redis.call('ZADD', KEYS[2], now, ARGV[2])
end
redis.call('DEL', KEYS[1])
local expired = redis.call('ZRANGE', KEYS[2], '-inf', '(' .. (now - keep), 'BYSCORE')
for _, id in ipairs(expired) do
  redis.call('UNLINK', ARGV[1] .. id .. ':p')
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - keep))
return 1
