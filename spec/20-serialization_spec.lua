-- SPEC §6 in Lua alone: torch.save / torch.load, torch.serialize / torch.deserialize,
-- torch.OrderedDict, mmap loading and safetensors. Every value kind and dtype makes the round
-- trip in a file, in memory and (for tensors) through mmap; views come back sharing storage;
-- the bytes written are deterministic; unsavable values and bad options raise clear errors.
-- PyTorch itself is the other side of spec/21; hostile files are spec/22; kills are spec/23.
local H = require "spec.helpers"
local torch = H.torch

local dir -- a fresh temporary directory for this file
local function tmp(name) return dir .. "/" .. name end

local function read_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function listdir(path)
  local names = {}
  local p = assert(io.popen("ls -A " .. H.shquote(path)))
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

lazy_setup(function()
  local p = assert(io.popen("mktemp -d /tmp/moontorch-ser.XXXXXX"))
  dir = p:read("l")
  p:close()
end)

lazy_teardown(function()
  if dir then os.execute("rm -rf " .. H.shquote(dir)) end
end)

-- ------------------------------------------------------------------------------------------
-- Equality of Lua values, tensors included: same kinds (integer vs float too), NaN equals NaN,
-- -0.0 differs from 0.0, tables by their key sets (orderedness is checked separately).

local function same_scalar(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
  end
  return a == b
end

local function show(x)
  if type(x) == "number" then return math.type(x) .. " " .. string.format(math.type(x) == "float" and "%.17g" or "%d", x) end
  if type(x) == "string" then return string.format("%q", x) end
  return tostring(x)
end

local function check_same(want, got, path)
  path = path or "value"
  if torch.is_tensor(want) then
    assert(torch.is_tensor(got), path .. ": expected a tensor, got " .. type(got))
    H.assert_meta(got, want.shape, want.dtype, path)
    local wv, gv = H.values(want), H.values(got)
    for i = 1, #wv do
      if not same_scalar(gv[i], wv[i]) then
        error(string.format("%s: element %d is %s, expected %s", path, i, show(gv[i]), show(wv[i])), 0)
      end
    end
    return
  end
  if type(want) == "table" then
    assert(type(got) == "table" and not torch.is_tensor(got), path .. ": expected a table, got " .. type(got))
    local n_want, n_got = 0, 0
    for k, v in pairs(want) do
      n_want = n_want + 1
      check_same(v, got[k], path .. "[" .. show(k) .. "]")
    end
    for _ in pairs(got) do n_got = n_got + 1 end
    if n_want ~= n_got then error(string.format("%s: %d keys, expected %d", path, n_got, n_want), 0) end
    return
  end
  if not same_scalar(want, got) then error(string.format("%s is %s, expected %s", path, show(got), show(want)), 0) end
end

local counter = 0
local function save_load(obj, opts)
  counter = counter + 1
  local path = tmp("rt" .. counter .. ".pt")
  torch.save(obj, path)
  return torch.load(path, opts)
end

local function in_memory(obj)
  local s = torch.serialize(obj)
  assert.are.equal("string", type(s))
  return torch.deserialize(s)
end

local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  return ks
end

-- ------------------------------------------------------------------------------------------

describe("plain values make the round trip", function()
  local all_bytes = {}
  for i = 0, 255 do all_bytes[#all_bytes + 1] = string.char(i) end
  local cases = {
    { "nil", nil },
    { "true", true },
    { "false", false },
    { "0", 0 },
    { "-1", -1 },
    { "255 (one byte)", 255 },
    { "256", 256 },
    { "65535 (two bytes)", 65535 },
    { "65536", 65536 },
    { "2^31 - 1", 2147483647 },
    { "-2^31", -2147483648 },
    { "2^31 (past four bytes)", 2147483648 },
    { "math.maxinteger", math.maxinteger },
    { "math.mininteger", math.mininteger },
    { "1.0 stays a float", 1.0 },
    { "0.1", 0.1 },
    { "-0.0", -0.0 },
    { "inf", math.huge },
    { "-inf", -math.huge },
    { "nan", 0 / 0 },
    { "a denormal", 5e-324 },
    { "the largest float", 1.7976931348623157e308 },
    { "2^53 as a float", 2.0 ^ 53 },
    { "an empty string", "" },
    { "an ASCII string", "conv1.weight" },
    { "a UTF-8 string", "h\u{e9}llo \u{2603} \u{1F600}" },
    { "embedded zeros", "a\0b\0\0" },
    { "non-UTF-8 bytes", "\255\254\128\0\192\193" },
    { "all 256 bytes", table.concat(all_bytes) },
    { "a 200 kB string", string.rep("abc\0\255", 40000) },
    { "a list", { 1, 2, 3 } },
    { "a mixed list", { 1, "a", true, 2.5, -0.0 } },
    { "nested lists", { { 1, { 2, { 3, {} } } }, {} } },
    { "an empty table", {} },
    { "a dict", { a = 1, b = "two", c = { d = false } } },
    { "integer keys from 0", { [0] = "zero", [1] = "one", [2] = "two" } },
    { "negative and sparse integer keys", { [-1] = "m", [5] = "five", [1000000] = "big" } },
    { "a list with a hole (a dict then)", { 1, nil, 3 } },
    { "float keys", { [0.5] = "half", [-2.25] = "x" } },
    { "boolean keys", { [true] = 1, [false] = 0 } },
    { "mixed keys", { [1] = "one", [1.5] = "x", one = 1, [true] = "t", ["\255"] = "bytes key" } },
    { "deep nesting (200 levels)", (function()
      local t = { leaf = 1 }
      for i = 1, 200 do t = { [i % 2 == 0 and "x" or "y"] = t, i } end
      return t
    end)() },
    { "a general checkpoint", { epoch = 5, loss = 0.3125, name = "run", best = { acc = 0.9, at = 3 }, done = false } },
  }

  for _, c in ipairs(cases) do
    local name, value = c[1], c[2]
    it(name .. " (file)", function() check_same(value, save_load(value)) end)
    it(name .. " (memory)", function() check_same(value, in_memory(value)) end)
  end

  it("integers stay integers and floats stay floats, also as table values", function()
    local v = save_load({ i = 3, f = 3.0, l = { 1, 1.0 } })
    assert.are.equal("integer", math.type(v.i))
    assert.are.equal("float", math.type(v.f))
    assert.are.equal("integer", math.type(v.l[1]))
    assert.are.equal("float", math.type(v.l[2]))
  end)
end)

describe("tables come back", function()
  it("sequences as plain array tables", function()
    local v = save_load({ list = { "a", "b", "c" } })
    assert.is_false(torch.is_ordered(v.list))
    assert.are.same({ "a", "b", "c" }, v.list)
  end)

  it("dicts as ordered tables, keys sorted: integers, floats, strings bytewise, booleans last", function()
    local t = { zeta = 1, Alpha = 2, [10] = "ten", [2] = "two", [-3] = "minus", [0.5] = "half", ["\255x"] = "hi",
      beta = 3, [true] = "t" }
    for _, v in ipairs({ save_load(t), in_memory(t) }) do
      assert.is_true(torch.is_ordered(v))
      assert.are.same({ -3, 2, 10, 0.5, "Alpha", "beta", "zeta", "\255x", true }, keys_of(v))
    end
  end)

  it("ordered tables keep their insertion order", function()
    local od = torch.OrderedDict()
    od.z = 1
    od[10] = "ten"
    od.a = 2
    od[2] = "two"
    od[1.5] = "x"
    od[false] = "f"
    od.m = { 1, 2 }
    for _, v in ipairs({ save_load(od), in_memory(od) }) do
      assert.is_true(torch.is_ordered(v))
      assert.are.same({ "z", 10, "a", 2, 1.5, false, "m" }, keys_of(v))
      assert.are.same({ 1, 2 }, v.m)
    end
  end)

  it("an ordered table with keys 1..n stays a dict, not a list", function()
    local od = torch.OrderedDict({ { 2, "b" }, { 1, "a" } })
    local v = save_load(od)
    assert.is_true(torch.is_ordered(v))
    assert.are.same({ 2, 1 }, keys_of(v))
  end)

  it("nested dicts are ordered tables at every level", function()
    local v = save_load({ a = { b = { c = 1 } } })
    assert.is_true(torch.is_ordered(v))
    assert.is_true(torch.is_ordered(v.a))
    assert.is_true(torch.is_ordered(v.a.b))
  end)
end)

describe("the bytes written", function()
  local function obj()
    return { epoch = 3, w = torch.arange(10, { dtype = "float32" }), l = { 1, 2.5, "x" }, o = torch.OrderedDict({ { "b", 1 }, { "a", 2 } }) }
  end

  it("are a zip file (PyTorch's format) in files and in memory alike", function()
    local s = torch.serialize(obj())
    assert.are.equal("PK\3\4", s:sub(1, 4))
    torch.save(obj(), tmp("zip.pt"))
    assert.are.equal(s, read_bytes(tmp("zip.pt")))
  end)

  it("are identical when the same object is saved twice, seconds apart", function()
    local o = obj()
    torch.save(o, tmp("twice1.pt"))
    os.execute("sleep 2.1") -- zip timestamps have a 2-second resolution: cross a tick
    torch.save(o, tmp("twice2.pt"))
    assert.is_true(read_bytes(tmp("twice1.pt")) == read_bytes(tmp("twice2.pt")), "the two files differ")
    assert.is_true(torch.serialize(o) == torch.serialize(o))
  end)

  it("do not depend on the insertion order of a plain table's keys", function()
    local a, b = {}, {}
    for i = 1, 300 do a["k" .. i] = i; a[i * 7] = "v" .. i end
    for i = 300, 1, -1 do b[i * 7] = "v" .. i; b["k" .. i] = i end
    assert.is_true(torch.serialize(a) == torch.serialize(b))
  end)
end)

describe("tensors make the round trip", function()
  local inf, nan = math.huge, 0 / 0
  local data = {
    float32 = { 1.5, -0.0, inf, -inf, nan, 3.4028234663852886e38, 1.401298464324817e-45, -2.0 },
    float64 = { 1.5, -0.0, inf, -inf, nan, 1.7976931348623157e308, 5e-324, 0.1 },
    float16 = { 1.5, -0.0, inf, -inf, nan, 65504.0, 2 ^ -24, -2.0 },
    bfloat16 = { 1.5, -0.0, inf, -inf, nan, 2 ^ 127, 2 ^ -133, -2.0 },
    int64 = { 0, -1, math.maxinteger, math.mininteger, 5, 6, 7, 8 },
    int32 = { 0, -1, 2147483647, -2147483648, 5, 6, 7, 8 },
    int16 = { 0, -1, 32767, -32768, 5, 6, 7, 8 },
    int8 = { 0, -1, 127, -128, 5, 6, 7, 8 },
    uint8 = { 0, 1, 128, 255, 5, 6, 7, 8 },
    bool = { true, false, true, true, false, false, true, false },
  }

  local function variants(dt)
    local t = torch.tensor(data[dt], { dtype = dt })
    local m = t:view(2, 4)
    return {
      { "1-D", t },
      { "2-D", m },
      { "0-dim", t[3]:clone() },
      { "empty {0}", torch.empty({ 0 }, { dtype = dt }) },
      { "empty {2, 0, 3}", torch.empty({ 2, 0, 3 }, { dtype = dt }) },
      { "transposed", m:t() },
      { "narrowed (offset)", m:narrow(2, 2, 2) },
      { "a column", m:select(2, 4) },
      { "expanded (stride 0)", t:narrow(1, 1, 1):expand(3, 4) },
    }
  end

  for _, dt in ipairs(H.all_dtypes) do
    it(dt .. ": every shape and view, in a file, in memory and through mmap", function()
      for _, v in ipairs(variants(dt)) do
        local what, t = dt .. " " .. v[1], v[2]
        check_same(t, save_load(t), what .. " (file)")
        check_same(t, in_memory(t), what .. " (memory)")
        check_same(t, save_load(t, { mmap = true }), what .. " (mmap)")
      end
    end)
  end

  it("views keep their strides and storage offset", function()
    local base = torch.arange(24, { dtype = "float32" }):view(4, 6)
    local cases = { base:t(), base:narrow(2, 3, 2), base:select(1, 3), base:view(-1):narrow(1, 21, 4),
      torch.arange(3):expand(4, 3) }
    for i, v in ipairs(cases) do
      local got = save_load(v)
      assert.are.same(v:stride(), got:stride(), "case " .. i)
      assert.are.equal(v:storage_offset(), got:storage_offset(), "case " .. i)
      assert.are.equal(v:is_contiguous(), got:is_contiguous(), "case " .. i)
      check_same(v, got, "case " .. i)
    end
  end)

  local function shared(a, b) -- a write through a shows in b
    return a:data_ptr() - a:storage_offset() * a:element_size() == b:data_ptr() - b:storage_offset() * b:element_size()
  end

  for _, how in ipairs({ "file", "memory", "mmap" }) do
    it("views of one storage come back sharing it (" .. how .. ")", function()
      local base = torch.arange(12, { dtype = "float64" }):view(3, 4)
      local tied = torch.ones(2, 2)
      local obj = { base = base, t = base:t(), deep = { { row = base[2] } }, col = base:select(2, 3),
        w1 = tied, w2 = tied, copy = base:clone() }
      local v = how == "memory" and in_memory(obj) or save_load(obj, how == "mmap" and { mmap = true } or nil)
      v.base[2][3]:fill_(-5) -- row 2, column 3 (1-based)
      assert.are.equal(-5, v.t[3][2]:item())
      assert.are.equal(-5, v.deep[1].row[3]:item())
      assert.are.equal(-5, v.col[2]:item())
      assert.are_not.equal(-5, v.copy[2][3]:item())
      assert.is_true(shared(v.base, v.t) and shared(v.base, v.col))
      assert.is_false(shared(v.base, v.copy))
      v.w1:fill_(7)
      assert.are.equal(28, v.w2:sum():item())
    end)
  end

  it("a view saved alone keeps its whole storage (PyTorch writes the storage whole)", function()
    local base = torch.arange(100, { dtype = "int32" })
    local small = base:narrow(1, 91, 10)
    torch.save(small, tmp("small.pt"))
    torch.save(base, tmp("base.pt"))
    local got = torch.load(tmp("small.pt"))
    assert.are.equal(90, got:storage_offset())
    H.assert_values(got, { 90, 91, 92, 93, 94, 95, 96, 97, 98, 99 })
    -- the whole storage went in: the file is about as large as the one holding the base
    local a, b = #read_bytes(tmp("small.pt")), #read_bytes(tmp("base.pt"))
    assert.is_true(math.abs(a - b) < 128, a .. " bytes for the view, " .. b .. " for the base")
  end)

  it("a 64 MB tensor, quickly", function()
    local t = torch.arange(16 * 1024 * 1024, { dtype = "float32" })
    local t0 = os.clock()
    local v = save_load(t)
    local m = torch.load(tmp("rt" .. counter .. ".pt"), { mmap = true })
    assert.is_true(torch.equal(t, v) and torch.equal(t, m))
    assert.is_true(os.clock() - t0 < 5, "took " .. (os.clock() - t0) .. " s of CPU")
  end)

  it("tensors inside lists and integer-keyed tables", function()
    local obj = { list = { torch.ones(2), torch.zeros(3, { dtype = "int8" }) }, state = { [0] = { buf = torch.full({ 2 }, 3.5) } } }
    check_same(obj, save_load(obj))
    check_same(obj, in_memory(obj))
  end)
end)

describe("torch.OrderedDict", function()
  it("keeps insertion order; reassigning keeps the place; nil removes; re-adding appends", function()
    local od = torch.OrderedDict()
    od.a = 1
    od.b = 2
    od[3] = "three"
    od.c = 4
    assert.are.same({ "a", "b", 3, "c" }, keys_of(od))
    od.b = 20 -- keeps its place
    assert.are.same({ "a", "b", 3, "c" }, keys_of(od))
    assert.are.equal(20, od.b)
    od.b = nil
    assert.are.same({ "a", 3, "c" }, keys_of(od))
    assert.is_nil(od.b)
    od.b = 5 -- re-added: at the end
    assert.are.same({ "a", 3, "c", "b" }, keys_of(od))
    local vals = {}
    for k, v in pairs(od) do vals[#vals + 1] = tostring(k) .. "=" .. tostring(v) end
    assert.are.same({ "a=1", "3=three", "c=4", "b=5" }, vals)
  end)

  it("reads and writes like a plain table", function()
    local od = torch.OrderedDict()
    od["conv1.weight"] = torch.ones(2)
    assert.is_true(torch.is_tensor(od["conv1.weight"]))
    assert.are.equal(nil, od.missing)
    assert.are.equal(od["conv1.weight"], rawget(od, "conv1.weight")) -- values live in the table itself
  end)

  it("is built from a list of pairs", function()
    local od = torch.OrderedDict({ { "z", 1 }, { "a", 2 }, { 5, 3 } })
    assert.are.same({ "z", "a", 5 }, keys_of(od))
    assert.are.equal(2, od.a)
  end)

  it("torch.is_ordered tells ordered tables from others", function()
    assert.is_true(torch.is_ordered(torch.OrderedDict()))
    assert.is_false(torch.is_ordered({}))
    assert.is_false(torch.is_ordered({ 1, 2 }))
    assert.is_false(torch.is_ordered("x"))
    assert.is_false(torch.is_ordered(torch.ones(1)))
  end)

  it("many keys, removed and re-added, keep their order", function()
    local od = torch.OrderedDict()
    for i = 1, 1000 do od["k" .. i] = i end
    for i = 1, 1000, 2 do od["k" .. i] = nil end
    for i = 1, 1000, 4 do od["k" .. i] = -i end
    local ks = keys_of(od)
    assert.are.equal(500 + 250, #ks)
    assert.are.equal("k2", ks[1])
    assert.are.equal("k1000", ks[500])
    assert.are.equal("k1", ks[501])
    assert.are.equal("k997", ks[750])
  end)
end)

describe("mmap", function()
  local function sample()
    local od = torch.OrderedDict()
    for i, dt in ipairs(H.all_dtypes) do
      od[dt] = dt == "bool" and torch.tensor({ true, false, true }) or torch.arange(i, i + 6, { dtype = dt }):view(2, 3)
    end
    od.view = od.float32:t()
    return od
  end

  it("loads values equal to a copying load", function()
    torch.save(sample(), tmp("mm.pt"))
    check_same(torch.load(tmp("mm.pt")), torch.load(tmp("mm.pt"), { mmap = true }))
  end)

  it("writes to mapped tensors never reach the file (copy-on-write)", function()
    torch.save(sample(), tmp("cow.pt"))
    local before = read_bytes(tmp("cow.pt"))
    local v = torch.load(tmp("cow.pt"), { mmap = true })
    for _, dt in ipairs(H.all_dtypes) do v[dt]:fill_(dt == "bool" and false or 9) end
    assert.are.equal(9, v.view[1][1]:item()) -- the view shares the mapped storage
    v = nil
    collectgarbage()
    collectgarbage()
    assert.is_true(before == read_bytes(tmp("cow.pt")), "the file changed")
    check_same(sample(), torch.load(tmp("cow.pt"), { mmap = true }))
  end)

  it("a mapped tensor outlives its table, the file's removal and a save over the file", function()
    torch.save(sample(), tmp("live.pt"))
    local keep = torch.load(tmp("live.pt"), { mmap = true }).int32
    local want = H.values(sample().int32)
    collectgarbage()
    collectgarbage()
    torch.save({ int32 = torch.zeros(2, 3, { dtype = "int32" }) }, tmp("live.pt")) -- atomic: a new file
    H.assert_values(keep, want)
    H.assert_values(torch.load(tmp("live.pt"), { mmap = true }).int32, { 0, 0, 0, 0, 0, 0 })
    os.remove(tmp("live.pt"))
    collectgarbage()
    H.assert_values(keep, want)
    keep:add_(1)
    for i = 1, #want do want[i] = want[i] + 1 end
    H.assert_values(keep, want)
  end)
end)

describe("safetensors", function()
  local function tensors()
    local od = torch.OrderedDict()
    for i, dt in ipairs(H.all_dtypes) do
      od["t." .. dt] = dt == "bool" and torch.tensor({ { true, false }, { false, true } }) or
          torch.arange(i, i + 4, { dtype = dt }):view(2, 2)
    end
    od.scalar = torch.tensor(2.5, { dtype = "float64" })
    od.empty = torch.empty({ 0, 3 }, { dtype = "int16" })
    od.transposed = torch.arange(6, { dtype = "float32" }):view(2, 3):t()
    od.nan = torch.tensor({ 0 / 0, -0.0, math.huge }, { dtype = "float32" })
    return od
  end

  it("round trips every dtype, 0-dim, empty and non-contiguous tensors, with metadata", function()
    local src = tensors()
    torch.save(src, tmp("m.safetensors"), { metadata = { format = "pt", epoch = "3", empty = "" } })
    for _, opts in ipairs({ {}, { mmap = true } }) do
      local got, meta = torch.load(tmp("m.safetensors"), opts)
      assert.is_true(torch.is_ordered(got))
      check_same(src, got)
      assert.are.same({ format = "pt", epoch = "3", empty = "" }, meta)
      for _, t in pairs(got) do assert.is_true(t:is_contiguous()) end
    end
  end)

  it("loads in data order: the reference writer's (dtypes by alignment, largest first, then names)", function()
    local src = { b = torch.ones(2), a = torch.ones(2, { dtype = "float64" }), d = torch.ones(2),
      c = torch.ones(2, { dtype = "uint8" }), e = torch.ones(2, { dtype = "int16" }), f = torch.ones(1, { dtype = "bool" }) }
    torch.save(src, tmp("order.safetensors"))
    local got, meta = torch.load(tmp("order.safetensors"))
    assert.are.same({ "a", "b", "d", "e", "c", "f" }, keys_of(got))
    assert.is_nil(meta)
  end)

  it("opts.format chooses the format whatever the extension", function()
    local src = { w = torch.arange(4, { dtype = "float32" }) }
    torch.save(src, tmp("st.bin"), { format = "safetensors" })
    assert.are_not.equal("PK\3\4", read_bytes(tmp("st.bin")):sub(1, 4))
    local got = torch.load(tmp("st.bin"), { format = "safetensors" })
    check_same(src, got)
    torch.save(src, tmp("pt.safetensors"), { format = "pytorch" })
    assert.are.equal("PK\3\4", read_bytes(tmp("pt.safetensors")):sub(1, 4))
    check_same(src, torch.load(tmp("pt.safetensors"), { format = "pytorch" }))
  end)

  it("refuses what safetensors cannot hold", function()
    local p = tmp("bad.safetensors")
    H.expect_error(function() torch.save({ w = torch.ones(2), n = 3 }, p) end, "moontorch.save", "tensor")
    H.expect_error(function() torch.save({ w = { torch.ones(2) } }, p) end, "moontorch.save", "tensor")
    H.expect_error(function() torch.save(torch.ones(2), p) end, "moontorch.save", { "table", "dict", "name" })
    H.expect_error(function() torch.save({ w = torch.ones(2) }, p, { metadata = { epoch = 3 } }) end,
      "moontorch.save", "metadata")
    assert.is_false(exists(p), "a refused save left a file")
  end)
end)

describe("errors", function()
  it("name what cannot be saved and where it is", function()
    local p = tmp("never.pt")
    local err = H.expect_error(function() torch.save({ model = { forward = function() end } }, p) end,
      "moontorch.save", "function")
    assert.is_truthy(err:find("model.forward", 1, true), err)
    err = H.expect_error(function() torch.save({ co = coroutine.create(print) }, p) end, "moontorch.save",
      { "thread", "coroutine" })
    assert.is_truthy(err:find("co", 1, true), err)
    H.expect_error(function() torch.save({ f = io.stdout }, p) end, "moontorch.save", { "userdata", "file" })
    H.expect_error(function() torch.save({ [{}] = 1 }, p) end, "moontorch.save", "key")
    H.expect_error(function() torch.save({ [print] = 1 }, p) end, "moontorch.save", "key")
    err = H.expect_error(function() torch.save({ layers = { 1, 2, print } }, p) end, "moontorch.save", "function")
    assert.is_truthy(err:find("layers", 1, true), err)
    err = H.expect_error(function() torch.serialize({ a = { b = print } }) end, "moontorch.serialize", "function")
    assert.is_truthy(err:find("a.b", 1, true), err)
    assert.is_false(exists(p), "a refused save left a file")
    assert.are.same({}, (function()
      local l = {}
      for _, n in ipairs(listdir(dir)) do if n:match("never") then l[#l + 1] = n end end
      return l
    end)())
  end)

  it("name a cycle", function()
    local a = { b = {} }
    a.b.back = a
    local err = H.expect_error(function() torch.save(a, tmp("cycle.pt")) end, "moontorch.save",
      { "cycle", "recursive", "itself" })
    assert.is_truthy(err:find("b.back", 1, true), err)
    H.expect_error(function() torch.serialize(a) end, "moontorch.serialize", { "cycle", "recursive", "itself" })
    -- the same table twice without a cycle is fine (it is written twice)
    local shared = { 1, 2 }
    check_same({ x = shared, y = shared }, in_memory({ x = shared, y = shared }))
  end)

  it("leave an existing file untouched when the value cannot be saved", function()
    torch.save({ v = 1 }, tmp("keep.pt"))
    local before = read_bytes(tmp("keep.pt"))
    H.expect_error(function() torch.save({ v = 2, f = print }, tmp("keep.pt")) end, "moontorch.save", "function")
    assert.is_true(before == read_bytes(tmp("keep.pt")))
    assert.are.equal(1, torch.load(tmp("keep.pt")).v)
  end)

  it("reject bad arguments and options", function()
    local p = tmp("opts.pt")
    H.expect_error(function() torch.save({}, {}) end, "moontorch.save", { "path", "string" })
    H.expect_error(function() torch.save({}, p, 5) end, "moontorch.save", { "option", "table" })
    H.expect_error(function() torch.save({}, p, { format = "onnx" }) end, "moontorch.save", "format")
    H.expect_error(function() torch.load({}) end, "moontorch.load", { "path", "string" })
    torch.save({ 1 }, p)
    H.expect_error(function() torch.load(p, "mmap") end, "moontorch.load", { "option", "table" })
    H.expect_error(function() torch.load(p, { format = "onnx" }) end, "moontorch.load", "format")
    H.expect_error(function() torch.deserialize({}) end, "moontorch.deserialize", "string")
  end)

  it("name the missing file on load", function()
    local p = tmp("does-not-exist.pt")
    local err = H.expect_error(function() torch.load(p) end, "moontorch.load", { "no such file", "not found", "exist" })
    assert.is_truthy(err:find(p, 1, true), err)
  end)

  it("name serialized data that is not a checkpoint", function()
    H.expect_error(function() torch.deserialize("") end, "moontorch.deserialize", "serialized data")
    H.expect_error(function() torch.deserialize("hello, world") end, "moontorch.deserialize", "serialized data")
    local s = torch.serialize({ w = torch.ones(100) })
    H.expect_error(function() torch.deserialize(s:sub(1, #s // 2)) end, "moontorch.deserialize", "serialized data")
  end)
end)
