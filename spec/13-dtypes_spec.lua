-- SPEC §1–2 dtypes: conversions among all 10 dtypes (to, copy_, creation), float16 / bfloat16
-- round-to-nearest-even, integer wrapping and truncation as PyTorch, and type promotion.
local H = require "spec.helpers"
local torch = H.torch

-- Values every dtype can hold exactly.
local V = { 0, 1, 2, 3, 100, 7 }
local VB = { false, true, true, true, true, true } -- the same as bool

local function expected_in(dt, src_is_bool)
  local out = {}
  for i, v in ipairs(V) do
    local x = v
    if src_is_bool then x = VB[i] and 1 or 0 end
    if dt == "bool" then out[i] = x ~= 0
    elseif H.is_float_dtype[dt] then out[i] = x + 0.0
    else out[i] = x end
  end
  return out
end

describe("conversion between every pair of dtypes", function()
  for _, src in ipairs(H.all_dtypes) do
    for _, dst in ipairs(H.all_dtypes) do
      it(src .. " -> " .. dst, function()
        local s = src == "bool" and torch.tensor(VB) or torch.tensor(V, { dtype = src })
        assert.are.equal(src, s.dtype)
        local e = expected_in(dst, src == "bool")
        local t = s:to(dst)
        H.assert_meta(t, { #V }, dst, "to")
        H.assert_values(t, e, true, "to")
        local c = torch.zeros(#V, { dtype = dst })
        c:copy_(s)
        H.assert_values(c, e, true, "copy_")
        -- and back again (bool keeps only zero / nonzero)
        if dst ~= "bool" then H.assert_values(t:to(src), H.values(s), true, "round trip") end
      end)
    end
  end
end)

describe("conversion details (values from PyTorch 1.13)", function()
  local cases = {
    -- description, src dtype, src values, dst dtype, expected values
    { "float -> int truncates toward zero", "float32", { 2.7, -2.7, 0.5, -0.5, 126.9 }, "int64", { 2, -2, 0, 0, 126 } },
    { "float -> int8 truncates toward zero", "float64", { 2.7, -2.7, -127.5 }, "int8", { 2, -2, -127 } },
    { "float16 -> int32 truncates", "float16", { 3.5, -3.5 }, "int32", { 3, -3 } },
    { "int64 -> int8 wraps", "int64", { 300, -2, 128, -129 }, "int8", { 44, -2, -128, 127 } },
    { "int64 -> uint8 wraps", "int64", { 300, -2, 256 }, "uint8", { 44, 254, 0 } },
    { "int64 -> int16 wraps", "int64", { 70000, -32769 }, "int16", { 4464, 32767 } },
    { "uint8 -> int8 wraps", "uint8", { 200, 127 }, "int8", { -56, 127 } },
    { "int8 -> uint8 wraps", "int8", { -1, -128 }, "uint8", { 255, 128 } },
    { "float -> bool: nonzero (and nan) is true", "float32", { 0.0, 0.1, -0.0, 0 / 0, -3.0 }, "bool",
      { false, true, false, true, true } },
    { "int -> bool: nonzero is true", "int32", { 0, -1, 5 }, "bool", { false, true, true } },
    { "int64 -> float32 rounds to nearest even", "int64", { 16777217, 16777219 }, "float32", { 16777216.0, 16777220.0 } },
    { "int64 -> float64 rounds beyond 2^53", "int64", { (1 << 53) + 1 }, "float64", { 2.0 ^ 53 } },
    { "float16: 1 + 2^-11 ties to even (1)", "float32", { 1 + 2 ^ -11 }, "float16", { 1.0 } },
    { "float16: 1 + 3 * 2^-11 ties to even (1 + 2^-9)", "float32", { 1 + 3 * 2 ^ -11 }, "float16", { 1 + 2 ^ -9 } },
    { "float16: just above a tie rounds up", "float32", { 1 + 2 ^ -11 + 2 ^ -20 }, "float16", { 1 + 2 ^ -10 } },
    { "float16: 65504 is the largest finite", "float32", { 65504.0, -65504.0 }, "float16", { 65504.0, -65504.0 } },
    { "float16: 65520 rounds to inf", "float32", { 65520.0, 1e5, -1e5 }, "float16", { math.huge, math.huge, -math.huge } },
    { "float16: subnormals", "float32", { 2 ^ -24, 2 ^ -25, 3 * 2 ^ -26, 2 ^ -14 - 2 ^ -24 }, "float16",
      { 2 ^ -24, 0.0, 2 ^ -24, 2 ^ -14 - 2 ^ -24 } },
    { "float16 from float64", "float64", { 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 0.1 }, "float16",
      { 1.0, 1 + 2 ^ -9, 0.0999755859375 } },
    { "float16: negative zero, inf and nan survive", "float32", { -0.0, math.huge, -math.huge, 0 / 0 }, "float16",
      { -0.0, math.huge, -math.huge, 0 / 0 } },
    { "bfloat16: 1.00390625 ties to even (1)", "float32", { 1.00390625 }, "bfloat16", { 1.0 } },
    { "bfloat16: 1.01171875 ties to even (1.015625)", "float32", { 1.01171875 }, "bfloat16", { 1.015625 } },
    { "bfloat16: 0.1", "float32", { 0.1 }, "bfloat16", { 0.10009765625 } },
    { "bfloat16 keeps float32's range", "float32", { 1e38, -3e38, 1e-38 }, "bfloat16",
      { 9.969209968386869e+37, -3.00405527047391e+38, 1.0010069081221042e-38 } },
    { "bfloat16: inf and nan survive", "float32", { math.huge, 0 / 0 }, "bfloat16", { math.huge, 0 / 0 } },
    { "float16 -> bfloat16", "float16", { 1.0009765625, 3.140625 }, "bfloat16", { 1.0, 3.140625 } },
    { "bfloat16 -> float16", "bfloat16", { 1.015625, 1e5 }, "float16", { 1.015625, math.huge } },
    { "float64 -> float32 rounds", "float64", { 0.1, 1 + 2 ^ -24, 1e39 }, "float32",
      { 0.10000000149011612, 1.0, math.huge } },
    { "bool -> float16", "bool", { true, false }, "float16", { 1.0, 0.0 } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local s = torch.tensor(c[3], { dtype = c[2] })
      local t = s:to(c[4])
      H.assert_meta(t, { #c[5] }, c[4])
      H.assert_values(t, c[5], true)
    end)
  end

  it("creating a float16 / bfloat16 tensor from Lua numbers rounds the same way", function()
    H.assert_values(torch.tensor({ 1 + 2 ^ -11, 1 + 3 * 2 ^ -11 }, { dtype = "float16" }), { 1.0, 1 + 2 ^ -9 }, true)
    H.assert_values(torch.tensor({ 1.00390625, 1.01171875 }, { dtype = "bfloat16" }), { 1.0, 1.015625 }, true)
  end)

  it("fill_ and full round float16 / bfloat16 values", function()
    H.assert_values(torch.full({ 2 }, 1.01171875, { dtype = "bfloat16" }), { 1.015625, 1.015625 }, true)
    H.assert_values(torch.zeros(1, { dtype = "float16" }):fill_(1 + 3 * 2 ^ -11), { 1 + 2 ^ -9 }, true)
  end)

  it("int64 keeps every bit through creation, to(int64) and tolist", function()
    local vals = { math.maxinteger, math.mininteger, (1 << 62) + 1, -7 }
    assert.are.same(vals, torch.tensor(vals):to("int64"):tolist())
    assert.are.same(vals, torch.tensor(vals):clone():tolist())
  end)

  it("float16 and bfloat16 tensors support creation, copy, indexing and comparison", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local t = torch.tensor({ { 1.5, -2.0 }, { 0.25, 8.0 } }, { dtype = dt })
      H.assert_values(t:t():contiguous(), { 1.5, 0.25, -2.0, 8.0 }, true, dt)
      H.assert_values(t[2], { 0.25, 8.0 }, true, dt)
      H.assert_values(t:gt(0), { true, false, true, true }, true, dt)
      H.assert_values(t:index_select(2, torch.tensor({ 2 })), { -2.0, 8.0 }, true, dt)
      local c = t:clone()
      c:copy_(torch.tensor({ 3.0, 4.0 }))
      H.assert_values(c, { 3, 4, 3, 4 }, true, dt)
    end
  end)
end)

describe("type promotion among all dtypes (as PyTorch)", function()
  local cases = {
    { "float16", "bfloat16", "float32" },
    { "float16", "float16", "float16" },
    { "float16", "int64", "float16" },
    { "bfloat16", "float32", "float32" },
    { "bfloat16", "uint8", "bfloat16" },
    { "float16", "float64", "float64" },
    { "int8", "uint8", "int16" },
    { "int16", "uint8", "int16" },
    { "int16", "int32", "int32" },
    { "uint8", "int64", "int64" },
    { "uint8", "uint8", "uint8" },
    { "bool", "int8", "int8" },
    { "bool", "uint8", "uint8" },
    { "bool", "float16", "float16" },
    { "int32", "float32", "float32" },
    { "int64", "float64", "float64" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " + " .. c[2] .. " gives " .. c[3], function()
      local a = torch.ones(2, { dtype = c[1] })
      local b = torch.ones(2, { dtype = c[2] })
      local r = torch.add(a, b)
      assert.are.equal(c[3], r.dtype)
      assert.are.equal(c[3], (b + a).dtype)
      local e = c[3] == "bool" and true or (H.is_float_dtype[c[3]] and 2.0 or 2)
      H.assert_values(r, { e, e }, true)
    end)
  end
  it("a Lua float does not widen a float16 tensor; a Lua integer does not widen an int8 tensor", function()
    assert.are.equal("float16", (torch.ones(2, { dtype = "float16" }) * 0.5).dtype)
    assert.are.equal("int8", (torch.ones(2, { dtype = "int8" }) + 300).dtype)
    assert.are.equal("float32", (torch.ones(2, { dtype = "int8" }) + 0.5).dtype)
  end)
  it("integer arithmetic wraps in the result dtype, as PyTorch", function()
    H.assert_values(torch.tensor({ 100 }, { dtype = "int8" }) + torch.tensor({ 100 }, { dtype = "int8" }), { -56 }, true)
    H.assert_values(torch.tensor({ 250 }, { dtype = "uint8" }) + torch.tensor({ 10 }, { dtype = "uint8" }), { 4 }, true)
  end)
end)

describe("dtype names", function()
  it("an unknown dtype is an error naming the dtype", function()
    local err = H.expect_error(function() return torch.zeros(2, { dtype = "float128" }) end, "zeros", { "dtype" })
    assert.is_truthy(err:find("float128", 1, true), err)
    H.expect_error(function() return torch.zeros(2):to("complex64") end, "to", { "dtype", "complex64" })
    H.expect_error(function() return torch.tensor({ 1 }, { dtype = 5 }) end, "tensor", { "dtype", "string" })
  end)
end)
