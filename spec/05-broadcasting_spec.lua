-- SPEC §2 "broadcasting like NumPy/PyTorch": result shapes, values against a Lua reference that
-- broadcasts index by index, 0-dim and empty operands, and errors on mismatched shapes.
local H = require "spec.helpers"
local torch = H.torch

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- Reference broadcast of flat row-major values: out[idx] = f(a[idx'], b[idx'']).
local function ref_broadcast(f, av, ashape, bv, bshape, oshape)
  local nd = #oshape
  local out = {}
  local idx = {}
  for d = 1, nd do idx[d] = 0 end
  local function flat(shape, vals)
    local off, stride = 0, 1
    for d = #shape, 1, -1 do
      local od = nd - #shape + d
      local i = shape[d] == 1 and 0 or idx[od]
      off = off + i * stride
      stride = stride * shape[d]
    end
    return vals[off + 1]
  end
  for n = 1, numel(oshape) do
    out[n] = f(flat(ashape, av), flat(bshape, bv))
    for d = nd, 1, -1 do
      idx[d] = idx[d] + 1
      if idx[d] < oshape[d] then break end
      idx[d] = 0
    end
  end
  return out
end

local function make(shape, scale, offset)
  local n = numel(shape)
  local flat = {}
  for i = 1, n do flat[i] = (i - 1) * scale + offset end
  local t = torch.tensor(flat, { dtype = "float64" })
  return t:view(shape), flat
end

local shape_cases = {
  { { 3, 1 }, { 1, 4 }, { 3, 4 } },
  { { 2, 3 }, { 3 }, { 2, 3 } },
  { { 3 }, { 2, 3 }, { 2, 3 } },
  { { 2, 3 }, {}, { 2, 3 } },
  { {}, { 2, 3 }, { 2, 3 } },
  { {}, {}, {} },
  { { 2, 1, 3 }, { 4, 1 }, { 2, 4, 3 } },
  { { 5, 1, 4, 1 }, { 3, 1, 1 }, { 5, 3, 4, 1 } },
  { { 1, 1 }, { 2, 2, 2 }, { 2, 2, 2 } },
  { { 4, 1 }, { 1 }, { 4, 1 } },
  { { 2, 0 }, { 1 }, { 2, 0 } },
  { { 0 }, { 1 }, { 0 } },
  { { 2, 3, 4 }, { 2, 1, 4 }, { 2, 3, 4 } },
}

local ops = {
  { "add", function(x, y) return x + y end },
  { "sub", function(x, y) return x - y end },
  { "mul", function(x, y) return x * y end },
}

describe("broadcasting", function()
  for _, c in ipairs(shape_cases) do
    local as, bs, os = c[1], c[2], c[3]
    for _, op in ipairs(ops) do
      it(op[1] .. " " .. H.list_str(as) .. " with " .. H.list_str(bs) .. " gives " .. H.list_str(os), function()
        local a, av = make(as, 1, 1)
        local b, bv = make(bs, 10, 100)
        local r = op[2](a, b)
        H.assert_meta(r, os, "float64")
        H.assert_values(r, ref_broadcast(op[2], av, as, bv, bs, os), true)
        local m = torch[op[1]](a, b)
        H.assert_values(m, ref_broadcast(op[2], av, as, bv, bs, os), true)
      end)
    end
  end

  it("[3, 1] + [1, 4] gives the outer sum", function()
    local r = torch.tensor({ { 1.0 }, { 2.0 }, { 3.0 } }) + torch.tensor({ { 10.0, 20.0, 30.0, 40.0 } })
    assert.are.same({ { 11, 21, 31, 41 }, { 12, 22, 32, 42 }, { 13, 23, 33, 43 } }, r:tolist())
  end)

  it("a 0-dim tensor broadcasts like a number", function()
    local r = torch.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }) * torch.tensor(2.0)
    assert.are.same({ { 2, 4 }, { 6, 8 } }, r:tolist())
  end)

  it("works with expanded and transposed operands", function()
    local a = torch.tensor({ 1.0, 2.0, 3.0 }):expand(2, 3)
    local b = torch.tensor({ { 10.0, 20.0 }, { 30.0, 40.0 }, { 50.0, 60.0 } }):t() -- [2, 3]
    assert.are.same({ { 11, 32, 53 }, { 21, 42, 63 } }, (a + b):tolist())
  end)

  it("applies to comparisons and where", function()
    local c = torch.tensor({ { 1.0 }, { 5.0 } }):gt(torch.tensor({ 0.0, 2.0, 6.0 }))
    assert.are.same({ { true, false, false }, { true, true, false } }, c:tolist())
    local w = torch.where(torch.tensor({ true, false, true }), torch.tensor({ { 1.0 }, { 2.0 } }), torch.tensor(0.0))
    assert.are.same({ { 1, 0, 1 }, { 2, 0, 2 } }, w:tolist())
  end)

  local bad = {
    { { 2, 3 }, { 2 } },
    { { 3 }, { 4 } },
    { { 2, 3, 4 }, { 3, 3 } },
    { { 2, 0 }, { 3 } },
  }
  for _, c in ipairs(bad) do
    it("mismatched " .. H.list_str(c[1]) .. " and " .. H.list_str(c[2]) .. " is an error naming the op and the shapes",
      function()
        local a, b = torch.zeros(c[1]), torch.zeros(c[2])
        H.expect_error(function() return torch.add(a, b) end, "add", { "broadcast", "shape", "size" })
        H.expect_error(function() return a:mul(b) end, "mul", { "broadcast", "shape", "size" })
        H.expect_error(function() return a - b end, { "sub", "%-" }, { "broadcast", "shape", "size" })
        local err = H.expect_error(function() return a:eq(b) end, "eq", { "broadcast", "shape", "size" })
        assert.is_truthy(err:find(tostring(c[1][1]), 1, true), "the message shows no shape: " .. err)
      end)
  end

  it("in place, the other operand broadcasts to the tensor's shape", function()
    local t = torch.zeros(2, 3)
    t:add_(torch.tensor({ 1.0, 2.0, 3.0 }))
    t:mul_(torch.tensor({ { 1.0 }, { 10.0 } }))
    assert.are.same({ { 1, 2, 3 }, { 10, 20, 30 } }, t:tolist())
  end)

  it("in place, a result larger than the tensor is an error", function()
    local t = torch.zeros(3)
    H.expect_error(function() return t:add_(torch.zeros(2, 3)) end, "add_", { "broadcast", "shape", "size" })
    H.assert_values(t, { 0, 0, 0 })
  end)
end)
