-- SPEC §2 matmul (1-D, 2-D, batched, broadcast batch dims), mm and bmm, checked against a
-- plain Lua reference over many shapes and layouts (transposed operands included).
local H = require "spec.helpers"
local torch = H.torch

-- Deterministic pseudo-random values in [-1, 1) (independent of the library's RNG).
local seed = 12345
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 1073741824 - 1
end

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

local function make(shape, dt)
  local flat = {}
  for i = 1, numel(shape) do flat[i] = math.floor(rnd() * 8) / 4 end -- exact in float32
  return torch.tensor(flat, { dtype = dt }):view(shape)
end

-- Reference: out = a @ b for row-major flat values of 2-D operands.
local function mm_ref(av, bv, n, k, m)
  local out = {}
  for i = 1, n do
    for j = 1, m do
      local s = 0
      for p = 1, k do s = s + av[(i - 1) * k + p] * bv[(p - 1) * m + j] end
      out[(i - 1) * m + j] = s
    end
  end
  return out
end

for _, dt in ipairs(H.math_dtypes) do
  describe("matmul in " .. dt, function()
    local shapes = {
      { 1, 1, 1 }, { 2, 3, 4 }, { 4, 3, 2 }, { 5, 1, 7 }, { 1, 8, 1 }, { 7, 9, 3 }, { 33, 17, 65 },
    }
    for _, s in ipairs(shapes) do
      local n, k, m = s[1], s[2], s[3]
      it(string.format("[%d, %d] @ [%d, %d] (matmul, mm, torch.matmul, torch.mm)", n, k, k, m), function()
        local a, b = make({ n, k }, dt), make({ k, m }, dt)
        local e = mm_ref(H.values(a), H.values(b), n, k, m)
        for _, r in ipairs({ a:matmul(b), a:mm(b), torch.matmul(a, b), torch.mm(a, b) }) do
          H.assert_meta(r, { n, m }, dt)
          H.assert_values(r, e)
        end
      end)
      it(string.format("[%d, %d] @ [%d, %d] with transposed operands", n, k, k, m), function()
        local at = make({ k, n }, dt):t() -- [n, k], not contiguous
        local bt = make({ m, k }, dt):t() -- [k, m], not contiguous
        local av, bv = H.values(at), H.values(bt)
        H.assert_values(at:matmul(bt), mm_ref(av, bv, n, k, m))
        local b = make({ k, m }, dt)
        H.assert_values(at:mm(b), mm_ref(av, H.values(b), n, k, m))
        local a = make({ n, k }, dt)
        H.assert_values(a:mm(bt), mm_ref(H.values(a), bv, n, k, m))
      end)
    end

    it("1-D @ 1-D is a 0-dim dot product", function()
      local a = torch.tensor({ 1, 2, 3 }, { dtype = dt })
      local b = torch.tensor({ 4, -5, 6 }, { dtype = dt })
      local r = a:matmul(b)
      H.assert_meta(r, {}, dt)
      assert.are.equal(12, r:item())
    end)
    it("2-D @ 1-D is a matrix-vector product", function()
      local a = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = dt })
      local r = a:matmul(torch.tensor({ 1, 0, -1 }, { dtype = dt }))
      H.assert_meta(r, { 2 }, dt)
      H.assert_values(r, { -2, -2 })
    end)
    it("1-D @ 2-D is a vector-matrix product", function()
      local a = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, { dtype = dt })
      local r = torch.tensor({ 1, -1 }, { dtype = dt }):matmul(a)
      H.assert_meta(r, { 3 }, dt)
      H.assert_values(r, { -3, -3, -3 })
    end)
    it("2-D @ transposed 2-D view", function()
      local a = torch.tensor({ { 1, 2 }, { 3, 4 } }, { dtype = dt })
      H.assert_values(a:matmul(a:t()), { 5, 11, 11, 25 })
      H.assert_values(a:t():matmul(a), { 10, 14, 14, 20 })
    end)

    local batched = {
      -- a shape, b shape, result shape
      { { 3, 2, 4 }, { 3, 4, 5 }, { 3, 2, 5 } },
      { { 3, 2, 4 }, { 4, 5 }, { 3, 2, 5 } },
      { { 2, 4 }, { 3, 4, 5 }, { 3, 2, 5 } },
      { { 2, 1, 3, 4 }, { 5, 4, 2 }, { 2, 5, 3, 2 } },
      { { 3, 2, 4 }, { 4 }, { 3, 2 } },
      { { 4 }, { 3, 4, 5 }, { 3, 5 } },
      { { 1, 2, 3 }, { 6, 3, 2 }, { 6, 2, 2 } },
    }
    for _, c in ipairs(batched) do
      it("batched " .. H.list_str(c[1]) .. " @ " .. H.list_str(c[2]) .. " gives " .. H.list_str(c[3]), function()
        local a, b = make(c[1], dt), make(c[2], dt)
        local r = a:matmul(b)
        H.assert_meta(r, c[3], dt)
        -- Reference: broadcast both to full batch shapes, then loop over the batch.
        local a2 = #c[1] == 1 and a:unsqueeze(1) or a
        local b2 = #c[2] == 1 and b:unsqueeze(2) or b
        local n, k, m = a2:size(-2), a2:size(-1), b2:size(-1)
        local batch = {}
        for i = 1, #c[3] - ((#c[1] == 1 or #c[2] == 1) and 1 or 2) do batch[i] = c[3][i] end
        local function full(t, rows, cols)
          local shape = {}
          for i, v in ipairs(batch) do shape[i] = v end
          shape[#shape + 1], shape[#shape + 2] = rows, cols
          return t:expand(shape):contiguous():view(-1, rows, cols)
        end
        local A, B = full(a2, n, k), full(b2, k, m)
        local e = {}
        for i = 1, A:size(1) do
          for _, v in ipairs(mm_ref(H.values(A[i]), H.values(B[i]), n, k, m)) do e[#e + 1] = v end
        end
        H.assert_values(r, e)
      end)
    end

    it("bmm multiplies matching batches", function()
      local a, b = make({ 4, 3, 2 }, dt), make({ 4, 2, 5 }, dt)
      local r = a:bmm(b)
      H.assert_meta(r, { 4, 3, 5 }, dt)
      for i = 1, 4 do
        H.assert_values(r[i], mm_ref(H.values(a[i]), H.values(b[i]), 3, 2, 5))
      end
      assert.is_true(torch.allclose(torch.bmm(a, b), r))
    end)
    it("bmm with transposed batches", function()
      local a = make({ 2, 3, 4 }, dt):transpose(2, 3) -- [2, 4, 3]
      local b = make({ 2, 3, 5 }, dt)
      local r = a:bmm(b)
      H.assert_meta(r, { 2, 4, 5 }, dt)
      for i = 1, 2 do
        H.assert_values(r[i], mm_ref(H.values(a[i]), H.values(b[i]), 4, 3, 5))
      end
    end)
    it("matmul with an empty inner dim gives zeros", function()
      local r = torch.zeros(2, 0, { dtype = dt }):matmul(torch.zeros(0, 3, { dtype = dt }))
      H.assert_meta(r, { 2, 3 }, dt)
      H.assert_values(r, { 0, 0, 0, 0, 0, 0 })
    end)
  end)
end

describe("matmul errors", function()
  local cases = {
    { "matmul", function() return torch.zeros(2, 3):matmul(torch.zeros(4, 2)) end, { "shape", "size", "%[" } },
    { "matmul", function() return torch.zeros(3):matmul(torch.zeros(4)) end, { "shape", "size", "%[" } },
    { "matmul", function() return torch.zeros(2, 2, 3):matmul(torch.zeros(3, 3, 2)) end,
      { "broadcast", "shape", "size", "batch" } },
    { "matmul", function() return torch.tensor(2.0):matmul(torch.zeros(2)) end, { "dim", "0%-d", "scalar", "shape" } },
    { "mm", function() return torch.zeros(2, 3):mm(torch.zeros(2, 3)) end, { "shape", "size", "%[" } },
    { "mm", function() return torch.zeros(2, 3, 4):mm(torch.zeros(4, 2)) end, { "2%-d", "2d", "dim", "matri" } },
    { "bmm", function() return torch.zeros(2, 3, 4):bmm(torch.zeros(3, 4, 5)) end, { "batch", "shape", "size" } },
    { "bmm", function() return torch.zeros(3, 4):bmm(torch.zeros(4, 5)) end, { "3%-d", "3d", "dim", "batch" } },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " with mismatched operands names " .. c[1] .. " and the problem", function()
      H.expect_error(c[2], c[1], c[3])
    end)
  end
end)
