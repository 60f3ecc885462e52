-- torch.nn.functional (SPEC section 4) against the real PyTorch 1.13: tools/pytorch_nn.py calls
-- every F function PyTorch shares with moontorch on fixed inputs (each option, dtype and shape
-- class worth a case), feeds a fixed gradient back, and writes results, input gradients and
-- in-place updates (batch norm's running stats, embedding's max_norm) to
-- <build>/fixtures/pytorch_nn.lua; this spec replays each case through F and compares:
-- float64 to 1e-8, float32 to 2e-4, integers exactly. Then Lua's own conventions (1-based
-- targets, ids and indices; options tables) and the errors on misuse.
local H = require "spec.helpers"
local torch = H.torch
local F = require "moontorch.nn.functional"

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local fixture_dir = build_dir .. "/fixtures"
local fixture = fixture_dir .. "/pytorch_nn.lua"
local tool = source_dir .. "/tools/pytorch_nn.py"

local TOL = { float64 = { rtol = 1e-8, atol = 1e-8 }, float32 = { rtol = 2e-4, atol = 2e-4 } }

local function mtime(path)
  local f = io.popen("stat -c %Y " .. H.shquote(path) .. " 2>/dev/null")
  local v = f and tonumber(f:read("a")) or nil
  if f then f:close() end
  return v
end

-- The cases, (re)generated when missing or older than the tool.
local function load_cases()
  if (mtime(tool) or 0) > (mtime(fixture) or -1) then
    local cmd = "/usr/bin/python3 " .. H.shquote(tool) .. " " .. H.shquote(fixture_dir) .. " 2>&1"
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    if not p:close() then return nil, "tools/pytorch_nn.py failed:\n" .. out end
  end
  local chunk, err = loadfile(fixture, "t", { math = math })
  if not chunk then return nil, err end
  return chunk()
end

local function make_tensor(d)
  local t = torch.tensor(d.data, { dtype = d.dtype })
  if #d.shape ~= 1 or d.shape[1] ~= #d.data then t = t:reshape(d.shape) end
  if d.requires_grad then t:requires_grad_() end
  return t
end

local function build(a)
  if type(a) ~= "table" then return a end
  if a.none then return nil end
  if a.list then
    local l = {}
    for i, v in ipairs(a.list) do l[i] = build(v) end -- {none = true} entries leave holes
    return l
  end
  return make_tensor(a)
end

-- Asserts that tensor t matches the description d: dtype, shape, values.
local function assert_matches(t, d, what)
  assert(torch.is_tensor(t), what .. ": expected a tensor, got " .. type(t))
  H.assert_meta(t, d.shape, d.dtype, what)
  local got, tol = H.values(t), TOL[d.dtype]
  for i = 1, #d.data do
    if not H.close(got[i], d.data[i], tol and tol.rtol, tol and tol.atol) then
      error(string.format("%s: differs from PyTorch at flat index %d: %.17g vs %.17g\n  got:      %s\n  expected: %s",
        what, i, got[i], d.data[i], H.list_str(got), H.list_str(d.data)), 2)
    end
  end
end

local function run_case(c)
  local args = {}
  for i = 1, c.n do args[i] = build(c.args[i]) end
  local n = c.n
  if c.opts then
    local opts = {}
    for k, v in pairs(c.opts) do opts[k] = build(v) end
    n = n + 1
    args[n] = opts
  end
  if c.seed then torch.manual_seed(c.seed) end
  local outs = table.pack(F[c.fn](table.unpack(args, 1, n)))
  assert.are.equal(#c.outs, outs.n, "number of results")
  for i, d in ipairs(c.outs) do assert_matches(outs[i], d, "result " .. i) end
  if c.grad_out then
    outs[1]:backward(make_tensor(c.grad_out))
    for i, d in pairs(c.grads) do
      local g = args[i].grad
      if d == false then
        assert(g == nil or g:eq(0):all():item(), "argument " .. i .. " should get no gradient")
      else
        assert(g ~= nil, "argument " .. i .. " got no gradient")
        assert_matches(g, d, "gradient of argument " .. i)
      end
    end
  end
  for i, d in pairs(c.after) do assert_matches(args[i], d, "argument " .. i .. " after the call") end
end

describe("torch.nn.functional matches PyTorch", function()
  local cases, err = load_cases()
  it("has the PyTorch cases", function()
    assert(cases, err)
    assert.is_true(#cases >= 100)
  end)
  local covered = {}
  for _, c in ipairs(cases or {}) do
    covered[c.fn] = true
    it(c.name, function() run_case(c) end)
  end
  it("covers every function", function()
    for _, fn in ipairs({ "linear", "conv1d", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
      "batch_norm", "layer_norm", "embedding", "dropout", "dropout2d", "relu", "leaky_relu", "gelu", "silu",
      "tanh", "sigmoid", "softmax", "log_softmax", "mse_loss", "l1_loss", "smooth_l1_loss", "cross_entropy",
      "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits" }) do
      assert(type(F[fn]) == "function", "F." .. fn .. " is missing")
      assert(covered[fn], "no PyTorch case for F." .. fn)
    end
  end)
end)

describe("torch.nn.functional", function()
  local x4 = function() return torch.randn(2, 3, 6, 6, { dtype = "float64" }) end

  it("can be required on its own", function()
    local out, ok = H.run_lua([[
      local F = require "moontorch.nn.functional"
      local core = require "moontorch.core"
      io.write(F.relu(core.tensor({ -1.5, 2 })):tolist()[2], "\n")]])
    assert.is_true(ok, out)
    assert.are.equal(2, tonumber(out:match("[^\n]+")))
  end)

  describe("conventions", function()
    it("takes 1-based class targets; -100 is ignored by default", function()
      local logits = torch.tensor({ { 2.0, 0.5, -1.0 }, { 0.1, 0.2, 3.0 } }, { dtype = "float64" })
      local lp = logits:log_softmax(2)
      local l = F.nll_loss(lp, torch.tensor({ 1, 3 }))
      H.assert_values(l, { -(lp[1][1]:item() + lp[2][3]:item()) / 2 })
      local ignored = F.cross_entropy(logits, torch.tensor({ 3, -100 }), { reduction = "sum" })
      H.assert_values(ignored, { -lp[1][3]:item() })
      -- an explicit ignore_index is a class value like the targets
      local skip2 = F.nll_loss(lp, torch.tensor({ 2, 3 }), { ignore_index = 2 })
      H.assert_values(skip2, { -lp[2][3]:item() })
    end)

    it("rejects class targets outside 1..C", function()
      local logits = torch.randn(2, 3)
      H.expect_error(function() F.cross_entropy(logits, torch.tensor({ 0, 1 })) end,
        "nn.functional.cross_entropy", "target 0 is invalid")
      H.expect_error(function() F.nll_loss(logits, torch.tensor({ 1, 4 })) end,
        "nn.functional.nll_loss", "target 4 is out of range 1..3")
      H.expect_error(function() F.cross_entropy(logits, torch.tensor({ 1.0, 2.0 })) end,
        "cross_entropy", "shape") -- float targets are probabilities, which need the input's shape
    end)

    it("looks up 1-based Embedding ids; padding_idx is 1-based and gets no gradient", function()
      local w = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 }, { 5.0, 6.0 } }):requires_grad_()
      local y = F.embedding(torch.tensor({ 3, 1, 3 }), w, 1)
      H.assert_values(y, { 5, 6, 1, 2, 5, 6 })
      y:sum():backward()
      H.assert_values(w.grad, { 0, 0, 0, 0, 2, 2 })
      H.assert_values(F.embedding({ 2, 2 }, w), { 3, 4, 3, 4 }) -- a Lua list of ids
      H.expect_error(function() F.embedding(torch.tensor({ 0 }), w) end, "embedding", "id 0 is invalid")
      H.expect_error(function() F.embedding(torch.tensor({ 4 }), w) end, "embedding", "id 4 is out of range 1..3")
      H.expect_error(function() F.embedding(torch.tensor({ 1 }), w, 0) end, "embedding", "padding_idx 0")
      H.expect_error(function() F.embedding(torch.tensor({ 1 }), w, 4) end, "embedding", "padding_idx 4")
      H.expect_error(function() F.embedding(torch.tensor({ 1.0 }), w) end, "embedding", "int64 or int32")
    end)

    it("returns max_pool2d's indices 1-based, within each plane", function()
      local x = torch.tensor({ { { { 1.0, 9.0 }, { 3.0, 4.0 } }, { { 8.0, 2.0 }, { 0.0, 7.0 } } } })
      local y, idx = F.max_pool2d(x, 2, { return_indices = true })
      H.assert_values(y, { 9, 8 })
      H.assert_values(idx, { 2, 1 })
      H.assert_meta(idx, { 1, 2, 1, 1 }, "int64")
      assert.are.equal(1, select("#", F.max_pool2d(x, 2)))
    end)

    it("keeps the indices 1-based when the values are recorded for autograd", function()
      local x = torch.tensor({ { { 1.0, 9.0 }, { 3.0, 4.0 } } }):requires_grad_()
      local y, idx = F.max_pool2d(x, 2, nil, nil, nil, nil, true)
      H.assert_values(idx, { 2 })
      y:sum():backward()
      H.assert_values(x.grad, { 0, 1, 0, 0 })
    end)

    it("counts softmax dims from 1", function()
      local x = torch.tensor({ { 0.0, 0.0 }, { 1.0, 1.0 } }, { dtype = "float64" })
      H.assert_values(F.softmax(x, 1), { 1 / (1 + math.exp(1)), 1 / (1 + math.exp(1)),
        1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-1)) })
      H.assert_values(F.softmax(x, 2), { 0.5, 0.5, 0.5, 0.5 })
      H.expect_error(function() F.log_softmax(x, 3) end, "log_softmax", "dim 3 is out of range")
    end)
  end)

  describe("arguments", function()
    it("takes positionals in PyTorch's order, or the same names in an options table", function()
      local x, w, b = x4(), torch.randn(4, 3, 3, 3, { dtype = "float64" }), torch.randn(4, { dtype = "float64" })
      local a = F.conv2d(x, w, b, 2, 1)
      assert.is_true(torch.equal(a, F.conv2d(x, w, b, { stride = 2, padding = 1 })))
      assert.is_true(torch.equal(a, F.conv2d(x, w, nil, { bias = b, stride = { 2, 2 }, padding = { 1, 1 } })))
      assert.is_true(torch.equal(a, F.conv2d(x, w, b, 2, { padding = 1 })))
      H.assert_meta(a, { 2, 4, 3, 3 }, "float64")
      local t = torch.tensor({ 1, 2 })
      local logits = torch.randn(2, 3, { dtype = "float64" })
      assert.is_true(torch.equal(F.cross_entropy(logits, t, nil, nil, -100, nil, "sum"),
        F.cross_entropy(logits, t, { reduction = "sum" })))
    end)

    it("refuses unknown options, options given twice and too many arguments", function()
      local x = x4()
      H.expect_error(function() F.max_pool2d(x, 2, { strid = 1 }) end, "nn.functional.max_pool2d",
        "unknown option 'strid'")
      H.expect_error(function() F.max_pool2d(x, 2, 2, { stride = 1 }) end, "max_pool2d", "stride is given twice")
      H.expect_error(function() F.relu(x, false, 1) end, "nn.functional.relu", "at most 2 positional arguments")
      H.expect_error(function() F.relu(x, { input = x }) end, "relu", "unknown option 'input'")
    end)

    it("checks argument types and values", function()
      local x = x4()
      H.expect_error(function() F.conv2d(x) end, "nn.functional.conv2d", "bad argument #2 %(tensor expected, got nil%)")
      H.expect_error(function() F.conv2d(x, torch.randn(4, 3, 3, 3, { dtype = "float64" }), nil, { 1, 2, 3 }) end,
        "conv2d", "stride must be an integer or a list of 2 integers")
      H.expect_error(function() F.conv2d(x, torch.randn(4, 3, 3, 3, { dtype = "float64" }), nil, 2, "same") end,
        "conv2d", "not supported for strided convolutions")
      H.expect_error(function() F.conv1d(torch.randn(1, 1, 5), torch.randn(1, 1, 2), nil, 1, "full") end,
        "conv1d", "padding must be \"valid\", \"same\" or integers")
      H.expect_error(function() F.mse_loss(x, x, { reduction = "avg" }) end, "mse_loss",
        "reduction must be \"mean\", \"sum\" or \"none\", got avg")
      H.expect_error(function() F.gelu(x, "fast") end, "gelu", "approximate must be \"none\" or \"tanh\"")
      H.expect_error(function() F.dropout(x, 1.5) end, "dropout", "between 0 and 1")
      H.expect_error(function() F.binary_cross_entropy(torch.rand(3, 2), torch.rand(2)) end,
        "binary_cross_entropy", "must have the input's shape")
      H.expect_error(function() F.embedding(torch.tensor({ 1 }), torch.randn(3, 2), nil, nil, 2, true) end,
        "embedding", "scale_grad_by_freq is not supported")
      H.expect_error(function() F.avg_pool2d(x, 2, { divisor_override = 0 }) end, "avg_pool2d",
        "divisor_override must be a non%-zero integer")
      H.expect_error(function() F.tanh(3) end, "nn.functional.tanh", "tensor expected, got number")
    end)

    it("passes the core's shape errors through, naming the function", function()
      H.expect_error(function() F.linear(torch.randn(2, 3), torch.randn(4, 5)) end, "nn.functional.linear",
        "does not fit weight")
      H.expect_error(function() F.batch_norm(torch.randn(2, 3), nil, nil) end, "nn.functional.batch_norm",
        "evaluation mode")
      H.expect_error(function() F.layer_norm(torch.randn(2, 3), { 4 }) end, "nn.functional.layer_norm",
        "normalized_shape")
    end)
  end)

  describe("dropout", function()
    it("is the input itself when not training or p = 0", function()
      local x = torch.randn(3, 4)
      assert.are.equal(x, F.dropout(x, 0.5, false))
      assert.are.equal(x, F.dropout(x, 0))
      local v = x:view(3, 4, 1)
      assert.are.equal(v, F.dropout2d(v, { training = false }))
    end)

    it("zeroes about p of the elements and scales the rest by 1 / (1 - p)", function()
      torch.manual_seed(3)
      local y = F.dropout(torch.ones(100000), 0.25)
      local zeros = y:eq(0):sum():item()
      assert.is_true(math.abs(zeros / 100000 - 0.25) < 0.01, "fraction dropped: " .. zeros / 100000)
      H.assert_values(y:amax(), { 1 / 0.75 })
    end)

    it("zeroes whole channels with dropout2d", function()
      torch.manual_seed(5)
      local y = F.dropout2d(torch.ones(8, 16, 3, 3), 0.5)
      local per_channel = y:sum({ 3, 4 })
      for _, v in ipairs(H.values(per_channel)) do assert.is_true(v == 0 or math.abs(v - 18) < 1e-5, tostring(v)) end
    end)

    it("writes into the input with inplace = true", function()
      torch.manual_seed(9)
      local x = torch.ones(50)
      local y = F.dropout(x, 0.5, true, true)
      assert.are.equal(x, y)
      assert.is_true(x:eq(0):any():item() and x:eq(2):any():item())
    end)
  end)

  describe("in-place activations", function()
    it("return the input, changed", function()
      local x = torch.tensor({ -1.0, 2.0 })
      assert.are.equal(x, F.relu(x, true))
      H.assert_values(x, { 0, 2 })
      local y = torch.tensor({ -1.0, 2.0 })
      assert.are.equal(y, F.leaky_relu(y, 0.5, { inplace = true }))
      H.assert_values(y, { -0.5, 2 })
      local z = torch.tensor({ 0.0, 1.0 })
      assert.are.equal(z, F.silu(z, { inplace = true }))
      H.assert_values(z, { 0, 1 / (1 + math.exp(-1)) })
    end)
  end)

  describe("batch_norm", function()
    it("updates running stats in place only in training", function()
      local x = torch.randn(6, 2, { dtype = "float64" })
      local rm, rv = torch.zeros(2, { dtype = "float64" }), torch.ones(2, { dtype = "float64" })
      F.batch_norm(x, rm, rv)
      H.assert_values(rm, { 0, 0 })
      F.batch_norm(x, rm, rv, { training = true, momentum = 1.0 })
      H.assert_values(rm, H.values(x:mean(1)))
      H.assert_values(rv, H.values(x:var(1)))
    end)
  end)

  describe("losses", function()
    it("accept PyTorch's deprecated size_average / reduce", function()
      local a, b = torch.randn(3, 4, { dtype = "float64" }), torch.randn(3, 4, { dtype = "float64" })
      assert.is_true(torch.equal(F.l1_loss(a, b, false), F.l1_loss(a, b, { reduction = "sum" })))
      assert.is_true(torch.equal(F.l1_loss(a, b, nil, false), F.l1_loss(a, b, { reduction = "none" })))
      assert.is_true(torch.equal(F.l1_loss(a, b, true, true), F.l1_loss(a, b)))
    end)

    it("train a linear classifier with cross entropy", function()
      torch.manual_seed(0)
      local x = torch.randn(64, 2)
      local y = x:select(2, 1):gt(x:select(2, 2)):long() + 1 -- classes 1 and 2
      local w = torch.zeros(2, 2, { requires_grad = true })
      local b = torch.zeros(2, { requires_grad = true })
      local first, loss
      for step = 1, 100 do
        loss = F.cross_entropy(F.linear(x, w, b), y)
        if step == 1 then first = loss:item() end
        loss:backward()
        torch.no_grad(function()
          w:sub_(w.grad * 0.5)
          b:sub_(b.grad * 0.5)
        end)
        w.grad, b.grad = nil, nil
      end
      assert.is_true(loss:item() < first * 0.3, first .. " -> " .. loss:item())
      local pred = F.linear(x, w, b):argmax(2)
      assert.is_true(pred:eq(y):sum():item() >= 60)
    end)
  end)
end)
