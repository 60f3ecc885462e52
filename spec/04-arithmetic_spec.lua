-- SPEC §2 "Math": + - * / ^ and unary -, add/sub/mul/div/pow as methods, as torch.<name> and
-- in place, with numbers on either side, and PyTorch's type promotion.
local H = require "spec.helpers"
local torch = H.torch

local A = { 1.5, -2.0, 3.0, 0.5, -0.25, 8.0 }
local B = { 2.0, 4.0, -1.5, 0.25, 0.5, -3.0 }
local PA = { 1.5, 2.0, 3.0, 0.5, 4.0, 9.0 } -- positive bases for pow
local PB = { 2.0, -1.0, 0.5, 3.0, 1.5, 0.0 }

local ops = {
  -- name, operator, Lua reference, left operand values, right operand values
  { "add", function(x, y) return x + y end, function(x, y) return x + y end, A, B },
  { "sub", function(x, y) return x - y end, function(x, y) return x - y end, A, B },
  { "mul", function(x, y) return x * y end, function(x, y) return x * y end, A, B },
  { "div", function(x, y) return x / y end, function(x, y) return x / y end, A, B },
  { "pow", function(x, y) return x ^ y end, function(x, y) return x ^ y end, PA, PB },
}

local function map2(f, xs, ys)
  local r = {}
  for i = 1, #xs do r[i] = f(xs[i], type(ys) == "table" and ys[i] or ys) end
  return r
end

local function mapl(f, x, ys)
  local r = {}
  for i = 1, #ys do r[i] = f(x, ys[i]) end
  return r
end

for _, dt in ipairs(H.math_dtypes) do
  describe("binary math in " .. dt, function()
    for _, op in ipairs(ops) do
      local name, oper, ref, xs, ys = op[1], op[2], op[3], op[4], op[5]
      local function a() return torch.tensor(xs, { dtype = dt }):view(2, 3) end
      local function b() return torch.tensor(ys, { dtype = dt }):view(2, 3) end
      local expected = map2(ref, xs, ys)

      it(name .. ": method, torch." .. name .. " and operator agree with the reference", function()
        for form, r in pairs({
          method = a()[name](a(), b()),
          torch_fn = torch[name](a(), b()),
          operator = oper(a(), b()),
        }) do
          H.assert_meta(r, { 2, 3 }, dt, name .. " " .. form)
          H.assert_values(r, expected, false, name .. " " .. form)
        end
      end)

      it(name .. ": a tensor with a number on the right", function()
        local r = oper(a(), 2)
        H.assert_meta(r, { 2, 3 }, dt)
        H.assert_values(r, map2(ref, xs, 2))
        H.assert_values(a()[name](a(), 0.5), map2(ref, xs, 0.5))
        H.assert_values(torch[name](a(), 3), map2(ref, xs, 3))
      end)

      it(name .. ": a number on the left", function()
        local r = oper(2, b())
        H.assert_meta(r, { 2, 3 }, dt)
        H.assert_values(r, mapl(ref, 2, ys))
      end)

      it(name .. "_ works in place and returns the tensor", function()
        local x = a()
        local r = x[name .. "_"](x, b())
        assert.is_true(rawequal(x, r), name .. "_ did not return self")
        H.assert_meta(x, { 2, 3 }, dt)
        H.assert_values(x, expected)
        local y = a()
        y[name .. "_"](y, 2)
        H.assert_values(y, map2(ref, xs, 2))
      end)

      it(name .. " leaves its inputs alone", function()
        local x, y = a(), b()
        local _ = x[name](x, y)
        H.assert_values(x, xs)
        H.assert_values(y, ys)
      end)

      it(name .. " reads non-contiguous operands in logical order", function()
        local xt = torch.tensor(xs, { dtype = dt }):view(3, 2):t() -- [2, 3], strides {1, 2}
        local yt = torch.tensor(ys, { dtype = dt }):view(3, 2):t()
        local lx, ly = H.values(xt), H.values(yt)
        H.assert_values(xt[name](xt, yt), map2(ref, lx, ly))
        H.assert_values(xt[name](xt, b()), map2(ref, lx, ys))
      end)
    end

    it("unary minus negates", function()
      local r = -torch.tensor(A, { dtype = dt })
      H.assert_meta(r, { 6 }, dt)
      H.assert_values(r, map2(function(x) return -x end, A))
    end)

    it("add(u, alpha) adds alpha * u, also as torch.add and add_", function()
      local a, b = torch.tensor(A, { dtype = dt }), torch.tensor(B, { dtype = dt })
      local e = map2(function(x, y) return x + 2 * y end, A, B)
      H.assert_values(a:add(b, 2), e)
      H.assert_values(torch.add(a, b, 2), e)
      local c = a:clone()
      c:add_(b, 2)
      H.assert_values(c, e)
    end)

    it("sub(u, alpha) subtracts alpha * u", function()
      local a, b = torch.tensor(A, { dtype = dt }), torch.tensor(B, { dtype = dt })
      H.assert_values(a:sub(b, 0.5), map2(function(x, y) return x - 0.5 * y end, A, B))
    end)

    it("division by zero gives inf and nan", function()
      local r = torch.tensor({ 1.0, -1.0, 0.0 }, { dtype = dt }) / 0
      H.assert_values(r, { math.huge, -math.huge, 0 / 0 })
    end)

    it("^ with a tensor exponent and a number base", function()
      H.assert_values(2 ^ torch.tensor({ 0.0, 1.0, 3.0, -1.0 }, { dtype = dt }), { 1, 2, 8, 0.5 })
      H.assert_values(torch.tensor({ 4.0, 9.0 }, { dtype = dt }) ^ 0.5, { 2, 3 })
    end)

    it("chained expressions", function()
      local x = torch.tensor({ 1.0, 2.0, 3.0 }, { dtype = dt })
      H.assert_values((x * 2 + 1) / (x - 4) ^ 2, { 3 / 9, 5 / 4, 7 / 1 })
    end)
  end)
end

describe("type promotion (as PyTorch)", function()
  local i64 = function(v) return torch.tensor(v) end
  local i32 = function(v) return torch.tensor(v, { dtype = "int32" }) end
  local f32 = function(v) return torch.tensor(v, { dtype = "float32" }) end
  local f64 = function(v) return torch.tensor(v, { dtype = "float64" }) end
  local cases = {
    -- description, thunk, dtype, values
    { "int64 + int64 stays int64", function() return i64({ 1, 2 }) + i64({ 3, 4 }) end, "int64", { 4, 6 } },
    { "int64 * Lua integer stays int64", function() return i64({ 1, 2 }) * 3 end, "int64", { 3, 6 } },
    { "int64 + 1.5 gives float32", function() return i64({ 1, 2 }) + 1.5 end, "float32", { 2.5, 3.5 } },
    { "1.5 * int64 gives float32", function() return 1.5 * i64({ 2, 4 }) end, "float32", { 3.0, 6.0 } },
    { "int64 / int64 gives float32", function() return i64({ 1, 7 }) / i64({ 2, 2 }) end, "float32", { 0.5, 3.5 } },
    { "int64 / Lua integer gives float32", function() return i64({ 3 }) / 2 end, "float32", { 1.5 } },
    { "int64 / 0 gives inf (true division)", function() return i64({ 1, 0 }) / 0 end, "float32", { math.huge, 0 / 0 } },
    { "int32 + Lua integer stays int32", function() return i32({ 1, 2 }) + 1 end, "int32", { 2, 3 } },
    { "int32 + int64 tensor gives int64", function() return i32({ 1, 2 }) + i64({ 1, 1 }) end, "int64", { 2, 3 } },
    { "int32 + 0-dim int64 stays int32", function() return i32({ 1, 2 }) + torch.tensor(5) end, "int32", { 6, 7 } },
    { "int64 + 0-dim float64 gives float64", function() return i64({ 1, 2 }) + f64(0.5) end, "float64", { 1.5, 2.5 } },
    { "int64 + 0-dim float32 gives float32", function() return i64({ 1, 2 }) + f32(0.5) end, "float32", { 1.5, 2.5 } },
    { "float32 + float64 tensor gives float64", function() return f32({ 1 }) + f64({ 0.25 }) end, "float64", { 1.25 } },
    { "float32 + 0-dim float64 stays float32", function() return f32({ 1 }) + f64(0.25) end, "float32", { 1.25 } },
    { "float32 + Lua integer stays float32", function() return f32({ 1.5 }) + 2 end, "float32", { 3.5 } },
    { "float64 * Lua float stays float64", function() return f64({ 0.1 }) * 3.0 end, "float64", { 0.1 * 3.0 } },
    { "uint8 + int8 gives int16", function()
      return torch.tensor({ 200 }, { dtype = "uint8" }) + torch.tensor({ -100 }, { dtype = "int8" })
    end, "int16", { 100 } },
    { "bool + Lua integer gives int64", function() return torch.tensor({ true, false }) + 1 end, "int64", { 2, 1 } },
    { "bool * Lua float gives float32", function() return torch.tensor({ true, false }) * 2.5 end, "float32", { 2.5, 0 } },
    { "int64 ^ 2 stays int64", function() return i64({ 3, -2 }) ^ 2 end, "int64", { 9, 4 } },
    { "int64 ^ 0.5 gives float32", function() return i64({ 4, 9 }) ^ 0.5 end, "float32", { 2, 3 } },
    { "-int32 stays int32", function() return -i32({ 3, -4 }) end, "int32", { -3, 4 } },
    { "int64 - float32 tensor gives float32", function() return i64({ 3 }) - f32({ 0.5 }) end, "float32", { 2.5 } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local r = c[2]()
      assert.are.equal(c[3], r.dtype)
      H.assert_values(r, c[4])
    end)
  end

  it("integer results keep integer precision (no round trip through floats)", function()
    local big = 1 << 53
    H.assert_values(i64({ big }) + 1, { big + 1 }, true)
    H.assert_values(i64({ big + 1 }) * 1, { big + 1 }, true)
  end)

  it("in place, a float result cannot be stored into an integer tensor", function()
    local t = i64({ 1, 2 })
    H.expect_error(function() return t:add_(1.5) end, "add_", { "dtype", "cast", "int64", "float" })
    H.expect_error(function() return t:div_(2) end, "div_", { "dtype", "cast", "int64", "float" })
    H.assert_values(t, { 1, 2 }, true) -- untouched after the error
  end)

  it("in place, an integer or float64 operand is converted to the tensor's dtype", function()
    local t = f32({ 1.0, 2.0 })
    t:add_(i64({ 1, 1 }))
    t:mul_(f64({ 0.5, 0.5 }))
    assert.are.equal("float32", t.dtype)
    H.assert_values(t, { 1.0, 1.5 })
  end)
end)
