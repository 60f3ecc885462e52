-- Ordered tables (torch.OrderedDict): plain Lua tables whose pairs() follows insertion order,
-- as Python's dicts do. Checkpoint files keep the order of state dicts; loading gives every dict
-- back as one of these.
--
--   local d = torch.OrderedDict()
--   d.weight = w; d.bias = b          -- new keys go to the end
--   d.weight = w2                     -- an existing key keeps its place
--   d.bias = nil                      -- removes it; assigning it again appends it
--   for k, v in pairs(d) do ... end   -- weight, then whatever came after
--
-- The values live in the table itself, so reads, writes, #d, ipairs, next and rawget work as on
-- any table. Only the first assignment of a key reaches __newindex; that is where the key is
-- recorded. The order lives beside the table (one shared metatable, per-table state in a table
-- with weak keys), and the binding recognises these tables by the metatable's __name.
local M = {}

local rawget, rawset, next, type = rawget, rawset, next, type
local tointeger = math.tointeger

-- state[t] = { keys = {k1, k2, ...}, pos = {[k] = index in keys}, n = #keys, limit = n that
-- triggers the next compaction }. Removing a key is a raw write the metatable never sees, so a
-- removed key stays in `keys` (iteration skips it) until it is assigned again (its old slot
-- becomes a tombstone) or the list is compacted. Compacting whenever n reaches twice the live
-- count of the last compaction keeps the list proportional to the table, at O(1) amortised.
local state = setmetatable({}, { __mode = "k" })
local TOMB = setmetatable({}, { __name = "moontorch.OrderedDict.tombstone" })
local MIN_LIMIT = 64

local meta = { __name = "moontorch.OrderedDict" }

-- Lua stores 2.0 under the key 2; record the key as next() would return it.
local function norm(k)
  if type(k) == "number" then return tointeger(k) or k end
  return k
end

-- Drops tombstones and removed keys; keeps the order of the rest.
local function compact(t, s)
  local keys, new, pos, n = s.keys, {}, {}, 0
  for i = 1, s.n do
    local k = keys[i]
    if k ~= TOMB and rawget(t, k) ~= nil then
      n = n + 1
      new[n], pos[k] = k, n
    end
  end
  s.keys, s.pos, s.n = new, pos, n
  s.limit = n * 2 > MIN_LIMIT and n * 2 or MIN_LIMIT
end

meta.__newindex = function(t, k, v)
  rawset(t, k, v) -- raises for nil and NaN keys exactly as a plain table does
  if v == nil then return end
  local s = state[t]
  k = norm(k)
  local old = s.pos[k]
  if old then s.keys[old] = TOMB end -- removed earlier and now back: it goes to the end
  local n = s.n + 1
  s.keys[n], s.pos[k], s.n = k, n, n
  if n >= s.limit then compact(t, s) end
end

-- pairs(t): the recorded keys in order, then any key that reached the table through rawset
-- (in next() order), so that nothing in the table is ever skipped.
meta.__pairs = function(t)
  local s = state[t]
  local i, raw, last = 0, false, nil
  return function()
    if not raw then
      local keys = s.keys
      while i < s.n do
        i = i + 1
        local k = keys[i]
        if k ~= TOMB then
          local v = rawget(t, k)
          if v ~= nil then return k, v end
        end
      end
      raw = true
    end
    local k, v = next(t, last)
    while k ~= nil and s.pos[k] do k, v = next(t, k) end
    last = k
    return k, v
  end, t, nil
end

-- The binding builds loaded dicts as plain tables plus their key list; this makes one ordered.
-- `keys` (distinct keys, each with a non-nil value in t) becomes the table's own order list.
function M.adopt(t, keys)
  local pos, n = {}, #keys
  for i = 1, n do pos[keys[i]] = i end
  state[t] = { keys = keys, pos = pos, n = n, limit = n * 2 > MIN_LIMIT and n * 2 or MIN_LIMIT }
  return setmetatable(t, meta)
end

local function fail(fmt, ...)
  error("moontorch.OrderedDict: " .. string.format(fmt, ...), 0)
end

-- OrderedDict() or OrderedDict({{k1, v1}, {k2, v2}, ...}); an ordered table is copied in order.
function M.new(init)
  local t = M.adopt({}, {})
  if init == nil then return t end
  if type(init) ~= "table" then fail("bad argument #1 (table of {key, value} pairs expected, got %s)", type(init)) end
  if getmetatable(init) == meta then
    for k, v in pairs(init) do t[k] = v end
    return t
  end
  for i, pair in ipairs(init) do
    if type(pair) ~= "table" then fail("entry [%d] is a %s, not a {key, value} pair", i, type(pair)) end
    local k = pair[1]
    if k == nil then fail("entry [%d] has no key", i) end
    if k ~= k then fail("entry [%d] has a NaN key", i) end
    t[k] = pair[2]
  end
  return t
end

function M.is_ordered(t)
  return type(t) == "table" and getmetatable(t) == meta
end

M.metatable = meta

return M
