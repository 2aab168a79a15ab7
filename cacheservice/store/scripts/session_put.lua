-- Write a session's hot copy (from the row Postgres committed) and its user-index entry.
--
-- KEYS[1]  the session hash
-- KEYS[2]  the user's session index (sorted set: session id -> expiry ms)
-- KEYS[3]  pending access times of the session bucket (see session_get.lua)
-- KEYS[4]  the session's revocation marker (set by session_delete.lua)
-- KEYS[5]  the newest version written lately (kept a minute, and apart from the hash, so that
--          a stale copy cannot slip in after the hash itself was evicted or deleted)
-- ARGV[1]  session id
-- ARGV[2]  version: the row's updated_at in microseconds
-- ARGV[3]  expiry (ms)
-- ARGV[4]  "1" when the row restarts the expiry (a new ttl), else "0"
-- ARGV[5..] field/value pairs of the hash (u, d, ttl, ca, ua, la, ex)
--
-- A copy older than the one in Redis is ignored: two PATCHes committed in one order and
-- written here in the other must not leave the older data behind. Reads slide the expiry in
-- Redis only (the workers bring it to Postgres later), so a later access time and expiry of
-- the copy in Redis are kept; unless the row restarts the expiry, which also drops a slide
-- still waiting for the workers (it would push the row's expiry past the new one).
-- A revoked session is never written back: a read or PATCH that fetched the row just before a
-- revocation deleted it must not bring the session back to life in Redis.
-- Returns {la, ex} as written, or false when the copy in Redis is newer or revoked.
if redis.call('EXISTS', KEYS[4]) == 1 then
  return false
end
local stored = redis.call('HMGET', KEYS[1], 'v', 'la', 'ex')
if stored[1] and tonumber(stored[1]) > tonumber(ARGV[2]) then
  return false
end
local recent = redis.call('GET', KEYS[5])
if recent and tonumber(recent) > tonumber(ARGV[2]) then
  return false
end
redis.call('SET', KEYS[5], ARGV[2], 'EX', 60)
local expiry = ARGV[3]
local fields = {'v', ARGV[2]}
local access
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'la' then
    access = ARGV[i + 1]
  end
end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[3], ARGV[1])
elseif stored[3] and tonumber(stored[3]) > tonumber(expiry) then
  expiry = stored[3]
end
if stored[2] and tonumber(stored[2]) > tonumber(access) then
  access = stored[2]
end
fields[#fields + 1] = 'la'
fields[#fields + 1] = access
fields[#fields + 1] = 'ex'
fields[#fields + 1] = expiry
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], expiry)
-- The user's sessions that expired before this access leave the index now, not only when the
-- cleanup task deletes their rows (minutes later): a user creating short sessions all day
-- would otherwise carry every one of them until then.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. access)
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
return {access, expiry}
