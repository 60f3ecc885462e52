-- SPEC §2 tostring(t): readable and PyTorch-like. Only robust substrings are checked; exact
-- spacing beyond PyTorch's own examples is the implementer's choice.
local H = require "spec.helpers"
local torch = H.torch

local function has(s, sub) return s:find(sub, 1, true) ~= nil end

describe("tostring(t)", function()
  local cases = {
    -- description, tensor maker, substrings that must appear
    { "float vector", function() return torch.tensor({ 1.0, 2.5 }) end, { "tensor([1.0000, 2.5000])" } },
    { "int64 vector", function() return torch.tensor({ 1, 2, 3 }) end, { "tensor([1, 2, 3])" } },
    { "int64 matrix", function() return torch.tensor({ { 1, 2 }, { 3, 4 } }) end, { "tensor([[1, 2],", "[3, 4]])" } },
    { "0-dim float", function() return torch.tensor(3.5) end, { "tensor(3.5000)" } },
    { "0-dim int", function() return torch.tensor(3) end, { "tensor(3)" } },
    { "bool vector", function() return torch.tensor({ true, false }) end, { "True", "False", "tensor([" } },
    { "negative floats", function() return torch.tensor({ -1.5, 2.0 }) end, { "-1.5000", "2.0000" } },
    { "nan and inf", function() return torch.tensor({ 0 / 0, math.huge, -math.huge, 1.5 }) end, { "nan", "inf", "-inf" } },
    { "float64 names its dtype", function() return torch.tensor({ 1.5 }, { dtype = "float64" }) end,
      { "1.5000", "float64" } },
    { "int32 names its dtype", function() return torch.tensor({ 1, 2 }, { dtype = "int32" }) end, { "1, 2", "int32" } },
    { "float16 names its dtype", function() return torch.tensor({ 0.5 }, { dtype = "float16" }) end,
      { "0.5000", "float16" } },
    { "a transposed view prints in logical order", function() return torch.tensor({ { 1, 2 }, { 3, 4 } }):t() end,
      { "[[1, 3],", "[2, 4]]" } },
    { "large and small magnitudes use scientific notation", function() return torch.tensor({ 1e10, 1.0 }) end,
      { "e+10", "e+00" } },
    { "an empty tensor", function() return torch.zeros(0) end, { "tensor([]" } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local s = tostring(c[2]())
      assert.is_string(s)
      for _, sub in ipairs(c[3]) do
        assert.is_true(has(s, sub), "missing '" .. sub .. "' in:\n" .. s)
      end
    end)
  end

  it("does not name the default dtypes float32, int64 and bool", function()
    for _, t in ipairs({ torch.tensor({ 1.5 }), torch.tensor({ 1 }), torch.tensor({ true }) }) do
      local s = tostring(t)
      assert.is_false(has(s, "dtype"), s)
    end
  end)

  it("summarizes large tensors with ...", function()
    local s = tostring(torch.zeros(10000))
    assert.is_true(has(s, "..."), s)
    assert.is_true(#s < 500, "printed " .. #s .. " characters")
    local m = tostring(torch.arange(100000):view(1000, 100))
    assert.is_true(has(m, "..."))
    assert.is_true(#m < 3000, "printed " .. #m .. " characters")
    assert.is_true(has(m, "99999"), "the last element should show")
  end)

  it("works for every dtype and for 3-D and empty 2-D tensors", function()
    for _, dt in ipairs(H.all_dtypes) do
      local s = tostring(torch.ones(2, 2, { dtype = dt }))
      assert.is_true(has(s, "tensor("), dt .. ": " .. s)
    end
    local s3 = tostring(torch.arange(8):view(2, 2, 2))
    assert.is_true(has(s3, "[[[0, 1],"), s3)
    assert.is_true(has(s3, "[6, 7]]])"), s3)
    assert.is_true(has(tostring(torch.zeros(2, 0)), "tensor("))
  end)

  it("print uses it", function()
    local out = H.run_lua([[local torch = require "moontorch"; print(torch.tensor({1, 2, 3}))]])
    assert.is_true(has(out, "tensor([1, 2, 3])"), out)
  end)
end)
