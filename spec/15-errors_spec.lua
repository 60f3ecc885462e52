-- SPEC §1 "Errors on misuse and bad input are raised with error() and a message that names the
-- function and the problem": every bad input below must raise a Lua error (never crash) whose
-- message names the function and says what is wrong. Wording is the implementer's: the checks
-- look for the function name and one of a few key words.
local H = require "spec.helpers"
local torch = H.torch

local t2 = torch.zeros(2, 3)
local huge = 1 << 40

local cases = {
  -- function name (pattern or alternatives), thunk, problem key words (any one must appear)
  -- creation from Lua data
  { "tensor", function() return torch.tensor({ { 1, 2 }, { 3 } }) end, { "ragged", "length", "size", "shape", "sequence" } },
  { "tensor", function() return torch.tensor({ { 1, 2 }, 3 }) end, { "ragged", "length", "size", "shape", "sequence", "table", "nest" } },
  { "tensor", function() return torch.tensor({ 1, { 2 } }) end, { "ragged", "length", "size", "shape", "sequence", "table", "nest" } },
  { "tensor", function() return torch.tensor({ 1, "a" }) end, { "number", "string", "element" } },
  { "tensor", function() return torch.tensor({ 1, print }) end, { "number", "function", "element" } },
  { "tensor", function() return torch.tensor("abc") end, { "number", "table", "string" } },
  { "tensor", function() return torch.tensor(nil) end, { "number", "table", "nil", "data" } },
  { "tensor", function() return torch.tensor({ { { { { { { { { 1 } } } } } } } } }) end, { "dim", "many", "deep", "8", "nest" } },
  { "tensor", function() return torch.tensor({ 1 }, { dtype = "float128" }) end, { "dtype", "float128" } },
  -- sizes
  { "zeros", function() return torch.zeros(-1) end, { "size", "negative" } },
  { "zeros", function() return torch.zeros(2.5) end, { "integer", "size" } },
  { "zeros", function() return torch.zeros("a") end, { "size", "integer", "number", "string" } },
  { "zeros", function() return torch.zeros(2, "a") end, { "size", "integer", "number", "string" } },
  { "zeros", function() return torch.zeros({ 2, -3 }) end, { "size", "negative" } },
  { "zeros", function() return torch.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, { "dim", "many", "8" } },
  { "zeros", function() return torch.zeros(huge, huge) end, { "size", "overflow", "memory", "large", "alloc" } },
  { "ones", function() return torch.ones({ 2, "x" }) end, { "size", "integer", "number", "string" } },
  { "empty", function() return torch.empty(huge, huge, huge) end, { "size", "overflow", "memory", "large", "alloc" } },
  { "full", function() return torch.full({ 2 }) end, { "value", "number", "fill", "missing" } },
  { "full", function() return torch.full({ 2 }, "x") end, { "value", "number", "string" } },
  { "arange", function() return torch.arange(0, 5, 0) end, { "step", "zero" } },
  { "arange", function() return torch.arange(0, 5, -1) end, { "step", "sign", "bound", "direction", "range" } },
  { "arange", function() return torch.arange("a") end, { "number", "string" } },
  { "linspace", function() return torch.linspace(0, 1, -1) end, { "steps", "negative" } },
  { "eye", function() return torch.eye(-1) end, { "negative", "size", "n" } },
  { "randint", function() return torch.randint(0, 10) end, { "size", "missing", "table" } },
  { "rand", function() return torch.rand(-2) end, { "size", "negative" } },
  { "zeros_like", function() return torch.zeros_like(5) end, { "tensor", "number" } },
  { "manual_seed", function() return torch.manual_seed("abc") end, { "integer", "number", "string", "seed" } },
  -- wrong types where a tensor is expected
  { "exp", function() return torch.exp("a") end, { "tensor", "string" } },
  { "exp", function() return torch.exp(nil) end, { "tensor", "nil" } },
  { "exp", function() return t2.exp(5) end, { "tensor", "number" } },
  { "sum", function() return t2.sum() end, { "tensor", "nil" } },
  { "add", function() return torch.add(t2, "a") end, { "tensor", "number", "string" } },
  { { "add", "%+" }, function() return t2 + "a" end, { "tensor", "number", "string" } },
  { { "add", "%+" }, function() return t2 + {} end, { "tensor", "number", "table" } },
  { { "add", "%+" }, function() return t2 + nil end, { "tensor", "number", "nil" } },
  { { "mul", "%*" }, function() return true * t2 end, { "tensor", "number", "boolean" } },
  { "add", function() return t2:add(t2, "x") end, { "alpha", "number", "string" } },
  { "matmul", function() return torch.matmul(t2, "x") end, { "tensor", "string" } },
  { "equal", function() return torch.equal(t2, 5) end, { "tensor", "number" } },
  { "allclose", function() return torch.allclose(t2, "x") end, { "tensor", "string" } },
  { "copy_", function() return t2:copy_(5) end, { "tensor", "number" } },
  { "fill_", function() return t2:fill_("x") end, { "number", "value", "string" } },
  { "fill_", function() return t2:fill_() end, { "number", "value", "nil", "missing" } },
  { "to", function() return t2:to(nil) end, { "dtype", "nil", "string" } },
  { "to", function() return t2:to("int65") end, { "dtype", "int65" } },
  { "gather", function() return t2:gather(1, nil) end, { "tensor", "index", "nil" } },
  { "index_select", function() return t2:index_select(1, "x") end, { "tensor", "index", "string" } },
  { "masked_fill", function() return t2:masked_fill(nil, 0) end, { "tensor", "mask", "nil" } },
  { "where", function() return torch.where(torch.tensor({ true }), torch.zeros(1)) end, { "tensor", "nil", "missing", "number" } },
  { "clamp", function() return t2:clamp() end, { "min", "max", "bound" } },
  { "clamp", function() return t2:clamp("a", 1) end, { "min", "number", "string" } },
  { "stack", function() return torch.stack({ t2, t2 }, "x") end, { "dim", "integer", "number", "string" } },
  -- dims and indices out of range
  { "size", function() return t2:size("x") end, { "dim", "integer", "number", "string" } },
  { "size", function() return t2:size(0) end, { "dim", "range" } },
  { "sum", function() return t2:sum("x") end, { "dim", "integer", "number", "string" } },
  { "sum", function() return t2:sum(1.5) end, { "dim", "integer" } },
  { "transpose", function() return t2:transpose(1, 3) end, { "dim", "range" } },
  { "transpose", function() return t2:transpose(0, 1) end, { "dim", "range" } },
  { "permute", function() return t2:permute(1, 2, 3) end, { "dim", "number", "permutation", "match" } },
  { "narrow", function() return t2:narrow(1, 1, 5) end, { "range", "length", "size", "exceed" } },
  { "narrow", function() return t2:narrow(3, 1, 1) end, { "dim", "range" } },
  { "squeeze", function() return t2:squeeze(3) end, { "dim", "range" } },
  { "unsqueeze", function() return torch.zeros(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end, { "dim", "many", "8" } },
  { "select", function() return t2:select(3, 1) end, { "dim", "range" } },
  { "select", function() return t2:select(1, 3) end, { "index", "range" } },
  { "select", function() return torch.tensor(1.0):select(1, 1) end, { "dim", "0%-d", "scalar", "range" } },
  { "flatten", function() return t2:flatten(0) end, { "dim", "range" } },
  { "expand", function() return t2:expand(3) end, { "dim", "size", "number", "shape" } },
  { "expand", function() return t2:expand(2, 4) end, { "size", "shape", "expand", "%[" } },
  { "view", function() return t2:view(1, 1, 1, 1, 1, 1, 1, 1, 6) end, { "dim", "many", "8" } },
  { "view", function() return t2:view(5) end, { "shape", "size", "element", "%[" } },
  { "view", function() return t2:view("a") end, { "size", "integer", "number", "string" } },
  { "reshape", function() return t2:reshape(-1, -1) end, { "%-1", "infer", "one" } },
  { "reshape", function() return t2:reshape(4, 2) end, { "shape", "size", "element", "%[" } },
  { "item", function() return t2:item() end, { "element", "numel", "one" } },
  { "cat", function() return torch.cat({ t2, torch.zeros(2, 4) }, 1) end, { "size", "shape", "match" } },
  { "mm", function() return t2:mm(t2) end, { "shape", "size", "%[" } },
}

describe("bad input raises an error that names the function and the problem", function()
  for i, c in ipairs(cases) do
    local name = type(c[1]) == "table" and c[1][1] or c[1]
    it(string.format("#%d %s: %s", i, name, table.concat(c[3], "|")), function()
      H.expect_error(c[2], c[1], c[3])
    end)
  end

  -- Dims and indices are 1-based in Lua: a message must not speak of the C core's 0-based
  -- numbers (e.g. "dim 0" when the user passed dim 1).
  local one_based = {
    { "narrow", function() return t2:narrow(1, 1, 5) end, { "dim 0%f[%D]", "start 0%f[%D]" } },
    { "permute", function() return t2:permute(1, 1) end, { "dim 0%f[%D]" } },
    { "topk", function() return torch.zeros(2):topk(5) end, { "dim 0%f[%D]" } },
    { "cat", function() return torch.cat({ t2, torch.zeros(2, 4) }, 1) end, { "dim 0%f[%D]", "tensor 0%f[%D]" } },
    { "expand", function() return t2:expand(2, 4) end, { "dim 1%f[%D]" } },
    { "index_select", function() return t2:index_select(2, torch.tensor({ 4 })) end, { "dim 1%f[%D]" } },
    { "gather", function() return t2:gather(2, torch.tensor({ { 4 }, { 1 } })) end, { "dim 1%f[%D]" } },
  }
  for _, c in ipairs(one_based) do
    it(c[1] .. ": the message counts dims and indices from 1", function()
      local err = H.expect_error(c[2], c[1])
      for _, p in ipairs(c[3]) do
        assert.is_falsy(err:find(p), "0-based number ('" .. p .. "') in: " .. err)
      end
    end)
  end

  it("messages start with the moontorch prefix", function()
    local err = H.error_of(function() return t2:view(5) end)
    assert.is_truthy(err:find("moontorch", 1, true), err)
  end)

  it("the library keeps working after all those errors, and the operands are untouched", function()
    for _, c in ipairs(cases) do pcall(c[2]) end
    H.assert_meta(t2, { 2, 3 }, "float32")
    H.assert_values(t2, { 0, 0, 0, 0, 0, 0 })
    assert.are.equal(6.0, (torch.ones(2, 3)):sum():item())
  end)

  it("no combination of odd arguments crashes the process (fuzz, in a child interpreter)", function()
    -- Every function and method is called with every one- and two-argument combination from a
    -- pool of odd values; each call must return or raise a Lua error. The child prints the call
    -- it is about to make, so a crash names it.
    local out, ok = H.run_lua([==[
      local torch = require "moontorch"
      local pool = {
        { "nil", nil }, { "'x'", "x" }, { "{}", {} }, { "-1", -1 }, { "0", 0 }, { "1", 1 }, { "2", 2 },
        { "1.5", 1.5 }, { "2^62", 1 << 62 }, { "mininteger", math.mininteger }, { "nan", 0 / 0 },
        { "inf", math.huge }, { "true", true }, { "{2, 1}", { 2, 1 } }, { "{dtype='int8'}", { dtype = "int8" } },
        { "f32[2,3]", torch.ones(2, 3) }, { "i64[2]", torch.tensor({ 1, 2 }) }, { "bool[3]", torch.tensor({ true, false, true }) },
        { "0-dim", torch.tensor(0.5) }, { "empty[0]", torch.zeros(0) }, { "u8[2,1]", torch.ones(2, 1, { dtype = "uint8" }) },
        { "f16[3]", torch.ones(3, { dtype = "float16" }) }, { "{t, t}", { torch.ones(2), torch.ones(2) } },
      }
      local fns = {}
      for _, name in ipairs({ "tensor", "zeros", "ones", "empty", "full", "arange", "linspace", "eye", "rand", "randn",
        "randint", "zeros_like", "ones_like", "rand_like", "randn_like", "cat", "stack", "where", "equal", "allclose",
        "is_tensor", "manual_seed", "add", "sub", "mul", "div", "pow", "matmul", "mm", "bmm", "sum", "mean", "var",
        "std", "max", "min", "argmax", "softmax", "log_softmax", "clamp", "exp", "log", "eq", "lt", "all", "any",
        "sort", "topk", "cumsum", "index_select", "gather", "masked_fill" }) do
        if torch[name] then fns[#fns + 1] = { "torch." .. name, torch[name] } end
      end
      local self = torch.ones(2, 3)
      for _, name in ipairs({ "view", "reshape", "flatten", "transpose", "t", "permute", "squeeze", "unsqueeze",
        "narrow", "select", "expand", "size", "stride", "item", "tolist", "clone", "contiguous", "to", "copy_",
        "fill_", "zero_", "add_", "mul_", "div_", "clamp_", "masked_fill_", "index_select", "gather", "sum", "max",
        "topk", "sort", "softmax", "matmul" }) do
        local m = self[name]
        if m then fns[#fns + 1] = { "t:" .. name, function(...) return m(torch.ones(2, 3), ...) end } end
      end
      local calls = 0
      for _, f in ipairs(fns) do
        for _, a in ipairs(pool) do
          io.stderr:write(f[1], "(", a[1], ")\n")
          pcall(f[2], a[2])
          calls = calls + 1
          for _, b in ipairs(pool) do
            io.stderr:write(f[1], "(", a[1], ", ", b[1], ")\n")
            local okc, err = pcall(f[2], a[2], b[2])
            if not okc and type(err) ~= "string" then error(f[1] .. " raised a " .. type(err)) end
            calls = calls + 1
          end
        end
        collectgarbage()
      end
      io.write("CALLS:", calls, ":END")
    ]==])
    local calls = tonumber(out:match("CALLS:(%d+):END"))
    assert.is_true(ok and calls ~= nil, "the child died:\n" .. out:sub(-2000))
    assert.is_true(calls > 10000, "only " .. tostring(calls) .. " calls")
  end)

  it("a thousand failing calls do not leak memory", function()
    local function rss_kb()
      local f = io.open("/proc/self/status", "r")
      if not f then return nil end
      local s = f:read("a")
      f:close()
      return tonumber(s:match("VmRSS:%s*(%d+)"))
    end
    local big = torch.zeros(1000, 1000) -- 4 MB operand: a leak of it per call would show at once
    local bad = torch.zeros(3)
    collectgarbage()
    local before = rss_kb()
    for _ = 1, 1000 do
      pcall(function() return big + bad end)
      pcall(function() return big:view(7) end)
      pcall(function() return torch.tensor({ { 1, 2 }, { 3 } }) end)
      pcall(function() return torch.cat({ big, bad }, 1) end)
    end
    collectgarbage()
    collectgarbage()
    local after = rss_kb()
    if before and after then
      assert.is_true(after - before < 50 * 1024, string.format("RSS grew by %d kB", after - before))
    end
  end)
end)
