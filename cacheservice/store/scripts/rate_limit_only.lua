-- The rate limit check on its own, for requests that cannot fold it into their cache call.
-- KEYS[1] limiter hash; ARGV[1] limit, ARGV[2] window (ms), ARGV[3] now (ms).
return rate_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
