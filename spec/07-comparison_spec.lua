-- SPEC §2 comparisons eq/ne/lt/le/gt/ge giving bool tensors (over every dtype), all, any,
-- torch.where, torch.equal, torch.allclose.
local H = require "spec.helpers"
local torch = H.torch

local cmps = {
  { "eq", function(x, y) return x == y end },
  { "ne", function(x, y) return x ~= y end },
  { "lt", function(x, y) return x < y end },
  { "le", function(x, y) return x <= y end },
  { "gt", function(x, y) return x > y end },
  { "ge", function(x, y) return x >= y end },
}

local A = { 0, 1, 2, 3, 5, 7 }
local B = { 1, 1, 0, 3, 6, 2 }
local BA = { false, true, false, true }
local BB = { true, true, false, false }

local function num(v) if type(v) == "boolean" then return v and 1 or 0 end return v end

for _, dt in ipairs(H.all_dtypes) do
  describe("comparisons on " .. dt, function()
    local xs, ys = A, B
    if dt == "bool" then xs, ys = BA, BB end
    local function a() return torch.tensor(xs, { dtype = dt }) end
    local function b() return torch.tensor(ys, { dtype = dt }) end
    for _, c in ipairs(cmps) do
      local name, ref = c[1], c[2]
      it(name .. " gives a bool tensor, as a method and as torch." .. name, function()
        local e = {}
        for i = 1, #xs do e[i] = ref(num(xs[i]), num(ys[i])) end
        local r = a()[name](a(), b())
        H.assert_meta(r, { #xs }, "bool", name)
        H.assert_values(r, e, true, name)
        H.assert_values(torch[name](a(), b()), e, true, "torch." .. name)
      end)
      if dt ~= "bool" then
        it(name .. " against a number", function()
          local e = {}
          for i = 1, #xs do e[i] = ref(xs[i], 2) end
          local r = a()[name](a(), 2)
          H.assert_meta(r, { #xs }, "bool")
          H.assert_values(r, e, true)
        end)
      end
    end
  end)
end

describe("comparison details", function()
  it("compares across dtypes after promotion", function()
    H.assert_values(torch.tensor({ 1, 2 }):eq(torch.tensor({ 1.0, 2.5 })), { true, false }, true)
    H.assert_values(torch.tensor({ 1, 2 }):lt(1.5), { true, false }, true)
    H.assert_values(torch.tensor({ 1, 2 }, { dtype = "int8" }):ge(torch.tensor({ 1, 3 }, { dtype = "uint8" })),
      { true, false }, true)
  end)
  it("nan compares unequal to everything, itself included", function()
    local n = torch.tensor({ 0 / 0, 1.0 })
    H.assert_values(n:eq(n), { false, true }, true)
    H.assert_values(n:ne(n), { true, false }, true)
    H.assert_values(n:lt(math.huge), { false, true }, true)
    H.assert_values(n:ge(-math.huge), { false, true }, true)
  end)
  it("works on non-contiguous views", function()
    local t = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }):t()
    assert.are.same({ { false, true }, { false, true } }, t:gt(2):tolist())
  end)
end)

describe("all / any", function()
  local cases = {
    { "all of all-true", "all", { true, true }, true },
    { "all with one false", "all", { true, false }, false },
    { "any with one true", "any", { false, true }, true },
    { "any of all-false", "any", { false, false }, false },
    { "all of empty is true", "all", {}, true },
    { "any of empty is false", "any", {}, false },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " (0-dim bool tensor; also torch." .. c[2] .. ")", function()
      local t = #c[3] > 0 and torch.tensor(c[3]) or torch.zeros(0, { dtype = "bool" })
      local r = t[c[2]](t)
      assert.is_true(torch.is_tensor(r))
      H.assert_meta(r, {}, "bool")
      assert.are.equal(c[4], r:item())
      assert.are.equal(c[4], torch[c[2]](t):item())
    end)
  end
  it("treat nonzero numbers as true", function()
    assert.is_false(torch.tensor({ 1.0, 0.0 }):all():item())
    assert.is_true(torch.tensor({ 0, 0, 3 }):any():item())
    assert.is_true(torch.tensor({ 0.5, -2.0 }):all():item())
  end)
  it("reduce along a 1-based dim", function()
    local t = torch.tensor({ { true, false, true }, { true, true, false } })
    assert.are.same({ true, false, false }, t:all(1):tolist())
    assert.are.same({ false, false }, t:all(2):tolist())
    assert.are.same({ true, true }, t:any(-1):tolist())
  end)
end)

describe("torch.where", function()
  it("picks from a where cond is true, else from b", function()
    local c = torch.tensor({ true, false, true, false })
    local r = torch.where(c, torch.tensor({ 1.0, 2.0, 3.0, 4.0 }), torch.tensor({ -1.0, -2.0, -3.0, -4.0 }))
    H.assert_meta(r, { 4 }, "float32")
    H.assert_values(r, { 1, -2, 3, -4 })
  end)
  it("promotes the dtypes of a and b", function()
    local c = torch.tensor({ true, false })
    local r = torch.where(c, torch.tensor({ 1, 2 }), torch.tensor({ 0.5, 0.5 }, { dtype = "float64" }))
    assert.are.equal("float64", r.dtype)
    H.assert_values(r, { 1.0, 0.5 })
  end)
  it("broadcasts cond, a and b together", function()
    local c = torch.tensor({ { true }, { false } })
    local r = torch.where(c, torch.tensor({ 1.0, 2.0, 3.0 }), torch.tensor(0.0))
    assert.are.same({ { 1, 2, 3 }, { 0, 0, 0 } }, r:tolist())
  end)
  it("works for integer and bool tensors", function()
    local c = torch.tensor({ true, false })
    H.assert_values(torch.where(c, torch.tensor({ 1, 2 }, { dtype = "int8" }), torch.tensor({ 3, 4 }, { dtype = "int8" })),
      { 1, 4 }, true)
    H.assert_values(torch.where(c, torch.tensor({ false, false }), torch.tensor({ true, true })), { false, true }, true)
  end)
  it("takes numbers for a and b", function()
    local c = torch.tensor({ true, false })
    H.assert_values(torch.where(c, torch.tensor({ 5.0, 6.0 }), 0.0), { 5, 0 })
    H.assert_values(torch.where(c, 1.0, torch.tensor({ 5.0, 6.0 })), { 1, 6 })
  end)
  it("with a non-bool condition is an error naming where", function()
    H.expect_error(function() return torch.where(torch.tensor({ 1.0, 0.0 }), torch.zeros(2), torch.ones(2)) end,
      "where", { "bool", "condition", "dtype" })
  end)
end)

describe("torch.equal", function()
  it("is true for the same shape and values", function()
    assert.is_true(torch.equal(torch.tensor({ 1.0, 2.0 }), torch.tensor({ 1.0, 2.0 })))
    assert.is_true(torch.equal(torch.tensor({ { 1, 2 }, { 3, 4 } }):t(), torch.tensor({ { 1, 3 }, { 2, 4 } })))
  end)
  it("is false for different values or shapes", function()
    assert.is_false(torch.equal(torch.tensor({ 1.0, 2.0 }), torch.tensor({ 1.0, 2.5 })))
    assert.is_false(torch.equal(torch.zeros(2, 3), torch.zeros(3, 2)))
    assert.is_false(torch.equal(torch.zeros(1), torch.zeros(1, 1)))
  end)
  it("is false when nan is present (nan ~= nan)", function()
    local n = torch.tensor({ 0 / 0 })
    assert.is_false(torch.equal(n, n))
  end)
end)

describe("torch.allclose", function()
  local a = torch.tensor({ 1.0, 100.0 }, { dtype = "float64" })
  it("uses rtol 1e-5 and atol 1e-8 by default", function()
    assert.is_false(torch.allclose(a, a + 1e-4)) -- 1e-4 > 1e-8 + 1e-5 * 1 at the first element
    assert.is_true(torch.allclose(a, torch.tensor({ 1.0 + 5e-6, 100.0 + 5e-4 }, { dtype = "float64" })))
    assert.is_false(torch.allclose(a, torch.tensor({ 1.0 + 5e-5, 100.0 }, { dtype = "float64" })))
  end)
  it("takes rtol and atol", function()
    local b = torch.tensor({ 1.1, 100.0 }, { dtype = "float64" })
    assert.is_false(torch.allclose(a, b))
    assert.is_true(torch.allclose(a, b, 0.2))
    assert.is_true(torch.allclose(a, b, 0, 0.11))
    assert.is_false(torch.allclose(a, b, 0, 0.09))
  end)
  it("broadcasts and compares nan as not close", function()
    assert.is_true(torch.allclose(torch.ones(2, 2), torch.tensor(1.0)))
    assert.is_false(torch.allclose(torch.tensor({ 0 / 0 }), torch.tensor({ 0 / 0 })))
  end)
end)
