-- Containers: nn.Sequential, nn.ModuleList, nn.ModuleDict (SPEC section 4).
--
--   local seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
--   seq[1]            -- the first layer: its child name (and state-dict prefix) is "0"
--   #seq, seq[-1]     -- 3, the last layer; ipairs(seq) walks the layers
--   seq(x)            -- feeds x through each layer in turn
--   nn.Sequential(torch.OrderedDict({{"conv", c}, {"act", a}}))   -- named children
--
--   local blocks = nn.ModuleList({nn.Linear(4, 4), nn.Linear(4, 4)}); blocks:append(m)
--   local heads = nn.ModuleDict({cls = nn.Linear(8, 10), box = nn.Linear(8, 4)})
--   heads.cls, heads["box"], heads:keys(), for name, m in heads:items() do ... end
--
-- Sequential and ModuleList name their children "0", "1", ... as PyTorch does (so state-dict
-- keys match) while Lua indices are 1-based. Removing or inserting renumbers the names, as
-- PyTorch's __delitem__ and insert do. A ModuleDict built from a plain Lua table (which has no
-- order) registers its keys sorted; pass a torch.OrderedDict to choose the order.
local ordered = require "moontorch.ordered"
local module = require "moontorch.nn.module"

local Module, is_module = module.Module, module.is_module
local module_index, module_newindex = module.module_index, module.module_newindex

local M = {}

local fail = require("moontorch.errors").raiser("moontorch.nn.")

local typename = require("moontorch.errors").typename

local function check_module(fname, m, what)
  if not is_module(m) then fail(fname, "%s is a %s, not a module", what, typename(m)) end
  return m
end

-- `extend` is both Module:extend("Name") on a class and the list method on an instance.
local function is_class(v) return rawget(v, "_values") == nil end

-- ------------------------------------------------------------------------------------------
-- Shared by the two indexed containers

-- Position i (1-based; negative counts from the end) -> index into self._modules, or nil.
local function position(self, i)
  local n = #self._modules
  if i < 0 then i = n + 1 + i end
  if i >= 1 and i <= n then return i end
end

-- Gives the children the names "0", "1", ... in their current order.
local function renumber(self, list)
  local values, kind = self._values, self._kind
  for _, name in ipairs(self._modules) do
    values[name], kind[name] = nil, nil
  end
  local names = {}
  for i, m in ipairs(list) do
    local name = tostring(i - 1)
    names[i], values[name], kind[name] = name, m, "module"
  end
  self._modules = names
end

local function current(self)
  local list = {}
  for i, name in ipairs(self._modules) do list[i] = self._values[name] end
  return list
end

local function indexed_index(self, k)
  if math.type(k) == "integer" then
    local i = position(self, k)
    if i then return self._values[self._modules[i]] end
    return nil
  end
  return module_index(self, k)
end

local function indexed_newindex(cname)
  return function(self, k, v)
    if math.type(k) ~= "integer" then return module_newindex(self, k, v) end
    local n = #self._modules
    if k == n + 1 then return self:append(v) end
    local i = position(self, k)
    if not i then fail(cname, "index %d is out of range for %d modules", k, n) end
    if v == nil then return self:pop(k) end
    self._values[self._modules[i]] = check_module(cname, v, "value")
  end
end

local function indexed_len(self) return #self._modules end

local function add_methods(cls, cname)
  cls.__index = indexed_index
  cls.__newindex = indexed_newindex(cname)
  cls.__len = indexed_len

  function cls:append(m)
    check_module(cname .. ":append", m, "argument")
    self:add_module(tostring(#self._modules), m)
    return self
  end

  function cls:extend(modules)
    if is_class(self) then return Module.extend(self, modules) end
    if type(modules) ~= "table" or is_module(modules) and not modules._modules then
      fail(cname .. ":extend", "bad argument #1 (array of modules expected, got %s)", typename(modules))
    end
    local list = is_module(modules) and current(modules) or modules
    for i = 1, #list do check_module(cname .. ":extend", list[i], "entry [" .. i .. "]") end
    for i = 1, #list do self:append(list[i]) end
    return self
  end

  -- insert(i, m): m goes before entry i (1-based; -1 is the last entry, #self + 1 appends), as
  -- Python's list.insert.
  function cls:insert(i, m)
    check_module(cname .. ":insert", m, "argument #2")
    local n = #self._modules
    if math.type(i) ~= "integer" then fail(cname .. ":insert", "bad argument #1 (integer index expected, got %s)", typename(i)) end
    if i < 0 then i = n + 1 + i end
    if i < 1 or i > n + 1 then fail(cname .. ":insert", "index %d is out of range for %d modules", i, n) end
    local list = current(self)
    table.insert(list, i, m)
    renumber(self, list)
    return self
  end

  -- pop([i]) removes entry i (default: the last) and returns it.
  function cls:pop(i)
    local n = #self._modules
    i = i or -1
    local at = math.type(i) == "integer" and position(self, i)
    if not at then fail(cname .. ":pop", "index %s is out of range for %d modules", tostring(i), n) end
    local list = current(self)
    local m = table.remove(list, at)
    renumber(self, list)
    return m
  end
end

-- ------------------------------------------------------------------------------------------
-- Sequential

local Sequential = Module:extend("Sequential")
add_methods(Sequential, "Sequential")
M.Sequential = Sequential

-- Sequential(m1, m2, ...) or Sequential(ordered table of name -> module).
function Sequential:__init(...)
  local n = select("#", ...)
  local first = ...
  if n == 1 and ordered.is_ordered(first) then
    for name, m in pairs(first) do self:add_module(name, check_module("Sequential", m, "entry '" .. tostring(name) .. "'")) end
    return
  end
  for i = 1, n do
    local m = select(i, ...)
    self:add_module(tostring(i - 1), check_module("Sequential", m, "argument #" .. i))
  end
end

-- Each layer's output is the next one's input.
function Sequential:forward(x)
  local values, names = self._values, self._modules
  for i = 1, #names do x = values[names[i]](x) end -- a numeric loop: no ipairs calls
  return x
end

function Sequential:_constructor_args()
  local names = self._modules
  local list = current(self)
  for i, name in ipairs(names) do
    if name ~= tostring(i - 1) then
      local d = ordered.new()
      for j, nm in ipairs(names) do d[nm] = list[j] end
      return table.pack(d)
    end
  end
  return table.pack(table.unpack(list))
end

-- ------------------------------------------------------------------------------------------
-- ModuleList

local ModuleList = Module:extend("ModuleList")
add_methods(ModuleList, "ModuleList")
M.ModuleList = ModuleList

-- ModuleList([array of modules])
function ModuleList:__init(modules)
  if modules ~= nil then self:extend(modules) end
end

function ModuleList:_constructor_args() return table.pack(current(self)) end

-- ------------------------------------------------------------------------------------------
-- ModuleDict

local ModuleDict = Module:extend("ModuleDict")
M.ModuleDict = ModuleDict

-- Keys of a ModuleDict are names of children; anything else assigned is refused.
ModuleDict.__newindex = function(self, k, v)
  if v ~= nil then check_module("ModuleDict", v, "value for key '" .. tostring(k) .. "'") end
  return module_newindex(self, k, v)
end
ModuleDict.__len = indexed_len

-- ModuleDict([table of name -> module]): an ordered table keeps its order, a plain one is
-- sorted by key.
function ModuleDict:__init(modules)
  if modules ~= nil then self:update(modules) end
end

function ModuleDict:update(modules)
  if type(modules) ~= "table" then fail("ModuleDict:update", "bad argument #1 (table of name -> module expected, got %s)", typename(modules)) end
  local names, list = {}, {}
  if is_module(modules) then
    for name, m in modules:named_children() do names[#names + 1], list[#list + 1] = name, m end
  else
    for name in pairs(modules) do names[#names + 1] = name end
    if not ordered.is_ordered(modules) then
      for _, name in ipairs(names) do
        if type(name) ~= "string" then fail("ModuleDict:update", "keys must be strings, got %s", typename(name)) end
      end
      table.sort(names)
    end
    for i, name in ipairs(names) do list[i] = check_module("ModuleDict", modules[name], "value for key '" .. tostring(name) .. "'") end
  end
  for i, name in ipairs(names) do self:add_module(name, list[i]) end
  return self
end

function ModuleDict:keys()
  return table.move(self._modules, 1, #self._modules, 1, {})
end

function ModuleDict:values()
  return current(self)
end

-- for name, m in md:items() do ... end, in order
function ModuleDict:items()
  local i, names, values = 0, self._modules, self._values
  return function()
    i = i + 1
    local name = names[i]
    if name ~= nil then return name, values[name] end
  end
end

function ModuleDict:contains(key) return self._kind[key] == "module" end

function ModuleDict:pop(key)
  local m = self._kind[key] == "module" and self._values[key] or nil
  if m == nil then fail("ModuleDict:pop", "no module named '%s'", tostring(key)) end
  self[key] = nil
  return m
end

function ModuleDict:clear()
  for _, name in ipairs(self:keys()) do self[name] = nil end
end

function ModuleDict:_constructor_args()
  local d = ordered.new()
  for name, m in self:items() do d[name] = m end
  return table.pack(d)
end

return M
