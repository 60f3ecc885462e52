-- torch.optim (SPEC section 5): optimizers over parameter groups, with PyTorch 1.13's update
-- rules (the loops run in C, src/optim.c, one fused pass per parameter), state and state dicts.
--
--   local opt = torch.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
--   opt:zero_grad(); loss:backward(); opt:step()
--   opt:step(function() opt:zero_grad(); local l = loss_fn(); l:backward(); return l end)
--   torch.save(opt:state_dict(), "opt.pt"); opt:load_state_dict(torch.load("opt.pt"))
--
-- Constructors: Class(params[, opts]) or Class(params, lr[, opts]). `params` is an array of
-- tensors or an array of groups {params = {...}, lr = ..., ...}; options a group leaves out come
-- from the constructor's. Unknown options are errors; extra keys in a group are kept (schedulers
-- store initial_lr there). foreach = true is accepted and changes nothing (every step is already
-- one fused loop per parameter, in the arithmetic of PyTorch's foreach = false path);
-- differentiable, capturable and fused = true are refused.
--
-- Fields: opt.param_groups (each group is {params = {...}, <every hyperparameter>}; change
-- group.lr and the next step uses it), opt.state (parameter -> its state, named as PyTorch
-- names it), opt.defaults. Methods: step([closure]) (returns the closure's result),
-- zero_grad([set_to_none]) (default: gradients become nil), add_param_group(group),
-- state_dict(), load_state_dict(sd).
--
-- state_dict() has PyTorch's layout, so that it loads into PyTorch's optimizer and back:
--   {state = {[0] = {momentum_buffer = t}, ...}, param_groups = {{lr = ..., params = {0, 1}}, ...}}
-- Ids number the parameters 0, 1, ... across the groups in order. Like PyTorch's, it refers to
-- the live state tensors (save it, or copy them, before stepping on). PyTorch's None has no Lua
-- value, so `foreach = None` appears as an absent key (PyTorch fills it back in when loading).
-- load_state_dict maps saved ids to parameters by position, restores every hyperparameter
-- (a group key the dict lacks keeps its current value; extra keys are kept), converts state
-- tensors to their parameter's dtype, and checks everything before changing anything.
local torch = require "moontorch"
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

local OrderedDict, is_tensor = ordered.new, torch.is_tensor
local mtype = math.type

local optim = {}

local fail = require("moontorch.errors").raiser("moontorch.optim.")

local typename = require("moontorch.errors").typename

local function shape_str(t) return "[" .. table.concat(t.shape, ", ") .. "]" end

-- The default of an option without one (SGD's lr).
optim.required = setmetatable({}, {
  __name = "moontorch.optim.required",
  __tostring = function() return "<required>" end,
})

-- A copy of a hyperparameter or extra group value: tables (betas) and tensors are not shared
-- with what the user or a state dict still holds.
local function copy_value(v)
  if v == optim.required then return v end
  if is_tensor(v) then return v:detach():clone() end
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy_value(x) end
  return c
end

-- ---------------------------------------------------------------------------------------------
-- Hyperparameter checks. A class lists its hyperparameters in PyTorch's order as
-- {name, default, kind, check}; kinds: "number", "boolean", "betas", "foreach" (nil or a
-- boolean), "false" (a boolean that must be false: CUDA-only or differentiable modes). `check`
-- (optional) returns a problem for a bad value. A default of optim.required makes the option
-- required (SGD's lr).

local NOT_SUPPORTED = {
  differentiable = "differentiable = true (autograd through the step) is not supported",
  capturable = "capturable = true is for CUDA graphs; moontorch runs on the CPU",
  fused = "fused = true is PyTorch's CUDA-only Adam; moontorch's loops are always fused",
}

local function check_kind(h, v)
  local kind = h[3]
  if kind == "number" then
    if type(v) ~= "number" then return "must be a number, got " .. typename(v) end
  elseif kind == "boolean" then
    if type(v) ~= "boolean" then return "must be a boolean, got " .. typename(v) end
  elseif kind == "foreach" then
    if v ~= nil and type(v) ~= "boolean" then return "must be a boolean or nil, got " .. typename(v) end
  elseif kind == "false" then
    if type(v) ~= "boolean" then return "must be a boolean, got " .. typename(v) end
    if v then return NOT_SUPPORTED[h[1]] end
  elseif kind == "betas" then
    if type(v) ~= "table" or is_tensor(v) or #v ~= 2 or type(v[1]) ~= "number" or type(v[2]) ~= "number" then
      return "must be a list of two numbers, got " .. typename(v)
    end
  end
  if h[4] then return h[4](v) end
end

-- Checks every hyperparameter of `group` (or of the defaults); `where` prefixes the key in
-- messages ("param_groups[2]." or ""). With `allow_required`, a required option may be unset.
local function check_group(cls, group, fname, where, allow_required)
  for _, h in ipairs(cls._hyper) do
    local v, problem = group[h[1]], nil
    if v == optim.required then
      if not allow_required then problem = "is required (there is no default)" end
    elseif v == nil then
      if h[3] ~= "foreach" then problem = "is missing" end
    else
      problem = check_kind(h, v)
    end
    if problem then fail(fname, "%s%s %s", where, h[1], problem) end
  end
  local problem = cls._check_group and cls._check_group(group)
  if problem then fail(fname, "%s%s", where ~= "" and where:sub(1, -2) .. ": " or "", problem) end
end

-- Range checks shared by the optimizers.
function optim.nonnegative(v)
  if not (v >= 0) then return "must be non-negative, got " .. tostring(v) end
end

function optim.check_betas(v)
  for i = 1, 2 do
    if not (v[i] >= 0 and v[i] < 1) then
      return string.format("must be two numbers in [0, 1), got {%s, %s}", tostring(v[1]), tostring(v[2]))
    end
  end
end

-- ---------------------------------------------------------------------------------------------
-- The base class

local Optimizer = {}
Optimizer.__index = Optimizer
optim.Optimizer = Optimizer

-- Optimizer:extend(name, spec) -> a new optimizer class, called as Class(params[, opts]).
--   spec.hyper        {{name, default, kind[, check]}, ...} in PyTorch's order
--   spec.state        {{name, kind[, required]}, ...}: per-parameter state in PyTorch's order;
--                     kinds "tensor" (the parameter's shape, cast to its dtype on load), "step"
--                     (a one-element tensor; a plain number loads as a float32 0-dim tensor, as
--                     PyTorch converts it) and "count" (a number, or a one-element tensor)
--   spec.check_group  optional function(group) -> problem, for rules across options
--   spec.init_group   optional function(self, group) run when a group is added
--   spec.update       function(self, group, gi): one step for one group
function Optimizer:extend(name, spec)
  local cls = setmetatable({}, {
    __index = self,
    __call = function(c, ...) return c:_new(...) end,
    __tostring = function() return "moontorch.optim." .. name end,
  })
  cls.__index = cls
  cls.__name = "moontorch.optim." .. name
  cls.__tostring = self.__tostring
  cls._name = name
  cls._hyper = spec.hyper
  cls._hyper_index = {}
  for _, h in ipairs(spec.hyper) do cls._hyper_index[h[1]] = h end
  cls._state_spec = spec.state
  cls._check_group = spec.check_group
  cls._init_group = spec.init_group
  cls._update = spec.update
  return cls
end

local function known_options(cls)
  local names = {}
  for _, h in ipairs(cls._hyper) do names[#names + 1] = h[1] end
  return table.concat(names, ", ")
end

function Optimizer._new(cls, params, opts, more)
  local fname = cls._name
  if type(opts) == "number" then -- Class(params, lr[, opts])
    if more ~= nil and (type(more) ~= "table" or is_tensor(more)) then
      fail(fname, "bad argument #3 (options table expected, got %s)", typename(more))
    end
    local lr = opts
    opts = {}
    for k, v in pairs(more or {}) do opts[k] = v end
    if opts.lr ~= nil then fail(fname, "lr is given twice (as argument #2 and as opts.lr)") end
    opts.lr = lr
  elseif more ~= nil then
    fail(fname, "bad argument #3 (unexpected %s; options go in argument #2)", typename(more))
  end
  if opts ~= nil and (type(opts) ~= "table" or is_tensor(opts)) then
    fail(fname, "bad argument #2 (options table or learning rate expected, got %s)", typename(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not cls._hyper_index[k] then
      fail(fname, "unknown option %s (known options: %s)", type(k) == "string" and "'" .. k .. "'" or tostring(k),
        known_options(cls))
    end
  end
  local defaults = {}
  for _, h in ipairs(cls._hyper) do
    local v = opts[h[1]]
    if v == nil then v = h[2] end
    defaults[h[1]] = copy_value(v)
  end
  check_group(cls, defaults, fname, "", true) -- a required option may be left to the groups

  if type(params) ~= "table" or is_tensor(params) then
    fail(fname, "params must be a list of tensors or of parameter groups, got %s", typename(params))
  end
  if #params == 0 then fail(fname, "got an empty parameter list") end
  local self = setmetatable({ defaults = defaults, state = {}, param_groups = {} }, cls)
  local groups = is_tensor(params[1]) and { { params = params } } or params
  for i = 1, #groups do self:_add_group(groups[i], fname) end
  return self
end

function Optimizer:_add_group(g, fname)
  if type(g) ~= "table" or is_tensor(g) then
    fail(fname, "a parameter group must be a table {params = {...}, ...}, got %s", typename(g))
  end
  local params = g.params
  if is_tensor(params) then params = { params } end
  if type(params) ~= "table" then
    fail(fname, "a parameter group needs params = a list of tensors, got %s", typename(params))
  end
  local list, seen = {}, {}
  for i = 1, #params do
    local p = params[i]
    if not is_tensor(p) then fail(fname, "optimizers optimize tensors, but params[%d] is a %s", i, typename(p)) end
    if not p.is_leaf then
      fail(fname, "params[%d] is not a leaf tensor (it was computed by an operation); optimize the leaves", i)
    end
    if seen[p] then fail(fname, "params[%d] appears twice in the group", i) end
    seen[p] = true
    list[i] = p
  end
  for _, other in ipairs(self.param_groups) do
    for _, p in ipairs(other.params) do
      if seen[p] then fail(fname, "some parameters appear in more than one parameter group") end
    end
  end
  local group = { params = list }
  for k, v in pairs(g) do
    if k ~= "params" then group[k] = copy_value(v) end
  end
  for _, h in ipairs(self._hyper) do
    if group[h[1]] == nil then group[h[1]] = copy_value(self.defaults[h[1]]) end
  end
  check_group(self, group, fname, "param_groups[" .. (#self.param_groups + 1) .. "].")
  self.param_groups[#self.param_groups + 1] = group
  if self._init_group then self:_init_group(group) end
end

function Optimizer:add_param_group(group)
  self:_add_group(group, self._name .. ".add_param_group")
end

-- step([closure]): the closure re-evaluates the model (with grad mode on) and returns the loss,
-- which step returns.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then
    local mt = getmetatable(closure)
    if type(closure) ~= "function" and not (type(mt) == "table" and mt.__call) then
      fail(self._name .. ".step", "bad argument #1 (closure must be a function, got %s)", typename(closure))
    end
    loss = torch.enable_grad(closure)
  end
  for gi, group in ipairs(self.param_groups) do self:_update(group, gi) end
  return loss
end

-- zero_grad([set_to_none]): gradients become nil (the default, as PyTorch 2.x), or zeros with
-- set_to_none = false (also as zero_grad({set_to_none = false})).
function Optimizer:zero_grad(set_to_none)
  if type(set_to_none) == "table" then set_to_none = set_to_none.set_to_none end
  if set_to_none ~= nil and type(set_to_none) ~= "boolean" then
    fail(self._name .. ".zero_grad", "set_to_none must be a boolean, got %s", typename(set_to_none))
  end
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      if set_to_none == false then
        local g = p.grad
        if g ~= nil then g:zero_() end
      else
        core._set_grad(p, nil)
      end
    end
  end
end

-- ---------------------------------------------------------------------------------------------
-- State dicts

function Optimizer:state_dict()
  local ids, next_id, groups = {}, 0, {}
  for gi, group in ipairs(self.param_groups) do
    local packed = OrderedDict()
    for _, h in ipairs(self._hyper) do
      local v = group[h[1]]
      if v ~= nil then packed[h[1]] = type(v) == "table" and copy_value(v) or v end
    end
    local extra = {}
    for k in pairs(group) do
      if k ~= "params" and not self._hyper_index[k] then extra[#extra + 1] = k end
    end
    table.sort(extra, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(extra) do packed[k] = group[k] end
    local plist = {}
    for i, p in ipairs(group.params) do
      if ids[p] == nil then ids[p] = next_id + i - 1 end
      plist[i] = ids[p]
    end
    next_id = next_id + #group.params
    packed.params = plist
    groups[gi] = packed
  end
  local state = OrderedDict()
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      local s = self.state[p]
      if s ~= nil then state[ids[p]] = s end
    end
  end
  return OrderedDict({ { "state", state }, { "param_groups", groups } })
end

-- One parameter's saved state, checked and copied (tensors cast to the parameter's dtype).
function Optimizer:_load_param_state(p, saved, id, fname)
  local where = "state[" .. tostring(id) .. "]"
  if type(saved) ~= "table" or is_tensor(saved) then
    fail(fname, "%s must be a table, got %s", where, typename(saved))
  end
  local known = {}
  for _, s in ipairs(self._state_spec) do known[s[1]] = true end
  for k in pairs(saved) do
    if not known[k] then
      local names = {}
      for _, s in ipairs(self._state_spec) do names[#names + 1] = s[1] end
      fail(fname, "%s has %s, which %s does not keep (it keeps %s); is this another optimizer's state?", where,
        type(k) == "string" and "'" .. k .. "'" or tostring(k), self._name, table.concat(names, ", "))
    end
  end
  local out = OrderedDict()
  if next(saved) == nil then return out end
  for _, s in ipairs(self._state_spec) do
    local name, kind, required = s[1], s[2], s[3]
    local v = saved[name]
    if v == nil then
      if required then fail(fname, "%s lacks %s", where, name) end
    elseif kind == "tensor" then
      if not is_tensor(v) then fail(fname, "%s.%s must be a tensor, got %s", where, name, typename(v)) end
      if shape_str(v) ~= shape_str(p) then
        fail(fname, "%s.%s has shape %s, but parameter %s has shape %s", where, name, shape_str(v), tostring(id),
          shape_str(p))
      end
      local c = v:detach()
      if p:is_floating_point() and c.dtype ~= p.dtype then out[name] = c:to(p.dtype) else out[name] = c:clone() end
    elseif type(v) == "number" then
      if not (v >= 0) then fail(fname, "%s.%s must be a non-negative number, got %s", where, name, tostring(v)) end
      out[name] = kind == "step" and torch.tensor(v + 0.0) or v
    elseif is_tensor(v) then
      if v:numel() ~= 1 then
        fail(fname, "%s.%s must hold one number, got a tensor of shape %s", where, name, shape_str(v))
      end
      out[name] = v:detach():clone()
    else
      fail(fname, "%s.%s must be a number or a one-element tensor, got %s", where, name, typename(v))
    end
  end
  return out
end

function Optimizer:load_state_dict(sd)
  local fname = self._name .. ".load_state_dict"
  if type(sd) ~= "table" or is_tensor(sd) then
    fail(fname, "bad argument #1 (state dict table expected, got %s)", typename(sd))
  end
  local saved_groups, saved_state = sd.param_groups, sd.state
  if type(saved_groups) ~= "table" or is_tensor(saved_groups) then
    fail(fname, "the state dict has no param_groups list (got %s)", typename(saved_groups))
  end
  if type(saved_state) ~= "table" or is_tensor(saved_state) then
    fail(fname, "the state dict has no state table (got %s)", typename(saved_state))
  end
  local groups = self.param_groups
  if #saved_groups ~= #groups then
    fail(fname, "the state dict has %d parameter group%s, but the optimizer has %d", #saved_groups,
      #saved_groups == 1 and "" or "s", #groups)
  end

  -- Saved ids -> this optimizer's parameters, by position.
  local id_map = {}
  for gi, sg in ipairs(saved_groups) do
    if type(sg) ~= "table" or is_tensor(sg) then
      fail(fname, "param_groups[%d] must be a table, got %s", gi, typename(sg))
    end
    local ids = sg.params
    if type(ids) ~= "table" or is_tensor(ids) then fail(fname, "param_groups[%d] has no params list", gi) end
    local n = #groups[gi].params
    if #ids ~= n then
      fail(fname, "param_groups[%d] has %d parameters, but the optimizer's group %d has %d", gi, #ids, gi, n)
    end
    for i = 1, n do
      local id = type(ids[i]) == "number" and math.tointeger(ids[i]) or nil
      if id == nil then
        fail(fname, "param_groups[%d].params[%d] must be an integer id, got %s", gi, i, tostring(ids[i]))
      end
      if id_map[id] ~= nil then fail(fname, "parameter id %d appears twice in param_groups", id) end
      id_map[id] = groups[gi].params[i]
    end
  end

  -- New groups: the saved hyperparameters (and extra keys), current values for missing keys.
  local new_groups = {}
  for gi, sg in ipairs(saved_groups) do
    local g = { params = groups[gi].params }
    for k, v in pairs(sg) do
      if k ~= "params" then g[k] = copy_value(v) end
    end
    for _, h in ipairs(self._hyper) do
      if g[h[1]] == nil and h[3] ~= "foreach" then g[h[1]] = copy_value(groups[gi][h[1]]) end
    end
    check_group(self, g, fname, "param_groups[" .. gi .. "].")
    new_groups[gi] = g
  end

  local new_state = {}
  for k, v in pairs(saved_state) do
    local id = type(k) == "number" and math.tointeger(k) or nil
    local p = id and id_map[id]
    if p == nil then
      fail(fname, "state has an entry for parameter id %s, which no parameter group lists", tostring(k))
    end
    new_state[p] = self:_load_param_state(p, v, id, fname)
  end

  -- Everything checked: commit. Group tables keep their identity (schedulers hold them).
  for gi, g in ipairs(new_groups) do
    local old = groups[gi]
    for k in pairs(old) do old[k] = nil end
    for k, v in pairs(g) do old[k] = v end
  end
  self.state = new_state
end

-- tostring(opt): the optimizer and each group's hyperparameters, as PyTorch's repr.
function Optimizer:__tostring()
  local lines = { self._name .. " (" }
  for gi, group in ipairs(self.param_groups) do
    lines[#lines + 1] = "Parameter Group " .. gi
    local keys = {}
    for k in pairs(group) do
      if k ~= "params" then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local v = group[k]
      if type(v) == "table" and not is_tensor(v) then
        local parts = {}
        for i, x in ipairs(v) do parts[i] = tostring(x) end
        v = "{" .. table.concat(parts, ", ") .. "}"
      end
      lines[#lines + 1] = "    " .. tostring(k) .. ": " .. tostring(v)
    end
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

-- ---------------------------------------------------------------------------------------------
-- The optimizers, and torch.optim.lr_scheduler on first use.

require("moontorch.optim.sgd")(optim)
require("moontorch.optim.adam")(optim)
require("moontorch.optim.rmsprop")(optim)
require("moontorch.optim.adagrad")(optim)

return setmetatable(optim, {
  __index = function(t, k)
    if k ~= "lr_scheduler" then return nil end
    local m = require "moontorch.optim.lr_scheduler"
    rawset(t, k, m)
    return m
  end,
})
