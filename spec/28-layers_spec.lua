-- The layers, recurrent layers and losses of torch.nn (SPEC section 4) against PyTorch 1.13.
--
-- tools/pytorch_layers.py builds each layer in PyTorch, moves its weights away from their
-- defaults, runs it on fixed inputs and saves (torch.save) its state dict, the inputs, outputs,
-- the gradients of the inputs and parameters for a fixed output gradient, the state after the
-- pass (batch-norm running statistics) and its repr; see the tool's docstring. Here the same
-- layer is built in Lua, the PyTorch state dict is loaded STRICTLY, and everything is compared:
-- float64 to 1e-8, float32 to 2e-4. A second part checks that the default initialisation draws
-- PyTorch's numbers after the same torch.manual_seed; the rest checks behaviour that parity
-- cannot show (train/eval, errors, options, finite-difference gradients of the recurrent layers
-- composed in Lua).
local H = require "spec.helpers"
local torch = H.torch
local nn = require "moontorch.nn"

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local fixture_dir = build_dir .. "/fixtures"
local fixture = fixture_dir .. "/layers.pt"
local tool = source_dir .. "/tools/pytorch_layers.py"

local function mtime(p)
  local f = io.popen("stat -c %Y " .. H.shquote(p) .. " 2>/dev/null")
  local v = f and tonumber(f:read("a")) or nil
  if f then f:close() end
  return v
end

-- Generated when missing or older than the tool, so a fresh clone works.
local function load_fixture()
  if not mtime(fixture) or (mtime(tool) or 0) > (mtime(fixture) or 0) then
    local cmd = "/usr/bin/python3 " .. H.shquote(tool) .. " " .. H.shquote(fixture_dir) .. " >/dev/null 2>&1"
    assert(os.execute(cmd), "could not generate the fixtures: " .. cmd)
  end
  return torch.load(fixture)
end

local TOL = { float64 = 1e-8, float32 = 2e-4 }

-- Asserts that a and b (the reference) have the same shape and dtype and agree to the dtype's
-- tolerance (exactly for integer tensors).
local function assert_close(a, b, what)
  assert(torch.is_tensor(a), what .. ": expected a tensor, got " .. type(a))
  H.assert_meta(a, b.shape, b.dtype, what)
  local tol = TOL[b.dtype]
  local got, want = H.values(a), H.values(b)
  for i = 1, #want do
    if not H.close(got[i], want[i], tol, tol) then
      error(string.format("%s: differs at flat index %d: %.17g vs %.17g (PyTorch)", what, i, got[i], want[i]), 2)
    end
  end
end

-- 0-based PyTorch class targets as moontorch's 1-based ones; entries equal to PyTorch's
-- ignore_index become Lua's.
local function classes(t, ignore_pt, ignore_lua)
  local shifted = t + 1
  if ignore_pt then shifted = torch.where(t:eq(ignore_pt), torch.full(t.shape, ignore_lua, { dtype = t.dtype }), shifted) end
  return shifted
end

local function ids(xs) return { xs[1] + 1 } end

-- name -> { build = function(case) -> module, inputs = function(inputs) -> inputs (optional),
-- repr = false when the repr legitimately differs (1-based dims and indices), index_outputs =
-- {k = true} for outputs holding 0-based indices in PyTorch }.
local CASES = {
  linear = { build = function() return nn.Linear(5, 3) end },
  linear_nobias_f64 = { build = function() return nn.Linear(5, 3, { bias = false, dtype = "float64" }) end },

  conv2d = { build = function() return nn.Conv2d(3, 4, 3) end },
  conv2d_sdpg_f64 = { build = function()
    return nn.Conv2d(4, 6, { 3, 2 }, { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 2, 1 }, groups = 2,
      dtype = "float64" })
  end },
  conv2d_nobias = { build = function() return nn.Conv2d(2, 3, 3, 2, 1, { bias = false }) end },
  conv2d_unbatched_f64 = { build = function() return nn.Conv2d(2, 4, { 2, 3 }, { padding = { 0, 1 }, dtype = "float64" }) end },
  conv1d_f64 = { build = function()
    return nn.Conv1d(4, 6, 3, { stride = 2, padding = 1, dilation = 2, groups = 2, dtype = "float64" })
  end },
  conv1d = { build = function() return nn.Conv1d(3, 5, 4) end },
  conv2d_same_f64 = { build = function()
    return nn.Conv2d(2, 3, { 4, 3 }, { padding = "same", dilation = { 1, 2 }, dtype = "float64" })
  end },

  maxpool2d = { build = function() return nn.MaxPool2d(3, { stride = 2, padding = 1 }) end },
  maxpool2d_dil_ceil_f64 = { build = function()
    return nn.MaxPool2d({ 2, 3 }, { stride = { 2, 1 }, dilation = { 2, 1 }, ceil_mode = true })
  end },
  maxpool2d_indices = { build = function() return nn.MaxPool2d(2, { return_indices = true }) end,
    index_outputs = { [2] = true } },
  avgpool2d = { build = function() return nn.AvgPool2d(3, 2, 1) end },
  avgpool2d_divisor_f64 = { build = function()
    return nn.AvgPool2d(2, { stride = 2, padding = 1, ceil_mode = true, divisor_override = 3 })
  end },
  avgpool2d_nopad_ceil_f64 = { build = function()
    return nn.AvgPool2d({ 3, 2 }, { stride = 2, padding = 1, ceil_mode = true, count_include_pad = false })
  end },
  adaptive_avgpool2d = { build = function() return nn.AdaptiveAvgPool2d({ 3, 2 }) end },
  adaptive_avgpool2d_1_f64 = { build = function() return nn.AdaptiveAvgPool2d(1) end },

  batchnorm2d_train = { build = function() return nn.BatchNorm2d(3) end },
  batchnorm2d_eval = { build = function() return nn.BatchNorm2d(3) end },
  batchnorm2d_train_f64 = { build = function() return nn.BatchNorm2d(4, 1e-3, 0.3, { dtype = "float64" }) end },
  batchnorm1d_cumulative_f64 = { build = function() return nn.BatchNorm1d(4, { momentum = false, dtype = "float64" }) end,
    repr = false }, -- momentum=None
  batchnorm1d_3d = { build = function() return nn.BatchNorm1d(3) end },
  batchnorm1d_3d_eval_f64 = { build = function() return nn.BatchNorm1d(3, { dtype = "float64" }) end },
  batchnorm2d_noaffine_nostats = { build = function()
    return nn.BatchNorm2d(3, { affine = false, track_running_stats = false })
  end },
  layernorm = { build = function() return nn.LayerNorm({ 4, 5 }) end },
  layernorm_noaffine_f64 = { build = function()
    return nn.LayerNorm(6, { eps = 1e-3, elementwise_affine = false, dtype = "float64" })
  end },

  embedding_padding = { build = function() return nn.Embedding(10, 4, { padding_idx = 3 }) end, inputs = ids,
    repr = false }, -- padding_idx is 1-based
  embedding_f64 = { build = function() return nn.Embedding(6, 3, { dtype = "float64" }) end, inputs = ids },
  embedding_max_norm_f64 = { build = function() return nn.Embedding(6, 3, { max_norm = 1.0, dtype = "float64" }) end,
    inputs = ids },

  relu = { build = function() return nn.ReLU() end },
  leaky_relu = { build = function() return nn.LeakyReLU(0.2) end },
  gelu = { build = function() return nn.GELU() end },
  gelu_tanh_f64 = { build = function() return nn.GELU({ approximate = "tanh" }) end },
  silu = { build = function() return nn.SiLU() end },
  tanh = { build = function() return nn.Tanh() end },
  sigmoid = { build = function() return nn.Sigmoid() end },
  softmax = { build = function() return nn.Softmax(2) end, repr = false }, -- dims are 1-based
  log_softmax_f64 = { build = function() return nn.LogSoftmax({ dim = -1 }) end },
  flatten = { build = function() return nn.Flatten() end, repr = false },
  flatten_range = { build = function() return nn.Flatten(1, 2) end, repr = false },
  identity = { build = function() return nn.Identity(54, "unused") end },
  dropout_eval = { build = function() return nn.Dropout(0.5) end },
  dropout_train = { build = function() return nn.Dropout({ p = 0.3 }) end },
  dropout2d_train_f64 = { build = function() return nn.Dropout2d() end },

  lstm_f64 = { build = function() return nn.LSTM(5, 7, { dtype = "float64" }) end },
  lstm_2layer_batch_first_f64 = { build = function()
    return nn.LSTM(5, 7, { num_layers = 2, batch_first = true, dtype = "float64" })
  end },
  lstm_2layer = { build = function() return nn.LSTM(4, 6, 2) end },
  lstm_bidirectional_f64 = { build = function()
    return nn.LSTM(3, 4, 2, true, true, { bidirectional = true, dtype = "float64" })
  end },
  lstm_nobias_unbatched_f64 = { build = function() return nn.LSTM(3, 4, { bias = false, dtype = "float64" }) end },
  lstm_proj_f64 = { build = function() return nn.LSTM(3, 5, { num_layers = 2, proj_size = 2, dtype = "float64" }) end },
  lstm_dropout_train_f64 = { build = function()
    return nn.LSTM(3, 4, { num_layers = 3, dropout = 0.4, dtype = "float64" })
  end },
  gru_f64 = { build = function() return nn.GRU(5, 7, { dtype = "float64" }) end },
  gru_2layer_batch_first_f64 = { build = function()
    return nn.GRU(5, 7, { num_layers = 2, batch_first = true, dtype = "float64" })
  end },
  gru_2layer = { build = function() return nn.GRU(4, 6, { num_layers = 2, batch_first = true }) end },
  gru_bidirectional_f64 = { build = function() return nn.GRU(3, 4, { bidirectional = true, dtype = "float64" }) end },
  rnn_relu_f64 = { build = function() return nn.RNN(3, 4, 2, { nonlinearity = "relu", dtype = "float64" }) end },
  rnn_tanh = { build = function() return nn.RNN(3, 4, { batch_first = true }) end },

  net_sequential = { build = function()
    return nn.Sequential(nn.Conv2d(1, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.Tanh(), nn.Dropout(0.3))
  end, repr = false }, -- Flatten's dims

  cross_entropy = { build = function() return nn.CrossEntropyLoss() end,
    inputs = function(xs) return { xs[1], classes(xs[2]) } end },
  cross_entropy_weight_ignore_smooth = {
    build = function(c) return nn.CrossEntropyLoss(c.state.weight, { ignore_index = 2, label_smoothing = 0.1 }) end,
    inputs = function(xs) return { xs[1], classes(xs[2]) } end },
  cross_entropy_ignore_default_sum_f64 = {
    build = function() return nn.CrossEntropyLoss({ reduction = "sum", label_smoothing = 0.2 }) end,
    inputs = function(xs) return { xs[1], classes(xs[2], -100, -100) } end },
  cross_entropy_kdim_none_f64 = {
    build = function(c) return nn.CrossEntropyLoss({ weight = c.state.weight, reduction = "none" }) end,
    inputs = function(xs) return { xs[1], classes(xs[2]) } end },
  nll = { build = function() return nn.NLLLoss() end, inputs = function(xs) return { xs[1], classes(xs[2]) } end },
  nll_weight_ignore_sum_f64 = {
    build = function(c) return nn.NLLLoss(c.state.weight, nil, 1, nil, "sum") end,
    inputs = function(xs) return { xs[1], classes(xs[2]) } end },
  bce = { build = function() return nn.BCELoss() end },
  bce_weight_sum_f64 = { build = function(c) return nn.BCELoss(c.state.weight, { reduction = "sum" }) end },
  bce_logits = { build = function() return nn.BCEWithLogitsLoss() end },
  bce_logits_pos_weight_f64 = { build = function(c)
    return nn.BCEWithLogitsLoss({ weight = c.state.weight, pos_weight = c.state.pos_weight, reduction = "none" })
  end },
  smooth_l1_beta = { build = function() return nn.SmoothL1Loss({ beta = 0.5 }) end },
  smooth_l1_sum_f64 = { build = function() return nn.SmoothL1Loss({ reduction = "sum" }) end },
}
for _, red in ipairs({ "mean", "sum", "none" }) do
  CASES["mse_" .. red] = { build = function() return nn.MSELoss({ reduction = red }) end }
  CASES["l1_" .. red] = { build = function() return nn.L1Loss(nil, nil, red) end }
end

-- Inputs as the Lua layer takes them, with requires_grad where PyTorch computed a gradient;
-- returns the inputs and the leaves by gradient key ("input1", "input2_1", ...).
local function prepare_inputs(c, spec)
  local xs = spec.inputs and spec.inputs(c.inputs) or c.inputs
  local leaves, out = {}, {}
  local function prep(x, key)
    if type(x) == "table" then
      local t = {}
      for j, v in ipairs(x) do t[j] = prep(v, key .. "_" .. j) end
      return t
    end
    x = x:clone()
    if c.grads[key] ~= nil then
      x.requires_grad = true
      leaves[key] = x
    end
    return x
  end
  for i, x in ipairs(xs) do out[i] = prep(x, "input" .. i) end
  return out, leaves
end

-- Every tensor a call returned, in order (tables such as LSTM's {h_n, c_n} flattened).
local function flatten_outputs(...)
  local out = {}
  local function add(v)
    if torch.is_tensor(v) then
      out[#out + 1] = v
    else
      for _, x in ipairs(v) do add(x) end
    end
  end
  for i = 1, select("#", ...) do add((select(i, ...))) end
  return out
end

local function keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

local fixture_data

describe("nn layers: parity with PyTorch", function()
  fixture_data = load_fixture()
  local cases = fixture_data.cases

  it("has a Lua counterpart for every PyTorch case and the reverse", function()
    for name in pairs(cases) do assert(CASES[name], "no Lua builder for PyTorch case " .. name) end
    for name in pairs(CASES) do assert(cases[name], "no PyTorch case named " .. name) end
  end)

  for name, c in pairs(cases) do
    local spec = CASES[name]
    if spec then
      it(name, function()
        local m = spec.build(c)
        local r = m:load_state_dict(c.state) -- strict
        assert.are.same({}, r.missing_keys)
        assert.are.same({}, r.unexpected_keys)
        m:train(c.train)
        if spec.repr ~= false then assert.are.equal(c.repr, tostring(m)) end

        local xs, leaves = prepare_inputs(c, spec)
        for _ = 1, c.pre do torch.no_grad(function() m(table.unpack(xs)) end) end
        if c.seed then torch.manual_seed(c.seed) end
        local outs = flatten_outputs(m(table.unpack(xs)))
        assert.are.equal(#c.outputs, #outs, "number of outputs")

        local loss
        for k, o in ipairs(outs) do
          local want = c.outputs[k]
          if spec.index_outputs and spec.index_outputs[k] then want = want + 1 end
          assert_close(o, want, name .. " output " .. k)
          if o:is_floating_point() then
            local term = (o * c.gouts[k]):sum()
            loss = loss and loss + term or term
          end
        end
        loss:backward()

        local params = {}
        for pname, p in m:named_parameters() do params[pname] = p end
        for key, g in pairs(c.grads) do
          local t = leaves[key] or params[key]
          assert(t, name .. ": no tensor for gradient " .. key)
          assert(t.grad ~= nil, name .. ": no gradient reached " .. key)
          assert_close(t.grad, g, name .. " grad of " .. key)
        end
        for pname, p in pairs(params) do
          if p.grad ~= nil then assert(c.grads[pname], name .. ": unexpected gradient for " .. pname) end
        end

        local after = m:state_dict()
        assert.are.same(keys(c.after), keys(after))
        for k, v in pairs(c.after) do assert_close(after[k], v, name .. " state after: " .. k) end
      end)
    end
  end
end)

describe("nn layers: default initialisation", function()
  local BUILD = {
    linear = function() return nn.Linear(3, 4) end,
    linear_f64 = function() return nn.Linear(7, 2, { dtype = "float64" }) end,
    conv2d = function() return nn.Conv2d(3, 8, 3) end,
    conv2d_groups = function() return nn.Conv2d(4, 6, { 3, 2 }, { groups = 2 }) end,
    conv1d = function() return nn.Conv1d(2, 5, 4) end,
    embedding = function() return nn.Embedding(7, 3, { padding_idx = -2 }) end,
    batchnorm2d = function() return nn.BatchNorm2d(5) end,
    layernorm = function() return nn.LayerNorm({ 2, 3 }) end,
    lstm = function() return nn.LSTM(3, 5, { num_layers = 2 }) end,
    gru = function() return nn.GRU(4, 3, { bidirectional = true }) end,
    rnn = function() return nn.RNN(2, 3, { bias = false }) end,
  }

  it("draws PyTorch's numbers after the same torch.manual_seed", function()
    local seeded = (fixture_data or load_fixture()).seeded
    for name in pairs(seeded) do assert(BUILD[name], "no Lua builder for " .. name) end
    for name, build in pairs(BUILD) do
      local want = assert(seeded[name], "no PyTorch state for " .. name)
      torch.manual_seed(0)
      local sd = build():state_dict()
      local got_keys, want_keys = {}, {}
      for k in pairs(sd) do got_keys[#got_keys + 1] = k end
      for k in pairs(want) do want_keys[#want_keys + 1] = k end
      assert.are.same(want_keys, got_keys) -- same keys in the same order
      for k, v in pairs(want) do
        H.assert_meta(sd[k], v.shape, v.dtype, name .. "." .. k)
        assert(torch.equal(sd[k], v), name .. "." .. k .. " differs from PyTorch's initialisation")
      end
    end
  end)

  it("zeroes the padding row of Embedding and keeps it out of the gradient", function()
    local e = nn.Embedding(5, 2, { padding_idx = 2 })
    assert.are.same({ 0.0, 0.0 }, e.weight[2]:tolist())
    e(torch.tensor({ 1, 2, 2, 5 })):sum():backward()
    assert.are.same({ { 1, 1 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 1, 1 } }, e.weight.grad:tolist())
  end)

  it("gives float64 parameters with dtype = \"float64\"", function()
    for _, m in ipairs({ nn.Linear(2, 3, { dtype = "float64" }), nn.Conv2d(1, 2, 3, { dtype = "float64" }),
      nn.LSTM(2, 3, { dtype = "float64" }), nn.BatchNorm1d(3, { dtype = "float64" }) }) do
      for _, p in ipairs(m:parameters()) do assert.are.equal("float64", p.dtype) end
    end
    assert.are.equal("int64", nn.BatchNorm1d(3, { dtype = "float64" }).num_batches_tracked.dtype)
  end)
end)

-- ------------------------------------------------------------------------------------------
-- Behaviour

describe("nn layers: train and eval", function()
  it("Dropout zeroes about p of the elements and rescales the rest in training only", function()
    torch.manual_seed(1)
    local d = nn.Dropout(0.25)
    local x = torch.ones(100, 100)
    local y = d(x)
    local zeros = y:eq(0):sum():item()
    assert(zeros > 2200 and zeros < 2800, "zeroed " .. zeros .. " of 10000")
    assert(torch.allclose(y:masked_fill(y:eq(0), 1 / 0.75), torch.full({ 100, 100 }, 1 / 0.75)))
    d:eval()
    assert(torch.equal(d(x), x))
  end)

  it("Dropout2d zeroes whole channels", function()
    torch.manual_seed(2)
    local y = nn.Dropout2d(0.5)(torch.ones(4, 8, 3, 3))
    local per_channel = y:sum({ 3, 4 })
    for _, v in ipairs(H.values(per_channel)) do assert(v == 0 or math.abs(v - 18) < 1e-5, v) end
  end)

  it("BatchNorm tracks batches and updates running stats in training only", function()
    local bn = nn.BatchNorm2d(2)
    local x = torch.randn(3, 2, 4, 4) * 3 + 1
    bn(x)
    bn(x)
    assert.are.equal(2, bn.num_batches_tracked:item())
    local mean = x:mean({ 1, 3, 4 })
    -- two updates with momentum 0.1 from 0: 0.19 of the batch mean
    assert(torch.allclose(bn.running_mean, mean * 0.19, 1e-5, 1e-6))
    bn:eval()
    local rm = bn.running_mean:clone()
    local y = bn(x)
    assert.are.equal(2, bn.num_batches_tracked:item())
    assert(torch.equal(rm, bn.running_mean))
    local want = (x - rm:view(1, 2, 1, 1)) / (bn.running_var:view(1, 2, 1, 1) + 1e-5):sqrt()
    assert(torch.allclose(y, want, 1e-5, 1e-5))
  end)

  it("BatchNorm with momentum = false keeps a cumulative average", function()
    local bn = nn.BatchNorm1d(2, { momentum = false })
    assert.is_nil(bn.momentum)
    local a, b = torch.randn(5, 2), torch.randn(5, 2)
    bn(a)
    bn(b)
    assert(torch.allclose(bn.running_mean, (a:mean(1) + b:mean(1)) / 2, 1e-5, 1e-6))
    assert.are.equal("BatchNorm1d(2, eps=1e-05, momentum=None, affine=True, track_running_stats=True)", tostring(bn))
  end)

  it("BatchNorm without running stats uses batch statistics in eval too", function()
    local bn = nn.BatchNorm2d(3, { track_running_stats = false }):eval()
    assert.is_nil(bn.running_mean)
    assert.are.same({ "weight", "bias" }, (function()
      local ks = {}
      for k in pairs(bn:state_dict()) do ks[#ks + 1] = k end
      return ks
    end)())
    local y = bn(torch.randn(4, 3, 2, 2) * 5 + 2)
    assert(y:mean({ 1, 3, 4 }):abs():max():item() < 1e-5)
  end)
end)

describe("nn layers: arguments and errors", function()
  it("takes PyTorch's positional order or named options", function()
    local a, b = nn.Conv2d(1, 2, 3, 2, 1, 1, 1, false), nn.Conv2d(1, 2, 3, { stride = 2, padding = 1, bias = false })
    assert.are.equal(tostring(a), tostring(b))
    assert.are.equal("Conv2d(1, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)", tostring(a))
    assert.are.equal("MaxPool2d(kernel_size=2, stride=1, padding=0, dilation=1, ceil_mode=False)",
      tostring(nn.MaxPool2d(2, 1)))
    assert.are.equal("Linear(in_features=3, out_features=4, bias=False)", tostring(nn.Linear(3, 4, false)))
  end)

  it("reprs keep moontorch's 1-based dims and indices", function()
    assert.are.equal("Flatten(start_dim=2, end_dim=-1)", tostring(nn.Flatten()))
    assert.are.equal("Softmax(dim=2)", tostring(nn.Softmax(2)))
    assert.are.equal("Embedding(10, 3, padding_idx=10)", tostring(nn.Embedding(10, 3, { padding_idx = -1 })))
    assert.are.equal("LayerNorm((4,), eps=0.001, elementwise_affine=True)", tostring(nn.LayerNorm(4, 1e-3)))
    assert.are.equal("LSTM(3, 4, num_layers=2, dropout=0.5, bidirectional=True)",
      tostring(nn.LSTM(3, 4, { num_layers = 2, dropout = 0.5, bidirectional = true })))
    assert.are.equal("RNN(3, 4, bias=False)", tostring(nn.RNN(3, 4, { bias = false, nonlinearity = "relu" })))
    assert.are.equal("AdaptiveAvgPool2d(output_size=(None, 3))", tostring(nn.AdaptiveAvgPool2d({ false, 3 })))
    assert.are.equal("CrossEntropyLoss()", tostring(nn.CrossEntropyLoss()))
  end)

  it("refuses bad arguments with messages that name the layer and the problem", function()
    local cases = {
      { function() nn.Linear(3) end, "nn.Linear", "missing argument 'out_features'" },
      { function() nn.Linear(3, 4, { baias = false }) end, "nn.Linear", "unexpected option 'baias'" },
      { function() nn.Linear(3, 4, false, { bias = true }) end, "nn.Linear", "given both" },
      { function() nn.Linear(3, 4, { dtype = "int64" }) end, "nn.Linear", "dtype" },
      { function() nn.Conv2d(3, 4, 3, { groups = 2 }) end, "nn.Conv2d", "in_channels must be divisible by groups" },
      { function() nn.Conv2d(4, 3, 3, { groups = 2 }) end, "nn.Conv2d", "out_channels must be divisible by groups" },
      { function() nn.Conv2d(1, 1, 3, { padding = "full" }) end, "nn.Conv2d", "invalid padding string" },
      { function() nn.Conv2d(1, 1, 3, { padding = "same", stride = 2 }) end, "nn.Conv2d", "strided" },
      { function() nn.Conv2d(1, 1, 3, { padding_mode = "reflect" }) end, "nn.Conv2d", "not supported" },
      { function() nn.Conv2d(1, 1, { 3, 3, 3 }) end, "nn.Conv2d", "kernel_size" },
      { function() nn.Conv1d(1, 1, 0) end, "nn.Conv1d", "kernel_size" },
      { function() nn.MaxPool2d(2, { stride = 0 }) end, "nn.MaxPool2d", "stride" },
      { function() nn.Dropout(1.5) end, "nn.Dropout", "between 0 and 1" },
      { function() nn.Embedding(5, 2, { padding_idx = 6 }) end, "nn.Embedding", "padding_idx" },
      { function() nn.Embedding(5, 2, { sparse = true }) end, "nn.Embedding", "not supported" },
      { function() nn.BatchNorm2d(3)(torch.randn(2, 3, 4)) end, "nn.BatchNorm2d", "expected 4D input %(got 3D" },
      { function() nn.BatchNorm1d(3)(torch.randn(2, 3, 4, 4)) end, "nn.BatchNorm1d", "expected 2D or 3D input" },
      { function() nn.LSTM(3, 4, { dropout = 2 }) end, "nn.LSTM", "dropout should be a number in range" },
      { function() nn.LSTM(3, 4, { proj_size = 4 }) end, "nn.LSTM", "proj_size has to be smaller" },
      { function() nn.GRU(3, 4, { proj_size = 2 }) end, "nn.GRU", "unexpected option 'proj_size'" },
      { function() nn.RNN(3, 4, { nonlinearity = "sigmoid" }) end, "nn.RNN", "unknown nonlinearity" },
      { function() nn.LSTM(3, 4)(torch.randn(5, 2, 2)) end, "nn.LSTM", "input.size%(%-1%) must be equal to input_size" },
      { function() nn.GRU(3, 4)(torch.randn(5, 2, 3, 1)) end, "nn.GRU", "2%-D or 3%-D" },
      { function() nn.GRU(3, 4, { batch_first = true })(torch.randn(2, 0, 3)) end, "nn.GRU", "sequence length" },
      { function() nn.GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 3, 4)) end, "nn.GRU",
        "expected h0 of size %[1, 2, 4%], got %[1, 3, 4%]" },
      { function() nn.LSTM(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4)) end, "nn.LSTM", "{h0, c0}" },
      { function() nn.LSTM(3, 4)(torch.randn(5, 2, 3), { torch.zeros(1, 2, 4), torch.zeros(2, 2, 4) }) end,
        "nn.LSTM", "expected c0" },
      { function() nn.CrossEntropyLoss({ reduction = "avg" }) end, "nn.CrossEntropyLoss", "reduction must be" },
      { function() nn.CrossEntropyLoss({ label_smoothing = 1.5 }) end, "nn.CrossEntropyLoss", "label_smoothing" },
      { function() nn.NLLLoss({ weight = { 1, 2 } }) end, "nn.NLLLoss", "weight must be a tensor" },
      { function() nn.AdaptiveAvgPool2d({ 1, 2, 3 }) end, "nn.AdaptiveAvgPool2d", "output_size" },
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert(not ok, "case " .. i .. " did not raise")
      err = tostring(err)
      assert(err:sub(1, #c[2] + 11) == "moontorch." .. c[2] .. ":", "case " .. i .. ": " .. err)
      assert(err:find(c[3]), "case " .. i .. ": message lacks '" .. c[3] .. "': " .. err)
    end
  end)

  it("applies ReLU in place with inplace = true", function()
    local x = torch.tensor({ -1.0, 2.0 })
    local y = nn.ReLU(true)(x)
    assert.are.same({ 0.0, 2.0 }, x:tolist())
    assert.are.same({ 0.0, 2.0 }, y:tolist())
  end)

  it("Embedding.from_pretrained uses the tensor as a frozen weight", function()
    local w = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } })
    local e = nn.Embedding.from_pretrained(w)
    assert.is_false(e.weight.requires_grad)
    assert.are.same({ { 3.0, 4.0 }, { 1.0, 2.0 } }, e(torch.tensor({ 2, 1 })):tolist())
    assert.is_true(nn.Embedding.from_pretrained(w, { freeze = false }).weight.requires_grad)
  end)

  it("losses register their class weights as buffers, as PyTorch", function()
    local w = torch.tensor({ 1.0, 2.0, 3.0 })
    local sd = nn.CrossEntropyLoss(w):state_dict()
    assert(torch.equal(sd.weight, w))
    local ks = {}
    for k in pairs(nn.BCEWithLogitsLoss({ weight = w, pos_weight = w }):state_dict()) do ks[#ks + 1] = k end
    assert.are.same({ "weight", "pos_weight" }, ks)
    assert.is_nil(next(nn.MSELoss():state_dict()))
  end)
end)

describe("nn recurrent layers", function()
  it("return output and state, start from a given state and handle unbatched input", function()
    torch.manual_seed(3)
    local lstm = nn.LSTM(3, 4, { num_layers = 2, batch_first = true })
    local x = torch.randn(2, 5, 3)
    local out, state = lstm(x)
    H.assert_meta(out, { 2, 5, 4 }, "float32")
    H.assert_meta(state[1], { 2, 2, 4 })
    H.assert_meta(state[2], { 2, 2, 4 })
    -- the last step's output of the top layer is its h_n
    assert(torch.equal(out:select(2, 5), state[1][2]))
    -- running the sequence in two halves, passing the state on, gives the same result
    local o1, s1 = lstm(x:narrow(2, 1, 3))
    local o2, s2 = lstm(x:narrow(2, 4, 2), s1)
    assert(torch.allclose(torch.cat({ o1, o2 }, 2), out, 1e-6, 1e-6))
    assert(torch.allclose(s2[2], state[2], 1e-6, 1e-6))
    -- an unbatched sequence is one batch of one
    local gru = nn.GRU(3, 4)
    local seq = torch.randn(5, 3)
    local u, h = gru(seq)
    H.assert_meta(u, { 5, 4 })
    H.assert_meta(h, { 1, 4 })
    local b, hb = gru(seq:unsqueeze(2))
    assert(torch.equal(u, b:squeeze(2)))
    assert(torch.equal(h, hb:squeeze(2)))
  end)

  it("apply dropout between layers in training only", function()
    local lstm = nn.LSTM(3, 4, { num_layers = 2, dropout = 0.5 })
    local x = torch.randn(4, 2, 3)
    lstm:eval()
    local a = lstm(x)
    assert(torch.equal(a, lstm(x)))
    lstm:train()
    torch.manual_seed(9)
    local b = lstm(x)
    assert(not torch.equal(a, b))
  end)

  -- Central differences in float64 against backward, for every input and parameter.
  local function gradcheck(m, inputs)
    torch.manual_seed(11)
    local function loss_of(...)
      local outs = flatten_outputs(m(table.unpack(inputs)))
      local total = 0
      for k, o in ipairs(outs) do
        local g = torch.linspace(-1, 1, o:numel(), { dtype = "float64" }):view(o.shape) * k
        total = total + (o * g):sum()
      end
      return total
    end
    local leaves = {}
    local function collect(v)
      if torch.is_tensor(v) then leaves[#leaves + 1] = v else for _, x in ipairs(v) do collect(x) end end
    end
    collect(inputs)
    for _, p in ipairs(m:parameters()) do leaves[#leaves + 1] = p end
    for _, t in ipairs(leaves) do t.requires_grad = true; t.grad = nil end
    loss_of():backward()
    local eps = 1e-6
    for li, t in ipairs(leaves) do
      local flat, analytic = t:detach():view(-1), H.values(t.grad)
      for i = 1, flat:numel() do
        local v = flat[i]:item()
        local up, down
        torch.no_grad(function()
          flat[i] = v + eps
          up = loss_of():item()
          flat[i] = v - eps
          down = loss_of():item()
          flat[i] = v
        end)
        local numeric = (up - down) / (2 * eps)
        assert(math.abs(numeric - analytic[i]) <= 1e-6 * (1 + math.abs(numeric)),
          string.format("leaf %d element %d: backward %.12g, finite differences %.12g", li, i, analytic[i], numeric))
      end
    end
  end

  it("have gradients that match finite differences (float64)", function()
    torch.manual_seed(5)
    local f64 = { dtype = "float64" }
    gradcheck(nn.LSTM(2, 3, { num_layers = 2, bidirectional = true, dtype = "float64" }),
      { torch.randn(3, 2, 2, f64), { torch.randn(4, 2, 3, f64), torch.randn(4, 2, 3, f64) } })
    gradcheck(nn.LSTM(2, 3, { proj_size = 2, batch_first = true, dtype = "float64" }), { torch.randn(2, 3, 2, f64) })
    gradcheck(nn.GRU(2, 3, { num_layers = 2, batch_first = true, dtype = "float64" }),
      { torch.randn(2, 3, 2, f64), torch.randn(2, 2, 3, f64) })
    gradcheck(nn.RNN(2, 3, { nonlinearity = "tanh", bidirectional = true, dtype = "float64" }), { torch.randn(4, 2, f64) })
  end)

  it("survive a whole-model save and load", function()
    torch.manual_seed(6)
    local m = nn.Sequential(nn.Embedding(6, 3, { padding_idx = 1 }),
      nn.GRU(3, 4, { num_layers = 2, batch_first = true, dropout = 0.1 }))
    local path = os.tmpname()
    torch.save(m, path)
    local back = torch.load(path)
    os.remove(path)
    assert.are.equal(tostring(m), tostring(back))
    m:eval()
    back:eval()
    local ids = torch.tensor({ { 1, 2, 6 }, { 3, 3, 4 } })
    local a, b = m(ids), back(ids)
    assert(torch.equal(a, b))
  end)
end)
