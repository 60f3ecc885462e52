-- The Lua side of checkpoint files (binding/lmt_serialize.c, lua/moontorch/serialization.lua,
-- lua/moontorch/ordered.lua): how Lua values map onto the file's values and back, ordered
-- tables, option checking and format dispatch, error messages that name the place inside the
-- object, and memory: nothing leaks when a save fails half-way, loops of loads stay flat.
local H = require "spec.helpers"
local torch = H.torch

local function roundtrip(v) return torch.deserialize(torch.serialize(v)) end

local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  return ks
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] or math.type(a[i]) ~= math.type(b[i]) then return false end
  end
  return true
end

local function assert_keys(t, expected)
  local got = keys_of(t)
  local show = {}
  for i, k in ipairs(got) do show[i] = tostring(k) .. ":" .. (math.type(k) or type(k)) end
  assert.is_true(same_list(got, expected), "keys in order: " .. table.concat(show, ", "))
end

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function assert_err(expected, fn, ...)
  local err = err_of(fn, ...)
  assert.are.equal(expected, err)
end

local function assert_err_find(fn, ...)
  local err = err_of(fn)
  for _, s in ipairs({ ... }) do
    assert.is_truthy(err:find(s, 1, true), "'" .. s .. "' not in: " .. err)
  end
  return err
end

local tmpdir
setup(function()
  local f = assert(io.popen("mktemp -d /tmp/moontorch-51.XXXXXX"))
  tmpdir = f:read("l")
  f:close()
end)
teardown(function()
  if tmpdir then os.execute("rm -rf " .. H.shquote(tmpdir)) end
end)
local function tmp(name) return tmpdir .. "/" .. name end

-- ---------------------------------------------------------------------------------------------

describe("serialize: scalars", function()
  local cases = {
    { "integer", 42 }, { "negative integer", -7 }, { "zero", 0 },
    { "int8 edge", 255 }, { "int16 edge", 65536 }, { "int32 edge", 2147483648 },
    { "maxinteger", math.maxinteger }, { "mininteger", math.mininteger },
    { "float", 0.25 }, { "integral float", 1.0 }, { "big float", 1e300 }, { "tiny float", 5e-324 },
    { "true", true }, { "false", false },
    { "empty string", "" }, { "text", "hello" }, { "UTF-8", "héllo ✓ 𝄞" },
    { "NUL inside", "a\0b" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " keeps its value and Lua type", function()
      for _, v in ipairs({ roundtrip(c[2]), roundtrip({ c[2] })[1], roundtrip({ x = c[2] }).x }) do
        assert.are.equal(c[2], v)
        assert.are.equal(math.type(c[2]), math.type(v))
      end
    end)
  end

  it("nil at the top comes back as nil", function()
    assert.is_nil(roundtrip(nil))
  end)

  it("infinities, NaN and -0.0", function()
    local l = roundtrip({ math.huge, -math.huge, 0 / 0, -0.0 })
    assert.are.equal(math.huge, l[1])
    assert.are.equal(-math.huge, l[2])
    assert.is_true(l[3] ~= l[3])
    assert.are.equal(-math.huge, 1 / l[4])
    assert.are.equal("float", math.type(l[4]))
  end)

  -- Strings that are not UTF-8 are saved as Python bytes (_codecs.encode(..., 'latin1')).
  local bytes = {
    { "high byte", "\xff" }, { "lone continuation", "a\x80b" }, { "overlong NUL", "\xc0\x80" },
    { "overlong slash", "\xe0\x80\xaf" }, { "surrogate", "\xed\xa0\x80" },
    { "past U+10FFFF", "\xf4\x90\x80\x80" }, { "truncated", "\xe2\x82" },
    { "binary", "\0\1\2\3\254\255" },
  }
  for _, c in ipairs(bytes) do
    it("non-UTF-8 string (" .. c[1] .. ") survives as bytes", function()
      local data = torch.serialize({ c[2] })
      assert.is_truthy(data:find("_codecs\nencode\n", 1, true), "written as bytes")
      assert.are.equal(c[2], torch.deserialize(data)[1])
    end)
  end

  it("valid UTF-8 is written as str, not bytes", function()
    assert.is_nil(torch.serialize({ "héllo ✓ 𝄞 \u{10FFFF}" }):find("_codecs", 1, true))
  end)
end)

describe("serialize: tables", function()
  it("a sequence becomes a list and comes back as a plain array", function()
    local l = roundtrip({ 1, "two", 3.0, { 4 } })
    assert.is_false(torch.is_ordered(l))
    assert.are.equal(4, #l)
    assert.are.equal("two", l[2])
    assert.are.equal("float", math.type(l[3]))
    assert.are.equal(4, l[4][1])
  end)

  it("a table with other keys becomes a dict, back as an ordered table", function()
    local d = roundtrip({ a = 1, [2] = 2 })
    assert.is_true(torch.is_ordered(d))
    assert.are.equal(1, d.a)
    assert.are.equal(2, d[2])
  end)

  it("{} is an empty dict", function()
    local d = roundtrip({})
    assert.is_true(torch.is_ordered(d))
    assert.is_nil(next(d))
  end)

  it("holes make a dict of the keys present", function()
    local d = roundtrip({ 1, nil, 3 })
    assert.is_true(torch.is_ordered(d))
    assert_keys(d, { 1, 3 })
  end)

  it("plain dict keys are sorted: integers, floats, strings bytewise, booleans", function()
    local d = roundtrip({
      b = 1, [true] = 1, [3] = 1, [-2] = 1, [0.5] = 1, [false] = 1, a = 1, B = 1, [-1.5] = 1, ["\xff"] = 1,
      [10] = 1, ["aa"] = 1,
    })
    assert_keys(d, { -2, 3, 10, -1.5, 0.5, "B", "a", "aa", "b", "\xff", false, true })
  end)

  it("integer keys stay integers (optimizer state {[0] = ...})", function()
    local d = roundtrip({ state = { [0] = { step = 3 }, [1] = { step = 4 } }, param_groups = { { params = { 0, 1 } } } })
    assert_keys(d.state, { 0, 1 })
    assert.are.equal(3, d.state[0].step)
    assert.are.equal(1, d.param_groups[1].params[2])
  end)

  it("a table met twice (not a cycle) is saved twice", function()
    local shared = { 1, 2 }
    local d = roundtrip({ a = shared, b = shared })
    assert.are.same({ 1, 2 }, d.a)
    assert.are.same({ 1, 2 }, d.b)
  end)

  it("metatables of plain tables are ignored (raw contents are saved)", function()
    local t = setmetatable({ x = 1 }, { __index = function() return 99 end, __pairs = function() error("no") end })
    local d = roundtrip(t)
    assert_keys(d, { "x" })
  end)
end)

describe("ordered tables", function()
  it("keep insertion order; reassigning keeps the place; removing and re-adding appends", function()
    local d = torch.OrderedDict()
    d.z = 1; d.a = 2; d[7] = 3; d.m = 4
    assert_keys(d, { "z", "a", 7, "m" })
    d.z = 10
    assert_keys(d, { "z", "a", 7, "m" })
    d.a = nil
    assert_keys(d, { "z", 7, "m" })
    d.a = 5
    assert_keys(d, { "z", 7, "m", "a" })
    assert.are.equal(10, d.z)
    assert.are.equal(5, rawget(d, "a")) -- values live in the table itself
  end)

  it("record 2.0 as the key 2, as Lua stores it", function()
    local d = torch.OrderedDict()
    d[2.0] = "x"
    assert_keys(d, { 2 })
  end)

  it("still visit keys that arrived through rawset", function()
    local d = torch.OrderedDict()
    d.a = 1
    rawset(d, "b", 2)
    assert_keys(d, { "a", "b" })
  end)

  it("stay small under many removals", function()
    local d = torch.OrderedDict()
    d.first = 1
    for i = 1, 100000 do
      d[i] = i
      d[i] = nil
    end
    d.last = 2
    assert_keys(d, { "first", "last" })
    collectgarbage()
    local kb = collectgarbage("count")
    for i = 1, 100000 do
      d[i] = i
      d[i] = nil
    end
    collectgarbage()
    assert.is_true(collectgarbage("count") - kb < 200, "order list grew")
  end)

  it("OrderedDict(pairs) builds from {{k, v}, ...}; a later duplicate keeps the first place", function()
    local d = torch.OrderedDict({ { "x", 1 }, { "y", 2 }, { "x", 3 } })
    assert_keys(d, { "x", "y" })
    assert.are.equal(3, d.x)
    local copy = torch.OrderedDict(d)
    assert_keys(copy, { "x", "y" })
    assert.are_not.equal(d, copy)
  end)

  it("OrderedDict rejects bad arguments", function()
    assert_err("moontorch.OrderedDict: bad argument #1 (table of {key, value} pairs expected, got number)",
      torch.OrderedDict, 5)
    assert_err("moontorch.OrderedDict: entry [2] is a string, not a {key, value} pair",
      torch.OrderedDict, { { "a", 1 }, "b" })
    assert_err("moontorch.OrderedDict: entry [1] has no key", torch.OrderedDict, { {} })
  end)

  it("is_ordered tells them apart", function()
    assert.is_true(torch.is_ordered(torch.OrderedDict()))
    assert.is_false(torch.is_ordered({}))
    assert.is_false(torch.is_ordered(nil))
    assert.is_false(torch.is_ordered(torch.ones(1)))
  end)

  it("are saved in their order, nested ones too, and a sequence-keyed one stays a dict", function()
    local inner = torch.OrderedDict()
    inner.w = 1; inner.b = 2; inner.a = 3
    local seq = torch.OrderedDict()
    seq[2] = "b"; seq[1] = "a"
    local d = torch.OrderedDict()
    d.zeta = inner; d.alpha = seq; d[1] = true
    local back = roundtrip(d)
    assert_keys(back, { "zeta", "alpha", 1 })
    assert_keys(back.zeta, { "w", "b", "a" })
    assert.is_true(torch.is_ordered(back.alpha))
    assert_keys(back.alpha, { 2, 1 })
  end)

  it("loaded ones behave like any ordered table", function()
    local back = roundtrip(torch.OrderedDict({ { "a", 1 }, { "b", 2 } }))
    back.c = 3
    back.a = nil
    back.a = 4
    assert_keys(back, { "b", "c", "a" })
  end)
end)

describe("serialize: tensors", function()
  for _, dt in ipairs(H.all_dtypes) do
    it(dt .. " tensors keep dtype, shape and values", function()
      local t = torch.tensor({ { 0, 1, 2 }, { 3, 4, 5 } }, { dtype = dt })
      local back = roundtrip({ t = t }).t
      H.assert_meta(back, { 2, 3 }, dt)
      assert.is_true(torch.equal(t, back))
    end)
  end

  it("0-dim and empty tensors", function()
    local back = roundtrip({ torch.tensor(3.5), torch.zeros(0, 3), torch.empty(0, { dtype = "int64" }) })
    H.assert_meta(back[1], {}, "float32")
    assert.are.equal(3.5, back[1]:item())
    H.assert_meta(back[2], { 0, 3 }, "float32")
    H.assert_meta(back[3], { 0 }, "int64")
  end)

  it("non-contiguous views keep strides and offsets", function()
    local x = torch.arange(24, { dtype = "float64" }):view(2, 3, 4)
    local views = { x:transpose(1, 3), x:narrow(3, 2, 2), x[2], x:select(3, 4), x:view(6, 4):t() }
    local back = roundtrip(views)
    for i, v in ipairs(views) do
      assert.is_true(torch.equal(v, back[i]), "view " .. i)
      assert.are.same(v:stride(), back[i]:stride())
      assert.are.equal(v:storage_offset(), back[i]:storage_offset())
    end
  end)

  it("views of one storage come back sharing one storage", function()
    local x = torch.arange(6, { dtype = "int32" })
    local back = roundtrip({ whole = x:view(2, 3), row = x:view(2, 3)[2], same = x, again = x })
    back.whole[2][1] = 100 -- write through one ...
    assert.are.equal(100, back.row[1]:item()) -- ... read in the others
    assert.are.equal(100, back.same[4]:item())
    assert.are.equal(100, back.again[4]:item())
    assert.are.equal(0, x[4]:item() - 3) -- the original is untouched
  end)

  it("tensors with different storages stay apart", function()
    local back = roundtrip({ torch.zeros(2), torch.zeros(2) })
    back[1]:fill_(1)
    assert.are.equal(0, back[2]:sum():item())
  end)
end)

-- ---------------------------------------------------------------------------------------------

describe("save and load: files", function()
  it("a general checkpoint round-trips through a file", function()
    local model = torch.OrderedDict()
    model["fc.weight"] = torch.randn(3, 4)
    model["fc.bias"] = torch.zeros(3)
    local ckpt = { epoch = 5, loss = 0.31, model_state_dict = model, note = "é\xff" }
    torch.save(ckpt, tmp("ckpt.pt"))
    local back = torch.load(tmp("ckpt.pt"))
    assert_keys(back, { "epoch", "loss", "model_state_dict", "note" })
    assert.are.equal(5, back.epoch)
    assert.are.equal(0.31, back.loss)
    assert.are.equal("é\xff", back.note)
    assert_keys(back.model_state_dict, { "fc.weight", "fc.bias" })
    assert.is_true(torch.equal(model["fc.weight"], back.model_state_dict["fc.weight"]))
  end)

  it("save overwrites an existing file", function()
    torch.save({ 1 }, tmp("over.pt"))
    torch.save({ 2 }, tmp("over.pt"))
    assert.are.equal(2, torch.load(tmp("over.pt"))[1])
  end)

  it("the file holds the same bytes as serialize", function()
    local obj = { a = torch.arange(4), b = { 1, 2.5, "x" } }
    torch.save(obj, tmp("same.pt"))
    local f = assert(io.open(tmp("same.pt"), "rb"))
    local data = f:read("a")
    f:close()
    assert.are.equal(torch.serialize(obj), data)
  end)

  it("mmap loads give the same values; writes stay in memory (copy-on-write)", function()
    local t = torch.arange(1000, { dtype = "float32" })
    torch.save({ t = t, v = t:view(10, 100)[3] }, tmp("map.pt"))
    local m = torch.load(tmp("map.pt"), { mmap = true })
    assert.is_true(torch.equal(t, m.t))
    m.t:fill_(-1)
    assert.are.equal(-1, m.v[1]:item()) -- still one storage
    assert.is_true(torch.equal(t, torch.load(tmp("map.pt")).t)) -- the file is unchanged
  end)

  it("mmap-loaded tensors outlive the file and the collection of their siblings", function()
    torch.save({ a = torch.arange(100), b = torch.ones(3) }, tmp("gone.pt"))
    local m = torch.load(tmp("gone.pt"), { mmap = true })
    local a = m.a
    m = nil
    os.remove(tmp("gone.pt"))
    collectgarbage()
    collectgarbage()
    assert.are.equal(4950, a:sum():item())
  end)

  it(".safetensors paths save and load safetensors with metadata", function()
    local sd = torch.OrderedDict()
    sd.b = torch.ones(2, { dtype = "float16" })
    sd.a = torch.arange(6, { dtype = "int64" }):view(2, 3)
    sd.c = torch.tensor(true)
    torch.save(sd, tmp("m.safetensors"), { metadata = { format = "pt", note = "é" } })
    local f = assert(io.open(tmp("m.safetensors"), "rb"))
    local head = f:read(8)
    f:close()
    assert.are.equal(8, #head) -- a safetensors header length, not a zip signature
    assert.are_not.equal("PK", head:sub(1, 2))
    for _, mmap in ipairs({ false, true }) do
      local tensors, meta = torch.load(tmp("m.safetensors"), { mmap = mmap })
      assert.is_true(torch.is_ordered(tensors))
      assert.are.same({ format = "pt", note = "é" }, meta)
      for k, v in pairs(sd) do
        assert.is_true(torch.equal(v, tensors[k]), k)
        assert.are.equal(v.dtype, tensors[k].dtype)
      end
    end
  end)

  it("safetensors without metadata load metadata as nil; a plain table saves too", function()
    torch.save({ w = torch.zeros(2) }, tmp("plain.safetensors"))
    local tensors, meta = torch.load(tmp("plain.safetensors"))
    assert.is_nil(meta)
    assert_keys(tensors, { "w" })
  end)

  it("opts.format overrides the extension both ways", function()
    torch.save({ w = torch.ones(1) }, tmp("st.bin"), { format = "safetensors" })
    local tensors = torch.load(tmp("st.bin"), { format = "safetensors" })
    assert.are.equal(1, tensors.w:item())
    torch.save({ w = 1 }, tmp("pt.safetensors"), { format = "pytorch" })
    assert.are.equal(1, torch.load(tmp("pt.safetensors"), { format = "pytorch" }).w)
    assert.has_error(function() torch.load(tmp("st.bin")) end) -- read as a PyTorch file: not a zip
  end)
end)

-- ---------------------------------------------------------------------------------------------

describe("errors name the function, the place and the problem", function()
  it("values that cannot be saved", function()
    assert_err("moontorch.save: cannot save a function at model.forward",
      torch.save, { model = { forward = print } }, tmp("x.pt"))
    assert_err("moontorch.serialize: cannot save a thread at co",
      torch.serialize, { co = coroutine.create(print) })
    assert_err("moontorch.serialize: cannot save a FILE* at layers[2].w",
      torch.serialize, { layers = { { w = 1 }, { w = io.stdout } } })
    assert_err("moontorch.serialize: cannot save a function", torch.serialize, print)
    assert_err("moontorch.serialize: cannot save a function at [3]", torch.serialize, { 1, 2, print })
    assert_err("moontorch.serialize: cannot save a function at [1.5]", torch.serialize, { [1.5] = print })
    assert_err("moontorch.serialize: cannot save a function at [true]", torch.serialize, { [true] = print })
    assert_err("moontorch.serialize: cannot save a table as a dict key at a",
      torch.serialize, { a = { [{}] = 1 } })
  end)

  it("a closed tensor", function()
    local t = torch.ones(2)
    do
      local c <close> = t
    end
    assert_err("moontorch.serialize: cannot save a closed tensor at x.y", torch.serialize, { x = { y = t } })
  end)

  it("cycles, named where the table comes back", function()
    local t = { a = { b = {} } }
    t.a.b.c = t
    assert_err("moontorch.save: cycle at a.b.c", torch.save, t, tmp("cycle.pt"))
    local s = {}
    s.self = s
    assert_err("moontorch.serialize: cycle at self", torch.serialize, s)
    local o = torch.OrderedDict()
    o.list = { 1, o }
    assert_err("moontorch.serialize: cycle at list[2]", torch.serialize, o)
    assert.is_false(io.open(tmp("cycle.pt")) ~= nil, "a failed save leaves no file")
  end)

  it("nesting beyond 1000 levels, with the path shortened", function()
    local deep = {}
    local cur = deep
    for _ = 1, 1001 do
      cur.n = {}
      cur = cur.n
    end
    local err = err_of(torch.serialize, deep)
    assert.is_truthy(err:find("^moontorch.serialize: nesting deeper than 1000 levels at n%.n%.n"), err)
    assert.is_truthy(err:find("...", 1, true))
    assert.is_true(#err < 400)
  end)

  it("1000 levels still save and load", function()
    local deep = {}
    local cur = deep
    for _ = 1, 999 do
      cur[1] = {}
      cur = cur[1]
    end
    cur[1] = "bottom"
    local back = roundtrip(deep)
    for _ = 1, 999 do back = back[1] end
    assert.are.equal("bottom", back[1])
  end)

  it("bad arguments and options", function()
    assert_err("moontorch.save: bad argument #2 (path expected, got nil)", torch.save, {})
    assert_err("moontorch.save: bad argument #2 (path is empty)", torch.save, {}, "")
    assert_err("moontorch.save: bad argument #3 (options table expected, got string)", torch.save, {}, tmp("o.pt"), "x")
    assert_err("moontorch.save: unknown option 'mmap' (known options: format, metadata)",
      torch.save, {}, tmp("o.pt"), { mmap = true })
    assert_err("moontorch.load: unknown option 'metadata' (known options: format, mmap)",
      torch.load, tmp("o.pt"), { metadata = {} })
    assert_err("moontorch.load: unknown option 'map' (known options: format, mmap)",
      torch.load, tmp("o.pt"), { map = true })
    assert_err("moontorch.load: opts.mmap must be a boolean, got string", torch.load, tmp("o.pt"), { mmap = "yes" })
    assert_err("moontorch.load: opts.format must be 'pytorch' or 'safetensors', got 'npz'",
      torch.load, tmp("o.pt"), { format = "npz" })
    assert_err("moontorch.load: bad argument #1 (path expected, got number)", torch.load, 5)
    assert_err("moontorch.save: opts.metadata is for safetensors files (path ending in .safetensors or opts.format = 'safetensors')",
      torch.save, {}, tmp("o.pt"), { metadata = {} })
    assert_err("moontorch.save: a safetensors file holds a table of name -> tensor, got moontorch.Tensor",
      torch.save, torch.ones(1), tmp("o.safetensors"))
    assert_err("moontorch.save: opts.metadata must map strings to strings; its key 'v' holds a number",
      torch.save, { w = torch.ones(1) }, tmp("o.safetensors"), { metadata = { v = 1 } })
    assert_err("moontorch.save: a safetensors file holds only tensors, not a number at epoch",
      torch.save, { w = torch.ones(1), epoch = 3 }, tmp("o.safetensors"))
    assert_err("moontorch.save: a safetensors file maps names to tensors: the key is a number at [1]",
      torch.save, { torch.ones(1) }, tmp("o.safetensors"))
    assert_err("moontorch.serialize: bad argument #2 (serialize takes no options, got table)", torch.serialize, {}, {})
    assert_err("moontorch.deserialize: bad argument #1 (string expected, got nil)", torch.deserialize)
    assert.is_false(io.open(tmp("o.pt")) ~= nil, "no file was written")
    assert.is_false(io.open(tmp("o.safetensors")) ~= nil, "no file was written")
  end)

  it("unreadable paths and bad data name the path and the problem", function()
    local missing = tmp("no/such.pt")
    assert_err_find(function() torch.load(missing) end, "moontorch.load: " .. missing .. ": ", "No such file")
    assert_err_find(function() torch.load(missing, { mmap = true }) end, "moontorch.load: " .. missing .. ": ")
    assert_err_find(function() torch.load(tmp("no/such.safetensors")) end,
      "moontorch.load: " .. tmp("no/such.safetensors") .. ": ", "No such file")
    assert_err_find(function() torch.save({}, missing) end, "moontorch.save: " .. missing, "No such file")
    assert_err_find(function() torch.load(tmpdir) end, "moontorch.load: " .. tmpdir .. ": ")
    assert_err_find(function() torch.deserialize("not a checkpoint") end, "moontorch.deserialize: serialized data: ")
    assert_err_find(function() torch.deserialize("") end, "moontorch.deserialize: serialized data: ")
  end)
end)

-- ---------------------------------------------------------------------------------------------

describe("memory", function()
  local RSS = [[
    local torch = require "moontorch"
    local function rss_mb()
      local f = io.open("/proc/self/statm")
      local _, resident = f:read("n", "n")
      f:close()
      return resident * 4096 / 2^20
    end
  ]]

  it("a save that fails half-way frees what it had built", function()
    local out, ok = H.run_lua(RSS .. [[
      local big = string.rep("x", 1000000)   -- copied into the value tree before the error
      local obj = { a = big, b = big, c = big, d = big, z = print }
      local base
      for i = 1, 400 do                        -- 1.6 GB if the trees leaked
        assert(not pcall(torch.serialize, obj))
        if i == 20 then base = rss_mb() end
      end
      print(string.format("growth=%d", math.floor(rss_mb() - base)))
    ]])
    assert.is_true(ok, out)
    if os.getenv("MOONTORCH_SANITIZE") then -- the child exited cleanly: LeakSanitizer found no leak
      pending("RSS is not measured under sanitizers: ASan keeps freed memory in quarantine")
      return
    end
    local growth = tonumber(out:match("growth=(%-?%d+)"))
    assert.is_number(growth, out)
    assert.is_true(growth < 100, "RSS grew by " .. growth .. " MB")
  end)

  for _, mmap in ipairs({ false, true }) do
    it("loading a 40 MB file 100 times stays flat (mmap = " .. tostring(mmap) .. ")", function()
      local path = tmp("big" .. tostring(mmap) .. ".pt")
      local out, ok = H.run_lua(RSS .. string.format([[
        torch.save({ w = torch.ones(10000000), b = torch.ones(10) }, %q)
        local peak = 0
        for i = 1, 100 do                   -- 4 GB of tensors loaded
          local sd = torch.load(%q, { mmap = %s })
          sd.w:fill_(2)                     -- touch every page (mmap: copy-on-write)
          peak = math.max(peak, rss_mb())
        end
        print(string.format("peak=%%d", math.floor(peak)))
      ]], path, path, tostring(mmap)))
      assert.is_true(ok, out)
      local peak = tonumber(out:match("peak=(%d+)"))
      assert.is_number(peak, out)
      assert.is_true(peak < 700, "peak RSS " .. tostring(peak) .. " MB")
    end)
  end
end)
