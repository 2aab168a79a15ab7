-- Read entries of one bucket, count each hit and apply sliding expiry, atomically and in one
-- round trip.
--
-- KEYS[1]     pending hit counts (hash key -> count) read by the statistics flush
-- KEYS[2]     pending last-access times (hash key -> ms)
-- KEYS[3..n]  entry hashes, all in the same bucket
-- ARGV[1]     now, in milliseconds
-- ARGV[2]     "1" when the namespace refreshes TTLs on access (sliding expiry), else "0"
-- ARGV[3]     bucket prefix
-- ARGV[4]     "1" to return every field, "0" for just what the value needs (v, ty, cp, et)
-- ARGV[5]     byte budget: once the values read reach it, the remaining entries are left
--             unread (and uncounted) for another call, so one call never copies hundreds of
--             megabytes while Redis serves nobody else; the first entry is always read
-- ARGV[6..]   the cache keys of KEYS[3..n], in the same order
--
-- Returns one element per entry read, in order: false for a miss, else the values of the
-- fields below in this order (all of them, or the first four), with hc, la and ex including
-- this read; a list or set entry gets its elements as one more element. Fewer elements than
-- entries means the budget was reached: the caller asks again for the rest.
local FIELDS = {'v', 'ty', 'cp', 'et', 'ca', 'ua', 'ex', 'ttl', 'tg', 'hc', 'la', 'sz', 'sl'}
local EX, TTL, TG, HC, LA, SL = 7, 8, 9, 10, 11, 13
local now, sliding_namespace, prefix, full = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local budget = tonumber(ARGV[5])
local bytes = 0
local result = {}
for i = 3, #KEYS do
  if i > 3 and bytes >= budget then
    break
  end
  local entry = KEYS[i]
  local values = redis.call('HMGET', entry, unpack(FIELDS))
  if not values[2] then
    result[#result + 1] = false
  else
    local key = ARGV[i + 3]
    if values[2] == 'list' or values[2] == 'set' then
      bytes = bytes + (tonumber(values[12]) or 0)  -- The elements' bytes, kept in 'sz'.
    else
      bytes = bytes + #values[1]
    end
    -- The hit count was just read with the hash: one HSET writes it and the access time.
    local hits = (tonumber(values[HC]) or 0) + 1
    redis.call('HSET', entry, 'hc', hits, 'la', now)
    redis.call('HINCRBY', KEYS[1], key, 1)
    redis.call('HSET', KEYS[2], key, now)
    values[HC], values[LA] = tostring(hits), now
    local ttl = values[TTL] or ''
    local collection = prefix .. 'c:' .. key
    if (sliding_namespace == '1' or values[SL] == '1') and ttl ~= '' then
      -- The entry, its collection and every index membership move to the new expiry together.
      local expiry = tonumber(now) + tonumber(ttl) * 1000
      redis.call('PEXPIREAT', entry, expiry)
      redis.call('PEXPIREAT', collection, expiry)
      redis.call('HSET', entry, 'ex', expiry)
      values[EX] = tostring(expiry)
      redis.call('ZADD', prefix .. 'idx', expiry, key)
      for tag in string.gmatch(values[TG] or '', '[^\n]+') do
        redis.call('ZADD', prefix .. 't:' .. tag, expiry, key)
        redis.call('ZADD', prefix .. 'tags', 'GT', expiry, tag)
      end
      -- The new expiry is metadata Postgres must learn (or it would prune the row).
      redis.call('SADD', prefix .. 'fm', key)
    end
    local reply = values
    if not full then
      reply = {values[1], values[2], values[3], values[4]}
    end
    if values[2] == 'list' then
      reply[#reply + 1] = redis.call('LRANGE', collection, 0, -1)
    elseif values[2] == 'set' then
      reply[#reply + 1] = redis.call('SMEMBERS', collection)
    end
    result[#result + 1] = reply
  end
end
return result
