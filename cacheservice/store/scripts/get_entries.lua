-- Read entries of one bucket, count each hit and apply sliding expiry, atomically and in one
-- round trip.
--
-- KEYS[1]     pending hit counts (hash key -> count) read by the statistics flush
-- KEYS[2]     pending last-access times (hash key -> ms)
-- KEYS[3..n]  entry hashes, all in the same bucket
-- ARGV[1]     now, in milliseconds
-- ARGV[2]     "1" when the namespace refreshes TTLs on access (sliding expiry), else "0"
-- ARGV[3]     bucket prefix
-- ARGV[4..]   the cache keys of KEYS[3..n], in the same order
--
-- Returns one element per entry: false for a miss, else the entry hash as a flat field/value
-- list in which hc (hit count), la (last access) and ex (expiry) include this read; list and
-- set entries get one more pair, "items" -> their elements.
local now, sliding_namespace, prefix = ARGV[1], ARGV[2], ARGV[3]
local result = {}
for i = 3, #KEYS do
  local entry = KEYS[i]
  local fields = redis.call('HGETALL', entry)
  if #fields == 0 then
    result[#result + 1] = false
  else
    local key = ARGV[i + 1]
    local at = {}
    for f = 1, #fields, 2 do
      at[fields[f]] = f + 1
    end
    -- The hit count was just read with the hash: one HSET writes it and the access time.
    local hits = tonumber(at['hc'] and fields[at['hc']] or 0) + 1
    redis.call('HSET', entry, 'hc', hits, 'la', now)
    redis.call('HINCRBY', KEYS[1], key, 1)
    redis.call('HSET', KEYS[2], key, now)
    if at['hc'] then fields[at['hc']] = tostring(hits) else fields[#fields + 1] = 'hc'; fields[#fields + 1] = tostring(hits) end
    if at['la'] then fields[at['la']] = now else fields[#fields + 1] = 'la'; fields[#fields + 1] = now end
    local ttl = at['ttl'] and fields[at['ttl']] or ''
    local sliding = sliding_namespace == '1' or (at['sl'] and fields[at['sl']] == '1')
    local collection = prefix .. 'c:' .. key
    if sliding and ttl ~= '' then
      -- The entry, its collection and every index membership move to the new expiry together.
      local expiry = tonumber(now) + tonumber(ttl) * 1000
      redis.call('PEXPIREAT', entry, expiry)
      redis.call('PEXPIREAT', collection, expiry)
      redis.call('HSET', entry, 'ex', expiry)
      fields[at['ex']] = tostring(expiry)
      redis.call('ZADD', prefix .. 'idx', expiry, key)
      for tag in string.gmatch(fields[at['tg']] or '', '[^\n]+') do
        redis.call('ZADD', prefix .. 't:' .. tag, expiry, key)
        redis.call('ZADD', prefix .. 'tags', 'GT', expiry, tag)
      end
      -- The new expiry is metadata Postgres must learn (or it would prune the row).
      redis.call('SADD', prefix .. 'fm', key)
    end
    local value_type = fields[at['ty']]
    if value_type == 'list' then
      fields[#fields + 1] = 'items'
      fields[#fields + 1] = redis.call('LRANGE', collection, 0, -1)
    elseif value_type == 'set' then
      fields[#fields + 1] = 'items'
      fields[#fields + 1] = redis.call('SMEMBERS', collection)
    end
    result[#result + 1] = fields
  end
end
return result
