-- SPEC §5 (torch.optim) against the real PyTorch (Debian's 1.13, /usr/bin/python3):
--   1. tools/pytorch_optim.py runs each case (SGD, Adam, AdamW, RMSprop, Adagrad under several
--      settings, float32 and float64, one or two groups, a parameter that skips some steps) for
--      12 steps; the same run here must give the same parameters after every step.
--   2. The state dict PyTorch saved after step 5 loads here (into an optimizer built with wrong
--      learning rates) and the next steps follow PyTorch's.
--   3. Ours, saved with torch.save after step 5, loads into PyTorch's optimizer (torch.load,
--      then load_state_dict) and PyTorch's next steps follow its own run; the tool also compares
--      our state dict's layout and values with PyTorch's own.
-- Then the Lua surface: state dict layout, load_state_dict's checks and messages, constructor
-- and add_param_group checks, step(closure), zero_grad, exact resume through torch.serialize.
local H = require "spec.helpers"
local torch = H.torch
local optim = torch.optim

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local tool = source_dir .. "/tools/pytorch_optim.py"
local PYTHON = "/usr/bin/python3"

local sh = H.sh

local function mktemp_dir() return H.mktemp_dir("optim") end

local read_lua = H.read_lua

-- The error raised by fn, which must mention every plain string given.
local function expect_error(fn, ...)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error, but the call succeeded")
  err = tostring(err)
  for _, s in ipairs({ ... }) do
    assert(err:find(s, 1, true), "error message lacks '" .. s .. "': " .. err)
  end
  return err
end

-- ------------------------------------------------------------------------------------------
-- The tool's problem: parameters `init`, and at step t the gradient p * a + b[t]; parameter
-- `no_grad[i][1]` gets none at step `no_grad[i][2]`.

local function tensors(lists, shapes, dtype)
  local out = {}
  for i, l in ipairs(lists) do out[i] = torch.tensor(l, { dtype = dtype }):reshape(shapes[i]) end
  return out
end

local function problem(E, case)
  local b = {}
  for t = 1, E.steps do b[t] = tensors(case.b[t], E.shapes, case.dtype) end
  return tensors(case.a, E.shapes, case.dtype), b
end

local function set_grads(E, params, a, b, t)
  torch.no_grad(function()
    for i, p in ipairs(params) do
      local skip = false
      for _, ng in ipairs(E.no_grad) do
        if ng[1] == i and ng[2] == t then skip = true end
      end
      p.grad = (not skip) and (p * a[i] + b[t][i]) or nil
    end
  end)
end

local function wrong_lr(lr) return lr * 7 + 0.25 end -- as the tool's

local DEFAULT_LR = { Adam = 1e-3, AdamW = 1e-3, RMSprop = 1e-2, Adagrad = 1e-2 }

-- The case's optimizer over `params`, optionally with every learning rate changed by lr_rule.
local function build(case, params, lr_rule)
  local opts = {}
  for k, v in pairs(case.opts) do opts[k] = v end
  if lr_rule then opts.lr = lr_rule(opts.lr or DEFAULT_LR[case.optimizer]) end
  local spec = params
  if case.groups then
    spec = {}
    for gi, g in ipairs(case.groups) do
      local group = {}
      for k, v in pairs(g) do group[k] = v end
      group.params = {}
      for j, idx in ipairs(g.params) do group.params[j] = params[idx] end
      if lr_rule and group.lr then group.lr = lr_rule(group.lr) end
      spec[gi] = group
    end
  end
  return optim[case.optimizer](spec, opts)
end

local function fresh_params(E, case)
  local params = tensors(case.init, E.shapes, case.dtype)
  for _, p in ipairs(params) do p:requires_grad_() end
  return params
end

local TOL = { float32 = { 1e-5, 1e-6 }, float64 = { 1e-12, 1e-14 } }

local function assert_params(params, want, dtype, label)
  local rtol, atol = TOL[dtype][1], TOL[dtype][2]
  for i, p in ipairs(params) do
    local got = H.values(p)
    assert(#got == #want[i], label .. ": parameter " .. i .. " has " .. #got .. " values")
    for j = 1, #got do
      if not H.close(got[j], want[i][j], rtol, atol) then
        error(string.format("%s: parameter %d, element %d is %.17g, PyTorch's %.17g", label, i, j, got[j],
          want[i][j]), 2)
      end
    end
  end
end

-- Steps first..last, checking against PyTorch's trajectory after each; calls at_k() after step k.
local function run(E, case, params, opt, first, last, at_k)
  local a, b = problem(E, case)
  for t = first, last do
    set_grads(E, params, a, b, t)
    opt:step()
    assert_params(params, case.trajectory[t], case.dtype, case.name .. " after step " .. t)
    if t == E.k and at_k then at_k() end
  end
end

-- ------------------------------------------------------------------------------------------

describe("torch.optim against PyTorch 1.13", function()
  local dir, E, setup_err

  lazy_setup(function()
    dir = mktemp_dir()
    local ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " write " .. H.shquote(dir))
    if not ok then
      setup_err = "tools/pytorch_optim.py write failed:\n" .. out
      return
    end
    E, setup_err = read_lua(dir .. "/expected.lua")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  local function cases()
    assert(not setup_err, setup_err)
    assert(#E.cases >= 20, "the tool wrote only " .. #E.cases .. " cases")
    return E.cases
  end

  it("gives PyTorch's parameters after each of 12 steps, for every optimizer and setting", function()
    for _, case in ipairs(cases()) do
      local params = fresh_params(E, case)
      run(E, case, params, build(case, params), 1, E.steps)
    end
  end)

  it("loads PyTorch's state dicts (hyperparameters and state) and goes on as PyTorch does", function()
    for _, case in ipairs(cases()) do
      local saved = torch.load(dir .. "/" .. case.name .. "_pt.pt")
      local params = {}
      for i, p in ipairs(saved.params) do params[i] = p:clone():requires_grad_() end
      local opt = build(case, params, wrong_lr)
      opt:load_state_dict(saved.optimizer)
      local want_lr = case.opts.lr or DEFAULT_LR[case.optimizer]
      if not case.groups then assert.are.equal(want_lr, opt.param_groups[1].lr) end
      run(E, case, params, opt, E.k + 1, E.steps)
    end
  end)

  it("saves state dicts that PyTorch loads, with PyTorch's layout, and PyTorch goes on as before", function()
    local cases_ = cases()
    for _, case in ipairs(cases_) do
      local params = fresh_params(E, case)
      local opt = build(case, params)
      run(E, case, params, opt, 1, E.k, function()
        local copies = {}
        for i, p in ipairs(params) do copies[i] = p:detach():clone() end
        torch.save({ params = copies, optimizer = opt:state_dict() }, dir .. "/" .. case.name .. "_mt.pt")
      end)
    end
    local ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " continue " .. H.shquote(dir))
    assert(ok, "tools/pytorch_optim.py continue failed:\n" .. out)
    local report = assert(read_lua(dir .. "/continued.lua"))
    for _, case in ipairs(cases_) do
      local r = report[case.name]
      assert(r, case.name .. ": no report")
      assert(#r.problems == 0, case.name .. ":\n  " .. table.concat(r.problems, "\n  "))
      assert.are.equal(E.steps - E.k, #r.trajectory)
      for t = E.k + 1, E.steps do
        local want, got = case.trajectory[t], r.trajectory[t - E.k]
        for i = 1, #want do
          for j = 1, #want[i] do
            assert(H.close(got[i][j], want[i][j], TOL[case.dtype][1], TOL[case.dtype][2]),
              string.format("%s: PyTorch after loading ours, step %d: parameter %d element %d is %.17g, not %.17g",
                case.name, t, i, j, got[i][j], want[i][j]))
          end
        end
      end
    end
  end)
end)

-- ------------------------------------------------------------------------------------------
-- The Lua surface

local function param(values, dtype)
  return torch.tensor(values, { dtype = dtype or "float32" }):requires_grad_()
end

-- One step on the loss sum(p^2 * c) for each parameter.
local function train_step(opt, params)
  opt:zero_grad()
  local loss = 0
  for i, p in ipairs(params) do loss = (p * p * (i + 0.5)):sum() + loss end
  loss:backward()
  opt:step()
  return loss
end

describe("optimizer state dicts", function()
  it("number parameters 0, 1, ... across groups and name state as PyTorch does", function()
    local a, b, c = param({ 1, 2 }), param({ { 3 } }), param({ 4, 5, 6 })
    local opt = optim.Adam({ { params = { a, b } }, { params = { c }, lr = 0.5, amsgrad = true } })
    train_step(opt, { a, b, c })
    local sd = opt:state_dict()
    assert.are.same({ 0, 1 }, sd.param_groups[1].params)
    assert.are.same({ 2 }, sd.param_groups[2].params)
    assert.are.equal(0.5, sd.param_groups[2].lr)
    assert.are.same({ 0.9, 0.999 }, sd.param_groups[1].betas)
    assert.is_nil(sd.param_groups[1].foreach) -- None has no Lua value
    assert.are.equal(false, sd.param_groups[1].fused)
    local keys = {}
    for k in pairs(sd.param_groups[1]) do keys[#keys + 1] = k end
    assert.are.same({ "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "capturable",
      "differentiable", "fused", "params" }, keys)
    local order = {}
    for k in pairs(sd.state[2]) do order[#order + 1] = k end
    assert.are.same({ "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, order)
    assert.is_nil(sd.state[0].max_exp_avg_sq)
    H.assert_meta(sd.state[0].step, {}, "float32")
    assert.are.equal(1, sd.state[0].step:item())
    -- like PyTorch's, the dict refers to the live state
    assert.are.equal(opt.state[c].exp_avg, sd.state[2].exp_avg)
  end)

  it("keep RMSprop's step a plain integer and SGD's empty state as PyTorch 1.13 does", function()
    local p = param({ 1, 2 })
    local r = optim.RMSprop({ p }, { momentum = 0.5, centered = true })
    train_step(r, { p })
    train_step(r, { p })
    local s = r:state_dict().state[0]
    assert.are.equal(2, s.step)
    assert.are.equal("integer", math.type(s.step))
    for _, k in ipairs({ "square_avg", "momentum_buffer", "grad_avg" }) do H.assert_meta(s[k], { 2 }, "float32", k) end
    local q = param({ 1 })
    local sgd = optim.SGD({ q }, { lr = 0.1 })
    train_step(sgd, { q })
    assert.is_nil(next(sgd:state_dict().state[0])) -- PyTorch: {'momentum_buffer': None}
    -- and such a dict still saves as a dict, which PyTorch's load_state_dict can use
    local back = torch.deserialize(torch.serialize(sgd:state_dict()))
    assert.is_true(torch.is_ordered(back.state[0]))
  end)

  it("round-trip: a resumed run is bit-identical to an uninterrupted one", function()
    for _, name in ipairs({ "SGD", "Adam", "AdamW", "RMSprop", "Adagrad" }) do
      local opts = ({
        SGD = { lr = 0.1, momentum = 0.9, nesterov = true },
        RMSprop = { centered = true, momentum = 0.3 },
        Adam = { amsgrad = true },
      })[name] or {}
      local p1, p2 = param({ 1, -2, 3 }, "float64"), param({ 1, -2, 3 }, "float64")
      local o1, o2 = optim[name]({ p1 }, opts), optim[name]({ p2 }, opts)
      for _ = 1, 4 do
        train_step(o1, { p1 })
        train_step(o2, { p2 })
      end
      o2.param_groups[1].initial_lr = 0.123 -- a scheduler's key: kept as it is
      local blob = torch.serialize({ p = p2:detach(), opt = o2:state_dict() })
      local loaded = torch.deserialize(blob)
      local p3 = loaded.p:clone():requires_grad_()
      local o3 = optim[name]({ p3 }, { lr = 99 })
      o3:load_state_dict(loaded.opt)
      assert.are.equal(0.123, o3.param_groups[1].initial_lr)
      assert.are.equal(opts.lr or o1.param_groups[1].lr, o3.param_groups[1].lr)
      for _ = 1, 4 do
        train_step(o1, { p1 })
        train_step(o3, { p3 })
      end
      assert(torch.equal(p1, p3), name .. ": resumed run differs")
      -- the loaded state is the optimizer's own, not the dict's
      assert.are_not.equal(loaded.opt.state[0], o3.state[p3])
    end
  end)

  it("cast loaded state to the parameters' dtype, and keep step as saved", function()
    local p = param({ 1, 2, 3 })
    local opt = optim.Adam({ p })
    train_step(opt, { p })
    local q = param({ 1, 2, 3 }, "float64")
    local o2 = optim.Adam({ q })
    o2:load_state_dict(opt:state_dict())
    H.assert_meta(o2.state[q].exp_avg, { 3 }, "float64")
    H.assert_meta(o2.state[q].step, {}, "float32")
    -- a plain number step (older PyTorch) becomes a float32 0-dim tensor
    local sd = opt:state_dict()
    sd.state[0].step = 7
    o2:load_state_dict(sd)
    H.assert_meta(o2.state[q].step, {}, "float32")
    assert.are.equal(7, o2.state[q].step:item())
    train_step(o2, { q })
    assert.are.equal(8, o2.state[q].step:item())
  end)

  it("tolerate missing and extra group keys", function()
    local p = param({ 1, 2 })
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9 })
    train_step(opt, { p })
    local sd = opt:state_dict()
    sd.param_groups[1].nesterov = nil
    sd.param_groups[1].differentiable = nil
    sd.param_groups[1].some_future_key = "x"
    sd.param_groups[1].lr = 0.25
    local o2 = optim.SGD({ param({ 1, 2 }) }, { lr = 1, momentum = 0.9, nesterov = true })
    o2:load_state_dict(sd)
    local g = o2.param_groups[1]
    assert.are.equal(0.25, g.lr)
    assert.are.equal(true, g.nesterov) -- missing: the current value stays
    assert.are.equal(false, g.differentiable)
    assert.are.equal("x", g.some_future_key)
    assert.are.equal("x", o2:state_dict().param_groups[1].some_future_key)
  end)
end)

describe("optimizer.load_state_dict", function()
  local function fresh()
    local a, b, c = param({ 1, 2 }), param({ { 3, 4 }, { 5, 6 } }), param({ 7 })
    local opt = optim.Adam({ { params = { a, b } }, { params = { c }, lr = 0.5 } })
    train_step(opt, { a, b, c })
    return opt, { a, b, c }
  end

  local BAD = {
    { "not a table", function() return 5 end, "state dict table expected, got number" },
    { "no param_groups", function(sd) sd.param_groups = nil end, "has no param_groups list" },
    { "no state", function(sd) sd.state = "x" end, "has no state table (got string)" },
    { "wrong group count", function(sd) sd.param_groups[2] = nil end,
      "has 1 parameter group, but the optimizer has 2" },
    { "wrong parameter count", function(sd) sd.param_groups[1].params = { 0 } end,
      "param_groups[1] has 1 parameters, but the optimizer's group 1 has 2" },
    { "non-integer id", function(sd) sd.param_groups[2].params = { "a" } end,
      "param_groups[2].params[1] must be an integer id, got a" },
    { "repeated id", function(sd) sd.param_groups[2].params = { 1 } end, "parameter id 1 appears twice" },
    { "unknown state id", function(sd) sd.state[7] = {} end, "state has an entry for parameter id 7" },
    { "wrong state shape", function(sd) sd.state[1].exp_avg = torch.zeros(4) end,
      "state[1].exp_avg has shape [4], but parameter 1 has shape [2, 2]" },
    { "state not a tensor", function(sd) sd.state[0].exp_avg_sq = 3 end,
      "state[0].exp_avg_sq must be a tensor, got number" },
    { "state entry not a table", function(sd) sd.state[0] = true end, "state[0] must be a table, got boolean" },
    { "missing state", function(sd) sd.state[0].exp_avg = nil end, "state[0] lacks exp_avg" },
    { "bad step", function(sd) sd.state[2].step = "one" end,
      "state[2].step must be a number or a one-element tensor" },
    { "bad step tensor", function(sd) sd.state[2].step = torch.zeros(2) end, "state[2].step must hold one number" },
    { "another optimizer's state", function(sd) sd.state[0].momentum_buffer = torch.zeros(2) end,
      "state[0] has 'momentum_buffer', which Adam does not keep" },
    { "lr not a number", function(sd) sd.param_groups[2].lr = "fast" end,
      "param_groups[2].lr must be a number, got string" },
    { "negative lr", function(sd) sd.param_groups[1].lr = -1 end, "param_groups[1].lr must be non-negative, got -1" },
    { "bad betas", function(sd) sd.param_groups[1].betas = { 0.9 } end,
      "param_groups[1].betas must be a list of two numbers" },
    { "betas out of range", function(sd) sd.param_groups[1].betas = { 0.9, 1 } end,
      "param_groups[1].betas must be two numbers in [0, 1)" },
    { "amsgrad not a boolean", function(sd) sd.param_groups[1].amsgrad = 1 end,
      "param_groups[1].amsgrad must be a boolean, got number" },
    { "group not a table", function(sd) sd.param_groups[1] = 3 end, "param_groups[1] must be a table, got number" },
  }

  for _, case in ipairs(BAD) do
    it("refuses a state dict with " .. case[1] .. ", naming the problem, and changes nothing", function()
      local opt, params = fresh()
      local sd = opt:state_dict()
      local before_state, before_group = opt.state, opt.param_groups[2]
      local replaced = case[2](sd)
      local err = expect_error(function() opt:load_state_dict(replaced or sd) end,
        "moontorch.optim.Adam.load_state_dict: ", case[3])
      assert.is_nil(err:find("%.lua:%d+:"), "message carries a position: " .. err)
      assert.are.equal(before_state, opt.state)
      assert.are.equal(before_group, opt.param_groups[2])
      assert.are.equal(0.5, opt.param_groups[2].lr)
      assert.are.equal(1, opt.state[params[1]].step:item())
    end)
  end
end)

describe("optimizer construction", function()
  it("fills every group with the hyperparameters PyTorch 1.13 keeps", function()
    local p = param({ 1 })
    local g = optim.SGD({ p }, 0.5).param_groups[1]
    assert.are.same({ params = { p }, lr = 0.5, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false,
      maximize = false, differentiable = false }, g)
    g = optim.AdamW({ p }).param_groups[1]
    assert.are.equal(1e-2, g.weight_decay)
    assert.are.equal(false, g.capturable)
    g = optim.RMSprop({ p }, { alpha = 0.5 }).param_groups[1]
    assert.are.same({ 0.01, 0, 0.5, 1e-8, false, 0 },
      { g.lr, g.momentum, g.alpha, g.eps, g.centered, g.weight_decay })
    g = optim.Adagrad({ p }, 0.2, { lr_decay = 0.1 }).param_groups[1]
    assert.are.same({ 0.2, 0.1, 1e-10, 0 }, { g.lr, g.lr_decay, g.eps, g.initial_accumulator_value })
    -- groups take the constructor's options for what they leave out
    local q = param({ 2 })
    local opt = optim.SGD({ { params = { p } }, { params = q, lr = 0.1 } }, { lr = 0.01, momentum = 0.9 })
    assert.are.same({ 0.01, 0.1 }, { opt.param_groups[1].lr, opt.param_groups[2].lr })
    assert.are.equal(0.9, opt.param_groups[2].momentum)
    assert.are.same({ q }, opt.param_groups[2].params)
    assert.truthy(tostring(opt):find("Parameter Group 2\n    dampening: 0", 1, true))
  end)

  local p = param({ 1, 2 })
  local BAD = {
    { function() return optim.SGD({ p }) end, "moontorch.optim.SGD: ", "lr is required" },
    { function() return optim.SGD({}, 0.1) end, "got an empty parameter list" },
    { function() return optim.SGD(p, 0.1) end,
      "params must be a list of tensors or of parameter groups, got moontorch.Tensor" },
    { function() return optim.SGD({ p, 3 }, 0.1) end, "params[2] is a number" },
    { function() return optim.SGD({ p * 2 }, 0.1) end, "params[1] is not a leaf tensor" },
    { function() return optim.SGD({ p, p }, 0.1) end, "params[2] appears twice" },
    { function() return optim.SGD({ { params = { p } }, { params = { p } } }, 0.1) end,
      "some parameters appear in more than one parameter group" },
    { function() return optim.Adam({ p }, { lrr = 0.1 }) end, "unknown option 'lrr' (known options: lr, betas, eps" },
    { function() return optim.Adam({ p }, { lr = -0.1 }) end, "lr must be non-negative, got -0.1" },
    { function() return optim.Adam({ p }, { betas = { 0.9, 1.5 } }) end, "betas must be two numbers in [0, 1)" },
    { function() return optim.Adam({ p }, { eps = "small" }) end, "eps must be a number, got string" },
    { function() return optim.SGD({ p }, { lr = 0.1, nesterov = true }) end,
      "Nesterov momentum requires a momentum and zero dampening" },
    { function() return optim.SGD({ p }, { lr = 0.1, differentiable = true }) end, "differentiable = true" },
    { function() return optim.Adam({ p }, { fused = true }) end, "fused = true" },
    { function() return optim.Adam({ p }, { capturable = true }) end, "capturable = true" },
    { function() return optim.RMSprop({ p }, { momentum = -1 }) end, "momentum must be non-negative" },
    { function() return optim.Adagrad({ p }, { lr_decay = 0 / 0 }) end, "lr_decay must be non-negative" },
  }
  it("refuses bad parameters and options with clear messages", function()
    for _, case in ipairs(BAD) do
      local err = expect_error(case[1], "moontorch.optim.", case[2], case[3])
      assert.is_nil(err:find("%.lua:%d+:"), "message carries a position: " .. err)
    end
  end)

  it("add_param_group checks the group, fills defaults, and Adagrad starts its state", function()
    local a, b = param({ 1 }), param({ 2, 3 })
    local opt = optim.Adagrad({ a }, { initial_accumulator_value = 0.5 })
    opt:add_param_group({ params = { b }, lr = 0.3 })
    assert.are.equal(0.3, opt.param_groups[2].lr)
    assert.are.same({ 0.5, 0.5 }, opt.state[b].sum:tolist())
    expect_error(function() opt:add_param_group({ params = { a } }) end, "moontorch.optim.Adagrad.add_param_group: ",
      "more than one parameter group")
    expect_error(function() opt:add_param_group({ lr = 1 }) end, "needs params = a list of tensors")
    expect_error(function() opt:add_param_group({ params = { param({ 1 }) }, eps = -1 }) end,
      "param_groups[3].eps must be non-negative")
    assert.are.equal(2, #opt.param_groups)
    train_step(opt, { a, b })
    assert.are.equal(1, opt.state[b].step:item())
  end)
end)

describe("optimizer.step and zero_grad", function()
  it("step(closure) evaluates the closure with grad mode on and returns its loss", function()
    local p = param({ 3 })
    local opt = optim.SGD({ p }, 0.25)
    local loss = torch.no_grad(function()
      return opt:step(function()
        assert.is_true(torch.is_grad_enabled())
        opt:zero_grad()
        local l = (p * p):sum()
        l:backward()
        return l
      end)
    end)
    assert.are.equal(9, loss:item())
    assert.are.equal(1.5, p:item()) -- 3 - 0.25 * 6
    assert.is_true(torch.is_grad_enabled()) -- no_grad's mode, then the default, came back
    expect_error(function() opt:step(42) end, "moontorch.optim.SGD.step: ", "closure must be a function")
  end)

  it("skips parameters without a gradient, and zero_grad clears or zeroes gradients", function()
    local a, b = param({ 1 }), param({ 2 })
    local opt = optim.Adam({ a, b }, 0.1)
    a.grad = torch.tensor({ 1.0 })
    opt:step()
    assert.is_nil(opt.state[b])
    assert.are.equal(2, b:item())
    assert.is_true(a:item() < 1)
    opt:zero_grad()
    assert.is_nil(a.grad)
    a.grad = torch.tensor({ 5.0 })
    opt:zero_grad(false)
    assert.are.same({ 0 }, a.grad:tolist())
    opt:zero_grad({ set_to_none = true })
    assert.is_nil(a.grad)
  end)

  it("reads group hyperparameters at every step (schedulers change them there)", function()
    local p = param({ 1 })
    local opt = optim.SGD({ p }, 0.5)
    p.grad = torch.tensor({ 1.0 })
    opt:step()
    opt.param_groups[1].lr = 0.25
    opt:step()
    assert.are.equal(0.25, p:item())
    opt.param_groups[1].lr = "x"
    expect_error(function() opt:step() end, "moontorch.optim.SGD.step: ",
      "param_groups[1].lr must be a number, got string")
  end)

  it("updates float64 and non-contiguous parameters, and refuses mismatched state", function()
    local w = torch.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = "float64" })
    local t = w:t() -- a transposed view as the leaf being optimized
    t:requires_grad_()
    local opt = optim.RMSprop({ t }, { lr = 0.1, momentum = 0.9 })
    t.grad = torch.ones(2, 2, { dtype = "float64" })
    opt:step()
    local step = 0.1 / (0.1 + 1e-8) -- lr * grad / (sqrt(square_avg) + eps), square_avg = 0.01
    H.assert_values(w, { 1 - step, 2 - step, 3 - step, 4 - step }) -- written through the view
    opt.state[t].square_avg = torch.zeros(3, { dtype = "float64" })
    expect_error(function() opt:step() end, "moontorch.optim.RMSprop.step: ",
      "param_groups[1].params[1]: square_avg has shape [3] but the parameter has shape [2, 2]")
  end)
end)
