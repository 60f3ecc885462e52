-- SPEC §2 indexing: index_select, gather (1-based indices), masked_fill — all copies — over
-- every dtype, with index errors.
local H = require "spec.helpers"
local torch = H.torch

local M = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }

local function conv(dt, l)
  -- Expected values in dtype dt: bool maps nonzero to true, floats to floats.
  local out = {}
  for i, v in ipairs(l) do
    if dt == "bool" then out[i] = v ~= 0
    elseif H.is_float_dtype[dt] then out[i] = v + 0.0
    else out[i] = v end
  end
  return out
end

for _, dt in ipairs(H.all_dtypes) do
  describe("indexing on " .. dt, function()
    local function m() return torch.tensor(M, { dtype = dt }) end

    it("index_select(1, idx) picks rows by 1-based index", function()
      local r = m():index_select(1, torch.tensor({ 3, 1 }))
      H.assert_meta(r, { 2, 3 }, dt)
      H.assert_values(r, conv(dt, { 7, 8, 9, 1, 2, 3 }), true)
    end)
    it("index_select(2, idx) picks columns, repeats allowed", function()
      local r = torch.index_select(m(), 2, torch.tensor({ 2, 2, 3 }))
      H.assert_meta(r, { 3, 3 }, dt)
      H.assert_values(r, conv(dt, { 2, 2, 3, 5, 5, 6, 8, 8, 9 }), true)
    end)
    it("gather(2, idx): out[i][j] = t[i][idx[i][j]]", function()
      local r = m():gather(2, torch.tensor({ { 1, 1 }, { 3, 2 }, { 2, 3 } }))
      H.assert_meta(r, { 3, 2 }, dt)
      H.assert_values(r, conv(dt, { 1, 1, 6, 5, 8, 9 }), true)
    end)
    it("gather(1, idx): out[i][j] = t[idx[i][j]][j]", function()
      local r = torch.gather(m(), 1, torch.tensor({ { 3, 2, 1 } }))
      H.assert_meta(r, { 1, 3 }, dt)
      H.assert_values(r, conv(dt, { 7, 5, 3 }), true)
    end)
    it("masked_fill(mask, v) fills where mask is true, broadcasting the mask", function()
      local mask = torch.tensor({ true, false, true })
      local r = m():masked_fill(mask, 0)
      H.assert_meta(r, { 3, 3 }, dt)
      H.assert_values(r, conv(dt, { 0, 2, 0, 0, 5, 0, 0, 8, 0 }), true)
    end)
    it("masked_fill_ works in place and returns the tensor", function()
      local t = m()
      local mask = torch.tensor({ { true }, { false }, { false } })
      assert.is_true(rawequal(t, t:masked_fill_(mask, 1)))
      H.assert_values(t, conv(dt, { 1, 1, 1, 4, 5, 6, 7, 8, 9 }), true)
    end)
  end)
end

describe("indexing details", function()
  local function m() return torch.tensor(M, { dtype = "float32" }) end

  it("index_select, gather and masked_fill copy (the source is untouched)", function()
    local src = m()
    local a = src:index_select(1, torch.tensor({ 1 }))
    local b = src:gather(2, torch.tensor({ { 1 }, { 1 }, { 1 } }))
    local c = src:masked_fill(torch.tensor({ true, true, true }), 0)
    a:fill_(-1)
    b:fill_(-1)
    c:fill_(-1)
    H.assert_values(src, { 1, 2, 3, 4, 5, 6, 7, 8, 9 })
  end)
  it("index_select takes int32 indices and a negative dim", function()
    local r = m():index_select(-1, torch.tensor({ 3, 1 }, { dtype = "int32" }))
    H.assert_values(r, { 3, 1, 6, 4, 9, 7 })
  end)
  it("index_select of an empty index gives an empty dim", function()
    local r = m():index_select(1, torch.zeros(0, { dtype = "int64" }))
    assert.are.same({ 0, 3 }, r.shape)
  end)
  it("index_select on a non-contiguous tensor", function()
    local r = m():t():index_select(1, torch.tensor({ 2 }))
    H.assert_values(r, { 2, 5, 8 })
  end)
  it("masked_fill with a float value into a float tensor, and with nan", function()
    local r = m():masked_fill(torch.tensor({ false, true, false }), 0.5)
    H.assert_values(r, { 1, 0.5, 3, 4, 0.5, 6, 7, 0.5, 9 })
    local n = m():masked_fill(torch.tensor({ true, false, false }), 0 / 0)
    assert.is_true(H.isnan(n[1][1]:item()))
  end)
  it("masked_fill with a 0-dim tensor value", function()
    local r = m():masked_fill(torch.tensor({ false, false, true }), torch.tensor(-2.0))
    H.assert_values(r, { 1, 2, -2, 4, 5, -2, 7, 8, -2 })
  end)

  local errors = {
    { "index_select with index 0", "index_select", function() return m():index_select(1, torch.tensor({ 0 })) end },
    { "index_select past the end", "index_select", function() return m():index_select(2, torch.tensor({ 4 })) end },
    { "index_select with a negative index", "index_select",
      function() return m():index_select(2, torch.tensor({ -1 })) end },
    { "gather with index 0", "gather", function() return m():gather(2, torch.tensor({ { 0 }, { 1 }, { 1 } })) end },
    { "gather past the end", "gather", function() return m():gather(1, torch.tensor({ { 4, 1, 1 } })) end },
  }
  for _, e in ipairs(errors) do
    it(e[1] .. " is an error naming " .. e[2] .. " and the index", function()
      H.expect_error(e[3], e[2], { "index", "range", "bound" })
    end)
  end
  it("index_select with a float index tensor is an error", function()
    H.expect_error(function() return m():index_select(1, torch.tensor({ 1.0 })) end, "index_select",
      { "int", "dtype", "long", "index" })
  end)
  it("index_select with a dim out of range is an error", function()
    H.expect_error(function() return m():index_select(3, torch.tensor({ 1 })) end, "index_select", { "dim", "range" })
    H.expect_error(function() return m():index_select(0, torch.tensor({ 1 })) end, "index_select", { "dim", "range" })
  end)
  it("gather with an index of another rank is an error", function()
    H.expect_error(function() return m():gather(1, torch.tensor({ 1, 2 })) end, "gather",
      { "dim", "shape", "size", "rank", "number" })
  end)
  it("masked_fill with a non-bool mask is an error", function()
    H.expect_error(function() return m():masked_fill(torch.tensor({ 1, 0, 1 }), 0) end, "masked_fill",
      { "bool", "mask", "dtype" })
  end)
  it("masked_fill with a mask that does not broadcast is an error", function()
    H.expect_error(function() return m():masked_fill(torch.tensor({ true, false }), 0) end, "masked_fill",
      { "broadcast", "shape", "size" })
  end)
end)
