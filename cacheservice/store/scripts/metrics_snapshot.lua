-- Everything the metrics pipeline holds that Postgres may not have yet, read atomically:
-- the pending hash, the batch in flight and the recently done batches.
--
-- KEYS[1]  the pending hash
-- KEYS[2]  the in-flight pointer
-- KEYS[3]  the sorted set of done batch ids
-- ARGV[1]  prefix of batch key names
--
-- Returns {pending_fields, {batch_id, batch_fields}, ...}; the caller counts a batch only if
-- its id is not in flush_batches as of its Postgres snapshot.
local result = {redis.call('HGETALL', KEYS[1])}
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
local inflight = redis.call('GET', KEYS[2])
if inflight then
  ids[#ids + 1] = inflight
end
for _, id in ipairs(ids) do
  result[#result + 1] = {id, redis.call('HGETALL', ARGV[1] .. id .. ':p')}
end
return result
