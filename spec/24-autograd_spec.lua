-- SPEC §3: autograd from Lua. Every differentiable tensor method of SPEC §2 is checked against
-- central finite differences in float64 (and its float32 gradient against the float64 one);
-- then accumulation, backward with a gradient, the graph's lifetime, grad mode, detach, the
-- in-place rules, PyTorch's node names and gradients at kinks and ties, a composite expression
-- against real PyTorch, and a 10,000-step training loop that must hold flat memory.
local H = require "spec.helpers"
local torch = H.torch

local F64 = { dtype = "float64" }

-- ---- finite differences ---------------------------------------------------------------------
--
-- An input is described by its shape (a Lua array, {} for 0-dim) with optional fields:
--   pos = true   values in [0.5, 2) (log, sqrt, divisors, pow bases); otherwise |v| in [0.1, 1)
--                with a random sign, away from the kinks at 0
--   t = true     non-contiguous: the transpose of a contiguous tensor (last two dims swapped)
--   vals = {...} the values themselves, row-major
-- A case is { title, fn, inputs[, grad_fn = PyTorch's node name] }: fn(inputs...) returns the
-- tensor to differentiate; constants it needs (indices, masks) are upvalues.

local EPS = 1e-6

local function shape_of(spec)
  local s = {}
  for i = 1, #spec do s[i] = spec[i] end
  return s
end

local function numel(shape)
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  return n
end

local function draw(spec)
  if spec.vals then return spec.vals end
  local v = {}
  for i = 1, numel(shape_of(spec)) do
    if spec.pos then
      v[i] = 0.5 + 1.5 * math.random()
    else
      local m = 0.1 + 0.9 * math.random()
      v[i] = math.random() < 0.5 and -m or m
    end
  end
  return v
end

-- A tensor with the given values (row-major) and layout, without history.
local function make(spec, vals, dtype)
  local opts = { dtype = dtype or "float64" }
  local shape = shape_of(spec)
  if #shape == 0 then return torch.tensor(vals[1], opts) end
  local t = torch.tensor(vals, opts):view(shape)
  if spec.t then t = t:transpose(-1, -2):contiguous():transpose(-1, -2) end
  return t
end

local function fmt_list(l)
  local parts = {}
  for i = 1, math.min(#l, 12) do parts[i] = string.format("%.8g", l[i]) end
  if #l > 12 then parts[#parts + 1] = "..." end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function assert_close_list(got, want, rtol, atol, what)
  assert(#got == #want, string.format("%s: %d values, expected %d", what, #got, #want))
  for i = 1, #got do
    local a, b = got[i], want[i]
    local ok = (a == b) or math.abs(a - b) <= atol + rtol * math.abs(b)
    if not ok then
      error(string.format("%s differs at flat index %d: %.10g vs %.10g\n  got:      %s\n  expected: %s", what, i,
        a, b, fmt_list(got), fmt_list(want)), 2)
    end
  end
end

-- Runs fn on fresh leaves (requiring grad) made from `valsets`; returns the leaves and output.
local function forward(case, valsets, dtype)
  local ins = {}
  for k, spec in ipairs(case[3]) do ins[k] = make(spec, valsets[k], dtype):requires_grad_() end
  return ins, case[2](table.unpack(ins, 1, #case[3]))
end

-- sum(fn(inputs) * v) with grad mode off, as a Lua number.
local function objective(case, valsets, v)
  return torch.no_grad(function()
    local ins = {}
    for k, spec in ipairs(case[3]) do ins[k] = make(spec, valsets[k]) end
    local out = case[2](table.unpack(ins, 1, #case[3]))
    assert(not out.requires_grad, "a result computed under no_grad requires grad")
    return (out * v):sum():item()
  end)
end

-- Checks the gradient that backward gives every input against central differences of
-- sum(fn(inputs) * v), v a fixed random upstream gradient.
local function gradcheck(case, seed)
  math.randomseed(seed)
  local valsets = {}
  for k, spec in ipairs(case[3]) do valsets[k] = draw(spec) end
  local ins, out = forward(case, valsets)
  assert(torch.is_tensor(out), "the case must return a tensor")
  assert.are.equal("float64", out.dtype)
  assert(out.requires_grad and out.grad_fn ~= nil, "the result does not require grad: no backward is recorded")
  local oshape = out.shape
  local v = make(oshape, draw(oshape))
  out:backward(v)
  for k, spec in ipairs(case[3]) do
    local g = ins[k].grad
    assert(g ~= nil, "input " .. k .. " got no gradient")
    H.assert_meta(g, shape_of(spec), "float64", "gradient of input " .. k)
    local numeric = {}
    local vals = valsets[k]
    for i = 1, #vals do
      local keep = vals[i]
      vals[i] = keep + EPS
      local up = objective(case, valsets, v)
      vals[i] = keep - EPS
      local down = objective(case, valsets, v)
      vals[i] = keep
      numeric[i] = (up - down) / (2 * EPS)
    end
    assert_close_list(H.values(g), numeric, 1e-5, 1e-6, "gradient of input " .. k)
  end
end

-- The float32 gradients agree with the float64 ones (autograd works in both).
local function float32_check(case, seed)
  math.randomseed(seed)
  local valsets = {}
  for k, spec in ipairs(case[3]) do valsets[k] = draw(spec) end
  local ins64, out64 = forward(case, valsets, "float64")
  local ins32, out32 = forward(case, valsets, "float32")
  assert.are.equal("float32", out32.dtype)
  local v = make(out64.shape, draw(out64.shape))
  out64:backward(v)
  out32:backward(v:float())
  for k = 1, #ins64 do
    assert(ins32[k].grad ~= nil, "float32 input " .. k .. " got no gradient")
    assert.are.equal("float32", ins32[k].grad.dtype)
    assert_close_list(H.values(ins32[k].grad), H.values(ins64[k].grad), 1e-3, 1e-4, "float32 gradient of input " .. k)
  end
end

-- Constants (indices are 1-based, as everywhere in moontorch).
local IDX = torch.tensor({ 3, 1, 1 })                  -- index_select on a dim of size 3, with a repeat
local GIDX = torch.tensor({ { 1, 1 }, { 3, 2 } })      -- gather along dim 2 of a [2, 3]
local MASK = torch.tensor({ { true, false, true }, { false, false, true } })

local CASES = {
  -- elementwise binary, with broadcasting and numbers
  { "a + b", function(a, b) return a + b end, { { 2, 3 }, { 2, 3 } }, grad_fn = "AddBackward0" },
  { "a + b, b broadcast [3]", function(a, b) return a + b end, { { 2, 3 }, { 3 } }, grad_fn = "AddBackward0" },
  { "a + b, [2, 1] + [1, 3]", function(a, b) return a + b end, { { 2, 1 }, { 1, 3 } } },
  { "a + b, b 0-dim", function(a, b) return a + b end, { { 2, 3 }, {} } },
  { "a + b, non-contiguous", function(a, b) return a + b end, { { 3, 2, t = true }, { 3, 2 } } },
  { "a + 2", function(a) return a + 2 end, { { 2, 3 } }, grad_fn = "AddBackward0" },
  { "a:add(b, 2)", function(a, b) return a:add(b, 2) end, { { 2, 3 }, { 3 } }, grad_fn = "AddBackward0" },
  { "a - b", function(a, b) return a - b end, { { 2, 3 }, { 2, 1 } }, grad_fn = "SubBackward0" },
  { "a:sub(b, 0.5)", function(a, b) return a:sub(b, 0.5) end, { { 2, 3 }, { 2, 3 } }, grad_fn = "SubBackward0" },
  { "2 - a", function(a) return 2 - a end, { { 4 } }, grad_fn = "RsubBackward1" },
  { "a * b", function(a, b) return a * b end, { { 2, 3 }, { 2, 3 } }, grad_fn = "MulBackward0" },
  { "a * b, broadcast both", function(a, b) return a * b end, { { 4, 1, 3 }, { 2, 1 } } },
  { "a * 3", function(a) return a * 3 end, { { 2, 3 } }, grad_fn = "MulBackward0" },
  { "a / b", function(a, b) return a / b end, { { 2, 3 }, { 2, 3, pos = true } }, grad_fn = "DivBackward0" },
  { "a / b, b broadcast", function(a, b) return a / b end, { { 2, 3 }, { 3, pos = true } } },
  { "a / 4", function(a) return a / 4 end, { { 2, 3 } }, grad_fn = "DivBackward0" },
  { "2 / a", function(a) return 2 / a end, { { 5, pos = true } } },
  { "-a", function(a) return -a end, { { 2, 3 } }, grad_fn = "NegBackward0" },
  { "a ^ b", function(a, b) return a ^ b end, { { 2, 3, pos = true }, { 2, 3 } }, grad_fn = "PowBackward1" },
  { "a:pow(b), b broadcast", function(a, b) return a:pow(b) end, { { 2, 3, pos = true }, { 3 } } },
  { "a ^ 2", function(a) return a ^ 2 end, { { 2, 3 } }, grad_fn = "PowBackward0" },
  { "a ^ 0.5", function(a) return a ^ 0.5 end, { { 6, pos = true } } },
  { "a ^ -1.5", function(a) return a ^ -1.5 end, { { 6, pos = true } } },
  { "2 ^ a", function(a) return 2 ^ a end, { { 2, 3 } }, grad_fn = "PowBackward1" },
  { "maximum", function(a, b) return a:maximum(b) end, { { 2, 3 }, { 3 } }, grad_fn = "MaximumBackward0" },
  { "minimum", function(a, b) return torch.minimum(a, b) end, { { 2, 3 }, { 2, 3 } }, grad_fn = "MinimumBackward0" },
  { "fmod", function(a, b) return a:fmod(b) end, { { 2, 3 }, { 2, 3, pos = true } }, grad_fn = "FmodBackward1" },
  { "fmod by a number", function(a) return a:fmod(0.3) end, { { 2, 3 } }, grad_fn = "FmodBackward0" },
  { "remainder", function(a, b) return a:remainder(b) end, { { 2, 3 }, { 3, pos = true } }, grad_fn = "RemainderBackward1" },
  { "a * a (one input used twice)", function(a) return a * a end, { { 2, 3 } } },
  { "a:exp() * a + a", function(a) return a:exp() * a + a end, { { 3 } } },

  -- unary
  { "abs", function(a) return a:abs() end, { { 2, 3 } }, grad_fn = "AbsBackward0" },
  { "exp", function(a) return a:exp() end, { { 2, 3 } }, grad_fn = "ExpBackward0" },
  { "exp, non-contiguous", function(a) return a:exp() end, { { 3, 4, t = true } } },
  { "exp, 0-dim", function(a) return a:exp() end, { {} } },
  { "expm1", function(a) return a:expm1() end, { { 5 } }, grad_fn = "Expm1Backward0" },
  { "log", function(a) return a:log() end, { { 2, 3, pos = true } }, grad_fn = "LogBackward0" },
  { "log2", function(a) return a:log2() end, { { 5, pos = true } }, grad_fn = "Log2Backward0" },
  { "log1p", function(a) return a:log1p() end, { { 5, pos = true } }, grad_fn = "Log1PBackward0" },
  { "sqrt", function(a) return a:sqrt() end, { { 2, 3, pos = true } }, grad_fn = "SqrtBackward0" },
  { "rsqrt", function(a) return a:rsqrt() end, { { 5, pos = true } }, grad_fn = "RsqrtBackward0" },
  { "reciprocal", function(a) return a:reciprocal() end, { { 5, pos = true } }, grad_fn = "ReciprocalBackward0" },
  { "square", function(a) return a:square() end, { { 2, 3 } }, grad_fn = "PowBackward0" },
  { "sin", function(a) return a:sin() end, { { 2, 3 } }, grad_fn = "SinBackward0" },
  { "cos", function(a) return a:cos() end, { { 2, 3 } }, grad_fn = "CosBackward0" },
  { "tan", function(a) return a:tan() end, { { 2, 3 } }, grad_fn = "TanBackward0" },
  { "tanh", function(a) return a:tanh() end, { { 2, 3 } }, grad_fn = "TanhBackward0" },
  { "sigmoid", function(a) return a:sigmoid() end, { { 2, 3 } }, grad_fn = "SigmoidBackward0" },
  { "relu", function(a) return a:relu() end, { { 2, 3 } }, grad_fn = "ReluBackward0" },
  { "erf", function(a) return a:erf() end, { { 2, 3 } }, grad_fn = "ErfBackward0" },
  { "neg", function(a) return a:neg() end, { { 4 } }, grad_fn = "NegBackward0" },
  { "floor (zero gradient)", function(a) return a:floor() end, { { 5 } }, grad_fn = "FloorBackward0" },
  { "ceil (zero gradient)", function(a) return a:ceil() end, { { 5 } }, grad_fn = "CeilBackward0" },
  { "round (zero gradient)", function(a) return a:round() end, { { 5 } }, grad_fn = "RoundBackward0" },
  { "trunc (zero gradient)", function(a) return a:trunc() end, { { 5 } }, grad_fn = "TruncBackward0" },
  { "sign (zero gradient)", function(a) return a:sign() end, { { 5 } }, grad_fn = "SignBackward0" },
  { "clamp(min, max)", function(a) return a:clamp(-0.5, 0.5) end, { { 3, 4 } }, grad_fn = "ClampBackward1" },
  { "clamp(min)", function(a) return a:clamp(-0.5) end, { { 3, 4 } }, grad_fn = "ClampBackward1" },
  { "clamp(nil, max)", function(a) return a:clamp(nil, 0.5) end, { { 3, 4 } }, grad_fn = "ClampBackward1" },

  -- reductions
  { "sum()", function(a) return a:sum() end, { { 2, 3 } }, grad_fn = "SumBackward0" },
  { "sum(2)", function(a) return a:sum(2) end, { { 2, 3 } }, grad_fn = "SumBackward1" },
  { "sum(-1, true)", function(a) return a:sum(-1, true) end, { { 2, 3 } }, grad_fn = "SumBackward1" },
  { "sum({1, 3})", function(a) return a:sum({ 1, 3 }) end, { { 2, 3, 2 } } },
  { "sum(1), non-contiguous", function(a) return a:sum(1) end, { { 3, 4, t = true } } },
  { "sum() of a 0-dim", function(a) return a:sum() end, { {} } },
  { "sum(2) of an empty tensor", function(a) return a:sum(2) end, { { 0, 3 } } },
  { "mean()", function(a) return a:mean() end, { { 2, 3 } }, grad_fn = "MeanBackward0" },
  { "mean(1, true)", function(a) return a:mean(1, true) end, { { 2, 3 } }, grad_fn = "MeanBackward1" },
  { "prod()", function(a) return a:prod() end, { { 2, 3 } }, grad_fn = "ProdBackward0" },
  { "prod(2)", function(a) return a:prod(2) end, { { 2, 3 } }, grad_fn = "ProdBackward1" },
  { "prod() with one zero", function(a) return a:prod() end, { { 4, vals = { 0.5, 0, -2, 1.5 } } } },
  { "prod(2) with zeros", function(a) return a:prod(2) end, { { 2, 3, vals = { 0, 2, 0, 0.5, 0, 3 } } } },
  { "var()", function(a) return a:var() end, { { 2, 3 } }, grad_fn = "VarBackward0" },
  { "var(2)", function(a) return a:var(2) end, { { 2, 4 } }, grad_fn = "VarBackward0" },
  { "var(1, false, true) (biased, keepdim)", function(a) return a:var(1, false, true) end, { { 3, 2 } } },
  { "var with correction 2", function(a) return a:var({ dim = 2, correction = 2 }) end, { { 2, 5 } } },
  { "std()", function(a) return a:std() end, { { 2, 3 } }, grad_fn = "StdBackward0" },
  { "std(1)", function(a) return a:std(1) end, { { 4, 3 } }, grad_fn = "StdBackward0" },
  { "amax()", function(a) return a:amax() end, { { 2, 3 } }, grad_fn = "AmaxBackward0" },
  { "amax(2, true)", function(a) return a:amax(2, true) end, { { 3, 4 } }, grad_fn = "AmaxBackward0" },
  { "amin(1)", function(a) return a:amin(1) end, { { 3, 4 } }, grad_fn = "AminBackward0" },
  -- PyTorch names these MaxBackward1/MinBackward1; ours are the amax/amin nodes, whose
  -- gradient (split evenly among ties) is the same.
  { "max()", function(a) return a:max() end, { { 2, 3 } }, grad_fn = "AmaxBackward0" },
  { "min()", function(a) return a:min() end, { { 2, 3 } }, grad_fn = "AminBackward0" },
  { "max(2) values", function(a) return (a:max(2)) end, { { 3, 4 } }, grad_fn = "MaxBackward0" },
  { "max(1, true) values", function(a) return (a:max(1, true)) end, { { 3, 4 } }, grad_fn = "MaxBackward0" },
  { "min(2) values, non-contiguous", function(a) return (a:min(2)) end, { { 3, 4, t = true } }, grad_fn = "MinBackward0" },
  { "norm()", function(a) return a:norm() end, { { 2, 3 } } },
  { "norm(1, 2)", function(a) return a:norm(1, 2) end, { { 2, 3 } } },
  { "cumsum(2)", function(a) return a:cumsum(2) end, { { 2, 4 } }, grad_fn = "CumsumBackward0" },
  { "cumsum(1)", function(a) return a:cumsum(1) end, { { 3, 2 } }, grad_fn = "CumsumBackward0" },
  { "softmax(2)", function(a) return a:softmax(2) end, { { 2, 4 } }, grad_fn = "SoftmaxBackward0" },
  { "softmax(1)", function(a) return a:softmax(1) end, { { 3, 2 } }, grad_fn = "SoftmaxBackward0" },
  { "softmax(2) of a 3-D, non-contiguous", function(a) return a:softmax(2) end, { { 2, 3, 4, t = true } } },
  { "log_softmax(2)", function(a) return a:log_softmax(2) end, { { 2, 4 } }, grad_fn = "LogSoftmaxBackward0" },
  { "log_softmax(-1) of a 3-D", function(a) return a:log_softmax(-1) end, { { 2, 2, 3 } } },
  { "sort(2) values", function(a) return (a:sort(2)) end, { { 3, 4 } }, grad_fn = "SortBackward0" },
  { "sort(1, true) values", function(a) return (a:sort(1, true)) end, { { 4, 2 } }, grad_fn = "SortBackward0" },
  { "topk(2) values", function(a) return (a:topk(2)) end, { { 3, 4 } }, grad_fn = "TopkBackward0" },
  { "topk(2, 1, false) values", function(a) return (a:topk(2, 1, false)) end, { { 4, 3 } }, grad_fn = "TopkBackward0" },

  -- matrix products
  { "matmul 1-D . 1-D", function(a, b) return a:matmul(b) end, { { 3 }, { 3 } }, grad_fn = "DotBackward0" },
  { "dot", function(a, b) return a:dot(b) end, { { 4 }, { 4 } }, grad_fn = "DotBackward0" },
  { "matmul 2-D . 1-D", function(a, b) return a:matmul(b) end, { { 2, 3 }, { 3 } }, grad_fn = "MvBackward0" },
  { "matmul 1-D . 2-D", function(a, b) return a:matmul(b) end, { { 3 }, { 3, 4 } } },
  { "matmul 2-D . 2-D", function(a, b) return a:matmul(b) end, { { 2, 3 }, { 3, 4 } }, grad_fn = "MmBackward0" },
  { "matmul, transposed operands", function(a, b) return a:matmul(b) end, { { 2, 3, t = true }, { 3, 4, t = true } } },
  { "mm", function(a, b) return a:mm(b) end, { { 3, 2 }, { 2, 2 } }, grad_fn = "MmBackward0" },
  { "bmm", function(a, b) return a:bmm(b) end, { { 2, 2, 3 }, { 2, 3, 2 } }, grad_fn = "BmmBackward0" },
  { "matmul 3-D . 3-D", function(a, b) return a:matmul(b) end, { { 2, 2, 3 }, { 2, 3, 2 } } },
  { "matmul 3-D . 2-D", function(a, b) return a:matmul(b) end, { { 2, 2, 3 }, { 3, 2 } } },
  { "matmul 1-D . 3-D", function(a, b) return a:matmul(b) end, { { 3 }, { 2, 3, 2 } } },
  { "matmul 3-D . 1-D", function(a, b) return a:matmul(b) end, { { 2, 2, 3 }, { 3 } } },
  { "matmul, broadcast batch [2, 1] x [3]", function(a, b) return a:matmul(b) end, { { 2, 1, 2, 3 }, { 3, 3, 2 } } },

  -- views
  { "view", function(a) return a:view(3, 2) end, { { 2, 3 } }, grad_fn = "ViewBackward0" },
  { "view(-1)", function(a) return a:view(-1) end, { { 2, 3 } }, grad_fn = "ViewBackward0" },
  { "reshape", function(a) return a:reshape(6) end, { { 2, 3 } }, grad_fn = "ReshapeAliasBackward0" },
  { "reshape of a non-contiguous (copies)", function(a) return a:reshape(6) end, { { 2, 3, t = true } } },
  { "flatten()", function(a) return a:flatten() end, { { 2, 3, 2 } } },
  { "flatten(2, 3)", function(a) return a:flatten(2, 3) end, { { 2, 3, 2 } } },
  { "transpose(1, 2)", function(a) return a:transpose(1, 2) end, { { 2, 3 } }, grad_fn = "TransposeBackward0" },
  { "t()", function(a) return a:t() end, { { 2, 3 } }, grad_fn = "TBackward0" },
  { "permute(3, 1, 2)", function(a) return a:permute(3, 1, 2) end, { { 2, 3, 2 } }, grad_fn = "PermuteBackward0" },
  { "squeeze(1)", function(a) return a:squeeze(1) end, { { 1, 3 } }, grad_fn = "SqueezeBackward1" },
  { "squeeze()", function(a) return a:squeeze() end, { { 1, 3, 1 } }, grad_fn = "SqueezeBackward0" },
  { "unsqueeze(2)", function(a) return a:unsqueeze(2) end, { { 2, 3 } }, grad_fn = "UnsqueezeBackward0" },
  { "narrow(2, 2, 2)", function(a) return a:narrow(2, 2, 2) end, { { 2, 4 } }, grad_fn = "SliceBackward0" },
  { "select(2, 2)", function(a) return a:select(2, 2) end, { { 2, 3 } }, grad_fn = "SelectBackward0" },
  { "t[2]", function(a) return a[2] end, { { 3, 2 } }, grad_fn = "SelectBackward0" },
  { "t[-1] of a non-contiguous", function(a) return a[-1] end, { { 3, 2, t = true } } },
  { "expand(2, 3)", function(a) return a:expand(2, 3) end, { { 3 } }, grad_fn = "ExpandBackward0" },
  { "expand(-1, 4)", function(a) return a:expand(-1, 4) end, { { 3, 1 } }, grad_fn = "ExpandBackward0" },
  { "expand_as", function(a, b) return a:expand_as(b) + b end, { { 1, 3 }, { 2, 3 } } },
  { "view_as", function(a, b) return a:view_as(b) * b end, { { 2, 3 }, { 3, 2 } } },
  { "reshape_as", function(a, b) return a:reshape_as(b) * b end, { { 6 }, { 3, 2 } } },
  { "split(2, 2) piece 2", function(a) return a:split(2, 2)[2] end, { { 2, 5 } } },
  { "chunk(2) piece 1", function(a) return a:chunk(2)[1] end, { { 5, 2 } } },
  { "unbind(2) piece 3", function(a) return a:unbind(2)[3] end, { { 2, 3 } } },
  { "narrow and select of one input",
    function(a) return a:narrow(1, 1, 2):exp() + a:select(1, 3):sum() end, { { 3, 2 } } },

  -- copies and conversions
  { "clone", function(a) return a:clone() end, { { 2, 3 } }, grad_fn = "CloneBackward0" },
  { "contiguous of a transposed", function(a) return a:contiguous() end, { { 3, 2, t = true } }, grad_fn = "CloneBackward0" },
  { "to(own dtype)", function(a) return a:to(a.dtype) * 2 end, { { 2, 3 } } },

  -- indexing, joining, selecting
  { "index_select(2, idx)", function(a) return a:index_select(2, IDX) end, { { 2, 3 } }, grad_fn = "IndexSelectBackward0" },
  { "index_select(1, idx), non-contiguous", function(a) return a:index_select(1, IDX) end, { { 3, 2, t = true } } },
  { "gather(2, idx)", function(a) return a:gather(2, GIDX) end, { { 2, 3 } }, grad_fn = "GatherBackward0" },
  { "cat({a, b}, 1)", function(a, b) return torch.cat({ a, b }, 1) end, { { 2, 3 }, { 1, 3 } }, grad_fn = "CatBackward0" },
  { "cat({a, b, a}, 2)", function(a, b) return torch.cat({ a, b, a }, 2) end, { { 2, 3 }, { 2, 1 } } },
  { "stack({a, b}, 1)", function(a, b) return torch.stack({ a, b }, 1) end, { { 2, 3 }, { 2, 3 } }, grad_fn = "StackBackward0" },
  { "stack({a, b}, 3)", function(a, b) return torch.stack({ a, b }, 3) end, { { 2, 3 }, { 2, 3, t = true } } },
  { "where(mask, a, b)", function(a, b) return torch.where(MASK, a, b) end, { { 2, 3 }, { 2, 3 } }, grad_fn = "WhereBackward0" },
  { "where(mask, a, b), b broadcast", function(a, b) return torch.where(MASK, a, b) end, { { 2, 3 }, { 3 } } },
  { "where(mask, a, 0.5)", function(a) return torch.where(MASK, a, 0.5) end, { { 2, 3 } } },
  { "masked_fill(mask, 0.5)", function(a) return a:masked_fill(MASK, 0.5) end, { { 2, 3 } }, grad_fn = "MaskedFillBackward0" },

  -- composites
  { "softmax(matmul + bias)", function(x, w, b) return (x:matmul(w) + b):softmax(2) end, { { 2, 3 }, { 3, 4 }, { 4 } } },
  { "mean((tanh(x) - 1)^2)", function(x) return ((x:tanh() - 1) ^ 2):mean() end, { { 3, 3 } } },
}

describe("gradients match finite differences (float64)", function()
  for i, case in ipairs(CASES) do
    it(case[1], function() gradcheck(case, 1000 + i) end)
  end
end)

describe("gradients in float32 match float64", function()
  for i, case in ipairs(CASES) do
    it(case[1], function() float32_check(case, 2000 + i) end)
  end
end)

describe("grad_fn names are PyTorch's", function()
  for i, case in ipairs(CASES) do
    if case.grad_fn then
      it(case[1] .. " records " .. case.grad_fn, function()
        math.randomseed(3000 + i)
        local valsets = {}
        for k, spec in ipairs(case[3]) do valsets[k] = draw(spec) end
        local _, out = forward(case, valsets)
        assert(out.grad_fn ~= nil, "the result has no grad_fn")
        assert.are.equal(case.grad_fn, out.grad_fn:name())
        assert.are.equal(case.grad_fn, tostring(out.grad_fn))
      end)
    end
  end
end)

-- ---- exact gradients at kinks and ties (values from PyTorch 1.13) ----------------------------

describe("gradients at kinks and ties are PyTorch's", function()
  local INF = math.huge
  -- title, fn, inputs (flat float64 values with shapes), expected gradient of sum(fn(...)) per input
  local cases = {
    { "abs'(0) = 0", function(x) return x:abs() end, { { { 3 }, { -1, 0, 2 } } }, { { -1, 0, 1 } } },
    { "relu'(0) = 0", function(x) return x:relu() end, { { { 3 }, { -1, 0, 2 } } }, { { 0, 0, 1 } } },
    { "sqrt'(0) = inf", function(x) return x:sqrt() end, { { { 2 }, { 0, 4 } } }, { { INF, 0.25 } } },
    { "sign has zero gradient", function(x) return x:sign() end, { { { 3 }, { -1, 0, 2 } } }, { { 0, 0, 0 } } },
    { "clamp passes the gradient at its bounds", function(x) return x:clamp(0, 1) end,
      { { { 5 }, { -1, 0, 0.5, 1, 2 } } }, { { 0, 1, 1, 1, 0 } } },
    { "clamp(min) at its bound", function(x) return x:clamp(0) end, { { { 5 }, { -1, 0, 0.5, 1, 2 } } },
      { { 0, 1, 1, 1, 1 } } },
    { "maximum splits ties evenly", function(a, b) return a:maximum(b) end,
      { { { 2 }, { 1, 2 } }, { { 2 }, { 1, 3 } } }, { { 0.5, 0 }, { 0.5, 1 } } },
    { "minimum splits ties evenly", function(a, b) return a:minimum(b) end,
      { { { 2 }, { 1, 2 } }, { { 2 }, { 1, 3 } } }, { { 0.5, 1 }, { 0.5, 0 } } },
    { "amax() splits ties evenly", function(x) return x:amax() end, { { { 4 }, { 1, 3, 3, 2 } } },
      { { 0, 0.5, 0.5, 0 } } },
    { "amax(2) splits ties evenly per row", function(x) return x:amax(2) end, { { { 2, 3 }, { 1, 3, 3, 2, 2, 1 } } },
      { { 0, 0.5, 0.5, 0.5, 0.5, 0 } } },
    { "amin() splits ties evenly", function(x) return x:amin() end, { { { 4 }, { 1, 1, 3, 2 } } },
      { { 0.5, 0.5, 0, 0 } } },
    { "max() splits ties evenly", function(x) return x:max() end, { { { 4 }, { 1, 3, 3, 2 } } },
      { { 0, 0.5, 0.5, 0 } } },
    { "min() splits ties evenly", function(x) return x:min() end, { { { 4 }, { 1, 1, 3, 2 } } },
      { { 0.5, 0.5, 0, 0 } } },
    { "x ^ 2 at 0", function(x) return x ^ 2 end, { { { 2 }, { 0, 2 } } }, { { 0, 4 } } },
    { "x ^ 0.5 at 0 is inf", function(x) return x ^ 0.5 end, { { { 2 }, { 0, 4 } } }, { { INF, 0.25 } } },
    { "a ^ b with a = 0 gives b a zero gradient", function(a, b) return a ^ b end,
      { { { 2 }, { 0, 2 } }, { { 2 }, { 2, 3 } } }, { { 0, 12 }, { 0, 8 * math.log(2) } } },
    { "0 ^ 0", function(a, b) return a ^ b end, { { { 1 }, { 0 } }, { { 1 }, { 0 } } }, { { 0 }, { 0 } } },
    { "prod() with two zeros", function(x) return x:prod() end, { { { 3 }, { 2, 0, 0 } } }, { { 0, 0, 0 } } },
    { "std() of a constant is 0, not NaN", function(x) return x:std() end, { { { 3 }, { 1, 1, 1 } } },
      { { 0, 0, 0 } } },
    { "fmod", function(a, b) return a:fmod(b) end, { { { 2 }, { 5, -5 } }, { { 2 }, { 3, 3 } } },
      { { 1, 1 }, { -1, 1 } } },
    { "remainder", function(a, b) return a:remainder(b) end, { { { 2 }, { 5, -5 } }, { { 2 }, { 3, 3 } } },
      { { 1, 1 }, { -1, 2 } } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ins = {}
      for k, spec in ipairs(c[3]) do ins[k] = torch.tensor(spec[2], F64):view(spec[1]):requires_grad_() end
      c[2](table.unpack(ins)):sum():backward()
      for k = 1, #ins do
        assert(ins[k].grad ~= nil, "input " .. k .. " got no gradient")
        H.assert_values(ins[k].grad, c[4][k], false, "gradient of input " .. k)
      end
    end)
  end

  -- Ties in max(d) / min(d) / sort / topk: the gradient goes where the returned index points.
  local function one_hot_check(values, indices, x, dim)
    values:sum():backward()
    local want = torch.zeros_like(x):scatter(dim, indices, 1.0)
    H.assert_values(x.grad, H.values(want), false)
  end

  it("max(2) routes the gradient to the returned index among ties", function()
    local x = torch.tensor({ { 1, 3, 3 }, { 2, 2, 1 } }, F64):requires_grad_()
    local v, i = x:max(2, true)
    one_hot_check(v, i, x, 2)
  end)

  it("min(1) routes the gradient to the returned index among ties", function()
    local x = torch.tensor({ { 1, 3 }, { 1, 2 }, { 4, 2 } }, F64):requires_grad_()
    local v, i = x:min(1, true)
    one_hot_check(v, i, x, 1)
  end)

  it("sort routes the gradient by its indices", function()
    local x = torch.tensor({ 3, 1, 3, 2 }, F64):requires_grad_()
    local v, i = x:sort()
    ;(v * torch.tensor({ 1, 2, 3, 4 }, F64)):sum():backward()
    local g = H.values(x.grad)
    local idx = H.values(i)
    for k = 1, 4 do assert.are.equal(k, g[idx[k]]) end
  end)

  it("topk routes the gradient by its indices", function()
    local x = torch.tensor({ 3, 1, 3, 2 }, F64):requires_grad_()
    local v, i = x:topk(2)
    ;(v * torch.tensor({ 10, 20 }, F64)):sum():backward()
    local want = { 0, 0, 0, 0 }
    local idx = H.values(i)
    want[idx[1]], want[idx[2]] = 10, 20
    H.assert_values(x.grad, want, false)
  end)
end)

-- ---- leaves and requires_grad -------------------------------------------------------------------

describe("requires_grad", function()
  it("is false by default and set by requires_grad_(), which returns the tensor", function()
    local t = torch.ones(2)
    assert.is_false(t.requires_grad)
    assert.is_true(t.is_leaf)
    assert.are.equal(t, t:requires_grad_())
    assert.is_true(t.requires_grad)
    assert.are.equal(t, t:requires_grad_(false))
    assert.is_false(t.requires_grad)
  end)

  it("is settable as a field on leaves", function()
    local t = torch.zeros(3)
    t.requires_grad = true
    assert.is_true(t.requires_grad)
    t.requires_grad = false
    assert.is_false(t.requires_grad)
    H.expect_error(function() t.requires_grad = 1 end, "requires_grad", "must be a boolean")
  end)

  it("is available on every creation function", function()
    local made = {
      torch.tensor({ 1.0, 2.0 }, { requires_grad = true }),
      torch.zeros(2, { requires_grad = true }),
      torch.ones({ 2, 2 }, { requires_grad = true }),
      torch.empty(2, { requires_grad = true }),
      torch.full({ 2 }, 1.5, { requires_grad = true }),
      torch.rand(2, { requires_grad = true }),
      torch.randn(2, 3, { requires_grad = true, dtype = "float64" }),
      torch.arange(0, 3, 1, { dtype = "float32", requires_grad = true }),
      torch.linspace(0, 1, 5, { requires_grad = true }),
      torch.eye(2, { requires_grad = true }),
      torch.zeros_like(torch.ones(2), { requires_grad = true }),
      torch.ones_like(torch.ones(2), { requires_grad = true }),
      torch.randn_like(torch.ones(2), { requires_grad = true }),
      torch.full_like(torch.ones(2), 3, { requires_grad = true }),
      torch.ones(2):new_zeros(3, { requires_grad = true }),
    }
    for i, t in ipairs(made) do
      assert.is_true(t.requires_grad, "creation #" .. i)
      assert.is_true(t.is_leaf, "creation #" .. i)
      assert.is_nil(t.grad_fn, "creation #" .. i)
    end
    assert.is_false(torch.zeros(2, { requires_grad = false }).requires_grad)
  end)

  it("is refused for integer and bool tensors, with a clear message", function()
    H.expect_error(function() torch.arange(3):requires_grad_() end, "requires_grad_", "floating point")
    H.expect_error(function() torch.tensor({ 1, 2 }, { requires_grad = true }) end, "tensor", "floating point")
    H.expect_error(function() torch.zeros(2, { dtype = "int32", requires_grad = true }) end, "zeros", "floating point")
    H.expect_error(function() torch.randint(0, 5, { 3 }, { requires_grad = true }) end, "randint", "floating point")
    H.expect_error(function() torch.tensor({ true }).requires_grad = true end, "requires_grad", "floating point")
    H.expect_error(function() torch.zeros(2, { requires_grad = "yes" }) end, "zeros", "boolean")
  end)

  it("cannot be switched off on a non-leaf (detach() is the way)", function()
    local x = torch.ones(2, { requires_grad = true })
    local y = x * 2
    assert.is_false(y.is_leaf)
    assert.is_true(y.requires_grad)
    H.expect_error(function() y:requires_grad_(false) end, "requires_grad_", { "leaf", "detach" })
    H.expect_error(function() y.requires_grad = false end, "requires_grad", "leaf")
    assert.are.equal(y, y:requires_grad_(true)) -- already true: allowed, as in PyTorch
  end)

  it("spreads to results of ops with one input that requires it", function()
    local x = torch.ones(2, { requires_grad = true })
    local c = torch.ones(2)
    assert.is_true((x + c).requires_grad)
    assert.is_true((c * x).requires_grad)
    assert.is_false((c * c).requires_grad)
    assert.is_nil((c * c).grad_fn)
  end)

  it("never reaches integer or bool results", function()
    local x = torch.tensor({ { 1, 5, 2 }, { 7, 0, 3 } }, F64):requires_grad_()
    local _, i = x:max(2)
    local _, si = x:sort(2)
    local _, ti = x:topk(2)
    for name, t in pairs({ argmax = x:argmax(), gt = x:gt(1), eq = x:eq(x), max_indices = i, sort_indices = si,
      topk_indices = ti, long = x:long(), bool = x:bool(), isnan = x:isnan() }) do
      assert.is_false(t.requires_grad, name)
      assert.is_nil(t.grad_fn, name)
    end
  end)

  it("torch.tensor(t) copies without history", function()
    local x = torch.ones(2, { requires_grad = true })
    local y = torch.tensor(x * 2)
    assert.is_false(y.requires_grad)
    assert.is_true(y.is_leaf)
    local z = torch.tensor(x, { requires_grad = true })
    assert.is_true(z.requires_grad)
    assert.is_true(z.is_leaf)
  end)

  it("shows in tostring as PyTorch prints it", function()
    local x = torch.tensor({ 1.0, 2.0 }, { requires_grad = true })
    assert.are.equal("tensor([1., 2.], requires_grad=True)", tostring(x))
    assert.are.equal("tensor([2., 4.], grad_fn=<MulBackward0>)", tostring(x * 2))
    assert.are.equal("tensor([1., 2.])", tostring(x:detach()))
  end)
end)

describe("grad_fn", function()
  it("is nil for leaves and a node named as in PyTorch for results", function()
    local x = torch.ones(2, { requires_grad = true })
    assert.is_nil(x.grad_fn)
    local y = x * 3
    assert.are.equal("MulBackward0", y.grad_fn:name())
    assert.are.equal("MulBackward0", tostring(y.grad_fn))
    assert.are.equal("userdata", type(y.grad_fn))
  end)

  it("links to the inputs' nodes through next_functions (false for leaves and constants)", function()
    local x = torch.ones(2, { requires_grad = true })
    local c = torch.ones(2)
    local m = x * c
    local s = (m + 1):exp()
    local nf = m.grad_fn.next_functions
    assert.are.equal(2, #nf)
    assert.is_false(nf[1])
    assert.is_false(nf[2])
    local add = s.grad_fn.next_functions[1]
    assert.are.equal("AddBackward0", add:name())
    assert.is_true(add.next_functions[1] == m.grad_fn)
    assert.is_true(s.grad_fn == s.grad_fn)
    assert.is_false(s.grad_fn == m.grad_fn)
  end)

  it("keeps its graph alive after the tensors are gone", function()
    local fn
    do
      local x = torch.ones(2, { requires_grad = true })
      fn = ((x * 2) + 1):exp().grad_fn
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal("ExpBackward0", fn:name())
    assert.are.equal("AddBackward0", fn.next_functions[1]:name())
    assert.are.equal("MulBackward0", fn.next_functions[1].next_functions[1]:name())
  end)
end)

-- ---- backward ---------------------------------------------------------------------------------

describe("backward", function()
  it("fills .grad of every leaf that requires grad, and only those", function()
    local x = torch.tensor({ 1, 2, 3 }, F64):requires_grad_()
    local c = torch.tensor({ 4, 5, 6 }, F64)
    local y = x * c
    local s = y:sum()
    assert.is_nil(x.grad)
    s:backward()
    H.assert_values(x.grad, { 4, 5, 6 })
    assert.is_nil(c.grad)
    assert.is_nil(y.grad) -- non-leaves keep no gradient, as in PyTorch
    assert.are.equal("float64", x.grad.dtype)
  end)

  it("needs a gradient for an output with more than one element", function()
    local x = torch.ones(2, 2, { requires_grad = true })
    local y = x * 2
    H.expect_error(function() y:backward() end, "backward", { "one element", "gradient" })
    y:backward(torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }))
    H.assert_values(x.grad, { 2, 4, 6, 8 })
  end)

  it("checks the gradient's shape and type", function()
    local x = torch.ones(2, { requires_grad = true })
    local y = x * 2
    H.expect_error(function() y:backward(torch.ones(3)) end, "backward", "shape")
    H.expect_error(function() y:backward(5) end, "backward", "tensor expected")
    H.expect_error(function() y:backward(torch.ones(2), { bogus = true }) end, "backward", "unknown option")
    H.expect_error(function() y:backward(torch.ones(2), { create_graph = true }) end, "backward", "create_graph")
  end)

  it("casts a gradient of another float dtype", function()
    local x = torch.ones(2, { requires_grad = true })
    ;(x * 2):backward(torch.tensor({ 1, 2 }, F64))
    assert.are.equal("float32", x.grad.dtype)
    H.assert_values(x.grad, { 2, 4 })
  end)

  it("refuses a tensor that does not require grad", function()
    H.expect_error(function() torch.ones(1):backward() end, "backward", "does not require grad")
  end)

  it("on a leaf accumulates the gradient itself", function()
    local x = torch.ones(2, { requires_grad = true })
    x:backward(torch.tensor({ 3.0, 4.0 }))
    H.assert_values(x.grad, { 3, 4 })
  end)

  it("sums the gradients of a tensor used along several paths", function()
    local x = torch.tensor(3.0, F64):requires_grad_()
    local y = x * x + x:exp() + x
    y:backward()
    H.assert_values(x.grad, { 2 * 3 + math.exp(3) + 1 })
  end)

  it("handles a deep chain without running out of stack", function()
    local x = torch.ones(1, { requires_grad = true })
    local y = x
    for _ = 1, 20000 do y = y * 1 end
    y:sum():backward()
    H.assert_values(x.grad, { 1 })
  end)

  it("works in float32 and in float64 alike", function()
    for _, dt in ipairs({ "float32", "float64" }) do
      local w = torch.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = dt, requires_grad = true })
      local x = torch.tensor({ 1, -1 }, { dtype = dt })
      ;(w:matmul(x)):sum():backward()
      assert.are.equal(dt, w.grad.dtype)
      H.assert_values(w.grad, { 1, -1, 1, -1 })
    end
  end)

  it("brings gradients back through dtype conversions in the leaf's dtype", function()
    local x = torch.tensor({ 1.0, 2.0 }, { requires_grad = true }) -- float32
    local w = torch.tensor({ 0.25, -3 }, F64)
    assert.are.equal("ToCopyBackward0", x:double().grad_fn:name())
    ;(x:double() * w):sum():backward()
    assert.are.equal("float32", x.grad.dtype)
    H.assert_values(x.grad, { 0.25, -3 })
    local y = torch.tensor({ 1, 2 }, { dtype = "float64", requires_grad = true })
    ;(y:float() * 2):sum():backward()
    assert.are.equal("float64", y.grad.dtype)
    H.assert_values(y.grad, { 2, 2 })
  end)
end)

describe(".grad", function()
  it("accumulates over backward calls until zeroed", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    ;(x * 3):sum():backward()
    local g = x.grad
    ;(x * x):sum():backward()
    H.assert_values(x.grad, { 3 + 2, 3 + 4 })
    assert.is_true(rawequal(g, x.grad), "accumulation replaced the gradient tensor")
    x.grad:zero_()
    ;(x * 3):sum():backward()
    H.assert_values(x.grad, { 3, 3 })
    x.grad = nil
    assert.is_nil(x.grad)
    ;(x * 5):sum():backward()
    H.assert_values(x.grad, { 5, 5 })
  end)

  it("is the same Lua object on every read", function()
    local x = torch.ones(3, { requires_grad = true })
    x:sum():backward()
    assert.is_true(rawequal(x.grad, x.grad))
  end)

  it("can be assigned a tensor of the same shape and dtype, which it then is", function()
    local x = torch.ones(2, { requires_grad = true })
    local g = torch.tensor({ 10.0, 20.0 })
    x.grad = g
    assert.is_true(rawequal(g, x.grad))
    x:sum():backward()
    H.assert_values(x.grad, { 11, 21 })
    H.expect_error(function() x.grad = torch.ones(3) end, "grad", "shape")
    H.expect_error(function() x.grad = torch.ones(2, F64) end, "grad", "dtype")
    H.expect_error(function() x.grad = 1 end, "grad", "must be a tensor or nil")
  end)
end)

describe("the graph", function()
  it("is freed by backward: a second backward raises", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    local y = (x:exp() * x):sum()
    y:backward()
    H.expect_error(function() y:backward() end, "backward", { "second time", "retain_graph" })
  end)

  it("survives backward with retain_graph, and the gradients add up", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    local y = (x:exp() * x):sum()
    y:backward(nil, { retain_graph = true })
    y:backward({ retain_graph = true })
    y:backward()
    local want = {}
    for i, v in ipairs({ 1, 2 }) do want[i] = 3 * (math.exp(v) * (v + 1)) end
    H.assert_values(x.grad, want)
    H.expect_error(function() y:backward() end, "backward", "second time")
  end)

  it("can be built again from the same leaves after backward", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    for _ = 1, 3 do (x * x):sum():backward() end
    H.assert_values(x.grad, { 6, 12 })
  end)
end)

-- ---- grad mode --------------------------------------------------------------------------------

describe("grad mode", function()
  it("is on by default", function()
    assert.is_true(torch.is_grad_enabled())
  end)

  it("no_grad(fn, ...) runs fn without recording and returns all its results", function()
    local x = torch.ones(2, { requires_grad = true })
    local a, b, c = torch.no_grad(function(p, q)
      assert.is_false(torch.is_grad_enabled())
      return x * p, q, nil
    end, 2, "q")
    assert.is_false(a.requires_grad)
    assert.is_nil(a.grad_fn)
    assert.are.equal("q", b)
    assert.is_nil(c)
    assert.are.equal(3, select("#", torch.no_grad(function() return 1, nil, nil end)))
    assert.is_true(torch.is_grad_enabled())
  end)

  it("no_grad restores the mode when fn raises, and re-raises the same error", function()
    local err = { code = 42 }
    local ok, got = pcall(torch.no_grad, function() error(err) end)
    assert.is_false(ok)
    assert.is_true(rawequal(err, got))
    assert.is_true(torch.is_grad_enabled())
    local ok2, msg = pcall(torch.no_grad, function() error("boom") end)
    assert.is_false(ok2)
    assert.truthy(tostring(msg):find("boom", 1, true))
    assert.is_true(torch.is_grad_enabled())
  end)

  it("nests, and enable_grad records inside no_grad", function()
    local x = torch.ones(2, { requires_grad = true })
    torch.no_grad(function()
      torch.no_grad(function() assert.is_false(torch.is_grad_enabled()) end)
      assert.is_false(torch.is_grad_enabled())
      local y = torch.enable_grad(function() return x * 2 end)
      assert.is_true(y.requires_grad)
      assert.is_false(torch.is_grad_enabled())
    end)
    assert.is_true(torch.is_grad_enabled())
  end)

  it("no_grad wants a function", function()
    H.expect_error(function() torch.no_grad(42) end, "no_grad", "function expected")
    H.expect_error(function() torch.enable_grad() end, "enable_grad", "function expected")
  end)

  it("set_grad_enabled switches it and returns the previous mode", function()
    local x = torch.ones(2, { requires_grad = true })
    assert.is_true(torch.set_grad_enabled(false))
    local ok, y = pcall(function() return x * 2 end)
    assert.is_false(torch.set_grad_enabled(true))
    assert.is_true(ok)
    assert.is_false(y.requires_grad)
    assert.is_true((x * 2).requires_grad)
    H.expect_error(function() torch.set_grad_enabled(1) end, "set_grad_enabled", "boolean expected")
  end)
end)

describe("detach", function()
  it("shares storage, has no history and does not require grad", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    local y = x * 2
    local d = y:detach()
    assert.is_false(d.requires_grad)
    assert.is_true(d.is_leaf)
    assert.is_nil(d.grad_fn)
    assert.are.equal(y:data_ptr(), d:data_ptr())
    local dx = x:detach()
    assert.are.equal(x:data_ptr(), dx:data_ptr())
  end)

  it("stops gradients", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    ;(x:detach() * x):sum():backward()
    H.assert_values(x.grad, { 1, 2 })
  end)
end)

-- ---- in-place rules ---------------------------------------------------------------------------

describe("in-place operations", function()
  it("are refused on a leaf that requires grad while grad mode is on", function()
    local w = torch.ones(2, { requires_grad = true })
    H.expect_error(function() w:add_(1) end, "add_", { "leaf", "in place" })
    H.expect_error(function() w:mul_(2) end, "mul_", "leaf")
    H.expect_error(function() w:zero_() end, "zero_", "leaf")
    H.expect_error(function() w[1] = 3 end, "setindex", { "leaf", "in%-place", "in place" })
    H.assert_values(w, { 1, 1 })
  end)

  it("are allowed on such a leaf under no_grad, and bump its version", function()
    local w = torch.ones(2, { requires_grad = true })
    local v0 = w._version
    torch.no_grad(function()
      w:sub_(torch.tensor({ 0.5, 0.25 }))
      w[2] = 7
    end)
    H.assert_values(w, { 0.5, 7 })
    assert.is_true(w._version > v0)
    assert.is_true(w.requires_grad)
    assert.is_true(w.is_leaf)
  end)

  it("are refused on a tensor with history, and with an input that requires grad", function()
    local x = torch.ones(2, { requires_grad = true })
    local y = x * 2
    H.expect_error(function() y:add_(1) end, "add_", "in%-place")
    local z = torch.zeros(2)
    H.expect_error(function() z:add_(x) end, "add_", "requires grad")
  end)

  it("make backward raise when they overwrote a tensor a node saved", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    local a = torch.tensor({ 3, 4 }, F64)
    local y = (a * x):sum() -- MulBackward0 saves a
    a:mul_(2)
    H.expect_error(function() y:backward() end, "backward", "modified by an in%-place operation")
  end)

  it("on a detached tensor are seen by the graph that saved its data", function()
    local x = torch.tensor({ 1, 2 }, F64):requires_grad_()
    local y = x:exp()
    local s = (y * y):sum() -- saves y
    y:detach():zero_()
    H.expect_error(function() s:backward() end, "backward", "modified by an in%-place operation")
  end)
end)

-- ---- against PyTorch --------------------------------------------------------------------------

describe("a composite expression against PyTorch 1.13", function()
  local function pylist(t)
    local parts = {}
    for i, v in ipairs(H.values(t)) do parts[i] = string.format("%.17g", v) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end

  it("gives PyTorch's gradients for every input", function()
    torch.manual_seed(7)
    local x = torch.randn(4, 3, F64):requires_grad_()
    local w = torch.randn(3, 5, F64):requires_grad_()
    local b = torch.randn(5, F64):requires_grad_()
    local target = torch.tensor({ 2, 5, 1, 3 }) -- 1-based classes

    local function loss_of(x_, w_, b_)
      local h = (x_:matmul(w_) + b_):tanh()
      local logp = (h * 2):log_softmax(2)
      local nll = -logp:gather(2, target:view(4, 1)):mean()
      local extra = (w_ ^ 2):sum() * 0.01 + x_:std(1):sum() + h:amax(1):sum()
        + x_:sigmoid():clamp(0.3, 0.7):prod(2):sum() + torch.cat({ x_:t(), w_ }, 2):abs():mean()
      return nll + extra
    end
    local loss = loss_of(x, w, b)
    loss:backward()

    local py = string.format([[
import torch
d = torch.float64
x = torch.tensor(%s, dtype=d).view(4, 3).requires_grad_()
w = torch.tensor(%s, dtype=d).view(3, 5).requires_grad_()
b = torch.tensor(%s, dtype=d).requires_grad_()
target = torch.tensor([1, 4, 0, 2])
h = (x.matmul(w) + b).tanh()
logp = (h * 2).log_softmax(1)
nll = -logp.gather(1, target.view(4, 1)).mean()
extra = (w ** 2).sum() * 0.01 + x.std(0).sum() + h.amax(0).sum() \
  + x.sigmoid().clamp(0.3, 0.7).prod(1).sum() + torch.cat([x.t(), w], 1).abs().mean()
loss = nll + extra
loss.backward()
print(repr(loss.item()))
for t in (x, w, b):
    print(" ".join(repr(v) for v in t.grad.flatten().tolist()))
]], pylist(x), pylist(w), pylist(b))
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(py)
    f:close()
    local p = assert(io.popen("/usr/bin/python3 " .. H.shquote(path) .. " 2>&1", "r"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert(#lines == 4 and tonumber(lines[1]), "PyTorch did not answer:\n" .. out)
    assert_close_list({ loss:item() }, { tonumber(lines[1]) }, 1e-10, 1e-12, "loss")
    for k, t in ipairs({ x, w, b }) do
      local want = {}
      for v in lines[k + 1]:gmatch("%S+") do want[#want + 1] = tonumber(v) end
      assert_close_list(H.values(t.grad), want, 1e-9, 1e-12, ({ "x", "w", "b" })[k] .. ".grad")
    end
  end)
end)

-- ---- memory -----------------------------------------------------------------------------------

describe("a training loop", function()
  it("holds flat RSS over 10,000 steps without collectgarbage", function()
    if os.getenv("MOONTORCH_SANITIZE") then
      pending("RSS is not measured under sanitizers: ASan keeps freed memory in quarantine")
      return
    end
    local code = [[
      local torch = require "moontorch"
      local page = tonumber(os.getenv("MT_PAGE_SIZE")) or 4096
      local function rss_mb()
        local f = assert(io.open("/proc/self/statm", "r"))
        local resident = tonumber(f:read("l"):match("^%d+%s+(%d+)"))
        f:close()
        return resident * page / 1048576
      end
      torch.manual_seed(0)
      local x = torch.randn(64, 32)
      local target = torch.randn(64, 10)
      local w = torch.randn(32, 10):mul_(0.1):requires_grad_()
      local b = torch.zeros(10, { requires_grad = true })
      local first, base, peak
      local function update()
        w:sub_(w.grad * 0.05)
        b:sub_(b.grad * 0.05)
      end
      for step = 1, 10000 do
        local h = (x:matmul(w) + b):tanh()
        local loss = ((h - target) ^ 2):mean()
        loss:backward()
        torch.no_grad(update)
        w.grad:zero_()
        b.grad = nil
        if step == 1 then first = loss:item() end
        if step == 2000 then base = rss_mb() peak = base end
        if step > 2000 and step % 100 == 0 then
          peak = math.max(peak, rss_mb())
          if peak > base + 200 then break end -- leaking badly: stop before the machine suffers
        end
        if step == 10000 then io.write(string.format("LOSS:%.6f:%.6f:END\n", first, loss:item())) end
      end
      io.write(string.format("RSS:%.2f:%.2f:END\n", base, peak))
    ]]
    local pf = io.popen("getconf PAGESIZE 2>/dev/null")
    local page = pf and tonumber(pf:read("a")) or 4096
    if pf then pf:close() end
    local cmd = "MT_PAGE_SIZE=" .. page .. " timeout 300 lua5.4 -e " .. H.shquote(code) .. " 2>&1"
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok == true, "the loop failed or ran past 300 s:\n" .. out)
    local base, peak = out:match("RSS:([%d.]+):([%d.]+):END")
    base, peak = tonumber(base), tonumber(peak)
    assert(base and peak, "no measurement:\n" .. out)
    assert.is_true(peak - base < 8, string.format("RSS grew from %.1f MB (step 2000) to %.1f MB", base, peak))
    local first, last = out:match("LOSS:([%d.]+):([%d.]+):END")
    assert.is_true(tonumber(last) < tonumber(first) * 0.5,
      "the loop did not train: loss " .. tostring(first) .. " -> " .. tostring(last))
  end)
end)
