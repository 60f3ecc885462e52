-- SPEC §6 against the real PyTorch (Debian's 1.13, /usr/bin/python3), both ways:
--   1. tools/pytorch_files.py writes files with torch.save (a conv net's state dict, SGD and Adam
--      state dicts, a general checkpoint, every dtype, views and tied weights, Parameters,
--      storages tagged cuda:0 / mps, plain Python values, other top folders, deflated and
--      unaligned records) plus a description of each object; torch.load must give the same
--      values, with and without mmap.
--   2. This spec saves files with torch.save; the tool loads them with
--      torch.load(path, weights_only=True) (plain torch.load for files holding floats or bytes
--      outside tensors, which 1.13's weights_only reader lacks, after checking that the pickle
--      names only allowlisted globals), describes what it got, checks the zip layout and
--      compares our data.pkl with what torch.save writes for the loaded object.
-- Both sides are compared as descriptions (see the tool's docstring): kinds, values (exact,
-- NaN and -0.0 included), dtypes, shapes, strides, offsets and storage sharing.
local H = require "spec.helpers"
local torch = H.torch

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local tool = source_dir .. "/tools/pytorch_files.py"
local PYTHON = "/usr/bin/python3"

local sh = H.sh

local function mktemp_dir() return H.mktemp_dir("pt") end

local read_lua = H.read_lua

-- ------------------------------------------------------------------------------------------
-- Descriptions of Lua values, as Python would see them once saved (SPEC §6 and the decided
-- Lua <-> value mapping).

-- A storage's identity: the address of its first element.
local function storage_base(t)
  return t:data_ptr() - t:storage_offset() * t:element_size()
end

local KEY_RANK = { integer = 1, float = 2, string = 3, boolean = 4 }
local function key_rank(k)
  if type(k) == "number" then return KEY_RANK[math.type(k)] end
  return KEY_RANK[type(k)] or 5
end
-- Integers ascending, then floats, then strings bytewise, then booleans (false first).
local function key_less(a, b)
  local ra, rb = key_rank(a), key_rank(b)
  if ra ~= rb then return ra < rb end
  if type(a) == "number" then return a < b end
  if type(a) == "boolean" then return (not a) and b end
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if rawget(t, i) == nil then return false end end
  return true
end

local function describe_lua(v)
  local ty = type(v)
  if v == nil then return { kind = "none" } end
  if ty == "boolean" then return { kind = "bool", v = v } end
  if ty == "number" then return { kind = math.type(v) == "integer" and "int" or "float", v = v } end
  if ty == "string" then return { kind = utf8.len(v) and "str" or "bytes", v = v } end
  if torch.is_tensor(v) then
    return { kind = "tensor", dtype = v.dtype, shape = v.shape, stride = v:stride(), offset = v:storage_offset(),
      storage = storage_base(v), values = H.values(v) }
  end
  assert(ty == "table", "cannot describe a " .. ty)
  local keys = {}
  if torch.is_ordered(v) then
    for k in pairs(v) do keys[#keys + 1] = k end
  elseif is_sequence(v) then
    local items = {}
    for i = 1, #v do items[i] = describe_lua(v[i]) end
    return { kind = "list", items = items }
  else
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, key_less)
  end
  local d = { kind = torch.is_ordered(v) and "OrderedDict" or "dict", keys = {}, vals = {} }
  for i, k in ipairs(keys) do
    d.keys[i] = describe_lua(k)
    d.vals[i] = describe_lua(v[k])
  end
  return d
end

-- What a Python object becomes in Lua (direction 1): every dict an ordered table in file order,
-- tuples lists, str and bytes strings (kind then follows the content), None entries of dicts
-- absent, empty lists empty plain tables.
local function lua_view_of(d)
  local k = d.kind
  if k == "bytes" or k == "str" then return { kind = utf8.len(d.v) and "str" or "bytes", v = d.v } end
  if k == "list" or k == "tuple" then
    if #d.items == 0 then return { kind = "dict", keys = {}, vals = {} } end
    local items = {}
    for i, x in ipairs(d.items) do items[i] = lua_view_of(x) end
    return { kind = "list", items = items }
  end
  if k == "dict" or k == "OrderedDict" then
    local out = { kind = "OrderedDict", keys = {}, vals = {} }
    for i, key in ipairs(d.keys) do
      if d.vals[i].kind ~= "none" then
        out.keys[#out.keys + 1] = lua_view_of(key)
        out.vals[#out.vals + 1] = lua_view_of(d.vals[i])
      end
    end
    return out
  end
  return d
end

local function show(x)
  if type(x) == "number" and math.type(x) == "float" then return string.format("%.17g", x) end
  if type(x) == "string" then return string.format("%q", x) end
  return tostring(x)
end

local function same_scalar(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
  end
  return a == b
end

-- Compares description `got` (from the side under test) with `want`; errors with the path of
-- the first difference. `st` pairs storages: got ids <-> want ids, one to one.
local function compare(got, want, path, st)
  local function fail(fmt, ...) error(string.format("%s: " .. fmt, path, ...), 0) end
  if got.kind ~= want.kind then fail("is a %s, expected a %s", got.kind, want.kind) end
  local k = want.kind
  if k == "none" then return end
  if k == "bool" or k == "int" or k == "float" or k == "str" or k == "bytes" then
    if not same_scalar(got.v, want.v) then fail("is %s, expected %s", show(got.v), show(want.v)) end
  elseif k == "list" or k == "tuple" then
    if #got.items ~= #want.items then fail("has %d items, expected %d", #got.items, #want.items) end
    for i = 1, #want.items do compare(got.items[i], want.items[i], path .. "[" .. i .. "]", st) end
  elseif k == "dict" or k == "OrderedDict" then
    local names = {}
    for i, key in ipairs(got.keys) do names[i] = show(key.v) end
    local wnames = {}
    for i, key in ipairs(want.keys) do wnames[i] = show(key.v) end
    if table.concat(names, ", ") ~= table.concat(wnames, ", ") then
      fail("keys are {%s}, expected {%s} (in this order)", table.concat(names, ", "), table.concat(wnames, ", "))
    end
    for i = 1, #want.keys do
      compare(got.keys[i], want.keys[i], path .. ".<key " .. wnames[i] .. ">", st)
      compare(got.vals[i], want.vals[i], path .. "[" .. wnames[i] .. "]", st)
    end
  elseif k == "tensor" then
    if got.dtype ~= want.dtype then fail("dtype is %s, expected %s", got.dtype, want.dtype) end
    local function list(l) return "[" .. table.concat(l, ", ") .. "]" end
    if list(got.shape) ~= list(want.shape) then fail("shape is %s, expected %s", list(got.shape), list(want.shape)) end
    if #got.values ~= #want.values then fail("has %d values, expected %d", #got.values, #want.values) end
    for i = 1, #want.values do
      if not same_scalar(got.values[i], want.values[i]) then
        fail("value %d is %s, expected %s", i, show(got.values[i]), show(want.values[i]))
      end
    end
    if list(got.stride) ~= list(want.stride) then fail("stride is %s, expected %s", list(got.stride), list(want.stride)) end
    if got.offset ~= want.offset then fail("storage offset is %d, expected %d", got.offset, want.offset) end
    local numel = want.storage_numel or got.storage_numel
    if numel and numel > 0 then -- empty storages have no identity to compare
      local g2w, w2g = st.g2w, st.w2g
      if g2w[got.storage] == nil and w2g[want.storage] == nil then
        g2w[got.storage], w2g[want.storage] = want.storage, got.storage
      elseif g2w[got.storage] ~= want.storage or w2g[want.storage] ~= got.storage then
        fail("storage sharing differs: shares storage with a tensor it should not, or not with one it should")
      end
    end
  else
    fail("unknown kind %s", tostring(k))
  end
end

local function assert_same(got, want, name)
  compare(got, want, name, { g2w = {}, w2g = {} })
end

-- ------------------------------------------------------------------------------------------
-- 1. PyTorch writes, moontorch reads

describe("files written by PyTorch's torch.save", function()
  local dir, expected, setup_err

  lazy_setup(function()
    dir = mktemp_dir()
    local ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " write " .. H.shquote(dir))
    if not ok then
      setup_err = "tools/pytorch_files.py write failed:\n" .. out
      return
    end
    expected, setup_err = read_lua(dir .. "/expected.lua")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  local function load(name, opts)
    assert(not setup_err, setup_err)
    return torch.load(dir .. "/" .. name, opts)
  end

  local files = {
    { "convnet.pt", "a conv net's state dict (OrderedDict with _metadata, BatchNorm buffers)" },
    { "sgd.pt", "an SGD-with-momentum state dict after two steps (int keys, param_groups)" },
    { "adam.pt", "an Adam state dict after two steps (0-dim step tensors, betas tuple)" },
    { "checkpoint.pt", "a general checkpoint {epoch, model_state_dict, optimizer_state_dict, loss}" },
    { "dtypes.pt", "all 10 dtypes with extreme values, 0-dim and empty tensors" },
    { "views.pt", "views of one storage and tied Parameters" },
    { "values.pt", "plain Python values (ints, floats, str, bytes, None, lists, tuples, dicts, Size, device)" },
    { "parameter.pt", "torch.nn.Parameter (_rebuild_parameter)" },
    { "cuda.pt", "storages tagged cuda:0" },
    { "mps.pt", "storages tagged mps" },
    { "tensor_only.pt", "a bare tensor" },
    { "buffer.pt", "a file saved to a buffer (top folder 'archive')" },
    { "my.model.v2.pt", "a top folder whose name has dots" },
    { "deflated.pt", "deflated records" },
    { "unaligned.pt", "stored records that are not 64-byte aligned" },
  }

  for _, f in ipairs(files) do
    local name, what = f[1], f[2]
    it("loads " .. name .. ": " .. what, function()
      local v = load(name)
      assert(expected[name], "no expectation for " .. name)
      assert_same(describe_lua(v), lua_view_of(expected[name]), name)
    end)
    it("loads " .. name .. " with mmap = true to the same values", function()
      local v = load(name, { mmap = true })
      assert_same(describe_lua(v), lua_view_of(expected[name]), name .. " (mmap)")
    end)
  end

  it("a state dict reads as PyTorch's keys, in order, without _metadata", function()
    local sd = load("convnet.pt")
    assert.is_true(torch.is_ordered(sd))
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    assert.are.same({ "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
      "bn1.num_batches_tracked", "conv2.weight", "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias" }, keys)
    H.assert_meta(sd["bn1.num_batches_tracked"], {}, "int64")
    assert.are.equal(2, sd["bn1.num_batches_tracked"]:item())
    H.assert_meta(sd["conv1.weight"], { 4, 1, 3, 3 }, "float32")
  end)

  it("an optimizer state dict has integer state keys from 0 and param ids as integers", function()
    local sgd = load("sgd.pt")
    assert.is_true(torch.is_tensor(sgd.state[0].momentum_buffer))
    H.assert_meta(sgd.state[0].momentum_buffer, { 4, 1, 3, 3 }, "float32")
    local g = sgd.param_groups[1]
    assert.are.equal(0.1, g.lr)
    assert.are.equal("float", math.type(g.momentum))
    assert.are.equal(false, g.nesterov)
    for i, id in ipairs(g.params) do assert.are.equal(i - 1, id) assert.are.equal("integer", math.type(id)) end
    local adam = load("adam.pt")
    H.assert_meta(adam.state[0].step, {}, "float32")
    assert.are.equal(2.0, adam.state[0].step:item())
    assert.are.same({ 0.9, 0.999 }, adam.param_groups[1].betas)
  end)

  it("a general checkpoint keeps epoch an integer and loss a float", function()
    local ck = load("checkpoint.pt")
    assert.are.equal(5, ck.epoch)
    assert.are.equal("integer", math.type(ck.epoch))
    assert.are.equal(0.3125, ck.loss)
    assert.are.equal("float", math.type(ck.loss))
    assert.is_true(torch.is_ordered(ck.model_state_dict))
  end)

  it("views of one file storage come back sharing it: a write through one shows in the others", function()
    local v = load("views.pt")
    v.base[3][4]:fill_(-7) -- base[2, 3] in 0-based terms: also t[3][2], row[3], col[2]
    assert.are.equal(-7, v.t[4][3]:item())
    assert.are.equal(-7, v.row[4]:item())
    assert.are.equal(-7, v.col[3]:item())
    assert.are_not.equal(-7, v.separate[3][4]:item())
    v["enc.weight"][1][1]:fill_(42)
    assert.are.equal(42, v["dec.weight"][1][1]:item())
  end)

  it("views share the mapping too when loaded with mmap", function()
    local v = load("views.pt", { mmap = true })
    v.base[1][2]:fill_(99)
    assert.are.equal(99, v.t[2][1]:item())
    assert.are.equal(99, v.every_other[1]:item())
  end)

  it("cuda:0 and mps storages load on the CPU", function()
    local sd = load("cuda.pt")
    H.assert_meta(sd["conv1.weight"], { 4, 1, 3, 3 }, "float32")
    assert.are.equal(0, (sd["conv1.weight"] - load("convnet.pt")["conv1.weight"]):abs():sum():item())
    H.assert_values(load("mps.pt").w, { 0, 1, 2, 3 }, true)
  end)

  it("plain values keep their Lua types (integers stay integers, 1.0 stays a float, bytes survive)", function()
    local v = load("values.pt")
    assert.are.equal(math.mininteger, v.min)
    assert.are.equal(math.maxinteger, v.max)
    assert.are.equal("float", math.type(v.one))
    assert.are.equal("\0\255\254\128a", v.bytes)
    assert.are.equal("a\0b", v.zeros)
    assert.is_nil(v.none)
    assert.are.equal("zero", v.intkeys[0])
    assert.are.equal("minus five", v.intkeys[-5])
    assert.are.equal(1, v.boolkeys[true])
    assert.are.equal("one and a half", v.floatkey[1.5])
    assert.are.same({ 2, 3 }, v.size)
    assert.are.equal("cpu", v.device)
    assert.are.equal("cuda:0", v.cuda_device)
    assert.are.equal("float16", v.dtype)
  end)
end)

-- ------------------------------------------------------------------------------------------
-- 2. moontorch writes, PyTorch reads

-- Deterministic float32 data without relying on random numbers.
local function ramp(shape, scale, dtype)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return (torch.arange(n, { dtype = "float64" }) * (scale or 0.25) - 1):to(dtype or "float32"):view(shape)
end

local function state_dict()
  local sd = torch.OrderedDict()
  sd["conv1.weight"] = ramp({ 4, 1, 3, 3 }, 0.01)
  sd["conv1.bias"] = ramp({ 4 })
  sd["bn.weight"] = torch.ones(4)
  sd["bn.running_mean"] = torch.zeros(4)
  sd["bn.num_batches_tracked"] = torch.tensor(3)
  sd["fc.weight"] = ramp({ 10, 32 }, 0.001)
  sd["fc.bias"] = torch.zeros(10)
  return sd
end

local function all_dtypes()
  local d = torch.OrderedDict()
  local inf, nan = math.huge, 0 / 0
  local floats = { 1.5, -0.0, inf, -inf, nan, 0.25, -2.0 }
  d.float32 = torch.tensor(floats, { dtype = "float32" })
  d.float64 = torch.tensor({ 1.5, -0.0, inf, -inf, nan, 0.1, 1.7976931348623157e308, 4.9e-324 }, { dtype = "float64" })
  d.float16 = torch.tensor({ 1.5, -0.0, inf, -inf, nan, 65504.0, 2 ^ -24 }, { dtype = "float16" })
  d.bfloat16 = torch.tensor({ 1.5, -0.0, inf, -inf, nan, 2 ^ 100, 2 ^ -133 }, { dtype = "bfloat16" })
  d.int64 = torch.tensor({ 0, -1, math.maxinteger, math.mininteger }, { dtype = "int64" })
  d.int32 = torch.tensor({ 0, -1, 2147483647, -2147483648 }, { dtype = "int32" })
  d.int16 = torch.tensor({ 0, -1, 32767, -32768 }, { dtype = "int16" })
  d.int8 = torch.tensor({ 0, -1, 127, -128 }, { dtype = "int8" })
  d.uint8 = torch.tensor({ 0, 1, 128, 255 }, { dtype = "uint8" })
  d.bool = torch.tensor({ true, false, true }, { dtype = "bool" })
  for _, dt in ipairs(H.all_dtypes) do
    d[dt .. "_2d"] = d[dt]:narrow(1, 1, 3):view(1, 3):expand(2, 3):contiguous()
    d[dt .. "_scalar"] = d[dt][1]:clone()
    d[dt .. "_empty"] = torch.empty({ 2, 0, 3 }, { dtype = dt })
  end
  return d
end

local function views()
  local base = ramp({ 4, 6 }, 1, "float32")
  local tied = ramp({ 2, 3 }, 1, "float64")
  return {
    base = base,
    t = base:t(),
    row = base[3],
    col = base:select(2, 4),
    block = base:narrow(1, 2, 2):narrow(2, 3, 3),
    every_other = base:view(-1):narrow(1, 2, 22):view(11, 2):select(2, 1),
    expand = torch.arange(3, { dtype = "int32" }):expand(4, 3),
    tail = base:view(-1):narrow(1, 21, 4),
    tied_a = tied,
    tied_b = tied,
    separate = base:clone(),
  }
end

local function checkpoint()
  local opt_state = {
    state = { [0] = { momentum_buffer = ramp({ 4, 1, 3, 3 }, 0.5) }, [1] = { momentum_buffer = ramp({ 4 }) } },
    param_groups = { { lr = 0.1, momentum = 0.9, dampening = 0, weight_decay = 0, nesterov = false, params = { 0, 1 } } },
  }
  return { epoch = 5, model_state_dict = state_dict(), optimizer_state_dict = opt_state, loss = 0.3125,
    name = "run-1", history = { 3, 2, 1 }, flags = { true, false } }
end

local function ints_and_strings()
  return {
    small = 7, byte = 200, short = 40000, int = -70000, big = 1 << 40, max = math.maxinteger, min = math.mininteger,
    negative = -1, ids = { 0, 1, 2 }, names = { "a", "b" }, flags = { true, false, true },
    nested = { a = { b = { c = { 1, { 2, { 3 } } } } } }, empty = {},
    intkeys = { [0] = "zero", [1] = "one", [-5] = "minus five", [1000000000000] = "big" },
    utf8 = "h\u{e9}llo \u{2603}", zeros = "a\0b", emptystr = "", t = torch.tensor({ 1, 2 }),
  }
end

local function floats_and_bytes()
  return {
    one = 1.0, negzero = -0.0, inf = math.huge, ninf = -math.huge, nan = 0 / 0, tiny = 5e-324, third = 1 / 3,
    bytes = "\255\254\0\128", latin = "caf\233", mixed = { [2] = "two", [-1] = "minus one", [1.5] = "x", z = 1, Z = 2, [true] = "t" },
    floatkey = { [0.5] = "half" }, list = { 1, 2.5, "s", "\200" },
    ordered = torch.OrderedDict({ { "z", 1 }, { "a", 2.0 }, { 3, "three" }, { "\255", "b" } }),
  }
end

-- name -> { maker, how 1.13 opens it, what }
local lua_files = {
  { "statedict.pt", state_dict, "weights_only", "a state-dict-like ordered table" },
  { "dtypes.pt", all_dtypes, "weights_only", "all 10 dtypes, 0-dim and empty tensors" },
  { "views.pt", views, "weights_only", "views sharing storage and tied tensors" },
  { "ints_strings.pt", ints_and_strings, "weights_only", "integers, UTF-8 strings, bools, lists, int keys" },
  { "checkpoint.pt", checkpoint, "plain", "a nested checkpoint with ints, floats, strings, bools, lists" },
  { "floats_bytes.pt", floats_and_bytes, "plain", "floats, non-UTF-8 strings (bytes), mixed keys, ordered tables" },
  { "nil.pt", function() return nil end, "weights_only", "nil (None)" },
  { "tensor.pt", function() return ramp({ 3, 5 }, 1, "int16"):t() end, "weights_only", "a bare transposed tensor" },
}

describe("files written by moontorch, loaded by PyTorch", function()
  local dir, report, setup_err
  local originals, save_errors = {}, {}

  lazy_setup(function()
    dir = mktemp_dir()
    for _, f in ipairs(lua_files) do
      local obj = f[2]()
      originals[f[1]] = { obj }
      local ok, err = pcall(torch.save, obj, dir .. "/" .. f[1])
      if not ok then save_errors[f[1]] = tostring(err) end
    end
    local st, every = torch.OrderedDict(), all_dtypes()
    for _, dt in ipairs(H.all_dtypes) do st[dt] = every[dt] end
    st.scalar = torch.tensor(2.5, { dtype = "float64" })
    st.empty = torch.empty({ 0, 4 })
    st.view = ramp({ 4, 4 }):t()
    originals["model.safetensors"] = { st }
    local ok, err = pcall(torch.save, st, dir .. "/model.safetensors", { metadata = { format = "pt", note = "h\u{e9}" } })
    if not ok then save_errors["model.safetensors"] = tostring(err) end
    local pok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " check " .. H.shquote(dir))
    if not pok then
      setup_err = "tools/pytorch_files.py check failed:\n" .. out
      return
    end
    report, setup_err = read_lua(dir .. "/report.lua")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  local function report_of(name)
    assert(not save_errors[name], "torch.save failed: " .. tostring(save_errors[name]))
    assert(not setup_err, setup_err)
    local r = report[name]
    assert(r, name .. " was not checked by Python")
    assert(not r.error, name .. ": " .. tostring(r.error) ..
      (r.disallowed and #r.disallowed > 0 and (" (" .. table.concat(r.disallowed, ", ") .. ")") or ""))
    return r
  end

  for _, f in ipairs(lua_files) do
    local name, mode, what = f[1], f[3], f[4]
    local how = mode == "weights_only" and "torch.load(weights_only=True)" or "plain torch.load"
    it(how .. " reads " .. name .. " (" .. what .. ") with equal values, dtypes, shapes and sharing", function()
      local r = report_of(name)
      assert.are.same({}, r.disallowed)
      assert.are.equal(mode, r.mode)
      assert_same(describe_lua(originals[name][1]), r.value, name)
    end)

    it(name .. " has PyTorch's zip layout: archive/, records stored and 64-byte aligned", function()
      local r = report_of(name)
      local l = r.layout
      assert.are.equal("archive", l.top)
      -- data.pkl, byteorder, the storages data/0 .. data/<n-1> (PyTorch sorts their keys as
      -- strings, so any order of those is fine), version; nothing else (no .format_version)
      local records, storages = {}, {}
      for _, rec in ipairs(l.records) do
        if rec:match("^data/") then storages[#storages + 1] = rec else records[#records + 1] = rec end
      end
      assert.are.same({ "data.pkl", "byteorder", "version" }, records)
      assert.are.equal("data.pkl", l.records[1])
      assert.are.equal("version", l.records[#l.records])
      local want = {}
      for i = 0, #storages - 1 do want[#want + 1] = "data/" .. i end
      table.sort(storages)
      table.sort(want)
      assert.are.same(want, storages)
      assert.is_true(l.stored, "records are compressed")
      assert.is_true(l.aligned, "record data is not 64-byte aligned")
      assert.are.equal("little", l.contents.byteorder)
      assert.are.equal("3\n", l.contents.version)
    end)
  end

  it("views.pt holds one storage per distinct Lua storage (views are not written twice)", function()
    local r = report_of("views.pt")
    local n = 0
    for _, rec in ipairs(r.layout.records) do if rec:match("^data/") then n = n + 1 end end
    assert.are.equal(4, n) -- base (and its views), tied, expand's arange, separate
  end)

  it("a state dict's data.pkl is byte for byte what torch.save writes for the same objects", function()
    local r = report_of("statedict.pt")
    assert.is_true(r.same_pickle, r.pickle_diff)
    assert.is_true(report_of("dtypes.pt").same_pickle, report_of("dtypes.pt").pickle_diff)
  end)

  it("model.safetensors is valid for an independent strict reader, with metadata and data order", function()
    local r = report_of("model.safetensors")
    assert.is_true(r.header_padded, "header is not space-padded to a multiple of 8")
    assert.are.same({ format = "pt", note = "h\u{e9}" }, r.metadata)
    -- the reference writer's order: dtypes descending in its Dtype order (largest alignment
    -- first: I64 F64 F32 I32 BF16 F16 I16 I8 U8 BOOL), then names
    assert.are.same({ "int64", "float64", "scalar", "empty", "float32", "view", "int32", "bfloat16", "float16", "int16",
      "int8", "uint8", "bool" }, r.file_order)
    local orig = originals["model.safetensors"][1]
    local want = r.value
    for i, key in ipairs(want.keys) do
      local t = orig[key.v]
      local got = describe_lua(t:contiguous())
      got.storage, want.vals[i].storage, want.vals[i].storage_numel = nil, nil, nil
      got.stride, got.offset = want.vals[i].stride, want.vals[i].offset -- the file is contiguous by definition
      assert_same(got, want.vals[i], "model.safetensors[" .. key.v .. "]")
    end
  end)

  it("the reference safetensors reader (Python package safetensors) reads model.safetensors", function()
    local r = report_of("model.safetensors")
    if r.reference == "unavailable" then
      pending("the Python package safetensors is not installed (no Debian package); the strict reader above ran")
      return
    end
    assert.are.equal("equal", r.reference)
  end)
end)
