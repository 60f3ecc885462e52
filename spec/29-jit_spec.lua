-- torch.jit (SPEC section 6, "Deployment"): tracing models into graphs of core ops, running the
-- graph from Lua and from the C runtime (moontorch-run), saving and loading traced files, the
-- checks the loader makes on a damaged file, and what a trace refuses.
--
-- A traced graph calls the same core kernels as the eager forward, so its outputs must equal
-- the eager ones exactly (torch.equal), on the example input and on a new one.
local H = require "spec.helpers"
local torch = H.torch
local nn = require "moontorch.nn"
local F = require "moontorch.nn.functional"

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local run_tool = build_dir .. "/bin/moontorch-run"

local tmpdir
local function tmp(name) return tmpdir .. "/" .. name end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- The tensors of a forward's results, flattened as a trace flattens them.
local function flat(...)
  local out = {}
  local function walk(v)
    if torch.is_tensor(v) then out[#out + 1] = v else for i = 1, #v do walk(v[i]) end end
  end
  for i = 1, select("#", ...) do walk((select(i, ...))) end
  return out
end

-- What a traced model returns, as an array.
local function as_list(r)
  if torch.is_tensor(r) then return { r } end
  return r
end

local function assert_equal_lists(got, want, what)
  assert(#got == #want, string.format("%s: %d outputs, expected %d", what, #got, #want))
  for i = 1, #want do
    H.assert_meta(got[i], want[i].shape, want[i].dtype, what .. " output " .. i)
    if not torch.equal(got[i], want[i]) then
      local diff = (got[i]:double() - want[i]:double()):abs():max():item()
      error(string.format("%s: output %d differs from the eager one (max abs diff %.3g)", what, i, diff), 2)
    end
  end
end

local function eager(model, ...)
  local args = table.pack(...)
  return torch.no_grad(function() return flat(model(table.unpack(args, 1, args.n))) end)
end

-- ------------------------------------------------------------------------------------------
-- The three models of the issue

local function conv_net()
  torch.manual_seed(1)
  local m = nn.Sequential(
    nn.Conv2d(2, 4, 3, { padding = 1 }),
    nn.BatchNorm2d(4),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Dropout(0.5),
    nn.Conv2d(4, 6, 3, { stride = 2, padding = 1 }),
    nn.ReLU(),
    nn.AvgPool2d(2),
    nn.Flatten(),
    nn.Linear(6, 5))
  -- running statistics away from their defaults, so that eval mode's normalisation shows
  torch.no_grad(function()
    for _ = 1, 3 do m(torch.randn(4, 2, 8, 8) * 2 + 0.5) end
  end)
  return m, torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
end

local function mlp()
  torch.manual_seed(2)
  local m = nn.Sequential(
    nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3),
    nn.LogSoftmax(2))
  return m, torch.randn(5, 6), torch.randn(5, 6)
end

local function lstm()
  torch.manual_seed(3)
  local m = nn.LSTM(5, 7, { num_layers = 2, batch_first = true })
  return m, torch.randn(3, 4, 5), torch.randn(3, 4, 5)
end

local MODELS = { { "conv net", conv_net }, { "MLP", mlp }, { "LSTM", lstm } }

describe("torch.jit.trace", function()
  setup(function()
    local f = io.popen("mktemp -d")
    tmpdir = f:read("l")
    f:close()
  end)
  teardown(function() os.execute("rm -rf " .. H.shquote(tmpdir)) end)

  for _, case in ipairs(MODELS) do
    local name, make = case[1], case[2]

    it("traces the " .. name .. ": outputs equal the eager ones on the example and a new input", function()
      local model, x, x2 = make()
      model:train()
      local traced = torch.jit.trace(model, x)
      assert.is_true(model.training, "the model's mode is put back")
      model:eval()
      assert_equal_lists(as_list(traced(x)), eager(model, x), name .. " (example)")
      assert_equal_lists(as_list(traced(x2)), eager(model, x2), name .. " (new input)")
    end)

    it("saves and loads the " .. name .. "; the loaded graph gives the same outputs", function()
      local model, x, x2 = make()
      model:eval()
      local traced = torch.jit.trace(model, x)
      local path = tmp(name:gsub(" ", "_") .. ".pt")
      traced:save(path)
      local loaded = torch.jit.load(path)
      assert.is_true(torch.jit.is_traced(loaded))
      assert_equal_lists(as_list(loaded(x2)), eager(model, x2), name .. " (loaded)")
      assert_equal_lists(as_list(loaded(x)), as_list(traced(x)), name .. " (loaded vs traced)")
    end)

    it("runs the saved " .. name .. " in the C runtime (moontorch-run) with Lua's outputs", function()
      local f = io.open(run_tool, "rb")
      assert(f, "moontorch-run is not built at " .. run_tool .. " (set MT_BINARY_DIR)")
      f:close()
      local model, _, x2 = make()
      model:eval()
      local traced = torch.jit.trace(model, x2)
      local base = tmp("run_" .. name:gsub(" ", "_"))
      traced:save(base .. ".model.pt")
      torch.save(x2, base .. ".in.pt")
      local cmd = table.concat({ H.shquote(run_tool), H.shquote(base .. ".model.pt"), H.shquote(base .. ".in.pt"),
        H.shquote(base .. ".out.pt") }, " ")
      local p = io.popen(cmd .. " 2>&1")
      local log = p:read("a")
      assert(p:close(), "moontorch-run failed: " .. log)
      local outs = torch.load(base .. ".out.pt")
      local want = eager(model, x2)
      if #want == 1 then
        assert(torch.is_tensor(outs), "one output is saved as a tensor")
        outs = { outs }
      end
      assert_equal_lists(outs, want, name .. " (moontorch-run)")
    end)
  end

  it("takes several inputs, as a list; the traced module takes them as arguments or a list", function()
    local w = torch.randn(3, 3)
    local function fn(a, b) return (a:matmul(w) + b):relu(), a * b end
    local a, b = torch.randn(2, 3), torch.randn(2, 3)
    local traced = torch.jit.trace(fn, { a, b })
    local a2, b2 = torch.randn(2, 3), torch.randn(2, 3)
    local want = flat(fn(a2, b2))
    assert_equal_lists(traced(a2, b2), want, "arguments")
    assert_equal_lists(traced({ a2, b2 }), want, "list")
  end)

  it("flattens nested results and returns an array when there are several outputs", function()
    local function fn(x) return x + 1, { x * 2, { x:sum(1) } } end
    local x = torch.randn(2, 3)
    local out = torch.jit.trace(fn, x)(x)
    assert.are.equal(3, #out)
    assert_equal_lists(out, flat(fn(x)), "nested")
  end)

  it("records the ops, not the Lua control flow (frozen at trace time, as documented)", function()
    local function fn(x)
      if x:sum():item() > 0 then return x * 2 end
      return x * 3
    end
    local traced = torch.jit.trace(fn, torch.ones(3))
    local y = traced(-torch.ones(3))
    H.assert_values(y, { -2, -2, -2 }, true, "the positive branch is in the graph")
  end)

  it("makes what creation functions build in the forward into constants", function()
    local function fn(x)
      local bias = torch.arange(1, 4, { dtype = "float32" })
      return x * torch.ones(3) + bias + torch.tensor({ 10, 20, 30 }) + torch.full({ 3 }, 0.5) +
          torch.zeros_like(x) + x:new_ones(3)
    end
    local traced = torch.jit.trace(fn, torch.randn(3))
    local x = torch.randn(3)
    assert_equal_lists({ traced(x) }, { fn(x) }, "creation")
    local path = tmp("creation.pt")
    traced:save(path)
    assert_equal_lists({ torch.jit.load(path)(x) }, { fn(x) }, "creation (loaded)")
  end)

  it("shares the model's tensors: a traced model sees later updates of its parameters", function()
    local lin = nn.Linear(3, 2)
    local traced = torch.jit.trace(lin, torch.randn(4, 3))
    torch.no_grad(function() lin.weight:mul_(2) end)
    local x = torch.randn(4, 3)
    assert_equal_lists({ traced(x) }, eager(lin, x), "after the update")
  end)

  it("lists the nodes in tostring and gives the file's contents from :graph()", function()
    local model, x = conv_net()
    local traced = torch.jit.trace(model, x)
    local s = tostring(traced)
    assert.truthy(s:find("conv2d(", 1, true), s)
    assert.truthy(s:find("batch_norm(", 1, true), s)
    assert.truthy(s:find("max_pool2d(", 1, true), s)
    assert.truthy(s:find("linear(", 1, true), s)
    assert.truthy(s:find("stride=[2, 2]", 1, true), s)
    assert.truthy(s:find("\n  return %", 1, true), s)
    local g = traced:graph()
    assert.are.equal("moontorch.traced", g.format)
    assert.are.equal(1, g.version)
    assert.are.equal(1, #g.inputs)
    assert.are.equal(1, #g.outputs)
    local ops = {}
    for _, node in ipairs(g.nodes) do ops[#ops + 1] = node.op end
    local first = model[1].weight
    local found = false
    for _, t in pairs(g.constants) do
      if torch.is_tensor(t) and torch.equal(t, first) then found = true end
    end
    assert.is_true(found, "the first convolution's weight is a constant")
    assert.is_nil(table.concat(ops, " "):find("dropout"), "dropout in eval mode records nothing")
  end)

  it("writes a file PyTorch opens as plain data", function()
    local model, x = mlp()
    local path = tmp("mlp_pytorch.pt")
    torch.jit.trace(model, x):save(path)
    local code = "import sys, torch; d = torch.load(sys.argv[1]); " ..
        "print(d['format'], d['version'], len(d['inputs']), len(d['outputs']), " ..
        "[n['op'] for n in d['nodes']][0], all(isinstance(t, torch.Tensor) for t in d['constants'].values()))"
    local p = io.popen("/usr/bin/python3 -c " .. H.shquote(code) .. " " .. H.shquote(path) .. " 2>&1")
    local out = p:read("a")
    assert(p:close(), out)
    assert.are.equal("moontorch.traced 1 1 1 linear True\n", out)
  end)

  it("keeps Lua's 1-based indices: argmax, max(d), gather and index_select trace as eager", function()
    local M = nn.Module:extend("JitIndexNet")
    function M:__init() self.fc = nn.Linear(4, 5) end
    function M:forward(x)
      local y = self.fc(x)
      local _, j = y:max(2)
      return y:argmax(2), j, y:gather(2, j:unsqueeze(2)), y:index_select(2, torch.tensor({ 1, 3 }))
    end
    torch.manual_seed(11)
    local m = M()
    local traced = torch.jit.trace(m, torch.randn(3, 4))
    local x = torch.randn(3, 4)
    local eager = torch.no_grad(function() return { m(x) } end)
    local got = traced(x)
    assert.are.equal(4, #got)
    for k = 1, 4 do assert.is_true(torch.equal(eager[k], got[k]), "output " .. k) end
  end)

  describe("refuses", function()
    local function assert_no_trace_left()
      assert.is_false(require("moontorch.core")._jit.trace_active(), "no trace is left active")
      local t = torch.jit.trace(function(x) return x + 1 end, torch.ones(2)) -- a new trace works
      H.assert_values(t(torch.zeros(2)), { 1, 1 }, true)
    end

    it("a model using torch.rand in its forward", function()
      local Noisy = nn.Module:extend("JitNoisy")
      function Noisy:forward(x) return x + torch.rand(x.shape) end
      H.expect_error(function() torch.jit.trace(Noisy(), torch.ones(2, 2)) end, "moontorch%.jit%.trace", "random")
      H.expect_error(function() torch.jit.trace(function(x) return x * torch.randn(2) end, torch.ones(2)) end,
        "moontorch%.jit%.trace", "random")
      assert_no_trace_left()
    end)

    it("dropout in training mode inside a plain function", function()
      H.expect_error(function() torch.jit.trace(function(x) return F.dropout(x, { p = 0.5, training = true }) end,
        torch.ones(4)) end, "moontorch%.jit%.trace", "random")
    end)

    it("an in-place op in the forward", function()
      H.expect_error(function()
        torch.jit.trace(function(x)
          local y = x * 2
          y:add_(1)
          return y
        end, torch.ones(3))
      end, "moontorch%.jit%.trace", "in%-place")
      assert_no_trace_left()
    end)

    it("a model returning a non-tensor, or nothing", function()
      H.expect_error(function() torch.jit.trace(function(x) return x:sum():item() end, torch.ones(3)) end,
        "moontorch%.jit%.trace", "result 1 is a number")
      H.expect_error(function() torch.jit.trace(function(x) return x, { x, "label" } end, torch.ones(3)) end,
        "moontorch%.jit%.trace", "result 2%[2%] is a string")
      H.expect_error(function() torch.jit.trace(function(x) return { y = x } end, torch.ones(3)) end,
        "moontorch%.jit%.trace", "result 1 is a table with key 'y'")
      H.expect_error(function() torch.jit.trace(function() end, torch.ones(3)) end, "moontorch%.jit%.trace",
        "returned nothing")
      assert_no_trace_left()
    end)

    it("bad arguments", function()
      H.expect_error(function() torch.jit.trace(42, torch.ones(1)) end, "moontorch%.jit%.trace",
        "bad argument #1 %(module or function expected, got number%)")
      H.expect_error(function() torch.jit.trace(function(x) return x end, 3) end, "moontorch%.jit%.trace",
        "bad argument #2")
      H.expect_error(function() torch.jit.trace(function(x) return x end, { torch.ones(1), "x" }) end,
        "moontorch%.jit%.trace", "example input 2 is a string")
    end)

    it("a trace inside a trace", function()
      H.expect_error(function()
        torch.jit.trace(function(x) return torch.jit.trace(function(y) return y end, x)(x) end, torch.ones(2))
      end, "moontorch%.jit%.trace", "already")
      assert_no_trace_left()
    end)

    it("nothing when the forward raises: the error comes through, the trace ends, modes come back", function()
      local Bad = nn.Module:extend("JitBad")
      function Bad:__init() self.fc = nn.Linear(2, 2) end
      function Bad:forward() error("boom in forward", 0) end
      local m = Bad()
      local err = H.error_of(function() torch.jit.trace(m, torch.ones(2)) end)
      assert.are.equal("boom in forward", err)
      assert.is_true(m.training and m.fc.training)
      assert.is_true(torch.is_grad_enabled())
      assert_no_trace_left()
    end)
  end)

  describe("running a traced module", function()
    it("checks its inputs", function()
      local traced = torch.jit.trace(function(a, b) return a + b end, { torch.ones(2), torch.ones(2) })
      H.expect_error(function() traced(torch.ones(2)) end, "moontorch%.jit%.TracedModule",
        "expected 2 input tensors, got 1")
      H.expect_error(function() traced(torch.ones(2), 5) end, "moontorch%.jit%.TracedModule",
        "input 2 is a number")
      H.expect_error(function() traced(torch.ones(2), torch.ones(3, 4)) end, "moontorch%.jit%.TracedModule",
        "node 1 %('binary'%): shapes %[2%] and %[3, 4%] cannot be broadcast")
    end)
  end)

  -- ----------------------------------------------------------------------------------------
  -- Damaged files: each must fail in torch.jit.load, naming it and the file, before running.

  describe("torch.jit.load on a damaged file", function()
    local good, good_bytes
    setup(function()
      local model, x = conv_net()
      good = tmp("good.pt")
      torch.jit.trace(model, x):save(good)
      good_bytes = read_file(good)
    end)

    -- Loads the good file as plain data, lets `edit` damage the tree, saves it, and returns the
    -- path of the damaged file.
    local function damaged(name, edit)
      local tree = torch.load(good)
      edit(tree)
      local path = tmp(name .. ".pt")
      torch.save(tree, path)
      return path
    end

    local function expect_load_error(path, problems)
      local err = H.expect_error(function() torch.jit.load(path) end, "moontorch%.jit%.load", problems, 2)
      assert.truthy(err:find(path, 1, true), "the message names the file: " .. err)
      return err
    end

    local function find_node(tree, op)
      for i, node in ipairs(tree.nodes) do
        if node.op == op then return node, i end
      end
      error("no " .. op .. " node")
    end

    it("loads the undamaged tree saved again by torch.save", function()
      local path = damaged("resaved", function() end)
      local model, x = conv_net()
      model:eval()
      assert_equal_lists({ torch.jit.load(path)(x) }, eager(model, x), "resaved")
    end)

    it("truncated, or with bytes overwritten", function()
      local path = tmp("truncated.pt")
      for _, frac in ipairs({ 0.1, 0.5, 0.97 }) do
        write_file(path, good_bytes:sub(1, math.floor(#good_bytes * frac)))
        expect_load_error(path, "truncated")
      end
      for _, frac in ipairs({ 0.05, 0.3, 0.5, 0.8 }) do
        local at = math.floor(#good_bytes * frac)
        write_file(path, good_bytes:sub(1, at) .. string.rep("\0", 64) .. good_bytes:sub(at + 65))
        expect_load_error(path, { "corrupt", "header", "disagrees", "truncated" })
      end
    end)

    it("missing, or not a traced file", function()
      expect_load_error(tmp("no_such_file.pt"))
      local path = tmp("plain.pt")
      torch.save({ a = torch.ones(2) }, path)
      expect_load_error(path, "not a traced model")
      expect_load_error(damaged("format", function(t) t.format = "something.else" end), "not a traced model")
      expect_load_error(damaged("version", function(t) t.version = 99 end), "version 99 is not supported")
      expect_load_error(damaged("extra_key", function(t) t.extra = 1 end), "unexpected key 'extra'")
    end)

    it("an unknown op", function()
      expect_load_error(damaged("unknown_op", function(t) t.nodes[2].op = "frobnicate" end),
        "node 2: unknown op 'frobnicate'")
    end)

    it("bad ids: undefined, defined twice, of the wrong type", function()
      expect_load_error(damaged("undefined_id", function(t) t.nodes[2].inputs[1] = 987654 end),
        "node 2 %('batch_norm'%): input id 987654 is not defined")
      expect_load_error(damaged("output_undefined", function(t) t.outputs[1] = 987654 end),
        "output id 987654 is not defined")
      expect_load_error(damaged("defined_twice", function(t) t.nodes[2].outputs[1] = t.nodes[1].outputs[1] end),
        "node 2 %('batch_norm'%): id %d+ is defined twice")
      expect_load_error(damaged("input_redefined", function(t) t.nodes[1].outputs[1] = t.inputs[1] end),
        "node 1 %('conv2d'%): id %d+ is defined twice")
      expect_load_error(damaged("id_type", function(t) t.nodes[1].inputs[1] = "zero" end),
        "node 1 %('conv2d'%): inputs should be a list of ints")
      expect_load_error(damaged("arity", function(t) table.insert(t.nodes[1].inputs, t.inputs[1]) end),
        "node 1 %('conv2d'%): takes 3 inputs, got 4")
    end)

    it("wrong attribute types and missing attributes", function()
      expect_load_error(damaged("attr_type", function(t) find_node(t, "conv2d").attrs.stride = "wide" end),
        "node 1 %('conv2d'%): attribute 'stride' should be a list of 2 ints")
      expect_load_error(damaged("attr_missing", function(t) find_node(t, "conv2d").attrs.groups = nil end),
        "attribute 'groups' is missing")
      expect_load_error(damaged("attr_len", function(t) find_node(t, "conv2d").attrs.padding = { 1, 1, 1 } end),
        "attribute 'padding' should be a list of 2 ints")
      expect_load_error(damaged("attr_unknown", function(t) find_node(t, "conv2d").attrs.colour = 1 end),
        "unknown attribute 'colour'")
    end)

    it("a missing constant, or a constant that is not a tensor", function()
      local weight = torch.load(good).nodes[1].inputs[2]
      expect_load_error(damaged("missing_constant", function(t) t.constants[weight] = nil end),
        "node 1 %('conv2d'%): input id " .. weight .. " is not defined")
      expect_load_error(damaged("constant_type", function(t) t.constants[weight] = "weights" end),
        "constant " .. weight .. " should be a tensor")
    end)
  end)
end)
