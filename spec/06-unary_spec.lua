-- SPEC §2 elementwise unary math: neg, abs, exp, log, sqrt, tanh, sigmoid, relu, clamp — as
-- methods, as torch.<name> and in place, over float32 and float64, with special values.
local H = require "spec.helpers"
local torch = H.torch

local function tanh(x)
  if x > 20 then return 1.0 elseif x < -20 then return -1.0 end
  local e = math.exp(2 * x)
  return (e - 1) / (e + 1)
end

local X = { -2.0, -0.5, 0.0, 0.5, 1.0, 3.0 }
local POS = { 0.25, 0.5, 1.0, 2.0, 4.0, 10.0 }

local ops = {
  { "neg", function(x) return -x end, X },
  { "abs", function(x) return math.abs(x) end, X },
  { "exp", math.exp, X },
  { "log", math.log, POS },
  { "sqrt", math.sqrt, POS },
  { "tanh", tanh, X },
  { "sigmoid", function(x) return 1 / (1 + math.exp(-x)) end, X },
  { "relu", function(x) return x > 0 and x or 0.0 end, X },
}

local function map(f, xs)
  local r = {}
  for i, x in ipairs(xs) do r[i] = f(x) end
  return r
end

for _, dt in ipairs(H.math_dtypes) do
  describe("unary math in " .. dt, function()
    for _, op in ipairs(ops) do
      local name, ref, xs = op[1], op[2], op[3]
      local expected = map(ref, xs)
      it(name .. " as a method and as torch." .. name, function()
        local t = torch.tensor(xs, { dtype = dt }):view(2, 3)
        local m = t[name](t)
        H.assert_meta(m, { 2, 3 }, dt, name)
        H.assert_values(m, expected, false, name)
        H.assert_values(torch[name](t), expected, false, "torch." .. name)
        H.assert_values(t, xs, true, name .. " changed its input")
      end)
      it(name .. "_ works in place and returns the tensor", function()
        local t = torch.tensor(xs, { dtype = dt })
        local r = t[name .. "_"](t)
        assert.is_true(rawequal(t, r), name .. "_ did not return self")
        H.assert_values(t, expected)
      end)
      it(name .. " of a non-contiguous view", function()
        local t = torch.tensor(xs, { dtype = dt }):view(3, 2):t()
        H.assert_values(t[name](t), map(ref, H.values(t)))
      end)
    end

    local specials = {
      { "log(0) is -inf, log(-1) is nan", "log", { 0.0, -1.0 }, { -math.huge, 0 / 0 } },
      { "sqrt(-1) is nan", "sqrt", { -1.0, 0.0 }, { 0 / 0, 0.0 } },
      { "exp(-inf) is 0, exp(inf) is inf", "exp", { -math.huge, math.huge }, { 0.0, math.huge } },
      { "exp overflows to inf", "exp", { 1000.0 }, { math.huge } },
      { "sigmoid saturates without nan", "sigmoid", { -1000.0, 1000.0 }, { 0.0, 1.0 } },
      { "tanh saturates without nan", "tanh", { -1000.0, 1000.0 }, { -1.0, 1.0 } },
      { "abs of -inf", "abs", { -math.huge }, { math.huge } },
      { "nan goes through exp", "exp", { 0 / 0 }, { 0 / 0 } },
    }
    for _, s in ipairs(specials) do
      it(s[1], function()
        local t = torch.tensor(s[3], { dtype = dt })
        H.assert_values(t[s[2]](t), s[4])
      end)
    end

    it("clamp(min, max)", function()
      local t = torch.tensor(X, { dtype = dt })
      H.assert_values(t:clamp(-1, 1), { -1, -0.5, 0, 0.5, 1, 1 })
      H.assert_values(torch.clamp(t, -1, 1), { -1, -0.5, 0, 0.5, 1, 1 })
      H.assert_values(t:clamp(0.25, 0.75), { 0.25, 0.25, 0.25, 0.5, 0.75, 0.75 })
    end)
    it("clamp with one bound nil", function()
      local t = torch.tensor(X, { dtype = dt })
      H.assert_values(t:clamp(0), { 0, 0, 0, 0.5, 1, 3 })
      H.assert_values(t:clamp(0, nil), { 0, 0, 0, 0.5, 1, 3 })
      H.assert_values(t:clamp(nil, 0.5), { -2, -0.5, 0, 0.5, 0.5, 0.5 })
    end)
    it("clamp_ works in place", function()
      local t = torch.tensor(X, { dtype = dt })
      assert.is_true(rawequal(t, t:clamp_(-1, 1)))
      H.assert_values(t, { -1, -0.5, 0, 0.5, 1, 1 })
    end)
    it("clamp keeps the dtype", function()
      assert.are.equal(dt, torch.tensor(X, { dtype = dt }):clamp(0, 1).dtype)
    end)

    it("pow with a number exponent, as a method and as torch.pow", function()
      local t = torch.tensor(POS, { dtype = dt })
      H.assert_values(t:pow(2), map(function(x) return x * x end, POS))
      H.assert_values(torch.pow(t, 0.5), map(math.sqrt, POS))
      H.assert_values(t:pow(-1), map(function(x) return 1 / x end, POS))
    end)
  end)
end

describe("unary math on integer tensors (as PyTorch)", function()
  local t = torch.tensor({ -3, 0, 4 })
  it("neg, abs and relu keep int64", function()
    local cases = { { "neg", { 3, 0, -4 } }, { "abs", { 3, 0, 4 } }, { "relu", { 0, 0, 4 } } }
    for _, c in ipairs(cases) do
      local r = t[c[1]](t)
      assert.are.equal("int64", r.dtype, c[1])
      H.assert_values(r, c[2], true, c[1])
    end
  end)
  it("exp, sqrt, tanh and sigmoid give float32", function()
    local p = torch.tensor({ 1, 4 })
    for _, name in ipairs({ "exp", "sqrt", "tanh", "sigmoid", "log" }) do
      assert.are.equal("float32", p[name](p).dtype, name)
    end
    H.assert_values(p:sqrt(), { 1, 2 })
  end)
  it("clamp of an int64 tensor with integer bounds stays int64", function()
    local r = t:clamp(-1, 1)
    assert.are.equal("int64", r.dtype)
    H.assert_values(r, { -1, 0, 1 }, true)
  end)
end)
