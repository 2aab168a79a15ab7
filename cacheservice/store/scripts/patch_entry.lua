-- Change one entry in place, atomically: its expiry, its tags, or its list/set elements.
--
-- KEYS[1]  the entry hash
-- ARGV[1]  bucket prefix
-- ARGV[2]  cache key
-- ARGV[3]  now (ms)
-- ARGV[4]  the namespace's max TTL in seconds, or "" for none (checked by extend_by)
-- ARGV[5]  the namespace's max value bytes (checked by append, prepend and add)
-- ARGV[6]  operation: ttl | expires_at | extend_by | persist | tags | append | prepend | add
--          | remove
-- ARGV[7..] its arguments: ttl -> seconds; expires_at -> ms; extend_by -> seconds;
--          persist -> none; tags -> the new tags; append/prepend/add/remove -> elements
--
-- Returns {"ok", field, value, ...} (the entry hash afterwards, plus "length" for a list or
-- set) or {error}: "missing", "not_list", "not_set", "no_expiry", "too_long", "too_large".
local entry = KEYS[1]
local prefix, key, now, max_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_bytes, op = tonumber(ARGV[5]), ARGV[6]
local state = redis.call('HMGET', entry, 'ty', 'ex', 'tg', 'ttl', 'sz')
local value_type, expiry, tags, size = state[1], state[2], state[3], tonumber(state[5] or '0')
if not value_type then
  return {'missing'}
end
local collection = prefix .. 'c:' .. key
local index = prefix .. 'idx'

local function each_tag(tag_text, action)
  for tag in string.gmatch(tag_text or '', '[^\n]+') do
    action(tag)
  end
end

-- Move the entry, its collection and its index memberships to a new expiry ('' = none).
local function set_expiry(new_expiry, new_ttl)
  local score = new_expiry == '' and '+inf' or new_expiry
  if new_expiry == '' then
    redis.call('PERSIST', entry)
    redis.call('PERSIST', collection)
  else
    redis.call('PEXPIREAT', entry, new_expiry)
    redis.call('PEXPIREAT', collection, new_expiry)
  end
  redis.call('HSET', entry, 'ex', new_expiry, 'ttl', new_ttl)
  redis.call('ZADD', index, score, key)
  each_tag(tags, function(tag)
    redis.call('ZADD', prefix .. 't:' .. tag, score, key)
    redis.call('ZADD', prefix .. 'tags', 'GT', score, tag)
  end)
end

local function elements()
  local list = {}
  for i = 7, #ARGV do
    list[#list + 1] = ARGV[i]
  end
  return list
end

local function bytes_of(list)
  local total = 0
  for _, element in ipairs(list) do
    total = total + #element
  end
  return total
end

if op == 'ttl' then
  local ttl = tonumber(ARGV[7])
  set_expiry(tostring(now + ttl * 1000), tostring(ttl))
elseif op == 'expires_at' then
  local at = tonumber(ARGV[7])
  set_expiry(tostring(at), tostring(math.ceil((at - now) / 1000)))
elseif op == 'extend_by' then
  if expiry == '' then
    return {'no_expiry'}
  end
  local new_expiry = tonumber(expiry) + tonumber(ARGV[7]) * 1000
  local remaining = math.ceil((new_expiry - now) / 1000)
  if max_ttl ~= '' and remaining > tonumber(max_ttl) then
    return {'too_long'}
  end
  set_expiry(tostring(new_expiry), tostring(remaining))
elseif op == 'persist' then
  set_expiry('', '')
elseif op == 'tags' then
  local new_tags = {}
  for i = 7, #ARGV do
    new_tags[ARGV[i]] = true
  end
  each_tag(tags, function(tag)
    if not new_tags[tag] then
      redis.call('ZREM', prefix .. 't:' .. tag, key)
    end
  end)
  local score = expiry == '' and '+inf' or expiry
  local joined = {}
  for i = 7, #ARGV do
    redis.call('ZADD', prefix .. 't:' .. ARGV[i], score, key)
    redis.call('ZADD', prefix .. 'tags', 'GT', score, ARGV[i])
    joined[#joined + 1] = ARGV[i]
  end
  redis.call('HSET', entry, 'tg', table.concat(joined, '\n'))
elseif op == 'append' or op == 'prepend' then
  if value_type ~= 'list' then
    return {'not_list'}
  end
  local list = elements()
  -- Growing a list past the namespace's limit is refused, as writing it whole would be.
  if size + bytes_of(list) > max_bytes then
    return {'too_large'}
  end
  for start = 1, #list, 500 do
    local stop = math.min(start + 499, #list)
    redis.call(op == 'append' and 'RPUSH' or 'LPUSH', collection, unpack(list, start, stop))
  end
  redis.call('HINCRBY', entry, 'sz', bytes_of(list))
elseif op == 'add' or op == 'remove' then
  if value_type ~= 'set' then
    return {'not_set'}
  end
  local list = elements()
  -- Only members that really enter or leave the set change its size.
  local present = redis.call('SMISMEMBER', collection, unpack(list))
  local changed = {}
  for i, element in ipairs(list) do
    if (op == 'add') == (present[i] == 0) then
      changed[#changed + 1] = element
    end
  end
  if #changed > 0 then
    local delta = bytes_of(changed)
    if op == 'add' and size + delta > max_bytes then
      return {'too_large'}
    end
    redis.call(op == 'add' and 'SADD' or 'SREM', collection, unpack(changed))
    redis.call('HINCRBY', entry, 'sz', op == 'add' and delta or -delta)
  end
end

if (op == 'append' or op == 'prepend' or op == 'add') and expiry ~= '' then
  -- A collection created by this change takes the entry's expiry.
  redis.call('PEXPIREAT', collection, expiry)
end
redis.call('HSET', entry, 'ua', now)
redis.call('SADD', prefix .. 'fm', key)
local result = {'ok'}
for _, value in ipairs(redis.call('HGETALL', entry)) do
  result[#result + 1] = value
end
if value_type == 'list' then
  result[#result + 1] = 'length'
  result[#result + 1] = redis.call('LLEN', collection)
elseif value_type == 'set' then
  result[#result + 1] = 'length'
  result[#result + 1] = redis.call('SCARD', collection)
end
return result
