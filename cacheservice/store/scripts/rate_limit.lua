-- Sliding-window-counter rate limiting (the algorithm of the `limits` library's
-- SlidingWindowCounter and of Cloudflare's limiter): the count of the previous fixed window,
-- weighted by how much of it still overlaps the sliding window, plus the current window's.
--
-- This file is a library: other scripts are built as this text followed by a prologue that
-- calls rate_limit(), so the limit check and the cache operation run in one script call.
--
-- State: one hash per (subject, category) with fields w (current window start, ms),
-- c (requests counted in it) and p (requests counted in the previous window).
--
-- Returns {allowed (1/0), remaining, reset_ms, retry_after_ms}: reset_ms is when the current
-- fixed window ends; retry_after_ms (only when refused) is how long until one more request fits.
local function rate_limit(key, limit, window, now)
  local start = now - (now % window)
  local state = redis.call('HMGET', key, 'w', 'c', 'p')
  local current, previous = 0, 0
  local stored_start = tonumber(state[1])
  if stored_start and stored_start > start then
    -- The caller's clock is behind the one that opened a later window (requests racing at a
    -- window boundary, or hosts whose clocks differ): count in that window, never reset it.
    now, start = stored_start, stored_start
  end
  if stored_start == start then
    current, previous = tonumber(state[2]) or 0, tonumber(state[3]) or 0
  elseif stored_start == start - window then
    previous = tonumber(state[2]) or 0
  end
  local elapsed = now - start
  local weighted = previous * (window - elapsed) / window + current
  local reset = start + window
  if weighted + 1 > limit then
    local retry_after = reset - now
    if current + 1 <= limit and previous > 0 then
      -- The previous window's weight decays linearly; find when one more request fits.
      local needed = window * (1 - (limit - 1 - current) / previous)
      retry_after = math.max(1, math.ceil(needed - elapsed))
    end
    return {0, 0, reset, retry_after}
  end
  current = current + 1
  redis.call('HSET', key, 'w', start, 'c', current, 'p', previous)
  redis.call('PEXPIRE', key, 2 * window)
  return {1, math.floor(limit - weighted - 1), reset, 0}
end
