-- Delete the candidate entries of one bucket that still match the filter, atomically.
--
-- Candidates come from an index scan or an explicit key list; the filter is re-checked here
-- against each entry's current tags, so an entry rewritten since the scan is judged by what
-- it is now. Memberships that point at a gone entry, or at an entry that no longer carries
-- the scanned tag, are removed on the way (they are stale, not live data).
--
-- KEYS[1]  the bucket's namespace index (names the slot)
-- ARGV[1]  bucket prefix
-- ARGV[2]  tag match: "none" (no tag filter), "any" or "all"
-- ARGV[3]  number of filter tags, n
-- ARGV[4 .. 3+n]  the filter tags
-- ARGV[4+n]  the tag index the candidates were scanned from, or "" for none
-- ARGV[5+n]  how many deleted keys to return at most
-- ARGV[6+n ..]  candidate cache keys
--
-- Returns {deleted_count, deleted_key...} with at most the requested number of keys.
local prefix, match = ARGV[1], ARGV[2]
local n_tags = tonumber(ARGV[3])
local wanted = {}
for i = 4, 3 + n_tags do
  wanted[#wanted + 1] = ARGV[i]
end
local scanned_tag = ARGV[4 + n_tags]
local max_listed = tonumber(ARGV[5 + n_tags])
local index = prefix .. 'idx'

local function matches(tag_set)
  if match == 'none' then
    return true
  end
  for _, tag in ipairs(wanted) do
    local has = tag_set[tag] == true
    if match == 'any' and has then
      return true
    end
    if match == 'all' and not has then
      return false
    end
  end
  return match == 'all'
end

local deleted = {0}
for i = 6 + n_tags, #ARGV do
  local key = ARGV[i]
  local entry = prefix .. 'e:' .. key
  local tags = redis.call('HGET', entry, 'tg')
  if not tags then
    redis.call('ZREM', index, key)
    if scanned_tag ~= '' then
      redis.call('ZREM', prefix .. 't:' .. scanned_tag, key)
    end
  else
    local tag_set = {}
    for tag in string.gmatch(tags, '[^\n]+') do
      tag_set[tag] = true
    end
    if matches(tag_set) then
      for tag in pairs(tag_set) do
        redis.call('ZREM', prefix .. 't:' .. tag, key)
      end
      redis.call('ZREM', index, key)
      redis.call('UNLINK', entry, prefix .. 'c:' .. key)
      redis.call('SADD', prefix .. 'fm', key)
      deleted[1] = deleted[1] + 1
      if #deleted <= max_listed then
        deleted[#deleted + 1] = key
      end
    elseif scanned_tag ~= '' and not tag_set[scanned_tag] then
      redis.call('ZREM', prefix .. 't:' .. scanned_tag, key)
    end
  end
end
return deleted
