-- Drop a batch once Postgres has committed it: the last step of an exactly-once flush.
--
-- KEYS[1]    the in-flight pointer
-- ARGV[1]    prefix of batch key names
-- ARGV[2]    the batch id
-- ARGV[3..]  the batch's suffixes (as given to claim_batch.lua)
--
-- Returns 1 when the batch was in flight and is now gone, 0 when another run finished it.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
for i = 3, #ARGV do
  redis.call('UNLINK', ARGV[1] .. ARGV[2] .. ':' .. ARGV[i])
end
redis.call('DEL', KEYS[1])
return 1
