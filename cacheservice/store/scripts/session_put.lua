-- Write a session's hot copy (from the row Postgres committed) and its user-index entry.
--
-- KEYS[1]  the session hash
-- KEYS[2]  the user's session index (sorted set: session id -> expiry ms)
-- ARGV[1]  session id
-- ARGV[2]  version: the row's updated_at in microseconds
-- ARGV[3]  expiry (ms)
-- ARGV[4..] field/value pairs of the hash (u, d, ttl, ca, ua, la, ex)
--
-- A copy older than the one in Redis is ignored: two PATCHes committed in one order and
-- written here in the other must not leave the older data behind. Returns 1 when written.
local stored = redis.call('HGET', KEYS[1], 'v')
if stored and tonumber(stored) > tonumber(ARGV[2]) then
  return 0
end
local fields = {'v', ARGV[2]}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
