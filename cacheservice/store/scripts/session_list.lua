-- A user's live sessions, pruning expired index members on the way.
--
-- KEYS[1]  the user's session index
-- ARGV[1]  prefix of the bucket's session hashes
-- ARGV[2]  now (ms)
--
-- Returns {session_id, fields, session_id, fields, ...}; members whose hash is gone (evicted,
-- or deleted by another host) are removed from the index too.
local now = ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local result = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local secret = string.match(sid, '^[^.]+%.(.+)$')
  local fields = secret and redis.call('HGETALL', ARGV[1] .. secret) or {}
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], sid)
  else
    result[#result + 1] = sid
    result[#result + 1] = fields
  end
end
return result
