-- SPEC §1–2: the module itself and every creation function.
local H = require "spec.helpers"
local torch = H.torch

describe("require 'moontorch'", function()
  it("returns the module table", function()
    assert.is_table(torch)
    assert.is_function(torch.tensor)
    assert.are.equal(torch, require "moontorch")
  end)

  it("sets no globals (checked in a fresh interpreter)", function()
    local out, ok = H.run_lua([[
      local before = {}
      for k in pairs(_G) do before[k] = true end
      local torch = require "moontorch"
      assert(type(torch) == "table", "require did not return a table")
      local t = torch.zeros(2, 2) + 1 -- exercise the module a little
      local new = {}
      for k in pairs(_G) do if not before[k] then new[#new + 1] = tostring(k) end end
      table.sort(new)
      io.write("NEW:", table.concat(new, ","), ":END")
    ]])
    assert.is_true(ok, out)
    assert.are.equal("NEW::END", out:match("NEW:.-:END"), out)
  end)

  it("is_tensor tells tensors from everything else", function()
    assert.is_true(torch.is_tensor(torch.zeros(1)))
    assert.is_true(torch.is_tensor(torch.tensor(3)))
    for _, v in ipairs({ 1, 2.5, "x", true, {}, print }) do
      assert.is_false(torch.is_tensor(v))
    end
    assert.is_false(torch.is_tensor(nil))
  end)
end)

describe("torch.tensor", function()
  local cases = {
    -- data, expected shape, expected dtype, expected flat values
    { "an integer", 7, {}, "int64", { 7 } },
    { "a float", 2.5, {}, "float32", { 2.5 } },
    { "a boolean", true, {}, "bool", { true } },
    { "a list of integers", { 1, 2, 3 }, { 3 }, "int64", { 1, 2, 3 } },
    { "a list with one float", { 1, 2.5, 3 }, { 3 }, "float32", { 1.0, 2.5, 3.0 } },
    { "floats that are whole", { 1.0, 2.0 }, { 2 }, "float32", { 1.0, 2.0 } },
    { "a list of booleans", { true, false, true }, { 3 }, "bool", { true, false, true } },
    { "a nested table", { { 1, 2, 3 }, { 4, 5, 6 } }, { 2, 3 }, "int64", { 1, 2, 3, 4, 5, 6 } },
    { "a 3-level table", { { { 1.5 }, { 2 } }, { { 3 }, { 4 } } }, { 2, 2, 1 }, "float32", { 1.5, 2, 3, 4 } },
    { "an empty table", {}, { 0 }, "float32", {} },
    { "large int64 values", { math.maxinteger, math.mininteger, (1 << 53) + 1 }, { 3 }, "int64",
      { math.maxinteger, math.mininteger, 9007199254740993 } },
  }
  for _, c in ipairs(cases) do
    it("from " .. c[1], function()
      local t = torch.tensor(c[2])
      H.assert_meta(t, c[3], c[4])
      H.assert_values(t, c[5], true)
    end)
  end

  for _, dt in ipairs(H.all_dtypes) do
    it("honours opts.dtype = " .. dt, function()
      local t = torch.tensor({ { 0, 1 }, { 2, 3 } }, { dtype = dt })
      H.assert_meta(t, { 2, 2 }, dt)
      if dt == "bool" then
        H.assert_values(t, { false, true, true, true }, true)
      elseif H.is_float_dtype[dt] then
        H.assert_values(t, { 0.0, 1.0, 2.0, 3.0 }, true)
      else
        H.assert_values(t, { 0, 1, 2, 3 }, true)
      end
    end)
  end

  -- Autograd is issue 4; this spec goes live with it.
  it("honours opts.requires_grad", function()
    local t = torch.tensor({ 1.0, 2.0 }, { requires_grad = true })
    assert.is_true(t.requires_grad)
    assert.is_false(torch.tensor({ 1.0 }).requires_grad)
  end)

  it("copies the Lua data (later changes to the table do not show)", function()
    local data = { 1, 2, 3 }
    local t = torch.tensor(data)
    data[1] = 100
    H.assert_values(t, { 1, 2, 3 }, true)
  end)
end)

describe("zeros / ones / empty / full", function()
  local fills = {
    { "zeros", function(...) return torch.zeros(...) end, 0 },
    { "ones", function(...) return torch.ones(...) end, 1 },
  }
  for _, f in ipairs(fills) do
    local name, make, v = f[1], f[2], f[3]
    it(name .. " takes sizes as varargs or as one table", function()
      local a, b = make(2, 3), make({ 2, 3 })
      H.assert_meta(a, { 2, 3 }, "float32")
      H.assert_meta(b, { 2, 3 }, "float32")
      H.assert_values(a, { v, v, v, v, v, v }, true)
      assert.is_true(torch.equal(a, b))
    end)
    for _, dt in ipairs(H.all_dtypes) do
      it(name .. " with an options table last, dtype " .. dt, function()
        local a = make(2, 2, { dtype = dt })
        local b = make({ 2, 2 }, { dtype = dt })
        H.assert_meta(a, { 2, 2 }, dt)
        H.assert_meta(b, { 2, 2 }, dt)
        local e = v
        if dt == "bool" then e = (v == 1) elseif H.is_float_dtype[dt] then e = v + 0.0 end
        H.assert_values(a, { e, e, e, e }, true)
        H.assert_values(b, { e, e, e, e }, true)
      end)
    end
    it(name .. " makes empty and 0-dim tensors", function()
      local e = make(2, 0)
      H.assert_meta(e, { 2, 0 }, "float32")
      assert.are.equal(0, e:numel())
      local s = make({})
      H.assert_meta(s, {}, "float32")
      assert.are.equal(1, s:numel())
      assert.are.equal(v + 0.0, s:item())
    end)
  end

  it("empty gives the requested shape and dtype", function()
    H.assert_meta(torch.empty(3, 4), { 3, 4 }, "float32")
    H.assert_meta(torch.empty({ 5 }, { dtype = "int16" }), { 5 }, "int16")
    H.assert_meta(torch.empty(2, 1, 3, { dtype = "float64" }), { 2, 1, 3 }, "float64")
  end)

  local full_cases = {
    { "an integer value gives int64", { { 2, 3 }, 7 }, { 2, 3 }, "int64", 7 },
    { "a float value gives float32", { { 2 }, 1.5 }, { 2 }, "float32", 1.5 },
    { "a boolean value gives bool", { { 3 }, true }, { 3 }, "bool", true },
    { "opts.dtype wins", { { 2, 2 }, 3, { dtype = "float64" } }, { 2, 2 }, "float64", 3.0 },
    { "int8 from a float truncates", { { 1 }, 5.0, { dtype = "int8" } }, { 1 }, "int8", 5 },
  }
  for _, c in ipairs(full_cases) do
    it("full: " .. c[1], function()
      local t = torch.full(table.unpack(c[2]))
      H.assert_meta(t, c[3], c[4])
      local n = 1
      for _, s in ipairs(c[3]) do n = n * s end
      local e = {}
      for i = 1, n do e[i] = c[5] end
      H.assert_values(t, e, true)
    end)
  end
end)

describe("arange", function()
  local cases = {
    { "(stop) counts from 0", { 5 }, "int64", { 0, 1, 2, 3, 4 } },
    { "(start, stop) is half-open", { 1, 5 }, "int64", { 1, 2, 3, 4 } },
    { "(start, stop, step)", { 0, 10, 3 }, "int64", { 0, 3, 6, 9 } },
    { "a negative step", { 5, 1, -1 }, "int64", { 5, 4, 3, 2 } },
    { "a float step gives float32", { 0, 1, 0.25 }, "float32", { 0, 0.25, 0.5, 0.75 } },
    { "float bounds", { 0.5, 3 }, "float32", { 0.5, 1.5, 2.5 } },
    { "an empty range", { 3, 3 }, "int64", {} },
    { "opts.dtype", { 0, 3, { dtype = "float64" } }, "float64", { 0.0, 1.0, 2.0 } },
    { "opts.dtype after a step", { 0, 6, 2, { dtype = "int32" } }, "int32", { 0, 2, 4 } },
    -- i * step passes the int64 range on the way to 0 (UBSan, `make test-sanitize`)
    { "int64 extremes", { math.mininteger, 1 << 62, 1 << 62 }, "int64", { math.mininteger, -(1 << 62), 0 } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local t = torch.arange(table.unpack(c[2]))
      H.assert_meta(t, { #c[4] }, c[3])
      H.assert_values(t, c[4])
    end)
  end

  it("has ceil((stop - start) / step) elements, as PyTorch", function()
    assert.are.equal(10, torch.arange(0, 1, 0.1):numel())
    assert.are.equal(4, torch.arange(0, 1, 0.3):numel())
    assert.are.equal(34, torch.arange(0, 100, 3):numel())
  end)
end)

describe("linspace", function()
  it("includes both ends", function()
    local t = torch.linspace(0, 1, 5)
    H.assert_meta(t, { 5 }, "float32")
    H.assert_values(t, { 0, 0.25, 0.5, 0.75, 1.0 })
  end)
  it("runs downwards and takes opts.dtype", function()
    local t = torch.linspace(2, -2, 3, { dtype = "float64" })
    H.assert_meta(t, { 3 }, "float64")
    H.assert_values(t, { 2.0, 0.0, -2.0 })
  end)
  it("with one step gives the start", function()
    H.assert_values(torch.linspace(3, 7, 1), { 3.0 })
  end)
  it("is accurate at the end for many steps", function()
    local t = torch.linspace(-1, 1, 101, { dtype = "float64" })
    local v = H.values(t)
    assert.are.equal(-1.0, v[1])
    assert.are.equal(1.0, v[101])
    assert.is_true(math.abs(v[51]) < 1e-12)
  end)
end)

describe("eye", function()
  it("(n) is the identity", function()
    local t = torch.eye(3)
    H.assert_meta(t, { 3, 3 }, "float32")
    H.assert_values(t, { 1, 0, 0, 0, 1, 0, 0, 0, 1 })
  end)
  it("(n, m) is rectangular", function()
    H.assert_values(torch.eye(2, 3), { 1, 0, 0, 0, 1, 0 })
    H.assert_values(torch.eye(3, 2), { 1, 0, 0, 1, 0, 0 })
  end)
  it("takes opts.dtype", function()
    local t = torch.eye(2, { dtype = "int32" })
    H.assert_meta(t, { 2, 2 }, "int32")
    H.assert_values(t, { 1, 0, 0, 1 }, true)
  end)
end)

describe("*_like", function()
  local src = torch.zeros(2, 3, { dtype = "float64" })
  local likes = {
    { "zeros_like", torch.zeros_like, function(v) return v == 0 end },
    { "ones_like", torch.ones_like, function(v) return v == 1 end },
    { "rand_like", torch.rand_like, function(v) return v >= 0 and v < 1 end },
    { "randn_like", torch.randn_like, function(v) return v == v and math.abs(v) < 10 end },
  }
  for _, l in ipairs(likes) do
    it(l[1] .. " keeps shape and dtype", function()
      local t = l[2](src)
      H.assert_meta(t, { 2, 3 }, "float64")
      for _, v in ipairs(H.values(t)) do assert.is_true(l[3](v), l[1] .. " gave " .. tostring(v)) end
    end)
    it(l[1] .. " takes opts.dtype", function()
      local t = l[2](src, { dtype = "float32" })
      H.assert_meta(t, { 2, 3 }, "float32")
    end)
    it(l[1] .. " gives a new tensor (no shared storage)", function()
      local base = torch.zeros(4)
      local t = l[2](base)
      t:fill_(5)
      H.assert_values(base, { 0, 0, 0, 0 })
    end)
  end
  it("zeros_like / ones_like work for integer and bool dtypes", function()
    H.assert_values(torch.ones_like(torch.zeros(2, { dtype = "int8" })), { 1, 1 }, true)
    H.assert_values(torch.ones_like(torch.zeros(2, { dtype = "bool" })), { true, true }, true)
    H.assert_values(torch.zeros_like(torch.ones(2, { dtype = "uint8" })), { 0, 0 }, true)
  end)
end)

describe("rand / randn / randint (shapes and dtypes)", function()
  it("rand and randn take sizes as varargs or a table, default float32", function()
    for _, f in ipairs({ torch.rand, torch.randn }) do
      H.assert_meta(f(2, 3), { 2, 3 }, "float32")
      H.assert_meta(f({ 4 }), { 4 }, "float32")
      H.assert_meta(f(2, 2, { dtype = "float64" }), { 2, 2 }, "float64")
      H.assert_meta(f({ 3, 1 }, { dtype = "float64" }), { 3, 1 }, "float64")
    end
  end)
  it("randint(low, high, size) gives int64 in [low, high)", function()
    local t = torch.randint(-3, 4, { 1000 })
    H.assert_meta(t, { 1000 }, "int64")
    local seen = {}
    for _, v in ipairs(H.values(t)) do
      assert.are.equal("integer", math.type(v))
      assert.is_true(v >= -3 and v < 4, "out of range: " .. v)
      seen[v] = true
    end
    for v = -3, 3 do assert.is_true(seen[v], "never drew " .. v) end
  end)
  it("randint takes a multi-dim size and opts.dtype", function()
    local t = torch.randint(0, 2, { 3, 4 }, { dtype = "int32" })
    H.assert_meta(t, { 3, 4 }, "int32")
  end)
end)
