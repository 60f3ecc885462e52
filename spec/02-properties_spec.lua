-- SPEC §2 "Properties and methods": shape queries, item/tolist, copies and conversions.
local H = require "spec.helpers"
local torch = H.torch

describe("shape queries", function()
  local t = torch.zeros(2, 3, 4)

  it("dtype is a string field", function()
    assert.are.equal("float32", t.dtype)
    assert.are.equal("int64", torch.tensor({ 1 }).dtype)
  end)

  it("shape is a plain Lua array", function()
    assert.are.same({ 2, 3, 4 }, t.shape)
    assert.are.same({}, torch.tensor(1.5).shape)
    assert.are.same({ 0 }, torch.tensor({}).shape)
  end)

  it("size() is the shape and size(d) one 1-based dim", function()
    assert.are.same({ 2, 3, 4 }, t:size())
    assert.are.equal(2, t:size(1))
    assert.are.equal(3, t:size(2))
    assert.are.equal(4, t:size(3))
  end)

  it("size(d) counts negative dims from the end", function()
    assert.are.equal(4, t:size(-1))
    assert.are.equal(3, t:size(-2))
    assert.are.equal(2, t:size(-3))
  end)

  it("size(0) and dims out of range are errors naming size and the dim", function()
    for _, d in ipairs({ 0, 4, -4, 100 }) do
      H.expect_error(function() return t:size(d) end, "size", { "dim", "range" })
    end
  end)

  it("dim and numel", function()
    assert.are.equal(3, t:dim())
    assert.are.equal(24, t:numel())
    assert.are.equal(0, torch.tensor(3):dim())
    assert.are.equal(1, torch.tensor(3):numel())
    assert.are.equal(0, torch.zeros(3, 0):numel())
  end)

  it("#t is size(1)", function()
    assert.are.equal(2, #t)
    assert.are.equal(7, #torch.zeros(7))
    assert.are.equal(0, #torch.zeros(0, 3))
  end)

  it("integers in shape, size and numel are Lua integers", function()
    assert.are.equal("integer", math.type(t.shape[1]))
    assert.are.equal("integer", math.type(t:size(2)))
    assert.are.equal("integer", math.type(t:numel()))
    assert.are.equal("integer", math.type(#t))
  end)

  it("stride() is row-major for a fresh tensor and follows views", function()
    assert.are.same({ 12, 4, 1 }, t:stride())
    assert.are.same({ 1, 3 }, torch.zeros(4, 3):t():stride())
    assert.are.same({ 1, 4 }, torch.zeros(3, 4):t():stride())
    assert.are.same({}, torch.tensor(2):stride())
  end)

  it("is_contiguous", function()
    assert.is_true(t:is_contiguous())
    assert.is_false(torch.zeros(2, 3):t():is_contiguous())
    assert.is_true(torch.zeros(2, 3):t():contiguous():is_contiguous())
    assert.is_false(torch.zeros(4, 4):narrow(2, 1, 2):is_contiguous())
  end)
end)

describe("item", function()
  local cases = {
    { "int64", torch.tensor(7), 7, "integer" },
    { "int32", torch.tensor(-3, { dtype = "int32" }), -3, "integer" },
    { "uint8", torch.tensor(200, { dtype = "uint8" }), 200, "integer" },
    { "float32", torch.tensor(2.5), 2.5, "float" },
    { "float64", torch.tensor(0.1, { dtype = "float64" }), 0.1, "float" },
    { "float16", torch.tensor(0.5, { dtype = "float16" }), 0.5, "float" },
    { "a one-element 2-D tensor", torch.tensor({ { 4 } }), 4, "integer" },
  }
  for _, c in ipairs(cases) do
    it("of " .. c[1] .. " gives a Lua " .. c[4], function()
      local v = c[2]:item()
      assert.are.equal(c[3], v)
      assert.are.equal(c[4], math.type(v))
    end)
  end
  it("of bool gives a Lua boolean", function()
    assert.are.equal(true, torch.tensor(true):item())
    assert.are.equal(false, torch.tensor(false):item())
  end)
  it("keeps int64 exact", function()
    assert.are.equal(math.maxinteger, torch.tensor(math.maxinteger):item())
    assert.are.equal(math.mininteger, torch.tensor(math.mininteger):item())
  end)
  it("of float32 rounds to float32 precision", function()
    local v = torch.tensor(0.1):item()
    assert.are_not.equal(0.1, v)
    assert.is_true(math.abs(v - 0.1) < 1e-8)
  end)
  it("of several elements is an error naming item", function()
    H.expect_error(function() return torch.zeros(2):item() end, "item", { "element", "numel", "one" })
    H.expect_error(function() return torch.zeros(0):item() end, "item", { "element", "numel", "one", "empty" })
  end)
end)

describe("tolist", function()
  it("gives nested Lua tables in row-major order", function()
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 } }, torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }):tolist())
  end)
  it("gives Lua integers for every integer dtype", function()
    for _, dt in ipairs(H.int_dtypes) do
      local l = torch.tensor({ 1, 2 }, { dtype = dt }):tolist()
      assert.are.same({ 1, 2 }, l)
      assert.are.equal("integer", math.type(l[1]), dt)
    end
  end)
  it("gives Lua floats for every float dtype", function()
    for _, dt in ipairs(H.float_dtypes) do
      local l = torch.tensor({ 1, 2 }, { dtype = dt }):tolist()
      assert.are.same({ 1.0, 2.0 }, l)
      assert.are.equal("float", math.type(l[1]), dt)
    end
  end)
  it("gives booleans for bool", function()
    assert.are.same({ { true, false } }, torch.tensor({ { true, false } }):tolist())
  end)
  it("of a 0-dim tensor gives a plain value", function()
    assert.are.equal(3, torch.tensor(3):tolist())
    assert.are.equal(1.5, torch.tensor(1.5):tolist())
  end)
  it("of an empty tensor gives an empty table", function()
    assert.are.same({}, torch.zeros(0):tolist())
    assert.are.same({ {}, {} }, torch.zeros(2, 0):tolist())
  end)
  it("follows the logical order of a non-contiguous view", function()
    local t = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    assert.are.same({ { 1, 4 }, { 2, 5 }, { 3, 6 } }, t:t():tolist())
    assert.are.same({ 3, 6 }, t:select(2, 3):tolist())
  end)
end)

describe("clone / contiguous", function()
  it("clone copies values and does not share storage", function()
    local a = torch.tensor({ 1.0, 2.0, 3.0 })
    local b = a:clone()
    H.assert_meta(b, { 3 }, "float32")
    b:fill_(0)
    H.assert_values(a, { 1, 2, 3 })
  end)
  it("clone of a non-contiguous view is contiguous with the same values", function()
    local a = torch.tensor({ { 1, 2 }, { 3, 4 } }):t()
    local b = a:clone()
    assert.are.same({ { 1, 3 }, { 2, 4 } }, b:tolist())
    assert.is_true(b:is_contiguous())
  end)
  it("contiguous of a contiguous tensor shares its storage", function()
    local a = torch.zeros(3)
    local b = a:contiguous()
    b:fill_(2)
    H.assert_values(a, { 2, 2, 2 })
  end)
  it("contiguous of a transposed tensor copies into row-major order", function()
    local a = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    local c = a:t():contiguous()
    assert.is_true(c:is_contiguous())
    assert.are.same({ 2, 1 }, c:stride())
    assert.are.same({ { 1, 4 }, { 2, 5 }, { 3, 6 } }, c:tolist())
  end)
end)

describe("conversions", function()
  it("to(dtype) converts", function()
    local t = torch.tensor({ 1.5, -2.5, 3.0 })
    local d = t:to("float64")
    H.assert_meta(d, { 3 }, "float64")
    H.assert_values(d, { 1.5, -2.5, 3.0 }, true)
    local i = t:to("int32")
    H.assert_meta(i, { 3 }, "int32")
    H.assert_values(i, { 1, -2, 3 }, true)
  end)
  it("to(dtype) of the same dtype keeps the values", function()
    local t = torch.tensor({ 1, 2 })
    H.assert_values(t:to("int64"), { 1, 2 }, true)
  end)
  local shorthands = {
    { "float", "float32" }, { "double", "float64" }, { "long", "int64" },
  }
  for _, s in ipairs(shorthands) do
    it(s[1] .. "() converts to " .. s[2], function()
      local src = torch.tensor({ 1, 2, 3 }, { dtype = "int16" })
      local t = src[s[1]](src)
      H.assert_meta(t, { 3 }, s[2])
      H.assert_values(t, H.is_float_dtype[s[2]] and { 1.0, 2.0, 3.0 } or { 1, 2, 3 }, true)
    end)
  end
  it("float() of a float64 tensor rounds to float32", function()
    local t = torch.tensor({ 0.1 }, { dtype = "float64" }):float()
    assert.are.equal("float32", t.dtype)
    assert.is_true(t:item() ~= 0.1 and math.abs(t:item() - 0.1) < 1e-8)
  end)
end)

describe("in-place fillers", function()
  it("fill_ fills every element, converting the value, and returns the tensor", function()
    for _, dt in ipairs(H.all_dtypes) do
      local t = torch.zeros(2, 2, { dtype = dt })
      local r = t:fill_(1)
      assert.is_true(rawequal(t, r), dt .. ": fill_ did not return self")
      local e = dt == "bool" and true or (H.is_float_dtype[dt] and 1.0 or 1)
      H.assert_values(t, { e, e, e, e }, true, dt)
    end
  end)
  it("fill_ of a float into an integer tensor truncates, as PyTorch", function()
    local t = torch.zeros(2, { dtype = "int64" })
    t:fill_(2.75)
    H.assert_values(t, { 2, 2 }, true)
  end)
  it("zero_ zeroes and returns the tensor", function()
    local t = torch.ones(3)
    assert.is_true(rawequal(t, t:zero_()))
    H.assert_values(t, { 0, 0, 0 })
  end)
  it("fill_ through a non-contiguous view touches only that view", function()
    local t = torch.zeros(3, 3)
    t:select(2, 2):fill_(1)
    H.assert_values(t, { 0, 1, 0, 0, 1, 0, 0, 1, 0 })
  end)
end)

describe("copy_", function()
  it("copies values and returns the destination", function()
    local dst = torch.zeros(2, 2)
    local r = dst:copy_(torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }))
    assert.is_true(rawequal(dst, r))
    H.assert_values(dst, { 1, 2, 3, 4 })
  end)
  it("converts dtype", function()
    local dst = torch.zeros(3, { dtype = "float64" })
    dst:copy_(torch.tensor({ 1, 2, 3 }, { dtype = "int8" }))
    H.assert_values(dst, { 1.0, 2.0, 3.0 }, true)
    local idst = torch.zeros(2, { dtype = "int32" })
    idst:copy_(torch.tensor({ 1.9, -1.9 }))
    H.assert_values(idst, { 1, -1 }, true)
  end)
  it("broadcasts the source", function()
    local dst = torch.zeros(2, 3)
    dst:copy_(torch.tensor({ 1.0, 2.0, 3.0 }))
    H.assert_values(dst, { 1, 2, 3, 1, 2, 3 })
  end)
  it("writes into a non-contiguous destination", function()
    local base = torch.zeros(2, 3)
    base:t():copy_(torch.tensor({ { 1.0, 4.0 }, { 2.0, 5.0 }, { 3.0, 6.0 } }))
    H.assert_values(base, { 1, 2, 3, 4, 5, 6 })
  end)
  it("reads from a non-contiguous source", function()
    local src = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }):t()
    local dst = torch.zeros(2, 2)
    dst:copy_(src)
    H.assert_values(dst, { 1, 3, 2, 4 })
  end)
  it("rejects a source that does not broadcast, naming copy_ and the shapes", function()
    H.expect_error(function() return torch.zeros(2, 3):copy_(torch.zeros(4)) end, "copy_",
      { "broadcast", "shape", "size", "%[" })
  end)
end)

describe("the function surface", function()
  -- SPEC §1: every tensor method that is math is also a function on torch.
  local math_names = { "add", "sub", "mul", "div", "pow", "neg", "abs", "exp", "log", "sqrt", "tanh", "sigmoid",
    "relu", "clamp", "sum", "mean", "var", "std", "max", "min", "argmax", "softmax", "log_softmax", "matmul", "mm",
    "bmm", "eq", "ne", "lt", "le", "gt", "ge", "all", "any", "index_select", "gather", "masked_fill" }
  for _, name in ipairs(math_names) do
    it(name .. " is a method and torch." .. name, function()
      local t = torch.zeros(1)
      assert.is_function(t[name], "method " .. name)
      assert.is_function(torch[name], "torch." .. name)
    end)
  end
  local inplace = { "add_", "sub_", "mul_", "div_", "pow_", "neg_", "abs_", "exp_", "log_", "sqrt_", "tanh_",
    "sigmoid_", "relu_", "clamp_", "masked_fill_", "copy_", "fill_", "zero_" }
  for _, name in ipairs(inplace) do
    it(name .. " is a method", function()
      assert.is_function(torch.zeros(1)[name])
    end)
  end
  it("torch-level functions exist", function()
    for _, name in ipairs({ "tensor", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange",
      "linspace", "eye", "zeros_like", "ones_like", "rand_like", "randn_like", "cat", "stack", "manual_seed",
      "get_rng_state", "set_rng_state", "is_tensor", "where", "equal", "allclose" }) do
      assert.is_function(torch[name], "torch." .. name)
    end
  end)
  it("t.shape is a fresh table: changing it does not change the tensor", function()
    local t = torch.zeros(2, 3)
    local s = t.shape
    s[1] = 99
    assert.are.same({ 2, 3 }, t.shape)
    local z = t:size()
    z[2] = 7
    assert.are.same({ 2, 3 }, t:size())
  end)
end)
