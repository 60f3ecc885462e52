-- SPEC §2 torch.cat(list, dim) and torch.stack(list, dim): 1-based and negative dims, every
-- dtype, promotion, non-contiguous inputs, and shape errors.
local H = require "spec.helpers"
local torch = H.torch

local A = { { 1, 2 }, { 3, 4 } }
local B = { { 5, 6 }, { 7, 8 } }

local function conv(dt, l)
  local out = {}
  for i, v in ipairs(l) do
    if dt == "bool" then out[i] = v ~= 0
    elseif H.is_float_dtype[dt] then out[i] = v + 0.0
    else out[i] = v end
  end
  return out
end

for _, dt in ipairs(H.all_dtypes) do
  describe("cat / stack on " .. dt, function()
    local function a() return torch.tensor(A, { dtype = dt }) end
    local function b() return torch.tensor(B, { dtype = dt }) end
    local cases = {
      { "cat dim 1", function() return torch.cat({ a(), b() }, 1) end, { 4, 2 }, { 1, 2, 3, 4, 5, 6, 7, 8 } },
      { "cat dim 2", function() return torch.cat({ a(), b() }, 2) end, { 2, 4 }, { 1, 2, 5, 6, 3, 4, 7, 8 } },
      { "cat dim -1", function() return torch.cat({ a(), b() }, -1) end, { 2, 4 }, { 1, 2, 5, 6, 3, 4, 7, 8 } },
      { "cat of three", function() return torch.cat({ a(), b(), a() }, 1) end, { 6, 2 },
        { 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4 } },
      { "stack dim 1", function() return torch.stack({ a(), b() }, 1) end, { 2, 2, 2 }, { 1, 2, 3, 4, 5, 6, 7, 8 } },
      { "stack dim 2", function() return torch.stack({ a(), b() }, 2) end, { 2, 2, 2 }, { 1, 2, 5, 6, 3, 4, 7, 8 } },
      { "stack dim 3", function() return torch.stack({ a(), b() }, 3) end, { 2, 2, 2 }, { 1, 5, 2, 6, 3, 7, 4, 8 } },
      { "stack dim -1", function() return torch.stack({ a(), b() }, -1) end, { 2, 2, 2 }, { 1, 5, 2, 6, 3, 7, 4, 8 } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local r = c[2]()
        H.assert_meta(r, c[3], dt, c[1])
        H.assert_values(r, conv(dt, c[4]), true, c[1])
      end)
    end
  end)
end

describe("cat / stack details", function()
  it("dim defaults to 1", function()
    assert.are.same({ 4, 2 }, torch.cat({ torch.zeros(2, 2), torch.zeros(2, 2) }).shape)
    assert.are.same({ 2, 2, 2 }, torch.stack({ torch.zeros(2, 2), torch.zeros(2, 2) }).shape)
  end)
  it("cat joins tensors of different lengths along the dim", function()
    local r = torch.cat({ torch.tensor({ { 1 }, { 2 } }), torch.tensor({ { 3, 4 }, { 5, 6 } }) }, 2)
    assert.are.same({ { 1, 3, 4 }, { 2, 5, 6 } }, r:tolist())
  end)
  it("cat of 1-D tensors, with an empty one", function()
    local r = torch.cat({ torch.tensor({ 1.0, 2.0 }), torch.zeros(0), torch.tensor({ 3.0 }) }, 1)
    assert.are.same({ 1, 2, 3 }, r:tolist())
  end)
  it("cat of a single tensor copies it", function()
    local t = torch.tensor({ 1.0, 2.0 })
    local r = torch.cat({ t }, 1)
    r:fill_(0)
    H.assert_values(t, { 1, 2 })
  end)
  it("stack of 0-dim tensors gives a vector", function()
    local r = torch.stack({ torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0) }, 1)
    H.assert_meta(r, { 3 }, "float32")
    H.assert_values(r, { 1, 2, 3 })
  end)
  it("promotes dtypes as PyTorch", function()
    local r = torch.cat({ torch.tensor({ 1, 2 }), torch.tensor({ 0.5 }) }, 1)
    assert.are.equal("float32", r.dtype)
    H.assert_values(r, { 1, 2, 0.5 })
    local s = torch.stack({ torch.tensor({ 1 }, { dtype = "int8" }), torch.tensor({ 2 }, { dtype = "int32" }) }, 1)
    assert.are.equal("int32", s.dtype)
  end)
  it("reads non-contiguous inputs in logical order", function()
    local t = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }):t()
    assert.are.same({ { 1, 3 }, { 2, 4 }, { 1, 3 }, { 2, 4 } }, torch.cat({ t, t }, 1):tolist())
    assert.are.same({ { 1, 3, 1, 3 }, { 2, 4, 2, 4 } }, torch.cat({ t, t }, 2):tolist())
  end)

  local errors = {
    { "cat with mismatched sizes off the dim", "cat", function()
      return torch.cat({ torch.zeros(2, 3), torch.zeros(2, 4) }, 1)
    end, { "size", "shape", "match" } },
    { "cat with different ranks", "cat", function()
      return torch.cat({ torch.zeros(2, 3), torch.zeros(3) }, 1)
    end, { "dim", "size", "shape", "rank" } },
    { "cat with a dim out of range", "cat", function()
      return torch.cat({ torch.zeros(2), torch.zeros(2) }, 2)
    end, { "dim", "range" } },
    { "cat with dim 0", "cat", function()
      return torch.cat({ torch.zeros(2), torch.zeros(2) }, 0)
    end, { "dim", "range" } },
    { "cat of an empty list", "cat", function() return torch.cat({}, 1) end, { "empty", "tensor", "list", "least" } },
    { "cat of a list holding a non-tensor", "cat", function()
      return torch.cat({ torch.zeros(2), 5 }, 1)
    end, { "tensor", "number", "2" } },
    { "cat of a non-table", "cat", function() return torch.cat(torch.zeros(2), 1) end, { "table", "list", "tensor" } },
    { "stack with different shapes", "stack", function()
      return torch.stack({ torch.zeros(2, 3), torch.zeros(3, 2) }, 1)
    end, { "size", "shape", "match" } },
    { "stack with a dim out of range", "stack", function()
      return torch.stack({ torch.zeros(2), torch.zeros(2) }, 3)
    end, { "dim", "range" } },
    { "stack of an empty list", "stack", function() return torch.stack({}, 1) end, { "empty", "tensor", "list", "least" } },
  }
  for _, e in ipairs(errors) do
    it(e[1] .. " is an error naming " .. e[2], function()
      H.expect_error(e[3], e[2], e[4])
    end)
  end
end)
