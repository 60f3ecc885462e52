-- The Lua binding itself: the tensor userdata (__gc / __close / __index / __newindex / ==),
-- GC pacing against tensor memory that lives outside Lua's heap, number operands and type
-- promotion, the 1-based index conversions, error naming, printing byte-for-byte like
-- PyTorch, and the Lua-side helpers in lua/moontorch/tensor.lua.
local H = require "spec.helpers"
local torch = H.torch

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function assert_err(pattern, fn, ...)
  local err = err_of(fn, ...)
  assert.is_truthy(err:find(pattern, 1, true), "error was: " .. err)
end

describe("binding: GC pacing", function()
  -- Each case runs in a fresh interpreter: a 10 GB stream of 10 MB temporaries with no
  -- collectgarbage call must keep the resident set under 500 MB, in both collector modes.
  local STREAM = [[
    local mode = %q
    collectgarbage(mode)
    local torch = require "moontorch"
    local function rss_mb()
      local f = io.open("/proc/self/statm")
      local _, resident = f:read("n", "n")
      f:close()
      return resident * 4096 / 2^20
    end
    local x = torch.zeros(2500000) -- 10 MB of float32
    local peak = 0
    for i = 1, 1000 do             -- 1000 x 10 MB = 10 GB of temporaries
      local y = (i %% 2 == 0) and (x + 1) or torch.empty(2500000)
      if i %% 25 == 0 then peak = math.max(peak, rss_mb()) end
    end
    print(string.format("peak=%%d", math.floor(peak)))
  ]]
  for _, mode in ipairs({ "generational", "incremental" }) do
    it("10 GB of 10 MB temporaries stay under 500 MB RSS (" .. mode .. " collector)", function()
      local out, ok = H.run_lua(STREAM:format(mode))
      assert.is_true(ok, out)
      local peak = tonumber(out:match("peak=(%d+)"))
      assert.is_number(peak, out)
      assert.is_true(peak < 500, "peak RSS " .. tostring(peak) .. " MB")
    end)
  end

  it("a loop of small tensors stays flat", function()
    if os.getenv("MOONTORCH_SANITIZE") then
      pending("RSS is not measured under sanitizers: ASan keeps freed memory in quarantine")
      return
    end
    local out, ok = H.run_lua([[
      local torch = require "moontorch"
      local function rss_mb()
        local f = io.open("/proc/self/statm")
        local _, resident = f:read("n", "n")
        f:close()
        return resident * 4096 / 2^20
      end
      local a = torch.ones(4)
      for i = 1, 100000 do local _ = a * 2 + 1 end
      local before = rss_mb()
      for i = 1, 600000 do local _ = (a * 2 + 1):sum() end
      print(string.format("growth=%d", math.floor(rss_mb() - before)))
    ]])
    assert.is_true(ok, out)
    local growth = tonumber(out:match("growth=(%-?%d+)"))
    assert.is_number(growth, out)
    assert.is_true(growth < 40, "RSS grew by " .. tostring(growth) .. " MB")
  end)

  it("respects a collector stopped by the host (no collection is forced)", function()
    -- 200 dead tensors of 400 KB each: with the collector stopped, all of them stay resident.
    local out, ok = H.run_lua([[
      local torch = require "moontorch"
      local function rss_mb()
        local f = io.open("/proc/self/statm")
        local _, resident = f:read("n", "n")
        f:close()
        return resident * 4096 / 2^20
      end
      collectgarbage("stop")
      local before = rss_mb()
      for i = 1, 200 do local _ = torch.ones(100000) end
      print(string.format("running=%s growth=%d", collectgarbage("isrunning"), math.floor(rss_mb() - before)))
    ]])
    assert.is_true(ok, out)
    assert.are.equal("false", out:match("running=(%a+)"))
    local growth = tonumber(out:match("growth=(%-?%d+)"))
    assert.is_true(growth and growth >= 70, out)
  end)
end)

describe("binding: the tensor userdata", function()
  it("<close> releases the tensor; using it afterwards raises, closing twice is harmless", function()
    local escaped
    do
      local t <close> = torch.ones(3)
      escaped = t
      assert.are.equal(3.0, t:sum():item())
    end
    assert_err("moontorch: tensor used after it was closed", function() return escaped:sum() end)
    assert_err("used after it was closed", function() return escaped.dtype end)
    assert_err("used after it was closed", function() return escaped + 1 end)
    assert_err("used after it was closed", function() return torch.exp(escaped) end)
    assert_err("used after it was closed", function() return torch.cat({ escaped }) end)
    getmetatable(escaped).__close(escaped)
    getmetatable(escaped).__gc(escaped)
    assert.is_true(torch.is_tensor(escaped))
  end)

  it("a view keeps its storage alive after the base is closed", function()
    local base = torch.arange(6):view(2, 3)
    local row = base[2]
    getmetatable(base).__close(base)
    collectgarbage()
    H.assert_values(row, { 3, 4, 5 }, true)
  end)

  it("== is identity; elementwise equality is t:eq(u), whole-tensor equality torch.equal", function()
    local a = torch.tensor({ 1, 2 })
    local b = a:clone()
    assert.is_true(a == a)
    assert.is_false(a == b)
    assert.is_true(torch.equal(a, b))
    H.assert_values(a:eq(b), { true, true })
    assert_err("t:lt(u)", function() return a < b end)
  end)

  it("t[i] selects along dim 1, negative from the end; t[i] = v writes through", function()
    local t = torch.arange(6):view(3, 2)
    H.assert_values(t[1], { 0, 1 }, true)
    H.assert_values(t[-1], { 4, 5 }, true)
    assert.are.equal(5, t[3][2]:item())
    t[2] = 9
    t[3] = torch.tensor({ 7, 8 })
    t[1][2] = -1
    H.assert_values(t, { 0, -1, 9, 9, 7, 8 }, true)
    assert_err("index 0 is invalid (indices are 1-based)", function() return t[0] end)
    assert_err("moontorch.select: index 4 is out of range for dim 1 of size 3", function() return t[4] end)
    assert_err("index 1.5 is not an integer", function() return t[1.5] end)
    assert_err("cannot index a 0-dim tensor", function() return torch.tensor(1)[1] end)
    assert_err("moontorch.setindex", function() t[1] = "x" end)
    assert_err("moontorch.setindex", function() t.foo = 1 end)
  end)

  it("unknown keys read as nil; dtype, shape and ndim are properties", function()
    local t = torch.zeros(2, 3, { dtype = "int32" })
    assert.is_nil(t.no_such_field)
    assert.are.equal("int32", t.dtype)
    assert.are.same({ 2, 3 }, t.shape)
    assert.are.equal(2, t.ndim)
  end)

  it("torch.Tensor is the methods table and can be extended from Lua", function()
    function torch.Tensor:twice() return self * 2 end
    H.assert_values(torch.tensor({ 1, 2 }):twice(), { 2, 4 }, true)
    torch.Tensor.twice = nil
    assert.are.equal(torch.exp, torch.Tensor.exp)
  end)

  it("in-place methods return the same tensor; to() with the same dtype and contiguous() too", function()
    local t = torch.ones(2, 2)
    assert.are.equal(t, t:add_(1))
    assert.are.equal(t, t:mul_(2):clamp_(0, 3):neg_())
    H.assert_values(t, { -3, -3, -3, -3 })
    assert.are.equal(t, t:to("float32"))
    assert.are.equal(t, t:float())
    assert.are.equal(t, t:contiguous())
    assert.are_not.equal(t, t:t():contiguous())
    assert.are.equal("float64", t:to(torch.zeros(1, { dtype = "float64" })).dtype)
  end)

  it("dtype constants are the dtype strings; conversions stay methods", function()
    assert.are.equal("float32", torch.float32)
    assert.are.equal("float32", torch.float)
    assert.are.equal("float64", torch.double)
    assert.are.equal("int64", torch.long)
    assert.are.equal("bool", torch.bool)
    assert.are.equal("float16", torch.half)
    assert.are.equal("float64", torch.zeros(1, { dtype = torch.double }).dtype)
    assert.is_nil(torch.item)
    assert.is_function(torch.exp)
    assert.is_function(torch.sum)
  end)
end)

describe("binding: numbers as operands", function()
  local cases = {
    -- tensor dtype, number, expected result dtype (PyTorch's promotion with a Lua number)
    { "int64", 1, "int64" }, { "int64", 1.5, "float32" }, { "int32", 2, "int32" },
    { "float32", 2.0, "float32" }, { "float32", 2, "float32" }, { "float64", 1, "float64" },
    { "uint8", 3, "uint8" }, { "int16", 0.5, "float32" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " + " .. tostring(c[2]) .. " is " .. c[3], function()
      local t = torch.ones(2, { dtype = c[1] })
      assert.are.equal(c[3], (t + c[2]).dtype)
      assert.are.equal(c[3], (c[2] + t).dtype)
      assert.are.equal(c[3], t:mul(c[2]).dtype)
    end)
  end

  it("numbers work on either side of every operator", function()
    local t = torch.tensor({ 1.0, 2.0, 4.0 })
    H.assert_values(10 - t, { 9, 8, 6 })
    H.assert_values(t - 1, { 0, 1, 3 })
    H.assert_values(8 / t, { 8, 4, 2 })
    H.assert_values(2 ^ t, { 2, 4, 16 })
    H.assert_values(t ^ 2, { 1, 4, 16 })
    H.assert_values(-t, { -1, -2, -4 })
    H.assert_values(t % 3, { 1, 2, 1 })
    H.assert_values(-7 % torch.tensor({ 3, -3 }), { 2, -1 }, true)
  end)

  it("booleans compare but do not do arithmetic", function()
    local b = torch.tensor({ true, false })
    H.assert_values(b:eq(true), { true, false })
    H.assert_values(torch.where(b, true, false), { true, false })
    assert_err("moontorch.mul", function() return true * b end)
    assert_err("moontorch.add_", function() return torch.ones(2):add_(true) end)
  end)

  it("add / sub take alpha positionally or as {alpha = x}", function()
    local a, b = torch.tensor({ 1.0, 2.0 }), torch.tensor({ 10.0, 20.0 })
    H.assert_values(a:add(b, 2), { 21, 42 })
    H.assert_values(a:sub(b, { alpha = 0.5 }), { -4, -8 })
    H.assert_values(torch.add(a, b, 1), { 11, 22 })
    local c = a:clone()
    c:add_(b, -1)
    H.assert_values(c, { -9, -18 })
  end)
end)

describe("binding: 1-based indices in and out", function()
  it("index_select / gather / scatter take 1-based indices (tensors or Lua arrays)", function()
    local t = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
    H.assert_values(t:index_select(2, torch.tensor({ 3, 1 })), { 3, 1, 6, 4 }, true)
    H.assert_values(t:index_select(1, { 2 }), { 4, 5, 6 }, true)
    H.assert_values(t:gather(2, torch.tensor({ { 1, 1 }, { 3, 2 } })), { 1, 1, 6, 5 }, true)
    local z = torch.zeros(2, 3, { dtype = "int64" })
    H.assert_values(z:scatter(2, torch.tensor({ { 3 }, { 1 } }), 7), { 0, 0, 7, 7, 0, 0 }, true)
    H.assert_values(z:scatter_add(1, torch.tensor({ { 2, 2, 1 } }), torch.tensor({ { 1, 2, 3 } })),
      { 0, 0, 3, 1, 2, 0 }, true)
    local acc = torch.zeros(3)
    acc:index_add_(1, torch.tensor({ 3, 3, 1 }), torch.tensor({ 1.0, 2.0, 5.0 }))
    H.assert_values(acc, { 5, 0, 3 })
    -- the caller's index tensor is not modified by the shift
    local idx = torch.tensor({ 1, 2 })
    t:index_select(2, idx)
    H.assert_values(idx, { 1, 2 }, true)
  end)

  it("rejects index 0 and out-of-range indices, naming the 1-based index", function()
    local t = torch.zeros(2, 3)
    assert_err("moontorch.index_select: index 0 is invalid (indices are 1-based)",
      function() return t:index_select(2, torch.tensor({ 0 })) end)
    assert_err("moontorch.gather: index 4 is out of range for dim 2 of size 3",
      function() return t:gather(2, torch.tensor({ { 4 } })) end)
    assert_err("index -1", function() return t:index_select(1, { -1 }) end)
    assert_err("integer dtype", function() return t:index_select(1, torch.tensor({ 1.0 })) end)
  end)

  it("index results are 1-based: argmax, max(d), min(d), sort, topk, randperm", function()
    local t = torch.tensor({ { 3.0, 9.0, 1.0 }, { 7.0, 2.0, 8.0 } })
    assert.are.equal(2, t:argmax():item())
    H.assert_values(t:argmax(2), { 2, 3 }, true)
    H.assert_values(t:argmin(1), { 1, 2, 1 }, true)
    local v, i = t:max(2)
    H.assert_values(v, { 9, 8 })
    H.assert_values(i, { 2, 3 }, true)
    v, i = t:min(1, true)
    H.assert_meta(i, { 1, 3 }, "int64")
    H.assert_values(i, { 1, 2, 1 }, true)
    v, i = t:sort(2, true)
    H.assert_values(i, { 2, 1, 3, 3, 1, 2 }, true)
    v, i = t:topk(1, 1)
    H.assert_values(i, { 2, 1, 2 }, true)
    H.assert_values(t:argsort(), { 3, 1, 2, 2, 1, 3 }, true)
    local p = torch.randperm(10)
    local sorted = p:sort()
    H.assert_values(sorted, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, true)
  end)

  it("dims are 1-based; dim 0 is rejected with an explanation; negative dims count from the end", function()
    local t = torch.ones(2, 3)
    assert_err("moontorch.sum: dim 0 is invalid (dims are 1-based)", function() return t:sum(0) end)
    assert_err("moontorch.sum: dim 3 is out of range for a 2-D tensor", function() return t:sum(3) end)
    H.assert_meta(t:sum(-1), { 2 })
    H.assert_meta(t:sum({ 1, 2 }, true), { 1, 1 })
    H.assert_meta(t:unsqueeze(3), { 2, 3, 1 })
    H.assert_meta(t:unsqueeze(-1), { 2, 3, 1 })
    assert_err("dim 4 is out of range", function() return t:unsqueeze(4) end)
    H.assert_values(t:narrow(2, -2, 2):contiguous():view(-1), { 1, 1, 1, 1 })
  end)
end)

describe("binding: errors name the function the user called", function()
  it("methods and torch functions share the name", function()
    local t = torch.zeros(2, 3)
    assert_err("moontorch.view: ", function() return t:view(4) end)
    assert_err("moontorch.view: ", function() return torch.view(t, 4) end)
    assert_err("moontorch.add: shapes", function() return t + torch.zeros(4) end)
    assert_err("moontorch.matmul: ", function() return t:matmul(t) end)
  end)

  it("bad arguments count as the user counts them (self is not #1 in a method call)", function()
    local t = torch.zeros(2, 3)
    assert_err("moontorch.transpose: bad argument #1 (integer expected, got string)",
      function() return t:transpose("a", 1) end)
    assert_err("moontorch.exp: bad argument #1 (tensor expected, got number)", function() return torch.exp(1) end)
  end)

  it("options tables are checked", function()
    assert_err("moontorch.zeros: unknown option 'dtyp'", function() return torch.zeros(2, { dtyp = "float64" }) end)
    assert_err("moontorch.ones: unknown dtype 'float8'", function() return torch.ones(2, { dtype = "float8" }) end)
    assert_err("moontorch.zeros: bad argument #3", function() return torch.zeros(2, { dtype = "int64" }, 3) end)
  end)

  it("deep, ragged and odd nested tables", function()
    assert_err("too many dims", function() return torch.tensor({ { { { { { { { { 1 } } } } } } } } }) end)
    local cyclic = {}
    cyclic[1] = cyclic
    assert_err("too many dims", function() return torch.tensor(cyclic) end)
    assert_err("ragged nested table: element [2] has length 1, expected 2",
      function() return torch.tensor({ { 1, 2 }, { 3 } }) end)
    assert_err("element [1][2] is a string", function() return torch.tensor({ { 1, "x" } }) end)
    assert_err("torch.stack", function() return torch.tensor({ torch.ones(2) }) end)
    H.assert_values(torch.tensor({ torch.tensor(1.5), 2 }), { 1.5, 2 })
    H.assert_meta(torch.tensor({ {}, {} }), { 2, 0 }, "float32")
  end)
end)

describe("binding: tolist and item keep Lua's number types", function()
  it("integers as integers, floats as floats, booleans as booleans", function()
    assert.are.equal("integer", math.type(torch.tensor({ 5 }, { dtype = "int16" }):tolist()[1]))
    assert.are.equal("float", math.type(torch.tensor({ 5 }, { dtype = "float16" }):tolist()[1]))
    assert.are.equal(true, torch.tensor({ true }):tolist()[1])
    assert.are.equal("integer", math.type(torch.tensor(7):item()))
    assert.are.equal(false, torch.tensor(false):item())
    assert.are.same({ { 1, 2 }, { 3, 4 } }, torch.tensor({ { 1, 3 }, { 2, 4 } }):t():tolist())
    assert.are.equal(math.maxinteger, torch.tensor({ math.maxinteger }):tolist()[1])
  end)
end)

describe("binding: tostring matches PyTorch", function()
  -- Expected strings are PyTorch 1.13's str(), with "dtype=torch.X" written "dtype=X".
  local cases = {
    { function() return torch.tensor({ { 1., 2. }, { 3., 4. } }) end, "tensor([[1., 2.],\n        [3., 4.]])" },
    { function() return torch.tensor({ 1.5, -2.25, 3. }) end, "tensor([ 1.5000, -2.2500,  3.0000])" },
    { function() return torch.tensor({ 1e-5, 1.0 }) end, "tensor([1.0000e-05, 1.0000e+00])" },
    { function() return torch.tensor({ 123456., 1. }) end, "tensor([1.2346e+05, 1.0000e+00])" },
    { function() return torch.tensor({ 0.1, 100000. }) end, "tensor([1.0000e-01, 1.0000e+05])" },
    { function() return torch.tensor({ 0 / 0, 1.5, math.huge, -math.huge }) end,
      "tensor([   nan, 1.5000,    inf,   -inf])" },
    { function() return torch.tensor({ true, false }) end, "tensor([ True, False])" },
    { function() return torch.tensor({ 1, -20, 300 }) end, "tensor([  1, -20, 300])" },
    { function() return torch.tensor({ 1., 2. }, { dtype = "float64" }) end, "tensor([1., 2.], dtype=float64)" },
    { function() return torch.tensor({ 1, 2 }, { dtype = "int32" }) end, "tensor([1, 2], dtype=int32)" },
    { function() return torch.tensor({ 0.5 }, { dtype = "float16" }) end, "tensor([0.5000], dtype=float16)" },
    { function() return torch.zeros(0, 3) end, "tensor([], size=(0, 3))" },
    { function() return torch.zeros(0, { dtype = "int64" }) end, "tensor([], dtype=int64)" },
    { function() return torch.zeros(0) end, "tensor([])" },
    { function() return torch.tensor(3.5) end, "tensor(3.5000)" },
    { function() return torch.tensor(-7) end, "tensor(-7)" },
    { function() return torch.arange(2000.) end,
      "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])" },
    { function() return torch.arange(24):view(2, 3, 4) end,
      "tensor([[[ 0,  1,  2,  3],\n         [ 4,  5,  6,  7],\n         [ 8,  9, 10, 11]],\n\n" ..
      "        [[12, 13, 14, 15],\n         [16, 17, 18, 19],\n         [20, 21, 22, 23]]])" },
    { function() return torch.arange(10000):view(100, 100) end,
      "tensor([[   0,    1,    2,  ...,   97,   98,   99],\n        [ 100,  101,  102,  ...,  197,  198,  199],\n" ..
      "        [ 200,  201,  202,  ...,  297,  298,  299],\n        ...,\n" ..
      "        [9700, 9701, 9702,  ..., 9797, 9798, 9799],\n        [9800, 9801, 9802,  ..., 9897, 9898, 9899],\n" ..
      "        [9900, 9901, 9902,  ..., 9997, 9998, 9999]])" },
    { function() return torch.arange(30.):view(3, 10) / 7 end,
      "tensor([[0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n         1.2857],\n" ..
      "        [1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286, 2.5714,\n         2.7143],\n" ..
      "        [2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143, 3.8571, 4.0000,\n         4.1429]])" },
    { function() return torch.arange(40, { dtype = "float64" }) / 3 end,
      "tensor([ 0.0000,  0.3333,  0.6667,  1.0000,  1.3333,  1.6667,  2.0000,  2.3333,\n" ..
      "         2.6667,  3.0000,  3.3333,  3.6667,  4.0000,  4.3333,  4.6667,  5.0000,\n" ..
      "         5.3333,  5.6667,  6.0000,  6.3333,  6.6667,  7.0000,  7.3333,  7.6667,\n" ..
      "         8.0000,  8.3333,  8.6667,  9.0000,  9.3333,  9.6667, 10.0000, 10.3333,\n" ..
      "        10.6667, 11.0000, 11.3333, 11.6667, 12.0000, 12.3333, 12.6667, 13.0000],\n       dtype=float64)" },
    { function() return (torch.arange(2000):view(2, 1000) % 7):eq(0) end,
      "tensor([[ True, False, False,  ..., False, False, False],\n        [False,  True, False,  ..., False, False, False]])" },
  }
  for i, c in ipairs(cases) do
    it("case " .. i, function()
      assert.are.equal(c[2], tostring(c[1]()))
    end)
  end
end)

describe("binding: Lua-side helpers", function()
  it("isclose / allclose / equal", function()
    local a = torch.tensor({ 1.0, 2.0, 0 / 0, math.huge })
    local b = torch.tensor({ 1.0 + 1e-7, 2.1, 0 / 0, math.huge })
    H.assert_values(a:isclose(b), { true, false, false, true })
    H.assert_values(torch.isclose(a, b, { equal_nan = true, rtol = 0.1 }), { true, true, true, true })
    assert.is_false(torch.allclose(a, b))
    assert.is_true(torch.allclose(torch.ones(2), torch.ones(2) + 1e-9))
    assert.is_true(torch.allclose(torch.tensor({ 1, 2 }), torch.tensor({ 1, 3 }), 0, 1))
    assert.is_false(torch.equal(torch.ones(2), torch.ones(3)))
    assert.is_true(torch.equal(torch.tensor({ 1 }), torch.tensor({ 1.0 })))
    assert_err("moontorch.equal: bad argument #2 (tensor expected, got number)",
      function() return torch.equal(torch.ones(1), 1) end)
  end)

  it("isnan / isinf / isfinite / norm", function()
    local t = torch.tensor({ 0 / 0, math.huge, -1.0, 3.0 })
    H.assert_values(t:isnan(), { true, false, false, false })
    H.assert_values(t:isinf(), { false, true, false, false })
    H.assert_values(t:isfinite(), { false, false, true, true })
    H.assert_values(torch.tensor({ 3.0, -4.0 }):norm(), { 5 })
    H.assert_values(torch.tensor({ 3.0, -4.0 }):norm(1), { 7 })
    H.assert_values(torch.tensor({ 3.0, -4.0 }):norm(math.huge), { 4 })
    H.assert_values(torch.tensor({ { 3.0, 4.0 }, { 6.0, 8.0 } }):norm(2, 2), { 5, 10 })
  end)

  it("split / chunk / unbind return views", function()
    local t = torch.arange(10)
    local parts = t:split(4)
    assert.are.equal(3, #parts)
    H.assert_values(parts[3], { 8, 9 }, true)
    local c = t:chunk(3)
    assert.are.same({ 4, 4, 2 }, { c[1]:numel(), c[2]:numel(), c[3]:numel() })
    local rows = torch.zeros(2, 3):unbind(1)
    rows[2]:fill_(1)
    assert.are.equal(2, #rows)
    local s = t:split({ 3, 7 })
    H.assert_values(s[1], { 0, 1, 2 }, true)
    assert_err("moontorch.split: sizes add up to 9", function() return t:split({ 3, 6 }) end)
  end)

  it("new_* constructors keep the dtype", function()
    local t = torch.ones(2, { dtype = "float64" })
    H.assert_meta(t:new_zeros(3, 2), { 3, 2 }, "float64")
    H.assert_meta(t:new_ones({ 4 }), { 4 }, "float64")
    H.assert_meta(t:new_full({ 2 }, 7), { 2 }, "float64")
    H.assert_meta(t:new_tensor({ 1, 2 }), { 2 }, "float64")
    H.assert_meta(t:new_zeros(2, { dtype = "int32" }), { 2 }, "int32")
  end)

  it("var / std take dims, unbiased and keepdim positionally or in an options table", function()
    local t = torch.tensor({ { 1.0, 2.0, 3.0, 4.0 } })
    H.assert_values(t:var(), { 5 / 3 })
    H.assert_values(t:var(false), { 1.25 })
    H.assert_values(t:var(2, false, true), { 1.25 })
    H.assert_meta(t:var(2, false, true), { 1, 1 })
    H.assert_values(t:std({ correction = 0 }), { math.sqrt(1.25) })
    H.assert_values(t:var(2, { unbiased = true, keepdim = true }), { 5 / 3 })
  end)

  it("random in-place fills follow the seed", function()
    torch.manual_seed(7)
    local a = torch.empty(5):uniform_(2, 3)
    torch.manual_seed(7)
    local b = torch.empty(5):uniform_(2, 3)
    assert.is_true(torch.equal(a, b))
    assert.is_true(a:ge(2):all():item() and a:lt(3):all():item())
    local r = torch.empty(100, { dtype = "int64" }):random_(1, 4)
    assert.is_true(r:ge(1):all():item() and r:le(3):all():item())
    local n = torch.empty(10000):normal_(5, 2)
    assert.is_true(math.abs(n:mean():item() - 5) < 0.1)
  end)
end)
