-- torch.optim.lr_scheduler: learning-rate schedules that rewrite optimizer.param_groups[i].lr
-- (and, for OneCycleLR, the momentum or betas[1]) once per step(), with PyTorch 1.13's formulas
-- evaluated in PyTorch's order, so that the rates agree with PyTorch's to the last bit.
--
--   local sched = torch.optim.lr_scheduler.StepLR(opt, 30, {gamma = 0.1})
--   for epoch = 1, 100 do train(); opt:step(); sched:step() end
--   sched:get_last_lr()                -- {0.001, ...}: one rate per param group
--
-- Constructors take the optimizer, then PyTorch's arguments in PyTorch's order (a nil stands
-- for an omitted one), then optionally one options table naming any of them:
-- StepLR(opt, 30, 0.1) = StepLR(opt, 30, {gamma = 0.1}) = StepLR(opt, {step_size = 30, gamma = 0.1}).
-- Like PyTorch's, a constructor performs the first step (last_epoch becomes 0), and every
-- schedule but OneCycleLR and LambdaLR is chainable: it multiplies the rate the group holds
-- now, so schedules and manual changes compose.
--
-- state_dict() is PyTorch's layout (an ordered table: the hyperparameters, base_lrs,
-- last_epoch, verbose, _step_count, _get_lr_called_within_step, _last_lr), so it survives
-- torch.save and loads into PyTorch's scheduler. Differences forced by Lua, by design:
--   * MultiStepLR's milestones (a collections.Counter in PyTorch) are an ordered table
--     milestone -> count, which PyTorch's scheduler reads as it reads a Counter.
--   * LambdaLR's lr_lambdas holds, at position i, the fields of lambda i when it is a callable
--     table; plain functions are omitted (PyTorch writes None for them, which Lua cannot hold
--     in a list), so with only functions it is empty.
--   * OneCycleLR names its anneal strategy `_anneal_func_type` ("cos" / "linear") as PyTorch
--     2.2+ does, instead of 1.13's `anneal_func`, a bound method no file can hold.
-- load_state_dict(sd) checks and takes the keys it knows, ignores others (dicts from other
-- versions), and leaves the optimizer alone: load the optimizer's own state dict for its rates.
--
-- Not here: PyTorch's warnings (calling step() before optimizer:step(), get_lr() outside
-- step(), step(epoch) being deprecated); step(epoch) itself works as in PyTorch.
local ordered = require "moontorch.ordered"

local M = {}

local mtype, tointeger, cos, pi = math.type, math.tointeger, math.cos, math.pi

local fail = require("moontorch.errors").raiser("moontorch.optim.lr_scheduler.")

local function typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then return mt.__name end
  return mtype(v) or type(v)
end

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

local function is_list(t)
  if type(t) ~= "table" or is_callable(t) then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- ------------------------------------------------------------------------------------------
-- Value checks shared by constructors and load_state_dict: each returns true and the value
-- (integers normalised: 30.0 -> 30), or false and what it expected.

local function integer(v)
  return (mtype(v) == "integer" and v) or (mtype(v) == "float" and tointeger(v)) or nil
end

-- A check from a predicate on the (normalised) value.
local function check(what, normalise, pred)
  return function(v)
    local x = normalise(v)
    if x ~= nil and pred(x) then return true, x end
    return false, what
  end
end
local function num(v) return type(v) == "number" and v or nil end
local function yes() return true end

local CHECK = {
  number = check("a number", num, yes),
  integer = check("an integer", integer, yes),
  positive_int = check("a positive integer", integer, function(x) return x > 0 end),
  count = check("a non-negative integer", integer, function(x) return x >= 0 end),
  epoch = check("an integer >= -1", integer, function(x) return x >= -1 end),
  positive = check("a positive number", num, function(x) return x > 0 end),
  fraction = check("a number in [0, 1]", num, function(x) return x >= 0 and x <= 1 end),
  strategy = check("'cos' or 'linear'", function(v) return v end, function(x) return x == "cos" or x == "linear" end),
}
function CHECK.boolean(v)
  if type(v) == "boolean" then return true, v end
  return false, "a boolean"
end
function CHECK.numbers(v)
  if is_list(v) then
    local ok = true
    for i = 1, #v do ok = ok and type(v[i]) == "number" end
    if ok then return true, v end
  end
  return false, "a list of numbers"
end
function CHECK.milestones(v) -- constructor: a list of epochs
  if not is_list(v) then return false, "a list of integers" end
  local counts = ordered.new()
  for i = 1, #v do
    local m = integer(v[i])
    if not m then return false, "a list of integers" end
    counts[m] = (counts[m] or 0) + 1
  end
  return true, counts
end
function CHECK.milestone_counts(v) -- state dicts: milestone -> count, as PyTorch's Counter
  if type(v) ~= "table" then return false, "a table of milestone -> count" end
  local counts = ordered.new()
  for k, c in pairs(v) do
    local m, n = integer(k), integer(c)
    if not (m and n and n > 0) then return false, "a table of milestone -> count" end
    counts[m] = n
  end
  return true, counts
end

-- OneCycleLR's phases name the param-group keys they read.
local LR_KEYS = { initial_lr = true, max_lr = true, min_lr = true }
local MOMENTUM_KEYS = { max_momentum = true, base_momentum = true }
local PHASE_KEYS = { "end_step", "start_lr", "end_lr", "start_momentum", "end_momentum" }
function CHECK.phases(v)
  local what = "a list of phases {end_step, start_lr, end_lr, start_momentum, end_momentum}"
  if not is_list(v) or #v == 0 then return false, what end
  local out = {}
  for i, p in ipairs(v) do
    if type(p) ~= "table" or type(p.end_step) ~= "number" or not LR_KEYS[p.start_lr] or not LR_KEYS[p.end_lr]
        or not MOMENTUM_KEYS[p.start_momentum] or not MOMENTUM_KEYS[p.end_momentum] then
      return false, what
    end
    local q = {}
    for _, k in ipairs(PHASE_KEYS) do q[k] = p[k] end
    out[i] = q
  end
  return true, out
end

local function checked(where, key, v, check)
  local ok, x = CHECK[check](v)
  if not ok then fail(where, "%s must be %s, got %s", key, x, v == nil and "nil" or typename(v)) end
  return x
end

-- ------------------------------------------------------------------------------------------
-- Arguments: sig is a list of {name, check or false (the constructor checks), default}.

local function is_options(v)
  if type(v) ~= "table" or getmetatable(v) ~= nil then return false end
  for k in pairs(v) do if type(k) == "string" then return true end end
  return false
end

local function parse(cls, sig, ...)
  local name = cls._name
  local n, args = select("#", ...), { ... }
  local opts
  if n > 0 and is_options(args[n]) then opts, n = args[n], n - 1 end
  if n > #sig then fail(name, "too many arguments (%d after the optimizer, at most %d)", n, #sig) end
  local out, known = {}, {}
  for i, s in ipairs(sig) do
    known[s[1]] = true
    if i <= n then out[s[1]] = args[i] end
  end
  if opts then
    for k, v in pairs(opts) do
      if not known[k] then
        local names = {}
        for _, s in ipairs(sig) do names[#names + 1] = s[1] end
        fail(name, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
      end
      if out[k] ~= nil then fail(name, "%s is given both as an argument and as an option", k) end
      out[k] = v
    end
  end
  for _, s in ipairs(sig) do
    local key, check, default = s[1], s[2], s[3]
    if out[key] == nil then out[key] = default end
    if out[key] == nil and s.required then fail(name, "missing argument '%s'", key) end
    if check and out[key] ~= nil then out[key] = checked(name, key, out[key], check) end
  end
  return out
end

local function check_optimizer(name, opt)
  local groups = type(opt) == "table" and opt.param_groups
  if type(groups) ~= "table" or #groups == 0 then
    fail(name, "bad argument #1 (optimizer with param_groups expected, got %s)", typename(opt))
  end
  for i, g in ipairs(groups) do
    if type(g) ~= "table" or type(g.lr) ~= "number" then
      fail(name, "param group %d of the optimizer has no numeric lr", i)
    end
  end
  return groups
end

-- A per-group value: one number for all groups, or a list with one per group.
local function per_group(name, key, v, ngroups)
  if type(v) == "number" then
    local out = {}
    for i = 1, ngroups do out[i] = v end
    return out
  end
  if not is_list(v) then fail(name, "%s must be a number or a list of numbers, got %s", key, typename(v)) end
  if #v ~= ngroups then fail(name, "expected %d values for %s, got %d", ngroups, key, #v) end
  for i = 1, #v do
    if type(v[i]) ~= "number" then fail(name, "%s[%d] must be a number, got %s", key, i, typename(v[i])) end
  end
  return v
end

local function copy_list(t)
  local out = {}
  for i = 1, #t do out[i] = t[i] end
  return out
end

-- ------------------------------------------------------------------------------------------
-- The base scheduler (PyTorch's _LRScheduler).

local Scheduler = {}

-- Keys every state dict carries after the class's own ones, with their checks.
local BASE_FIELDS = {
  { "base_lrs", "numbers" }, { "last_epoch", "epoch" }, { "verbose", "boolean" },
  { "_step_count", "count" }, { "_get_lr_called_within_step", "boolean" }, { "_last_lr", "numbers" },
}

-- Classes are callable tables: StepLR(...) builds one. `fields` are the class's own state keys
-- (PyTorch's order) with their checks.
local function class(name, fields)
  local cls = setmetatable({ _name = name, _fields = fields, __name = "moontorch.optim.lr_scheduler." .. name },
    { __index = Scheduler, __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.__tostring = Scheduler.__tostring -- metamethods are read raw from the metatable
  M[name] = cls
  return cls
end

-- What _LRScheduler.__init__ does once the subclass has set its fields: base rates from each
-- group's initial_lr (recorded now on a fresh start, required when resuming at last_epoch >= 0),
-- then the initial step.
local function init(self, last_epoch, verbose)
  local groups = self.optimizer.param_groups
  if last_epoch == -1 then
    for _, g in ipairs(groups) do
      if g.initial_lr == nil then g.initial_lr = g.lr end
    end
  else
    for i, g in ipairs(groups) do
      if g.initial_lr == nil then
        fail(self._name, "param group %d has no initial_lr, which resuming at last_epoch = %d needs", i, last_epoch)
      end
    end
  end
  self.base_lrs = {}
  for i, g in ipairs(groups) do
    if type(g.initial_lr) ~= "number" then fail(self._name, "param group %d: initial_lr is not a number", i) end
    self.base_lrs[i] = g.initial_lr
  end
  self.last_epoch = last_epoch
  self.verbose = verbose
  self._step_count = 0
  self._get_lr_called_within_step = false
  self:step()
  return self
end

local function new_instance(cls, optimizer)
  check_optimizer(cls._name, optimizer)
  return setmetatable({ optimizer = optimizer }, cls)
end

function Scheduler:get_last_lr() return copy_list(self._last_lr) end

-- PyTorch's verbose line; groups are numbered from 0 there, and here too.
function Scheduler:print_lr(is_verbose, group, lr, epoch)
  if not is_verbose then return end
  if epoch == nil then
    print(string.format("Adjusting learning rate of group %d to %.4e.", group, lr))
  else
    print(string.format("Epoch %05d: adjusting learning rate of group %d to %.4e.", epoch, group, lr))
  end
end

-- step(): advances one epoch with the chainable formula. step(epoch): jumps to `epoch` with
-- the closed form where the schedule has one (PyTorch's deprecated path).
function Scheduler:step(epoch)
  if epoch ~= nil then epoch = checked(self._name .. ".step", "epoch", epoch, "integer") end
  self._step_count = self._step_count + 1
  self._get_lr_called_within_step = true
  local ok, values = pcall(function()
    if epoch == nil then
      self.last_epoch = self.last_epoch + 1
      return self:get_lr()
    end
    self.last_epoch = epoch
    if self._closed_form then return self:_closed_form() end
    return self:get_lr()
  end)
  self._get_lr_called_within_step = false
  if not ok then error(values, 0) end
  local groups = self.optimizer.param_groups
  for i, g in ipairs(groups) do
    if values[i] ~= nil then
      g.lr = values[i]
      self:print_lr(self.verbose, i - 1, values[i], epoch)
    end
  end
  local last = {}
  for i, g in ipairs(groups) do last[i] = g.lr end
  self._last_lr = last
end

-- A copy of a state value: tables deeply (milestones stay ordered; phases become ordered in
-- PyTorch's key order), the rest as is.
local function copy_value(key, v)
  if type(v) ~= "table" then return v end
  if key == "_schedule_phases" then
    local out = {}
    for i, p in ipairs(v) do
      local q = ordered.new()
      for _, k in ipairs(PHASE_KEYS) do q[k] = p[k] end
      out[i] = q
    end
    return out
  end
  local out = ordered.is_ordered(v) and ordered.new() or {}
  for k, x in pairs(v) do out[k] = copy_value(nil, x) end
  return out
end

function Scheduler:state_dict()
  local sd = ordered.new()
  for _, f in ipairs(self._fields) do
    if self[f[1]] ~= nil then sd[f[1]] = copy_value(f[1], self[f[1]]) end
  end
  for _, f in ipairs(BASE_FIELDS) do sd[f[1]] = copy_value(f[1], self[f[1]]) end
  return sd
end

function Scheduler:load_state_dict(sd)
  local where = self._name .. ".load_state_dict"
  if type(sd) ~= "table" then fail(where, "bad argument #1 (state dict expected, got %s)", typename(sd)) end
  local values = {}
  -- Check everything before changing anything: a bad dict leaves the scheduler as it was.
  for _, fields in ipairs({ self._fields, BASE_FIELDS }) do
    for _, f in ipairs(fields) do
      local key, check = f[1], f[2]
      local v = sd[key]
      if v ~= nil then
        v = checked(where, key, v, check)
        if key == "base_lrs" and #v ~= #self.base_lrs then
          fail(where, "base_lrs has %d entries, but this scheduler drives %d param groups", #v, #self.base_lrs)
        end
        values[key] = copy_value(key, v)
      end
    end
  end
  if self._load_extra then self:_load_extra(sd, where) end
  for k, v in pairs(values) do self[k] = v end
end

function Scheduler:__tostring()
  return string.format("%s(last_epoch=%d, last_lr={%s})", self._name, self.last_epoch,
    table.concat(self._last_lr, ", "))
end

local function group_lrs(self)
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr end
  return out
end

local function scaled_lrs(self, factor)
  local out = {}
  for i, g in ipairs(self.optimizer.param_groups) do out[i] = g.lr * factor end
  return out
end

local COMMON_SIG = { { "last_epoch", "epoch", -1 }, { "verbose", "boolean", false } }
local function signature(own)
  local sig = {}
  for _, s in ipairs(own) do sig[#sig + 1] = s end
  for _, s in ipairs(COMMON_SIG) do sig[#sig + 1] = s end
  return sig
end

-- ------------------------------------------------------------------------------------------
-- StepLR(optimizer, step_size[, gamma = 0.1]): lr *= gamma every step_size epochs.

local StepLR = class("StepLR", { { "step_size", "positive_int" }, { "gamma", "number" } })
local STEP_SIG = signature({ { "step_size", "positive_int", nil, required = true }, { "gamma", "number", 0.1 } })

function StepLR.new(optimizer, ...)
  local self = new_instance(StepLR, optimizer)
  local a = parse(StepLR, STEP_SIG, ...)
  self.step_size, self.gamma = a.step_size, a.gamma
  return init(self, a.last_epoch, a.verbose)
end

function StepLR:get_lr()
  if self.last_epoch == 0 or self.last_epoch % self.step_size ~= 0 then return group_lrs(self) end
  return scaled_lrs(self, self.gamma)
end

function StepLR:_closed_form()
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ (self.last_epoch // self.step_size) end
  return out
end

-- ------------------------------------------------------------------------------------------
-- MultiStepLR(optimizer, milestones[, gamma = 0.1]): lr *= gamma at each milestone (twice for
-- a milestone listed twice).

local MultiStepLR = class("MultiStepLR", { { "milestones", "milestone_counts" }, { "gamma", "number" } })
local MULTI_SIG = signature({ { "milestones", "milestones", nil, required = true }, { "gamma", "number", 0.1 } })

function MultiStepLR.new(optimizer, ...)
  local self = new_instance(MultiStepLR, optimizer)
  local a = parse(MultiStepLR, MULTI_SIG, ...)
  self.milestones, self.gamma = a.milestones, a.gamma
  return init(self, a.last_epoch, a.verbose)
end

function MultiStepLR:get_lr()
  local count = self.milestones[self.last_epoch]
  if count == nil then return group_lrs(self) end
  return scaled_lrs(self, self.gamma ^ count)
end

function MultiStepLR:_closed_form()
  local passed = 0 -- bisect_right over the sorted milestones, counted with repeats
  for m, count in pairs(self.milestones) do
    if m <= self.last_epoch then passed = passed + count end
  end
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ passed end
  return out
end

-- ------------------------------------------------------------------------------------------
-- ExponentialLR(optimizer, gamma): lr *= gamma every epoch.

local ExponentialLR = class("ExponentialLR", { { "gamma", "number" } })
local EXP_SIG = signature({ { "gamma", "number", nil, required = true } })

function ExponentialLR.new(optimizer, ...)
  local self = new_instance(ExponentialLR, optimizer)
  local a = parse(ExponentialLR, EXP_SIG, ...)
  self.gamma = a.gamma
  return init(self, a.last_epoch, a.verbose)
end

function ExponentialLR:get_lr()
  if self.last_epoch == 0 then return group_lrs(self) end
  return scaled_lrs(self, self.gamma)
end

function ExponentialLR:_closed_form()
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ self.last_epoch end
  return out
end

-- ------------------------------------------------------------------------------------------
-- CosineAnnealingLR(optimizer, T_max[, eta_min = 0]): half a cosine from the initial rate down
-- to eta_min over T_max epochs, then back up (SGDR without restarts). The recursive form, term
-- for term as PyTorch 1.13 computes it, so that the rates match PyTorch's bit for bit.

local CosineAnnealingLR = class("CosineAnnealingLR", { { "T_max", "positive" }, { "eta_min", "number" } })
local COS_SIG = signature({ { "T_max", "positive", nil, required = true }, { "eta_min", "number", 0 } })

function CosineAnnealingLR.new(optimizer, ...)
  local self = new_instance(CosineAnnealingLR, optimizer)
  local a = parse(CosineAnnealingLR, COS_SIG, ...)
  self.T_max, self.eta_min = a.T_max, a.eta_min
  return init(self, a.last_epoch, a.verbose)
end

function CosineAnnealingLR:get_lr()
  local e, T, eta_min, groups = self.last_epoch, self.T_max, self.eta_min, self.optimizer.param_groups
  local out = {}
  if e == 0 then return group_lrs(self) end
  if self._step_count == 1 and e > 0 then -- constructed to resume at last_epoch > 0
    for i, base in ipairs(self.base_lrs) do
      out[i] = eta_min + (base - eta_min) * (1 + cos(e * pi / T)) / 2
    end
  elseif (e - 1 - T) % (2 * T) == 0 then -- the trough: cos would divide by (1 + cos(pi)) = 0
    for i, base in ipairs(self.base_lrs) do
      out[i] = groups[i].lr + (base - eta_min) * (1 - cos(pi / T)) / 2
    end
  else
    for i, g in ipairs(groups) do
      out[i] = (1 + cos(pi * e / T)) / (1 + cos(pi * (e - 1) / T)) * (g.lr - eta_min) + eta_min
    end
  end
  return out
end

function CosineAnnealingLR:_closed_form()
  local out = {}
  for i, base in ipairs(self.base_lrs) do
    out[i] = self.eta_min + (base - self.eta_min) * (1 + cos(pi * self.last_epoch / self.T_max)) / 2
  end
  return out
end

-- ------------------------------------------------------------------------------------------
-- LambdaLR(optimizer, lr_lambda): lr = initial lr * lr_lambda(epoch); lr_lambda is one
-- function (or callable table) for all groups, or a list with one per group.

local LambdaLR = class("LambdaLR", {})
local LAMBDA_SIG = signature({ { "lr_lambda", false, nil } })

function LambdaLR.new(optimizer, ...)
  local self = new_instance(LambdaLR, optimizer)
  local a = parse(LambdaLR, LAMBDA_SIG, ...)
  local f, n = a.lr_lambda, #optimizer.param_groups
  if is_callable(f) then
    self.lr_lambdas = {}
    for i = 1, n do self.lr_lambdas[i] = f end
  elseif is_list(f) then
    if #f ~= n then fail("LambdaLR", "expected %d lr_lambdas, but got %d", n, #f) end
    for i = 1, n do
      if not is_callable(f[i]) then fail("LambdaLR", "lr_lambda[%d] must be a function, got %s", i, typename(f[i])) end
    end
    self.lr_lambdas = copy_list(f)
  else
    fail("LambdaLR", "lr_lambda must be a function or a list of functions, got %s", f == nil and "nil" or typename(f))
  end
  return init(self, a.last_epoch, a.verbose)
end

function LambdaLR:get_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do
    local factor = self.lr_lambdas[i](self.last_epoch)
    if type(factor) ~= "number" then
      fail("LambdaLR", "lr_lambda[%d] returned %s for epoch %d, expected a number", i, typename(factor), self.last_epoch)
    end
    out[i] = base * factor
  end
  return out
end

-- The state of callable tables goes with the dict (PyTorch: the __dict__ of callable objects).
function LambdaLR:state_dict()
  local sd = Scheduler.state_dict(self)
  local states = {}
  for i, f in ipairs(self.lr_lambdas) do
    if type(f) == "table" then
      local fields = {}
      for k, v in pairs(f) do fields[k] = copy_value(nil, v) end
      states[i] = fields
    end
  end
  sd.lr_lambdas = states
  return sd
end

function LambdaLR:_load_extra(sd, where)
  local states = sd.lr_lambdas
  if states == nil then return end
  if type(states) ~= "table" then fail(where, "lr_lambdas must be a table, got %s", typename(states)) end
  for i, fields in pairs(states) do
    local f = self.lr_lambdas[i]
    if type(fields) ~= "table" then fail(where, "lr_lambdas[%s] must be a table of fields, got %s", tostring(i), typename(fields)) end
    if type(f) ~= "table" then
      fail(where, "lr_lambdas[%s] holds the state of a callable table, but lambda %s is a %s", tostring(i), tostring(i), typename(f))
    end
  end
  for i, fields in pairs(states) do
    for k, v in pairs(fields) do self.lr_lambdas[i][k] = copy_value(nil, v) end
  end
end

-- ------------------------------------------------------------------------------------------
-- OneCycleLR(optimizer, max_lr[, total_steps][, epochs][, steps_per_epoch][, pct_start = 0.3]
--            [, anneal_strategy = "cos"][, cycle_momentum = true][, base_momentum = 0.85]
--            [, max_momentum = 0.95][, div_factor = 25][, final_div_factor = 1e4]
--            [, three_phase = false])
-- The 1cycle policy: the rate rises from max_lr / div_factor to max_lr over pct_start of the
-- steps, then anneals to initial / final_div_factor (three_phase: back to the initial rate
-- first, then down); momentum (or Adam's beta1) moves the opposite way. Call step() after each
-- batch; stepping past total_steps is an error. The schedule reads initial_lr, max_lr, min_lr,
-- max_momentum and base_momentum from each param group, where the constructor puts them.

local OneCycleLR = class("OneCycleLR", {
  { "total_steps", "positive_int" }, { "_schedule_phases", "phases" }, { "_anneal_func_type", "strategy" },
  { "cycle_momentum", "boolean" }, { "use_beta1", "boolean" },
})
local ONE_SIG = signature({
  { "max_lr", false, nil, required = true }, { "total_steps", "positive_int" }, { "epochs", "positive_int" },
  { "steps_per_epoch", "positive_int" }, { "pct_start", "fraction", 0.3 }, { "anneal_strategy", "strategy", "cos" },
  { "cycle_momentum", "boolean", true }, { "base_momentum", false, 0.85 }, { "max_momentum", false, 0.95 },
  { "div_factor", "number", 25.0 }, { "final_div_factor", "number", 1e4 }, { "three_phase", "boolean", false },
})

local function float(x) return x + 0.0 end

-- Whether the optimizer has hyperparameter `key` (PyTorch asks optimizer.defaults).
local function supports(optimizer, key)
  if type(optimizer.defaults) == "table" then return optimizer.defaults[key] ~= nil end
  return optimizer.param_groups[1][key] ~= nil
end

function OneCycleLR.new(optimizer, ...)
  local self = new_instance(OneCycleLR, optimizer)
  local a = parse(OneCycleLR, ONE_SIG, ...)
  local groups = optimizer.param_groups
  if a.total_steps then
    self.total_steps = a.total_steps
  elseif a.epochs and a.steps_per_epoch then
    self.total_steps = a.epochs * a.steps_per_epoch
  else
    fail("OneCycleLR", "you must define either total_steps OR (epochs AND steps_per_epoch)")
  end
  local total, pct = self.total_steps, a.pct_start
  local function phase(end_step, start_lr, end_lr, start_momentum, end_momentum)
    return { end_step = end_step, start_lr = start_lr, end_lr = end_lr, start_momentum = start_momentum,
      end_momentum = end_momentum }
  end
  if a.three_phase then
    self._schedule_phases = {
      phase(float(pct * total) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
      phase(float(2 * pct * total) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
      phase(total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
    }
  else
    self._schedule_phases = {
      phase(float(pct * total) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
      phase(total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
    }
  end
  self._anneal_func_type = a.anneal_strategy

  local max_lrs = per_group("OneCycleLR", "max_lr", a.max_lr, #groups)
  if a.last_epoch == -1 then
    for i, g in ipairs(groups) do
      g.initial_lr = max_lrs[i] / a.div_factor
      g.max_lr = max_lrs[i]
      g.min_lr = g.initial_lr / a.final_div_factor
    end
  end

  self.cycle_momentum = a.cycle_momentum
  if self.cycle_momentum then
    if not supports(optimizer, "momentum") and not supports(optimizer, "betas") then
      fail("OneCycleLR", "optimizer must support momentum (a momentum or betas hyperparameter) with cycle_momentum enabled")
    end
    self.use_beta1 = supports(optimizer, "betas")
    local max_m = per_group("OneCycleLR", "max_momentum", a.max_momentum, #groups)
    local base_m = per_group("OneCycleLR", "base_momentum", a.base_momentum, #groups)
    if a.last_epoch == -1 then
      for i, g in ipairs(groups) do
        if self.use_beta1 then self:_set_beta1(g, i, max_m[i]) else g.momentum = max_m[i] end
        g.max_momentum = max_m[i]
        g.base_momentum = base_m[i]
      end
    end
  end
  return init(self, a.last_epoch, a.verbose)
end

-- betas = {m, beta2}: a new table, as PyTorch makes a new tuple (groups may share one).
function OneCycleLR:_set_beta1(g, i, m)
  local betas = g.betas
  if type(betas) ~= "table" or type(betas[2]) ~= "number" then
    fail("OneCycleLR", "param group %d: betas must be a list of 2 numbers, got %s", i, typename(betas))
  end
  local new = copy_list(betas)
  new[1] = m
  g.betas = new
end

local function anneal(kind, start, stop, pct)
  if kind == "cos" then
    local cos_out = cos(pi * pct) + 1
    return stop + (start - stop) / 2.0 * cos_out
  end
  return (stop - start) * pct + start
end

local function group_value(g, i, key)
  local v = g[key]
  if type(v) ~= "number" then
    fail("OneCycleLR.step", "param group %d has no numeric %s (set by the constructor, kept in the optimizer's state dict)", i, key)
  end
  return v
end

function OneCycleLR:get_lr()
  local step_num, phases, kind = self.last_epoch, self._schedule_phases, self._anneal_func_type
  if step_num > self.total_steps then
    fail("OneCycleLR.step", "tried to step %d times; the specified number of total steps is %d",
      step_num + 1, self.total_steps)
  end
  local lrs = {}
  for i, g in ipairs(self.optimizer.param_groups) do
    local start_step, lr, momentum = 0, nil, nil
    for p, phase in ipairs(phases) do
      local end_step = phase.end_step
      if step_num <= end_step or p == #phases then
        local pct = (step_num - start_step) / (end_step - start_step)
        lr = anneal(kind, group_value(g, i, phase.start_lr), group_value(g, i, phase.end_lr), pct)
        if self.cycle_momentum then
          momentum = anneal(kind, group_value(g, i, phase.start_momentum), group_value(g, i, phase.end_momentum), pct)
        end
        break
      end
      start_step = phase.end_step
    end
    lrs[i] = lr
    if self.cycle_momentum then
      if self.use_beta1 then self:_set_beta1(g, i, momentum) else g.momentum = momentum end
    end
  end
  return lrs
end

return M
