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

-- bernoulli_ draws one float64 uniform (two 32-bit words) per element from PyTorch's MT19937
-- stream; these sizes and stream offsets cross the engine's 624-word refills at both parities.
-- Reference numbers from PyTorch 1.13 (no MKL): torch.manual_seed(seed); torch.rand(shift);
-- t = torch.empty(n, dtype=dt).bernoulli_(p); count = t.long().sum(), weighted =
-- (t.long() * (torch.arange(n) % 9973 + 1)).sum(), next = torch.randint(0, 2**31, (1,)).
describe("bernoulli_ and dropout follow PyTorch's stream", function()
  local cases = {
    { 0, 0, 1, 0.3, "float32", 0, 0, 924231285 },
    { 1, 1, 311, 0.75, "float64", 230, 35290, 2006116153 },
    { 2, 0, 312, 0.5, "uint8", 161, 25814, 2006235625 },
    { 3, 1, 313, 0.25, "bool", 82, 11909, 231958239 },
    { 4, 0, 625, 0.9, "int16", 564, 177134, 593301534 },
    { 5, 1, 1249, 0.75, "float32", 932, 578937, 1813250325 },
    { 6, 3, 4097, 0.1, "bfloat16", 383, 790795, 2010440336 },
    { 7, 1, 100003, 0.75, "float32", 74935, 372903733, 1002280831 },
    { 8, 0, 200704, 0.75, "float32", 150280, 744681683, 1650569771 },
    { 9, 1, 1000, 0.0, "float32", 0, 0, 353063754 },
    { 10, 1, 1000, 1.0, "float64", 1000, 500500, 1876618016 },
    { 11, 2, 623, 1e-9, "int64", 0, 0, 238037002 },
  }
  local function weights(n) return torch.arange(n):remainder(9973):add(1) end

  for _, c in ipairs(cases) do
    local seed, shift, n, p, dt, count, weighted, nxt = table.unpack(c)
    it(string.format("bernoulli_(%g) of %d %s after %d words", p, n, dt, shift), function()
      torch.manual_seed(seed)
      if shift > 0 then torch.rand(shift) end
      local t = torch.empty(n, { dtype = dt }):bernoulli_(p):long()
      assert.are.equal(count, t:sum():item())
      assert.are.equal(weighted, (t * weights(n)):sum():item())
      assert.are.equal(nxt, torch.randint(0, 2147483648, { 1 }):item(), "the stream goes on where PyTorch's does")
    end)
  end

  -- PyTorch: x = ((torch.arange(n) % 17).double() - 8.5).mul(0.37).to(dt); torch.manual_seed(seed);
  -- y = F.dropout(x, p, True); the kept positions y.ne(0), and the first kept value
  for _, c in ipairs({ { 8, 128 * 1568, 0.25, "float32", 150280, 744681683, 2, -3.700000286102295 },
                       { 9, 1249, 0.5, "float64", 627, 383453, 1, -6.29 } }) do
    local seed, n, p, dt, count, weighted, first, value = table.unpack(c)
    it(string.format("dropout(%g) of %d %s keeps PyTorch's elements, scaled as PyTorch scales them", p, n, dt), function()
      local x = torch.arange(n):remainder(17):to("float64"):sub(8.5):mul(0.37):to(dt):requires_grad_()
      torch.manual_seed(seed)
      local y = torch.nn.functional.dropout(x, p, true)
      local kept = y:ne(0):long()
      assert.are.equal(count, kept:sum():item())
      assert.are.equal(weighted, (kept * weights(n)):sum():item())
      assert.are.equal(1, kept[first]:item())
      assert.are.equal(value, y[first]:item())
    end)
  end

  -- The composite dropout is bernoulli_(1 - p), div_(1 - p), input * noise.
  local function composite(x, p, seed)
    torch.manual_seed(seed)
    local noise = torch.empty_like(x:detach()):bernoulli_(1 - p)
    noise:div_(1 - p)
    return noise
  end
  local function same(a, b) -- bit for bit, NaN where NaN, -0 where -0
    assert.is_true(torch.equal(a:isnan(), b:isnan()))
    local an, bn = a:detach():masked_fill(a:isnan(), 0), b:detach():masked_fill(b:isnan(), 0)
    assert.is_true(torch.equal(an, bn))
    assert.is_true(torch.equal(an:reciprocal(), bn:reciprocal())) -- +inf or -inf at zeros
  end

  for _, dt in ipairs({ "float32", "float64", "float16", "bfloat16" }) do
    for _, n in ipairs({ 1, 2, 311, 313, 1249, 5003 }) do
      it(string.format("dropout of %d %s is the composite's output and gradient, NaN, inf and -0 included", n, dt), function()
        local base = torch.arange(n):remainder(7):to("float64"):sub(3):mul(0.25)
        if n > 4 then base[2], base[3], base[4] = 0 / 0, 1 / 0, -0.0 end
        for _, p in ipairs({ 0.25, 0.5, 0.9 }) do
          local x = base:to(dt):clone():requires_grad_() -- a fresh leaf for each p
          torch.manual_seed(n)
          local y = torch.nn.functional.dropout(x, p, true)
          local noise = composite(x, p, n)
          same(y, x:detach() * noise)
          assert.are.equal("MulBackward0", y.grad_fn:name())
          local g = torch.arange(n):to(dt)
          y:backward(g)
          same(x.grad, g * noise)
          torch.manual_seed(n)
          local y2 = torch.no_grad(function() return torch.nn.functional.dropout(x, p, true) end)
          same(y2, y:detach())
        end
      end)
    end
  end

  it("dropout of a strided input and of a 2-D channel-wise input is the composite's", function()
    local x = torch.arange(600):to("float32"):sub(300):view(20, 30):t()
    torch.manual_seed(3)
    local y = torch.nn.functional.dropout(x, 0.25, true)
    same(y, x * composite(x:contiguous(), 0.25, 3))
    local v = torch.arange(2 * 3 * 4):to("float64"):view(2, 3, 2, 2)
    torch.manual_seed(4)
    local y2 = torch.nn.functional.dropout2d(v, 0.5, true)
    same(y2, v * composite(torch.empty(2, 3, 1, 1, { dtype = "float64" }), 0.5, 4))
  end)

  it("a second backward through dropout without retain_graph is an error", function()
    local x = torch.randn(10):requires_grad_()
    local y = torch.nn.functional.dropout(x, 0.5, true):sum()
    y:backward(nil, { retain_graph = true })
    y:backward()
    assert.has_error(function() y:backward() end)
  end)
end)
