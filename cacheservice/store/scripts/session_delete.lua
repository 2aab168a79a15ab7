-- Remove sessions' hot copies and their user-index entries, and mark them revoked.
--
-- KEYS[1]  the user's session index
-- ARGV[1]  prefix of the bucket's session hashes ("cs:{ss:3f}:s:")
-- ARGV[2]  prefix of the bucket's revocation markers ("cs:{ss:3f}:r:")
-- ARGV[3]  seconds a revocation marker lives
-- ARGV[4..] session ids ("3f.<secret>")
-- Returns how many hot copies existed.
local removed = 0
for i = 4, #ARGV do
  local secret = string.match(ARGV[i], '^[^.]+%.(.+)$')
  if secret then
    removed = removed + redis.call('UNLINK', ARGV[1] .. secret)
    -- session_put.lua refuses to write a marked session back (a refill racing the revocation).
    redis.call('SET', ARGV[2] .. secret, '1', 'EX', ARGV[3])
  end
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return removed
