-- SPEC §2 "Random numbers": manual_seed determinism (in this process and across runs),
-- get_rng_state / set_rng_state resuming the same stream, ranges and rough statistics.
local H = require "spec.helpers"
local torch = H.torch

local draws = {
  { "rand", function() return torch.rand(50) end },
  { "randn", function() return torch.randn(50) end },
  { "randint", function() return torch.randint(0, 1000, { 50 }) end },
  { "rand float64", function() return torch.rand(5, 10, { dtype = "float64" }) end },
  { "randn float64", function() return torch.randn({ 50 }, { dtype = "float64" }) end },
  { "rand_like", function() return torch.rand_like(torch.zeros(50)) end },
  { "randn_like", function() return torch.randn_like(torch.zeros(50, { dtype = "float64" })) end },
}

describe("manual_seed", function()
  for _, d in ipairs(draws) do
    it("gives the same " .. d[1] .. " numbers for the same seed", function()
      torch.manual_seed(42)
      local a = d[2]()
      torch.manual_seed(42)
      local b = d[2]()
      assert.is_true(torch.equal(a, b))
    end)
    it("gives different " .. d[1] .. " numbers for another seed", function()
      torch.manual_seed(1)
      local a = d[2]()
      torch.manual_seed(2)
      local b = d[2]()
      assert.is_false(torch.equal(a, b))
    end)
  end

  it("successive draws differ", function()
    torch.manual_seed(7)
    assert.is_false(torch.equal(torch.rand(20), torch.rand(20)))
  end)

  it("gives the same numbers in a fresh process (no hidden time or address seeding)", function()
    local code = [[
      local torch = require "moontorch"
      torch.manual_seed(2024)
      local parts = {}
      for _, v in ipairs(torch.rand(8, { dtype = "float64" }):tolist()) do parts[#parts + 1] = string.format("%.17g", v) end
      for _, v in ipairs(torch.randn(4):tolist()) do parts[#parts + 1] = string.format("%.9g", v) end
      for _, v in ipairs(torch.randint(0, 1000000, { 4 }):tolist()) do parts[#parts + 1] = tostring(v) end
      io.write("VALUES:", table.concat(parts, ","), ":END")
    ]]
    local out1, ok1 = H.run_lua(code)
    local out2, ok2 = H.run_lua(code)
    assert.is_true(ok1, out1)
    assert.is_true(ok2, out2)
    local v1, v2 = out1:match("VALUES:(.-):END"), out2:match("VALUES:(.-):END")
    assert.is_string(v1, out1)
    assert.are.equal(v1, v2)
    -- and the same as in this process
    torch.manual_seed(2024)
    local parts = {}
    for _, v in ipairs(torch.rand(8, { dtype = "float64" }):tolist()) do parts[#parts + 1] = string.format("%.17g", v) end
    for _, v in ipairs(torch.randn(4):tolist()) do parts[#parts + 1] = string.format("%.9g", v) end
    for _, v in ipairs(torch.randint(0, 1000000, { 4 }):tolist()) do parts[#parts + 1] = tostring(v) end
    assert.are.equal(v1, table.concat(parts, ","))
  end)
end)

describe("get_rng_state / set_rng_state", function()
  it("get_rng_state returns a non-empty 1-D uint8 tensor", function()
    local s = torch.get_rng_state()
    assert.is_true(torch.is_tensor(s))
    assert.are.equal("uint8", s.dtype)
    assert.are.equal(1, s:dim())
    assert.is_true(s:numel() > 0)
  end)

  it("resumes the same stream: a resumed run draws what an uninterrupted one does", function()
    torch.manual_seed(123)
    local _ = torch.rand(10)
    local state = torch.get_rng_state()
    local uninterrupted = { torch.rand(5), torch.randn(5), torch.randint(0, 100, { 5 }) }
    -- something else uses the generator in between
    torch.manual_seed(999)
    local _ = torch.randn(37)
    torch.set_rng_state(state)
    local resumed = { torch.rand(5), torch.randn(5), torch.randint(0, 100, { 5 }) }
    for i = 1, 3 do assert.is_true(torch.equal(uninterrupted[i], resumed[i]), "draw " .. i .. " differs") end
  end)

  it("resumes mid-way through randn's pairs (odd counts)", function()
    torch.manual_seed(5)
    local _ = torch.randn(3)
    local state = torch.get_rng_state()
    local a = torch.randn(7)
    local _ = torch.randn(1)
    torch.set_rng_state(state)
    assert.is_true(torch.equal(a, torch.randn(7)))
  end)

  it("the state is a copy: drawing more does not change a saved state", function()
    torch.manual_seed(11)
    local state = torch.get_rng_state()
    local copy = state:clone()
    local _ = torch.rand(100)
    assert.is_true(torch.equal(state, copy))
  end)

  it("a state survives a round trip through a Lua table", function()
    torch.manual_seed(77)
    local l = torch.get_rng_state():tolist()
    local a = torch.rand(4)
    torch.set_rng_state(torch.tensor(l, { dtype = "uint8" }))
    assert.is_true(torch.equal(a, torch.rand(4)))
  end)

  it("set_rng_state rejects a wrong tensor with an error naming set_rng_state", function()
    local good = torch.get_rng_state()
    H.expect_error(function() return torch.set_rng_state(torch.zeros(3, { dtype = "uint8" })) end, "set_rng_state",
      { "size", "byte", "length", "state", "element" })
    H.expect_error(function() return torch.set_rng_state(good:float()) end, "set_rng_state", { "uint8", "dtype", "byte" })
    H.expect_error(function() return torch.set_rng_state("state") end, "set_rng_state", { "tensor" })
  end)
end)

describe("distributions", function()
  it("rand lies in [0, 1) with mean about 1/2 and variance about 1/12", function()
    torch.manual_seed(3)
    local t = torch.rand(100000, { dtype = "float64" })
    assert.is_true(t:min():item() >= 0)
    assert.is_true(t:max():item() < 1)
    assert.is_true(math.abs(t:mean():item() - 0.5) < 0.01)
    assert.is_true(math.abs(t:var():item() - 1 / 12) < 0.005)
  end)
  it("rand in float32 never reaches 1", function()
    torch.manual_seed(4)
    assert.is_true(torch.rand(200000):max():item() < 1)
  end)
  it("randn has mean about 0 and std about 1, with tails", function()
    torch.manual_seed(5)
    local t = torch.randn(100000, { dtype = "float64" })
    assert.is_true(math.abs(t:mean():item()) < 0.02)
    assert.is_true(math.abs(t:std():item() - 1) < 0.02)
    local beyond2 = t:abs():gt(2):sum():item() / 100000
    assert.is_true(math.abs(beyond2 - 0.0455) < 0.005, "P(|z| > 2) was " .. beyond2)
  end)
  it("randint covers [low, high) about uniformly", function()
    torch.manual_seed(6)
    local t = torch.randint(5, 15, { 100000 })
    local counts = {}
    for _, v in ipairs(t:tolist()) do counts[v] = (counts[v] or 0) + 1 end
    for v = 5, 14 do
      assert.is_true(counts[v] and math.abs(counts[v] - 10000) < 600, "count of " .. v .. ": " .. tostring(counts[v]))
    end
    assert.is_nil(counts[4])
    assert.is_nil(counts[15])
  end)
  it("randint handles a wide range without overflow", function()
    local t = torch.randint(-(1 << 40), 1 << 40, { 1000 })
    assert.is_true(t:min():item() >= -2 ^ 40 and t:max():item() < 2 ^ 40)
    assert.is_true(t:max():item() > 2 ^ 38, "values do not spread over the range")
  end)
  it("randint with high <= low is an error naming randint", function()
    H.expect_error(function() return torch.randint(5, 5, { 3 }) end, "randint", { "range", "low", "high", "empty" })
  end)
end)
