-- SPEC §5, learning-rate schedulers, against the real PyTorch (Debian's 1.13, /usr/bin/python3):
--   * every case below runs here and in tools/pytorch_sched.py; each group's lr (and momentum
--     or beta1) after the constructor and after every step must be bit-identical;
--   * a run interrupted mid-way (optimizer and scheduler state dicts through torch.serialize,
--     fresh objects, load_state_dict) continues exactly as the uninterrupted one;
--   * PyTorch's state dicts (torch.save) load here and continue like PyTorch, and ours
--     (torch.save) load into PyTorch's scheduler and continue there;
--   * constructor forms, state-dict keys, verbose lines, and clear errors on bad input.
local H = require "spec.helpers"
local torch = H.torch
local lr_scheduler = torch.optim.lr_scheduler

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local tool = source_dir .. "/tools/pytorch_sched.py"
local PYTHON = "/usr/bin/python3"

-- The same functions as LAMBDAS in the tool, written the same way.
local LAMBDAS = {
  exp95 = function(e) return 0.95 ^ e end,
  warmup = function(e) return math.min(1.0, (e + 1) / 5) end,
  step3 = function(e) return e // 3 end,
  inv = function(e) return 1 / (1 + 0.1 * e) end,
}

-- Fields: see the tool's docstring. Steps run optimizer:step() then scheduler:step().
local CASES = {
  { name = "step", opt = "SGD", lrs = { 0.1, 0.05 }, opt_args = { momentum = 0.9 }, sched = "StepLR",
    args = { 3 }, kwargs = { gamma = 0.5 }, steps = 40, save_at = 17 },
  { name = "step_positional", opt = "SGD", lrs = { 0.3 }, sched = "StepLR", args = { 7, 0.3 }, steps = 30 },
  { name = "multistep", opt = "Adam", lrs = { 0.01, 0.002 }, sched = "MultiStepLR",
    args = { { 2, 5, 5, 11 } }, kwargs = { gamma = 0.3 }, steps = 20, save_at = 4 },
  { name = "exponential", opt = "SGD", lrs = { 0.1, 1.0 }, sched = "ExponentialLR", args = { 0.93 },
    steps = 60, save_at = 33 },
  { name = "cosine", opt = "SGD", lrs = { 0.1, 0.05 }, sched = "CosineAnnealingLR", args = { 10 },
    steps = 45, save_at = 21 },
  { name = "cosine_eta_min", opt = "SGD", lrs = { 0.5 }, sched = "CosineAnnealingLR", args = { 7 },
    kwargs = { eta_min = 0.001 }, steps = 40, save_at = 14 },
  { name = "cosine_float_tmax", opt = "Adam", lrs = { 0.003 }, sched = "CosineAnnealingLR", args = { 4.5, 1e-5 },
    steps = 30 },
  { name = "lambda", opt = "SGD", lrs = { 0.1, 0.2 }, sched = "LambdaLR", args = { "lambda:exp95" },
    steps = 30, save_at = 12 },
  { name = "lambda_list", opt = "SGD", lrs = { 0.1, 0.2 }, sched = "LambdaLR",
    args = { { "lambda:warmup", "lambda:step3" } }, steps = 25 },
  { name = "lambda_inv", opt = "RMSprop", lrs = { 0.01 }, sched = "LambdaLR", args = { "lambda:inv" }, steps = 25 },
  { name = "onecycle_cos", opt = "SGD", lrs = { 0.1, 0.1 }, opt_args = { momentum = 0.9 }, sched = "OneCycleLR",
    args = { 1.0 }, kwargs = { total_steps = 30 }, steps = 30, save_at = 11, overstep = true },
  { name = "onecycle_linear_3phase_adam", opt = "Adam", lrs = { 0.001, 0.002 }, sched = "OneCycleLR",
    args = { { 0.01, 0.05 } },
    kwargs = { epochs = 4, steps_per_epoch = 6, pct_start = 0.25, anneal_strategy = "linear", three_phase = true,
      div_factor = 10.0, final_div_factor = 100.0, base_momentum = 0.8, max_momentum = { 0.9, 0.92 } },
    steps = 24, save_at = 9, overstep = true },
  { name = "onecycle_cos_3phase", opt = "AdamW", lrs = { 0.001 }, sched = "OneCycleLR", args = { 0.02 },
    kwargs = { total_steps = 50, three_phase = true, pct_start = 0.4 }, steps = 50, save_at = 25 },
  { name = "onecycle_no_momentum", opt = "Adagrad", lrs = { 0.5 }, sched = "OneCycleLR",
    args = { 0.7, 20 }, kwargs = { cycle_momentum = false }, steps = 20, save_at = 5 },
  { name = "onecycle_sgd_default_momentum", opt = "SGD", lrs = { 0.1 }, sched = "OneCycleLR",
    args = { 0.4 }, kwargs = { total_steps = 15, pct_start = 0.5 }, steps = 15 },
  -- constructed to resume at last_epoch >= 0: base rates come from the groups' initial_lr
  { name = "cosine_last_epoch", opt = "SGD", lrs = { 0.07, 0.02 }, group_extra = { initial_lr = { 0.1, 0.03 } },
    sched = "CosineAnnealingLR", args = { 12 }, kwargs = { last_epoch = 5 }, steps = 25 },
  { name = "step_last_epoch", opt = "SGD", lrs = { 0.01 }, group_extra = { initial_lr = { 0.1 } },
    sched = "StepLR", args = { 4 }, kwargs = { last_epoch = 6 }, steps = 12 },
  -- the deprecated step(epoch): closed forms where PyTorch has them
  { name = "step_epochs", opt = "SGD", lrs = { 0.1 }, sched = "StepLR", args = { 3 },
    epochs = { 1, 5, 9, 9, 2, 20 } },
  { name = "multistep_epochs", opt = "SGD", lrs = { 0.1 }, sched = "MultiStepLR", args = { { 3, 3, 6 } },
    epochs = { 2, 3, 7, 4, 0 } },
  { name = "exponential_epochs", opt = "SGD", lrs = { 0.1 }, sched = "ExponentialLR", args = { 0.5 },
    epochs = { 3, 1, 10 } },
  { name = "cosine_epochs", opt = "SGD", lrs = { 0.1 }, sched = "CosineAnnealingLR", args = { 8, 0.01 },
    epochs = { 1, 4, 8, 11, 3 } },
  { name = "lambda_epochs", opt = "SGD", lrs = { 0.1 }, sched = "LambdaLR", args = { "lambda:exp95" },
    epochs = { 4, 2 } },
}

-- ------------------------------------------------------------------------------------------
-- Helpers

local sh = H.sh

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

-- JSON for the cases: floats keep a '.' or exponent so Python reads them as floats.
local function json(v)
  local ty = type(v)
  if ty == "boolean" then return tostring(v) end
  if ty == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    local s = string.format("%.17g", v)
    if not s:find("[.eEn]") then s = s .. ".0" end
    return s
  end
  if ty == "string" then return string.format("%q", v) end
  assert(ty == "table", "cannot encode a " .. ty)
  local parts = {}
  if is_list(v) then
    for i = 1, #v do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do parts[#parts + 1] = string.format("%q", k) .. ":" .. json(x) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function resolve(a)
  if type(a) == "string" and a:sub(1, 7) == "lambda:" then return assert(LAMBDAS[a:sub(8)]) end
  if type(a) == "table" then
    local out = {}
    for i, v in ipairs(a) do out[i] = resolve(v) end
    return out
  end
  return a
end

-- A fresh optimizer (one 2-element parameter per group) and scheduler for a case.
local function build(case)
  local groups = {}
  for i, lr in ipairs(case.lrs) do
    local g = { params = { torch.zeros(2):requires_grad_() }, lr = lr }
    for key, values in pairs(case.group_extra or {}) do g[key] = values[i] end
    groups[i] = g
  end
  local hyper = { lr = case.lrs[1] }
  for k, v in pairs(case.opt_args or {}) do hyper[k] = v end
  local opt = torch.optim[case.opt](groups, hyper)
  local args = {}
  for i, a in ipairs(case.args or {}) do args[i] = resolve(a) end
  if case.kwargs then args[#args + 1] = case.kwargs end
  return opt, lr_scheduler[case.sched](opt, table.unpack(args, 1, #(case.args or {}) + (case.kwargs and 1 or 0)))
end

local function record(opt, out)
  local lrs, mom = {}, {}
  for i, g in ipairs(opt.param_groups) do
    lrs[i] = g.lr
    if g.betas ~= nil then mom[#mom + 1] = g.betas[1] elseif g.momentum ~= nil then mom[#mom + 1] = g.momentum end
  end
  out.lrs[#out.lrs + 1] = lrs
  if #mom > 0 then out.mom[#out.mom + 1] = mom end
end

local function advance(opt, sched, epoch)
  opt:step()
  sched:step(epoch)
end

-- Runs a case here: the records after the constructor and each step (up to `upto` steps).
local function run_case(case, upto, on_step)
  local opt, sched = build(case)
  local out = { lrs = {}, mom = {} }
  record(opt, out)
  local n = case.epochs and #case.epochs or case.steps
  for k = 1, upto or n do
    advance(opt, sched, case.epochs and case.epochs[k] or nil)
    record(opt, out)
    if on_step then on_step(k, opt, sched) end
  end
  return out, opt, sched
end

local function hex(x) return string.format("%.17g (%a)", x, x) end

-- Asserts that two records agree bit for bit from record `from` of `expected` on (1 = after
-- the constructor): record i of `got` is record i + from - 1 of `expected`.
local function assert_same(name, got, expected, from)
  from = from or 1
  for _, key in ipairs({ "lrs", "mom" }) do
    local e, g = expected[key] or {}, got[key] or {}
    local want = math.max(#e - from + 1, 0)
    if #g ~= want then error(string.format("%s: %d %s records, expected %d", name, #g, key, want), 2) end
    for i = 1, #g do
      local ei = i + from - 1
      for j = 1, math.max(#g[i], #e[ei]) do
        local a, b = g[i][j], e[ei][j]
        if a ~= b then
          error(string.format("%s: %s of group %d after step %d is %s, PyTorch has %s", name,
            key == "lrs" and "lr" or "momentum", j, ei - 1, a and hex(a) or "nil", b and hex(b) or "nil"), 2)
        end
      end
    end
  end
end

local function read_lua(path) return assert(H.read_lua(path)) end

-- ------------------------------------------------------------------------------------------

describe("lr_scheduler against PyTorch", function()
  local dir, expected

  setup(function()
    local ok, out = sh("mktemp -d /tmp/moontorch-sched.XXXXXX")
    assert(ok, out)
    dir = out:gsub("%s+$", "")
    local f = assert(io.open(dir .. "/cases.json", "w"))
    f:write(json(CASES))
    f:close()
    ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " run " .. H.shquote(dir .. "/cases.json") .. " " .. H.shquote(dir))
    assert(ok, "pytorch_sched.py run failed:\n" .. out)
    expected = read_lua(dir .. "/expected.lua")
  end)

  teardown(function()
    if dir then sh("rm -rf " .. H.shquote(dir)) end
  end)

  for _, case in ipairs(CASES) do
    it("follows PyTorch's rates: " .. case.name, function()
      local e = expected[case.name]
      assert(e and not e.error, case.name .. ": PyTorch failed: " .. tostring(e and e.error))
      local got, opt, sched = run_case(case)
      assert_same(case.name, got, e)
      if case.overstep then
        local err = H.expect_error(function() advance(opt, sched) end, "OneCycleLR.step", "total steps")
        assert.is_truthy(e.overstep_error, "PyTorch should fail too")
        -- same counts in the message as PyTorch's "Tried to step 32 times. ... is 30"
        local py_n, py_total = e.overstep_error:match("step (%d+) times.-is (%d+)")
        assert.is_truthy(err:find("step " .. py_n .. " times", 1, true), err)
        assert.is_truthy(err:find("is " .. py_total, 1, true), err)
      end
    end)
  end

  it("keeps PyTorch's state-dict keys, in order", function()
    for _, case in ipairs(CASES) do
      local _, _, sched = run_case(case, 1)
      local keys = {}
      for k in pairs(sched:state_dict()) do keys[#keys + 1] = k == "_anneal_func_type" and "anneal_func" or k end
      assert.are.same(expected[case.name].state_keys, keys, case.name)
    end
  end)

  for _, case in ipairs(CASES) do
    if case.save_at then
      it("continues identically after a state-dict round trip: " .. case.name, function()
        local _, opt, sched = run_case(case, case.save_at)
        local saved = torch.deserialize(torch.serialize({ optimizer = opt:state_dict(), scheduler = sched:state_dict() }))
        local opt2, sched2 = build(case)
        opt2:load_state_dict(saved.optimizer)
        sched2:load_state_dict(saved.scheduler)
        assert.are.equal(case.save_at, sched2.last_epoch)
        local out = { lrs = {}, mom = {} }
        record(opt2, out)
        for _ = case.save_at + 1, case.steps do
          advance(opt2, sched2)
          record(opt2, out)
        end
        assert_same(case.name, out, expected[case.name], case.save_at + 1)
        if case.overstep then H.expect_error(function() advance(opt2, sched2) end, "OneCycleLR.step", "total steps") end
      end)

      it("loads PyTorch's state dicts and continues like PyTorch: " .. case.name, function()
        local saved = torch.load(dir .. "/" .. case.name .. ".torch.pt")
        local opt, sched = build(case)
        opt:load_state_dict(saved.optimizer)
        sched:load_state_dict(saved.scheduler)
        local out = { lrs = {}, mom = {} }
        record(opt, out)
        for _ = case.save_at + 1, case.steps do
          advance(opt, sched)
          record(opt, out)
        end
        assert_same(case.name, out, expected[case.name], case.save_at + 1)
      end)
    end
  end

  it("writes state dicts that PyTorch's schedulers load and continue from", function()
    local names = {}
    for _, case in ipairs(CASES) do
      if case.save_at then
        local _, opt, sched = run_case(case, case.save_at)
        torch.save({ optimizer = opt:state_dict(), scheduler = sched:state_dict() }, dir .. "/" .. case.name .. ".lua.pt")
        names[#names + 1] = case.name
      end
    end
    local ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " resume " .. H.shquote(dir .. "/cases.json") .. " " .. H.shquote(dir))
    assert(ok, "pytorch_sched.py resume failed:\n" .. out)
    local resumed = read_lua(dir .. "/resumed.lua")
    for _, case in ipairs(CASES) do
      if case.save_at then
        local r = resumed[case.name]
        assert(r and not r.error, case.name .. ": PyTorch could not resume: " .. tostring(r and r.error))
        assert_same(case.name .. " (resumed in PyTorch)", r, expected[case.name], case.save_at + 1)
      end
    end
    assert.is_true(#names >= 8)
  end)
end)

-- ------------------------------------------------------------------------------------------

describe("lr_scheduler", function()
  local function sgd(lrs, extra)
    local groups = {}
    for i, lr in ipairs(lrs) do
      groups[i] = { params = { torch.zeros(1):requires_grad_() }, lr = lr }
      for k, v in pairs(extra or {}) do groups[i][k] = v end
    end
    return torch.optim.SGD(groups, { lr = lrs[1] })
  end

  local function rates(make, n)
    local opt = sgd({ 0.1, 0.2 })
    local sched = make(opt)
    local out = { sched:get_last_lr() }
    for _ = 1, n do
      opt:step()
      sched:step()
      out[#out + 1] = sched:get_last_lr()
    end
    return out, sched
  end

  it("takes arguments positionally, by name, or both", function()
    local a = rates(function(o) return lr_scheduler.StepLR(o, 3, 0.5) end, 10)
    local b = rates(function(o) return lr_scheduler.StepLR(o, 3, { gamma = 0.5 }) end, 10)
    local c = rates(function(o) return lr_scheduler.StepLR(o, { step_size = 3, gamma = 0.5 }) end, 10)
    local d = rates(function(o) return lr_scheduler.StepLR(o, 3) end, 10)
    assert.are.same(a, b)
    assert.are.same(a, c)
    assert.are_not.same(a, d) -- gamma 0.1 by default
    assert.are.equal(0.1 * 0.5 * 0.5 * 0.5, a[10][1])
    -- nil stands for an omitted positional
    local e = rates(function(o) return lr_scheduler.OneCycleLR(o, 1.0, nil, 2, 5) end, 10)
    local f = rates(function(o) return lr_scheduler.OneCycleLR(o, 1.0, { epochs = 2, steps_per_epoch = 5 }) end, 10)
    assert.are.same(e, f)
  end)

  it("exposes last_epoch, base_lrs and the constructor's first step", function()
    local opt = sgd({ 0.1, 0.2 })
    local sched = lr_scheduler.ExponentialLR(opt, 0.5)
    assert.are.equal(0, sched.last_epoch)
    assert.are.same({ 0.1, 0.2 }, sched.base_lrs)
    assert.are.equal(0.1, opt.param_groups[1].initial_lr)
    assert.are.equal("ExponentialLR(last_epoch=0, last_lr={0.1, 0.2})", tostring(sched))
    sched:step()
    assert.are.equal(1, sched.last_epoch)
    assert.are.same({ 0.05, 0.1 }, sched:get_last_lr())
    -- get_last_lr gives a copy
    sched:get_last_lr()[1] = 7
    assert.are.equal(0.05, sched:get_last_lr()[1])
    -- chainable: a manual change composes with the schedule
    opt.param_groups[1].lr = 1.0
    sched:step()
    assert.are.same({ 0.5, 0.05 }, sched:get_last_lr())
  end)

  it("keeps callable tables' fields in LambdaLR state dicts and omits functions", function()
    local Warm = {}
    Warm.__index = Warm
    Warm.__call = function(self, e) return math.min(1.0, (e + 1) / self.n) end
    local warm = setmetatable({ n = 4 }, Warm)
    local opt = sgd({ 0.1, 0.2 })
    local sched = lr_scheduler.LambdaLR(opt, { warm, LAMBDAS.exp95 })
    local sd = sched:state_dict()
    assert.are.same({ n = 4 }, sd.lr_lambdas[1])
    assert.is_nil(sd.lr_lambdas[2])
    warm.n = 10
    sched:load_state_dict(sd)
    assert.are.equal(4, warm.n)
    assert.are.same({}, lr_scheduler.LambdaLR(sgd({ 0.1 }), LAMBDAS.exp95):state_dict().lr_lambdas)
  end)

  it("prints PyTorch's verbose lines", function()
    local lines = {}
    local old = _G.print
    _G.print = function(s) lines[#lines + 1] = s end
    local ok, err = pcall(function()
      local sched = lr_scheduler.StepLR(sgd({ 0.1 }), 1, { gamma = 0.5, verbose = true })
      sched:step()
      sched:step(5)
    end)
    _G.print = old
    assert(ok, err)
    assert.are.same({
      "Adjusting learning rate of group 0 to 1.0000e-01.",
      "Adjusting learning rate of group 0 to 5.0000e-02.",
      "Epoch 00005: adjusting learning rate of group 0 to 3.1250e-03.",
    }, lines)
  end)

  it("cycles Adam's beta1 without touching beta2 or other groups' tables", function()
    local shared = { 0.9, 0.98 }
    local opt = torch.optim.Adam({ { params = { torch.zeros(1):requires_grad_() }, betas = shared } }, { lr = 0.1 })
    local sched = lr_scheduler.OneCycleLR(opt, 0.1, { total_steps = 10 })
    sched:step()
    local betas = opt.param_groups[1].betas
    assert.are.equal(0.98, betas[2])
    assert.are_not.equal(0.95, betas[1]) -- moved from max_momentum
    assert.are.same({ 0.9, 0.98 }, shared)
  end)

  describe("errors", function()
    local function ctor_err(name, problem, fn)
      H.expect_error(fn, "moontorch.optim.lr_scheduler." .. name, problem)
    end

    it("rejects bad constructor arguments", function()
      local opt = sgd({ 0.1 })
      ctor_err("StepLR", "bad argument #1.-optimizer", function() lr_scheduler.StepLR(42, 3) end)
      ctor_err("StepLR", "missing argument 'step_size'", function() lr_scheduler.StepLR(opt) end)
      ctor_err("StepLR", "step_size must be a positive integer, got string",
        function() lr_scheduler.StepLR(opt, "3") end)
      ctor_err("StepLR", "step_size must be a positive integer", function() lr_scheduler.StepLR(opt, 0) end)
      ctor_err("StepLR", "gamma must be a number", function() lr_scheduler.StepLR(opt, 3, { gamma = "x" }) end)
      ctor_err("StepLR", "unknown option 'gama'", function() lr_scheduler.StepLR(opt, 3, { gama = 0.5 }) end)
      ctor_err("StepLR", "gamma is given both", function() lr_scheduler.StepLR(opt, 3, 0.5, { gamma = 0.5 }) end)
      ctor_err("StepLR", "too many arguments", function() lr_scheduler.StepLR(opt, 3, 0.5, -1, false, 1) end)
      ctor_err("MultiStepLR", "milestones must be a list of integers",
        function() lr_scheduler.MultiStepLR(opt, { 1, 2.5 }) end)
      ctor_err("CosineAnnealingLR", "T_max must be a positive number",
        function() lr_scheduler.CosineAnnealingLR(opt, 0) end)
      ctor_err("LambdaLR", "expected 2 lr_lambdas, but got 1",
        function() lr_scheduler.LambdaLR(sgd({ 0.1, 0.2 }), { LAMBDAS.exp95 }) end)
      ctor_err("LambdaLR", "lr_lambda must be a function", function() lr_scheduler.LambdaLR(opt, 3) end)
      ctor_err("LambdaLR", "returned string for epoch 0",
        function() lr_scheduler.LambdaLR(opt, function() return "x" end) end)
      ctor_err("OneCycleLR", "total_steps OR %(epochs AND steps_per_epoch%)",
        function() lr_scheduler.OneCycleLR(opt, 1.0, { epochs = 3 }) end)
      ctor_err("OneCycleLR", "pct_start must be a number in %[0, 1%]",
        function() lr_scheduler.OneCycleLR(opt, 1.0, { total_steps = 5, pct_start = 1.5 }) end)
      ctor_err("OneCycleLR", "anneal_strategy must be 'cos' or 'linear'",
        function() lr_scheduler.OneCycleLR(opt, 1.0, { total_steps = 5, anneal_strategy = "exp" }) end)
      ctor_err("OneCycleLR", "expected 2 values for max_lr, got 3",
        function() lr_scheduler.OneCycleLR(sgd({ 0.1, 0.2 }), { 1, 2, 3 }, 10) end)
      ctor_err("OneCycleLR", "must support momentum",
        function() lr_scheduler.OneCycleLR(torch.optim.Adagrad({ torch.zeros(1):requires_grad_() }, { lr = 0.1 }), 1.0, 10) end)
      ctor_err("StepLR", "param group 1 has no initial_lr",
        function() lr_scheduler.StepLR(sgd({ 0.1 }), 3, { last_epoch = 4 }) end)
    end)

    it("rejects bad state dicts and leaves the scheduler as it was", function()
      local sched = lr_scheduler.MultiStepLR(sgd({ 0.1, 0.2 }), { 2, 4 })
      sched:step()
      local before = sched:state_dict()
      local function load_err(problem, change)
        local sd = sched:state_dict()
        change(sd)
        H.expect_error(function() sched:load_state_dict(sd) end, "moontorch.optim.lr_scheduler.MultiStepLR.load_state_dict",
          problem)
        assert.are.same(before, sched:state_dict())
      end
      H.expect_error(function() sched:load_state_dict(5) end, "MultiStepLR.load_state_dict", "state dict expected")
      load_err("base_lrs has 1 entries, but this scheduler drives 2 param groups", function(sd) sd.base_lrs = { 0.1 } end)
      load_err("last_epoch must be an integer >= %-1, got string", function(sd) sd.last_epoch = "3" end)
      load_err("last_epoch must be an integer", function(sd) sd.last_epoch = 2.5 end)
      load_err("milestones must be a table of milestone %-> count", function(sd) sd.milestones = { [2] = "x" } end)
      load_err("_last_lr must be a list of numbers", function(sd) sd._last_lr = { 0.1, "x" } end)
      load_err("gamma must be a number, got boolean", function(sd) sd.gamma = true end)
      load_err("_step_count must be a non%-negative integer", function(sd) sd._step_count = -1 end)
      -- unknown keys (dicts from other versions) are ignored
      local sd = sched:state_dict()
      sd.some_future_key = { 1, 2 }
      sched:load_state_dict(sd)
      assert.are.same(before, sched:state_dict())

      local one = lr_scheduler.OneCycleLR(sgd({ 0.1 }), 1.0, 10)
      H.expect_error(function()
        local bad = one:state_dict()
        bad._schedule_phases[1].start_lr = "lr"
        one:load_state_dict(bad)
      end, "OneCycleLR.load_state_dict", "_schedule_phases must be a list of phases")
      H.expect_error(function()
        local bad = one:state_dict()
        bad._anneal_func_type = "exp"
        one:load_state_dict(bad)
      end, "OneCycleLR.load_state_dict", "_anneal_func_type must be 'cos' or 'linear'")
    end)

    it("names the missing group key when OneCycleLR's group entries are gone", function()
      local opt = sgd({ 0.1 })
      local sched = lr_scheduler.OneCycleLR(opt, 1.0, 10)
      opt.param_groups[1].max_lr = nil
      H.expect_error(function() sched:step() end, "OneCycleLR.step", "param group 1 has no numeric max_lr")
    end)
  end)
end)
