-- SPEC §2 "Views share storage": shapes and values of every view, writes through a view
-- showing in its base, and the 1-based / negative dim conventions.
local H = require "spec.helpers"
local torch = H.torch

-- base() is a fresh float32 tensor [[0, 1, 2], [3, 4, 5]].
local function base()
  return torch.tensor({ { 0.0, 1.0, 2.0 }, { 3.0, 4.0, 5.0 } })
end

describe("views share storage with their base", function()
  -- name, base maker, view maker, flat base values after view:fill_(-1)
  local X = -1.0
  local cases = {
    { "view", base, function(t) return t:view(3, 2) end, { X, X, X, X, X, X } },
    { "view(-1)", base, function(t) return t:view(-1) end, { X, X, X, X, X, X } },
    { "reshape of a contiguous tensor", base, function(t) return t:reshape(6) end, { X, X, X, X, X, X } },
    { "flatten", base, function(t) return t:flatten() end, { X, X, X, X, X, X } },
    { "transpose", base, function(t) return t:transpose(1, 2):narrow(1, 1, 1) end, { X, 1, 2, X, 4, 5 } },
    { "t()", base, function(t) return t:t():select(1, 3) end, { 0, 1, X, 3, 4, X } },
    { "permute", base, function(t) return t:permute(2, 1):select(1, 2) end, { 0, X, 2, 3, X, 5 } },
    { "squeeze", function() return base():view(2, 1, 3) end, function(t) return t:squeeze():select(1, 2) end,
      { 0, 1, 2, X, X, X } },
    { "squeeze(d)", function() return base():view(2, 1, 3) end, function(t) return t:squeeze(2):select(2, 1) end,
      { X, 1, 2, X, 4, 5 } },
    { "unsqueeze", base, function(t) return t:unsqueeze(1):select(3, 2) end, { 0, X, 2, 3, X, 5 } },
    { "narrow", base, function(t) return t:narrow(2, 2, 2) end, { 0, X, X, 3, X, X } },
    { "select", base, function(t) return t:select(1, 2) end, { 0, 1, 2, X, X, X } },
    { "select on dim 2", base, function(t) return t:select(2, 1) end, { X, 1, 2, X, 4, 5 } },
    { "t[i]", base, function(t) return t[1] end, { X, X, X, 3, 4, 5 } },
    { "t[i][j]", base, function(t) return t[2][3] end, { 0, 1, 2, 3, 4, X } },
    { "a view of a view", base, function(t) return t:t():narrow(1, 2, 2):select(2, 2) end, { 0, 1, 2, 3, X, X } },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. ": a write through the view shows in the base", function()
      local b = c[2]()
      local v = c[3](b)
      v:fill_(-1)
      H.assert_values(b, c[4], true)
    end)
    it(c[1] .. ": a write to the base shows in the view", function()
      local b = c[2]()
      local v = c[3](b)
      b:add_(10)
      for _, x in ipairs(H.values(v)) do assert.is_true(x >= 10, "view did not see the write: " .. x) end
    end)
  end

  it("expand: a write to the base shows in every expanded row", function()
    local b = torch.tensor({ { 1.0 }, { 2.0 } })
    local e = b:expand(2, 3)
    H.assert_values(e, { 1, 1, 1, 2, 2, 2 })
    b:fill_(7)
    H.assert_values(e, { 7, 7, 7, 7, 7, 7 })
    assert.are.same({ 1, 0 }, e:stride())
  end)

  it("in-place math through a view writes into the base", function()
    local b = base()
    b:select(1, 1):mul_(2)
    b:narrow(2, 3, 1):add_(100)
    H.assert_values(b, { 0, 2, 104, 3, 4, 105 })
  end)

  it("copy_ into a view writes into the base", function()
    local b = base()
    b:select(2, 2):copy_(torch.tensor({ 9.0, 8.0 }))
    H.assert_values(b, { 0, 9, 2, 3, 8, 5 })
  end)
end)

describe("view / reshape", function()
  it("view takes sizes as varargs or a table, with one -1", function()
    local b = base()
    assert.are.same({ 3, 2 }, b:view(3, 2).shape)
    assert.are.same({ 3, 2 }, b:view({ 3, 2 }).shape)
    assert.are.same({ 2, 3 }, b:view(-1, 3).shape)
    assert.are.same({ 1, 6, 1 }, b:view(1, -1, 1).shape)
    assert.are.same({ { 0, 1 }, { 2, 3 }, { 4, 5 } }, b:view(3, 2):tolist())
  end)
  it("view to a 0-dim tensor and back", function()
    local s = torch.tensor({ 5.0 }):view({})
    assert.are.same({}, s.shape)
    assert.are.same({ 1, 1 }, s:view(1, 1).shape)
  end)
  it("view with a wrong element count is an error naming view and the shape", function()
    H.expect_error(function() return base():view(4, 2) end, "view", { "shape", "size", "element", "%[" })
    H.expect_error(function() return base():view(-1, 4) end, "view", { "shape", "size", "element", "%[" })
  end)
  it("view with two -1 is an error", function()
    H.expect_error(function() return base():view(-1, -1) end, "view", { "%-1", "infer", "one" })
  end)
  it("view of an incompatible non-contiguous tensor is an error; reshape copies instead", function()
    local tt = base():t()
    H.expect_error(function() return tt:view(6) end, "view", { "contiguous", "stride", "reshape", "compatible" })
    local r = tt:reshape(6)
    assert.are.same({ 0, 3, 1, 4, 2, 5 }, r:tolist())
    r:fill_(0) -- a copy: the base keeps its values
    H.assert_values(tt, { 0, 3, 1, 4, 2, 5 })
  end)
  it("reshape takes varargs, a table and -1", function()
    local b = base()
    assert.are.same({ 6, 1 }, b:reshape(6, 1).shape)
    assert.are.same({ 6, 1 }, b:reshape({ 6, 1 }).shape)
    assert.are.same({ 3, 2 }, b:reshape(-1, 2).shape)
  end)
end)

describe("flatten", function()
  local t = torch.zeros(2, 3, 4, 5)
  local cases = {
    { "()", {}, { 120 } },
    { "(2)", { 2 }, { 2, 60 } },
    { "(2, 3)", { 2, 3 }, { 2, 12, 5 } },
    { "(1, -2)", { 1, -2 }, { 24, 5 } },
    { "(-2, -1)", { -2, -1 }, { 2, 3, 20 } },
    { "(3, 3)", { 3, 3 }, { 2, 3, 4, 5 } },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " gives " .. H.list_str(c[3]), function()
      assert.are.same(c[3], t:flatten(table.unpack(c[2])).shape)
    end)
  end
  it("of a 0-dim tensor gives one element", function()
    assert.are.same({ 1 }, torch.tensor(3.0):flatten().shape)
  end)
  it("keeps row-major order", function()
    assert.are.same({ 0, 1, 2, 3, 4, 5 }, base():flatten():tolist())
  end)
  it("with start after stop is an error", function()
    H.expect_error(function() return t:flatten(3, 2) end, "flatten", { "dim", "start", "end", "stop", "before" })
  end)
end)

describe("transpose / t / permute", function()
  it("transpose(d1, d2) swaps two 1-based dims", function()
    local t = torch.zeros(2, 3, 4)
    assert.are.same({ 3, 2, 4 }, t:transpose(1, 2).shape)
    assert.are.same({ 2, 4, 3 }, t:transpose(2, 3).shape)
    assert.are.same({ 4, 3, 2 }, t:transpose(1, -1).shape)
    assert.are.same({ 2, 3, 4 }, t:transpose(2, 2).shape)
  end)
  it("transpose moves the values", function()
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, base():transpose(1, 2):tolist())
  end)
  it("t() transposes a matrix and leaves a vector alone", function()
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, base():t():tolist())
    assert.are.same({ 1, 2 }, torch.tensor({ 1, 2 }):t():tolist())
  end)
  it("t() of a 3-D tensor is an error", function()
    H.expect_error(function() return torch.zeros(2, 2, 2):t() end, "t", { "dim", "2%-d", "2d", "matri" })
  end)
  it("permute takes 1-based dims as varargs or a table", function()
    local t = torch.zeros(2, 3, 4)
    assert.are.same({ 4, 2, 3 }, t:permute(3, 1, 2).shape)
    assert.are.same({ 4, 2, 3 }, t:permute({ 3, 1, 2 }).shape)
    assert.are.same({ 3, 4, 2 }, t:permute(-2, -1, -3).shape)
    local p = torch.arange(24):view(2, 3, 4):permute(3, 1, 2)
    -- p[k][i][j] = base[i][j][k]
    assert.are.equal(torch.arange(24):view(2, 3, 4)[2][3][4]:item(), p[4][2][3]:item())
    assert.are.equal(23, p[4][2][3]:item())
  end)
  it("permute with a repeated or missing dim is an error", function()
    H.expect_error(function() return torch.zeros(2, 3):permute(1, 1) end, "permute", { "dim", "repeat", "twice", "permutation" })
    H.expect_error(function() return torch.zeros(2, 3):permute(1) end, "permute", { "dim", "number", "permutation" })
  end)
end)

describe("squeeze / unsqueeze", function()
  local t = torch.zeros(1, 3, 1, 2)
  it("squeeze() drops every size-1 dim", function()
    assert.are.same({ 3, 2 }, t:squeeze().shape)
    assert.are.same({}, torch.zeros(1, 1):squeeze().shape)
  end)
  it("squeeze(d) drops that dim only if it has size 1", function()
    assert.are.same({ 3, 1, 2 }, t:squeeze(1).shape)
    assert.are.same({ 1, 3, 2 }, t:squeeze(3).shape)
    assert.are.same({ 1, 3, 1, 2 }, t:squeeze(2).shape)
    assert.are.same({ 1, 3, 2 }, t:squeeze(-2).shape)
  end)
  local un = {
    { 1, { 1, 2, 3 } }, { 2, { 2, 1, 3 } }, { 3, { 2, 3, 1 } }, { -1, { 2, 3, 1 } }, { -3, { 1, 2, 3 } },
  }
  for _, c in ipairs(un) do
    it("unsqueeze(" .. c[1] .. ") of [2, 3] gives " .. H.list_str(c[2]), function()
      assert.are.same(c[2], torch.zeros(2, 3):unsqueeze(c[1]).shape)
    end)
  end
  it("unsqueeze out of range is an error", function()
    H.expect_error(function() return torch.zeros(2, 3):unsqueeze(4) end, "unsqueeze", { "dim", "range" })
    H.expect_error(function() return torch.zeros(2, 3):unsqueeze(0) end, "unsqueeze", { "dim", "range", "0" })
  end)
end)

describe("narrow / select / t[i]", function()
  it("narrow(d, start, length) with a 1-based start", function()
    local t = torch.arange(10)
    assert.are.same({ 1, 2, 3 }, t:narrow(1, 2, 3):tolist())
    assert.are.same({ 0 }, t:narrow(1, 1, 1):tolist())
    assert.are.same({ 8, 9 }, t:narrow(1, 9, 2):tolist())
    assert.are.same({}, t:narrow(1, 4, 0):tolist())
    assert.are.same({ { 1, 2 }, { 4, 5 } }, base():narrow(2, 2, 2):tolist())
    assert.are.same({ { 1, 2 }, { 4, 5 } }, base():narrow(-1, 2, 2):tolist())
  end)
  it("narrow past the end is an error", function()
    H.expect_error(function() return torch.zeros(5):narrow(1, 4, 3) end, "narrow", { "range", "length", "exceed", "size", "start" })
    H.expect_error(function() return torch.zeros(5):narrow(1, 0, 1) end, "narrow", { "range", "start", "index", "0" })
  end)
  it("select(d, i) with a 1-based index drops that dim", function()
    local b = base()
    assert.are.same({ 3, 4, 5 }, b:select(1, 2):tolist())
    assert.are.same({ 2, 5 }, b:select(2, 3):tolist())
    assert.are.same({ 2, 5 }, b:select(-1, 3):tolist())
    assert.are.same({}, b:select(1, 1):select(1, 1).shape)
  end)
  it("select with a negative index counts from the end", function()
    assert.are.same({ 3, 4, 5 }, base():select(1, -1):tolist())
    assert.are.same({ 1, 4 }, base():select(2, -2):tolist())
  end)
  it("select out of range (including 0) is an error naming select and the index", function()
    for _, i in ipairs({ 0, 3, -3, 100 }) do
      H.expect_error(function() return base():select(1, i) end, "select", { "index", "range" })
    end
  end)
  it("t[i] is select(1, i)", function()
    local b = base()
    assert.are.same({ 0, 1, 2 }, b[1]:tolist())
    assert.are.same({ 3, 4, 5 }, b[2]:tolist())
    assert.are.same({ 3, 4, 5 }, b[-1]:tolist())
    assert.are.equal(4.0, b[2][2]:item())
    assert.is_true(torch.is_tensor(b[2][2]))
    assert.are.equal(0, b[2][2]:dim())
  end)
  it("t[i] keeps methods reachable (t.shape, t:sum, ...)", function()
    local b = base()
    assert.is_function(b.sum)
    assert.are.same({ 2, 3 }, b.shape)
  end)
  it("t[i] out of range is an error", function()
    local b = base()
    H.expect_error(function() return b[3] end, { "select", "index" }, { "index", "range" })
    H.expect_error(function() return b[0] end, { "select", "index" }, { "index", "range" })
  end)
end)

describe("expand", function()
  it("repeats size-1 dims without copying, -1 keeps a size", function()
    local t = torch.tensor({ 1.0, 2.0, 3.0 })
    local e = t:expand(2, 3)
    assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, e:tolist())
    assert.are.same({ 0, 1 }, e:stride())
    assert.are.same({ 4, 2, 3 }, t:expand({ 4, 2, 3 }).shape)
    assert.are.same({ 2, 3 }, torch.zeros(2, 1):expand(-1, 3).shape)
  end)
  it("expanding a dim that is not 1 is an error naming expand", function()
    H.expect_error(function() return torch.zeros(2, 3):expand(4, 3) end, "expand", { "size", "shape", "%[", "expand" })
  end)
end)
