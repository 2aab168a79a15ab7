-- Remove sessions' hot copies and their user-index entries.
--
-- KEYS[1]  the user's session index
-- ARGV[1]  prefix of the bucket's session hashes ("cs:{ss:3f}:s:")
-- ARGV[2..] session ids ("3f.<secret>")
-- Returns how many hot copies existed.
local removed = 0
for i = 2, #ARGV do
  local secret = string.match(ARGV[i], '^[^.]+%.(.+)$')
  if secret then
    removed = removed + redis.call('UNLINK', ARGV[1] .. secret)
  end
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return removed
