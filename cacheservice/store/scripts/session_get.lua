-- Read a session and, unless told not to, slide its expiry: one round trip.
--
-- KEYS[1]  the session hash
-- KEYS[2]  pending access times of the session bucket (session id -> "la:ex"), flushed to
--          Postgres by the workers
-- ARGV[1]  session id
-- ARGV[2]  now (ms)
-- ARGV[3]  "1" to slide the expiry by the session's ttl, "0" to leave it
-- ARGV[4]  prefix of the bucket's user indexes ("cs:{ss:3f}:u:")
--
-- Returns the session hash as a flat list (la and ex updated), or false when absent.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
if ARGV[3] ~= '1' then
  return fields
end
local at = {}
for f = 1, #fields, 2 do
  at[fields[f]] = f + 1
end
local now = tonumber(ARGV[2])
local expiry = now + tonumber(fields[at['ttl']]) * 1000
redis.call('HSET', KEYS[1], 'la', now, 'ex', expiry)
redis.call('PEXPIREAT', KEYS[1], expiry)
-- The user's index is scored by expiry, so it must move with the session.
redis.call('ZADD', ARGV[4] .. fields[at['u']], expiry, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now .. ':' .. expiry)
fields[at['la']] = tostring(now)
fields[at['ex']] = tostring(expiry)
return fields
