-- Hand pending data over to a batch, atomically: the first step of an exactly-once flush.
--
-- KEYS[1]     the in-flight pointer: holds the id of the batch being flushed, if any
-- KEYS[2..n]  the pending structures (hashes or sets) new data keeps arriving in
-- ARGV[1]     prefix of batch key names (same hash slot as the pending keys)
-- ARGV[2]     id for a new batch
-- ARGV[3..]   one suffix per pending key: pending KEYS[i] becomes <prefix><id>:<suffix>
--
-- Returns the id of the batch to flush: the unfinished one if a previous run died before
-- finishing it (resume it first), else the new one; false when there is nothing pending.
local unfinished = redis.call('GET', KEYS[1])
if unfinished then
  return unfinished
end
local prefix, id = ARGV[1], ARGV[2]
local moved = false
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], prefix .. id .. ':' .. ARGV[i + 1])
    moved = true
  end
end
if not moved then
  return false
end
redis.call('SET', KEYS[1], id)
return id
