-- Prologue of a guarded script: the rate limit check first, then the cache operation.
-- The limiter's key and arguments come first in KEYS and ARGV and are removed here, so the
-- operation's body below reads KEYS and ARGV exactly as it does when it runs unguarded.
-- Returns {limit_reply, operation_reply}; a refused request returns {limit_reply} and the
-- operation does not run.
local limiter_key = table.remove(KEYS, 1)
local limit = tonumber(table.remove(ARGV, 1))
local window = tonumber(table.remove(ARGV, 1))
local now = tonumber(table.remove(ARGV, 1))
local limited = rate_limit(limiter_key, limit, window, now)
if limited[1] == 0 then
  return {limited}
end
local function operation()
