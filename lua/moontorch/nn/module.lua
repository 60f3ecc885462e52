-- nn.Module and nn.Parameter (SPEC section 4): classes, registration by assignment, the
-- iterators, state dicts, train/eval, freezing, dtype conversion and PyTorch's repr.
--
--   local Net = nn.Module:extend("Net")     -- a class, registered under "Net"
--   function Net:__init(classes)              -- runs after the base initialisation
--     self.fc = nn.Linear(4, classes)         -- a module: child "fc"
--     self.scale = nn.Parameter(torch.ones(1))  -- a parameter
--     self:register_buffer("steps", torch.zeros({}, {dtype = "int64"}))
--     self.name = "net"                       -- anything else: a plain field
--   end
--   function Net:forward(x) return self.fc(x) * self.scale end
--   local model = Net(10)                     -- model(x) calls model:forward(x)
--
-- Subclassing a subclass: `local Wide = Net:extend("Wide")`. Each class has `.super`, its
-- parent class; call a parent's method through the class that defines the override, never
-- through `self.super` (that is the parent of the *instance's* class, which loops as soon as
-- the hierarchy is three deep):
--   function Wide:__init(classes) Wide.super.__init(self, classes); self.extra = ... end
--
-- Instances are tables. Registered values and plain fields live in `self._values`, so every
-- assignment reaches __newindex (where registration happens) and every read of a field goes
-- through __index: the instance's own values first, then the class chain. `self.training` is a
-- raw field. Order lists keep registration order; reassigning a name keeps its place, assigning
-- nil removes it. Names of methods cannot be registered (a child called "forward" would hide
-- the method); plain fields may shadow methods, as Lua fields do.
local torch = require "moontorch"
local ordered = require "moontorch.ordered"

local M = {}

local type, rawget, rawset, getmetatable, setmetatable = type, rawget, rawset, getmetatable, setmetatable
local is_tensor = torch.is_tensor

local fail = require("moontorch.errors").raiser("moontorch.")

local typename = require("moontorch.errors").typename

local function shape_str(t) return "[" .. table.concat(t.shape, ", ") .. "]" end

-- ------------------------------------------------------------------------------------------
-- Parameters: the tensor itself, remembered as one.

local param_set = setmetatable({}, { __mode = "k" })

-- nn.Parameter(t[, requires_grad]) -> t, now a parameter (requires_grad defaults to true). A
-- tensor with history is detached first (a parameter is a leaf), which gives a new tensor
-- sharing t's storage; a leaf comes back as the same tensor.
function M.Parameter(t, requires_grad)
  if not is_tensor(t) then fail("nn.Parameter", "bad argument #1 (tensor expected, got %s)", typename(t)) end
  if requires_grad == nil then requires_grad = true end
  if type(requires_grad) ~= "boolean" then
    fail("nn.Parameter", "bad argument #2 (requires_grad must be a boolean, got %s)", typename(requires_grad))
  end
  if t.grad_fn ~= nil then t = t:detach() end
  if t.requires_grad ~= requires_grad then t.requires_grad = requires_grad end
  param_set[t] = true
  return t
end

function M.is_parameter(v) return param_set[v] == true end

-- ------------------------------------------------------------------------------------------
-- Classes

local registry = {}                                 -- class name -> class
local class_set = setmetatable({}, { __mode = "k" }) -- class -> true

local function is_module(v)
  return type(v) == "table" and class_set[getmetatable(v)] == true
end
M.is_module = is_module

function M.get_class(name) return registry[name] end

local Module = {}
M.Module = Module

local function construct(cls, ...)
  local self = setmetatable({
    _values = {},          -- name -> parameter / buffer / child / plain field
    _kind = {},            -- name -> "parameter" | "buffer" | "module" (nil for plain fields)
    _params = {},          -- names in registration order (absent parameters included)
    _buffers = {},
    _modules = {},
    _non_persistent = {},  -- buffer name -> true
    _args = table.pack(...),
    training = true,
  }, cls)
  cls.__init(self, ...)
  return self
end

local function class_tostring(cls) return "<class " .. rawget(cls, "__name") .. ">" end

-- model(x) is self:forward(x), forward resolved as __index resolves it (the instance's own
-- values, then the class chain), but without that metamethod call nor getmetatable (which
-- interns "__metatable" on every call): each class gets its own __call that knows the class.
-- A class that sets its own __call keeps it (and its subclasses inherit that one).
local generated_call = setmetatable({}, { __mode = "k" })

local function make_call(cls)
  local function call(self, ...)
    local forward = self._values.forward
    if forward == nil then forward = cls.forward end
    return forward(self, ...)
  end
  generated_call[call] = true
  return call
end

local function make_class(name, parent)
  local cls = {}
  if parent then
    -- Metamethods must be raw fields of the metatable: inherit them by copy.
    for k, v in pairs(parent) do
      if type(k) == "string" and k:sub(1, 2) == "__" and k ~= "__name" and k ~= "__init" then rawset(cls, k, v) end
    end
    if generated_call[rawget(cls, "__call")] then rawset(cls, "__call", make_call(cls)) end
  end
  rawset(cls, "__name", name)
  rawset(cls, "super", parent)
  setmetatable(cls, { __index = parent, __call = construct, __tostring = class_tostring })
  class_set[cls] = true
  registry[name] = cls
  return cls
end

-- Class:extend(name) -> a subclass registered under `name` (re-registering replaces).
function Module.extend(cls, name)
  if not (type(cls) == "table" and class_set[cls] and rawget(cls, "__name")) or is_module(cls) then
    fail("nn.Module.extend", "call it on a class: nn.Module:extend(\"Name\")")
  end
  if type(name) ~= "string" or not name:match("^[%a_][%w_%.]*$") then
    fail("nn.Module.extend", "bad argument #1 (class name must be an identifier, got %s)",
      type(name) == "string" and "'" .. name .. "'" or typename(name))
  end
  return make_class(name, cls)
end

function Module:__init() end

function Module:isinstance(cls)
  local c = getmetatable(self)
  while c do
    if c == cls then return true end
    c = rawget(c, "super")
  end
  return false
end

function Module:_get_name() return getmetatable(self).__name end

function Module:forward()
  fail("nn." .. self:_get_name(), "Module [%s] is missing the required \"forward\" function", self:_get_name())
end

-- The arguments a whole-model file records to rebuild this module (containers override it to
-- describe their current children).
function Module:_constructor_args() return self._args end

-- ------------------------------------------------------------------------------------------
-- Registration

local function remove_name(list, name)
  for i = 1, #list do
    if list[i] == name then table.remove(list, i) return end
  end
end

local LIST = { parameter = "_params", buffer = "_buffers", module = "_modules" }

local function unregister(self, name)
  local kind = self._kind[name]
  if kind then
    remove_name(self[LIST[kind]], name)
    self._kind[name] = nil
    self._non_persistent[name] = nil
  end
  self._values[name] = nil
end

local function check_name(self, fname, name, kind, explicit)
  if type(name) ~= "string" then fail(fname, "%s name must be a string, got %s", kind, typename(name)) end
  if name == "" then fail(fname, "%s name can't be empty", kind) end
  if name:find(".", 1, true) then fail(fname, "%s name can't contain \".\", got '%s'", kind, name) end
  if rawget(self, name) ~= nil or getmetatable(self)[name] ~= nil then
    fail(fname, "attribute '%s' already exists (a field or method of %s)", name, self:_get_name())
  end
  local old = self._kind[name]
  if explicit and old ~= kind and (old ~= nil or self._values[name] ~= nil) then
    fail(fname, "attribute '%s' already exists", name)
  end
end

-- Registers `v` (nil for an absent parameter or buffer) as `kind` under `name`, in place when
-- the name is already one of that kind, at the end otherwise.
local function register(self, name, v, kind)
  local kinds = self._kind
  if kinds[name] ~= kind then
    unregister(self, name)
    local list = self[LIST[kind]]
    list[#list + 1] = name
    kinds[name] = kind
  end
  self._values[name] = v
end

function Module:register_parameter(name, p)
  check_name(self, "register_parameter", name, "parameter", true)
  if p ~= nil and not param_set[p] then
    fail("register_parameter", "cannot assign a %s to parameter '%s' (nn.Parameter or nil expected)",
      is_tensor(p) and "plain tensor" or typename(p), name)
  end
  register(self, name, p, "parameter")
end

function Module:register_buffer(name, t, persistent)
  check_name(self, "register_buffer", name, "buffer", true)
  if t ~= nil and not is_tensor(t) then
    fail("register_buffer", "cannot assign a %s to buffer '%s' (tensor or nil expected)", typename(t), name)
  end
  if persistent == nil then persistent = true end
  if type(persistent) ~= "boolean" then
    fail("register_buffer", "bad argument #3 (persistent must be a boolean, got %s)", typename(persistent))
  end
  register(self, name, t, "buffer")
  self._non_persistent[name] = (not persistent) or nil
end

function Module:add_module(name, m)
  check_name(self, "add_module", name, "module", true)
  if not is_module(m) then fail("add_module", "cannot add a %s as child module '%s' (module expected)", typename(m), name) end
  register(self, name, m, "module")
end
Module.register_module = Module.add_module

-- self[k] = v. Modules and parameters register (replacing whatever had the name); a tensor
-- assigned to a buffer's name replaces the buffer; nil removes; anything else is a plain field,
-- except over a registered name of another kind, which is refused as PyTorch does.
local function module_newindex(self, k, v)
  local kind = self._kind[k]
  if v == nil then return unregister(self, k) end
  if is_module(v) then
    if kind ~= "module" then check_name(self, "nn.Module", k, "module", false) end
    return register(self, k, v, "module")
  end
  if param_set[v] then
    if kind ~= "parameter" then check_name(self, "nn.Module", k, "parameter", false) end
    return register(self, k, v, "parameter")
  end
  if kind == "buffer" then
    if not is_tensor(v) then fail("nn.Module", "cannot assign a %s as buffer '%s' (tensor or nil expected)", typename(v), k) end
  elseif kind == "parameter" then
    fail("nn.Module", "cannot assign a %s as parameter '%s' (nn.Parameter or nil expected)",
      is_tensor(v) and "plain tensor" or typename(v), k)
  elseif kind == "module" then
    fail("nn.Module", "cannot assign a %s as child module '%s' (module or nil expected)", typename(v), k)
  end
  self._values[k] = v
end

local function module_index(self, k)
  local v = self._values[k]
  if v ~= nil then return v end
  return getmetatable(self)[k]
end

M.module_index, M.module_newindex = module_index, module_newindex

-- ------------------------------------------------------------------------------------------
-- Iteration (registration order, depth first; each module and tensor once)

local function join(prefix, name) return prefix == "" and name or prefix .. "." .. name end

local function collect_modules(m, prefix, memo, out)
  if memo[m] then return end
  memo[m] = true
  out[#out + 1] = { prefix, m }
  local values = m._values
  for _, name in ipairs(m._modules) do collect_modules(values[name], join(prefix, name), memo, out) end
end

local function pairs_iter(list)
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2] end
  end
end

local function second(list)
  local out = {}
  for i = 1, #list do out[i] = list[i][2] end
  return out
end

local function named_modules_list(self, prefix)
  local out = {}
  collect_modules(self, prefix or "", {}, out)
  return out
end

-- Tensors of one kind ("_params" or "_buffers"), each once.
local function named_members(self, listname, prefix, recurse)
  prefix = prefix or ""
  local mods = recurse == false and { { prefix, self } } or named_modules_list(self, prefix)
  local out, seen = {}, {}
  for _, e in ipairs(mods) do
    local mprefix, m = e[1], e[2]
    local values = m._values
    for _, name in ipairs(m[listname]) do
      local t = values[name]
      if t ~= nil and not seen[t] then
        seen[t] = true
        out[#out + 1] = { join(mprefix, name), t }
      end
    end
  end
  return out
end

local function named_children_list(self)
  local out, seen = {}, {}
  for _, name in ipairs(self._modules) do
    local m = self._values[name]
    if not seen[m] then
      seen[m] = true
      out[#out + 1] = { name, m }
    end
  end
  return out
end

function Module:named_parameters(prefix, recurse) return pairs_iter(named_members(self, "_params", prefix, recurse)) end
function Module:parameters(recurse) return second(named_members(self, "_params", "", recurse)) end
function Module:named_buffers(prefix, recurse) return pairs_iter(named_members(self, "_buffers", prefix, recurse)) end
function Module:buffers(recurse) return second(named_members(self, "_buffers", "", recurse)) end
function Module:named_children() return pairs_iter(named_children_list(self)) end
function Module:children() return second(named_children_list(self)) end
function Module:named_modules(prefix) return pairs_iter(named_modules_list(self, prefix)) end
function Module:modules() return second(named_modules_list(self)) end

-- ------------------------------------------------------------------------------------------
-- State dicts

-- Parameters then persistent buffers of each module, depth first, shared modules under each of
-- their names (as PyTorch). Values are detached views of the model's tensors (same storage)
-- unless opts.keep_vars.
local function save_to(m, prefix, dest, keep)
  local values = m._values
  for _, name in ipairs(m._params) do
    local p = values[name]
    if p ~= nil then dest[prefix .. name] = keep and p or p:detach() end
  end
  for _, name in ipairs(m._buffers) do
    local b = values[name]
    if b ~= nil and not m._non_persistent[name] then dest[prefix .. name] = keep and b or b:detach() end
  end
  for _, name in ipairs(m._modules) do save_to(values[name], prefix .. name .. ".", dest, keep) end
end

function Module:state_dict(opts)
  if opts ~= nil and type(opts) ~= "table" then fail("state_dict", "bad argument #1 (options table expected, got %s)", typename(opts)) end
  opts = opts or {}
  local prefix = opts.prefix or ""
  if type(prefix) ~= "string" then fail("state_dict", "opts.prefix must be a string, got %s", typename(prefix)) end
  local dest = ordered.new()
  save_to(self, prefix, dest, opts.keep_vars == true)
  return dest
end

-- The keys of sd in its order (ordered tables) or sorted (plain tables: strings bytewise, other
-- keys after them), so that reports are deterministic.
local function keys_of(sd)
  local keys = {}
  for k in pairs(sd) do keys[#keys + 1] = k end
  if not ordered.is_ordered(sd) then
    table.sort(keys, function(a, b)
      local sa, sb = type(a) == "string", type(b) == "string"
      if sa ~= sb then return sa end
      if sa then return a < b end
      return tostring(a) < tostring(b)
    end)
  end
  return keys
end

M.keys_of = keys_of

-- The module visit of PyTorch's load(): preorder over children, each under every name it has.
local function visits_of(m, prefix, out, index)
  out[#out + 1] = { m, prefix }
  index[prefix] = #out
  for _, name in ipairs(m._modules) do visits_of(m._values[name], prefix .. name .. ".", out, index) end
end

local function local_state(m, name)
  local kind = m._kind[name]
  if kind == "parameter" then return m._values[name] end
  if kind == "buffer" and not m._non_persistent[name] then return m._values[name] end
end

-- The visit (by prefix) at which PyTorch reports `key` as unexpected, or nil when it is not
-- unexpected: it names a tensor of the model (or something under one, or a child itself, which
-- PyTorch ignores).
local function unexpected_at(root, key)
  if type(key) ~= "string" then return "" end
  local m, prefix, rest = root, "", key
  while true do
    local dot = rest:find(".", 1, true)
    local first = dot and rest:sub(1, dot - 1) or rest
    if local_state(m, first) ~= nil then return nil end
    if m._kind[first] ~= "module" then return prefix end
    if not dot then return nil end
    m, prefix, rest = m._values[first], prefix .. first .. ".", rest:sub(dot + 1)
  end
end

local function quoted(list)
  local q = {}
  for i, k in ipairs(list) do q[i] = '"' .. tostring(k) .. '"' end
  return table.concat(q, ", ")
end

-- load_state_dict(sd[, opts]) copies sd's tensors into the model in place (under no_grad,
-- converting dtypes). opts.strict (default true): missing or unexpected keys raise;
-- opts.skip_mismatched: keys whose shape differs are skipped and reported instead of raising.
-- All problems are reported in one error, in PyTorch's wording and order; nothing is copied
-- when it raises. Returns {missing_keys, unexpected_keys, mismatched_keys}.
function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" or is_module(sd) then
    fail("load_state_dict", "bad argument #1 (state dict expected, got %s)", typename(sd))
  end
  if opts ~= nil and type(opts) ~= "table" then fail("load_state_dict", "bad argument #2 (options table expected, got %s)", typename(opts)) end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k ~= "strict" and k ~= "skip_mismatched" then
      fail("load_state_dict", "unknown option '%s' (known options: skip_mismatched, strict)", tostring(k))
    end
    if type(v) ~= "boolean" then fail("load_state_dict", "opts.%s must be a boolean, got %s", k, typename(v)) end
  end
  local strict = opts.strict ~= false
  local skip = opts.skip_mismatched == true

  local visits, index = {}, {}
  visits_of(self, "", visits, index)
  local missing, mismatched, errors, copies = {}, {}, {}, {}
  for _, visit in ipairs(visits) do
    local m, prefix = visit[1], visit[2]
    local values = m._values
    local function check(name)
      local t = values[name]
      if t == nil then return end
      local key = prefix .. name
      local src = sd[key]
      if src == nil then
        missing[#missing + 1] = key
      elseif not is_tensor(src) then
        errors[#errors + 1] = string.format('While copying the parameter named "%s", expected a tensor from the checkpoint but received %s', key, typename(src))
      else
        if t:dim() == 0 and src:dim() == 1 and src:numel() == 1 then src = src[1] end -- older files
        local same = t:dim() == src:dim()
        if same then
          local a, b = t.shape, src.shape
          for i = 1, #a do if a[i] ~= b[i] then same = false break end end
        end
        if same then
          copies[#copies + 1] = { t, src }
        elseif skip then
          mismatched[#mismatched + 1] = key
        else
          errors[#errors + 1] = string.format("size mismatch for %s: copying a param with shape %s from checkpoint, the shape in current model is %s.", key, shape_str(src), shape_str(t))
        end
      end
    end
    for _, name in ipairs(m._params) do check(name) end
    for _, name in ipairs(m._buffers) do
      if not m._non_persistent[name] then check(name) end
    end
  end

  local buckets = {}
  for _, key in ipairs(keys_of(sd)) do
    local at = unexpected_at(self, key)
    if at then
      local i = index[at]
      buckets[i] = buckets[i] or {}
      table.insert(buckets[i], key)
    end
  end
  local unexpected = {}
  for i = 1, #visits do
    for _, key in ipairs(buckets[i] or {}) do unexpected[#unexpected + 1] = key end
  end

  if strict then
    if #unexpected > 0 then table.insert(errors, 1, "Unexpected key(s) in state_dict: " .. quoted(unexpected) .. ".") end
    if #missing > 0 then table.insert(errors, 1, "Missing key(s) in state_dict: " .. quoted(missing) .. ".") end
  end
  if #errors > 0 then
    fail("load_state_dict", "Error(s) in loading state_dict for %s:\n\t%s", self:_get_name(), table.concat(errors, "\n\t"))
  end
  torch.no_grad(function()
    for _, c in ipairs(copies) do c[1]:copy_(c[2]) end
  end)
  return { missing_keys = missing, unexpected_keys = unexpected, mismatched_keys = mismatched }
end

-- ------------------------------------------------------------------------------------------
-- Modes, gradients, conversion

function Module:train(mode)
  if mode == nil then mode = true end
  if type(mode) ~= "boolean" then fail("train", "bad argument #1 (mode must be a boolean, got %s)", typename(mode)) end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode) end
  return self
end

function Module:eval() return self:train(false) end

-- zero_grad([set_to_none]): drops the gradients (default), or zeroes them in place.
function Module:zero_grad(set_to_none)
  for _, p in ipairs(self:parameters()) do
    local g = p.grad
    if g ~= nil then
      if set_to_none == false then
        torch.no_grad(g.zero_, g)
      else
        p.grad = nil
      end
    end
  end
end

function Module:requires_grad_(flag)
  if flag == nil then flag = true end
  if type(flag) ~= "boolean" then fail("requires_grad_", "bad argument #1 (boolean expected, got %s)", typename(flag)) end
  for _, p in ipairs(self:parameters()) do p.requires_grad = flag end
  return self
end

-- apply(fn): fn(m) for every module, children before their parent, as PyTorch.
function Module:apply(fn)
  for _, m in ipairs(self:children()) do m:apply(fn) end
  fn(self)
  return self
end

local DTYPE = {
  float32 = "float32", float = "float32", float64 = "float64", double = "float64",
  float16 = "float16", half = "float16", bfloat16 = "bfloat16",
}
local FLOAT = { float32 = true, float64 = true, float16 = true, bfloat16 = true }

-- to(dtype) converts floating-point parameters and buffers (and gradients) in place in the
-- tree: a converted parameter is a new tensor (dtypes are fixed per tensor) registered under
-- the same name, so create optimizers after converting. Tied tensors stay tied. to("cpu") is a
-- no-op (the only device).
function Module:to(dtype)
  if dtype == "cpu" then return self end
  local d = DTYPE[dtype]
  if d == nil then
    fail("to", "bad argument #1 (floating-point dtype or \"cpu\" expected, got %s)",
      type(dtype) == "string" and "'" .. dtype .. "'" or typename(dtype))
  end
  local done = {}
  local function convert(t, is_param)
    if done[t] then return done[t] end
    local out = t
    if FLOAT[t.dtype] and t.dtype ~= d then
      out = t:detach():to(d)
      if is_param then
        out = M.Parameter(out, t.requires_grad)
        local g = t.grad
        if g ~= nil then out.grad = g:to(d) end
      end
    end
    done[t] = out
    return out
  end
  for _, m in ipairs(self:modules()) do
    local values = m._values
    for _, name in ipairs(m._params) do
      if values[name] ~= nil then values[name] = convert(values[name], true) end
    end
    for _, name in ipairs(m._buffers) do
      if values[name] ~= nil then values[name] = convert(values[name], false) end
    end
  end
  return self
end

function Module:float() return self:to("float32") end
function Module:double() return self:to("float64") end

-- ------------------------------------------------------------------------------------------
-- repr

function Module:extra_repr() return "" end

local function addindent(s, n)
  local pad = string.rep(" ", n)
  return (s:gsub("\n", "\n" .. pad))
end

local function module_repr(self)
  local extra = {}
  local e = self:extra_repr()
  if e ~= nil and e ~= "" then
    for line in (e .. "\n"):gmatch("(.-)\n") do extra[#extra + 1] = line end
  end
  local children = {}
  for _, name in ipairs(self._modules) do
    children[#children + 1] = "(" .. name .. "): " .. addindent(tostring(self._values[name]), 2)
  end
  local s = self:_get_name() .. "("
  if #extra == 1 and #children == 0 then
    s = s .. extra[1]
  elseif #extra + #children > 0 then
    local lines = table.move(children, 1, #children, #extra + 1, extra)
    s = s .. "\n  " .. table.concat(lines, "\n  ") .. "\n"
  end
  return s .. ")"
end

-- ------------------------------------------------------------------------------------------
-- The base class

Module.__index = module_index
Module.__newindex = module_newindex
Module.__tostring = module_repr
Module.__call = make_call(Module)
rawset(Module, "__name", "Module")
setmetatable(Module, { __call = construct, __tostring = class_tostring })
class_set[Module] = true
registry.Module = Module

return M
