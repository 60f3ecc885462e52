-- Values checked against PyTorch 1.13: tools/gen_fixtures.py computes a few hundred cases
-- (elementwise math with broadcasting, unary ops, reductions with dims/keepdim, softmax, var/std,
-- matmul, index_select/gather, cat/stack, sort/topk, cumsum, where/masked_fill, clamp, dtype
-- conversions) and writes them to <build>/fixtures/pytorch_cases.lua; this spec replays each
-- one through moontorch. The fixtures are generated here when missing, so a fresh clone works.
local H = require "spec.helpers"
local torch = H.torch

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local fixture_dir = build_dir .. "/fixtures"
local fixture = fixture_dir .. "/pytorch_cases.lua"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function load_cases()
  local generator = source_dir .. "/tools/gen_fixtures.py"
  local function mtime(p)
    local f = io.popen("stat -c %Y " .. H.shquote(p) .. " 2>/dev/null")
    local v = f and tonumber(f:read("a")) or nil
    if f then f:close() end
    return v
  end
  -- (Re)generate when missing or older than the generator.
  if not exists(fixture) or (mtime(generator) or 0) > (mtime(fixture) or 0) then
    local cmd = "/usr/bin/python3 " .. H.shquote(generator) .. " " .. H.shquote(fixture_dir) .. " >/dev/null"
    local ok = os.execute(cmd)
    if not ok then return nil, "could not generate the fixtures: " .. cmd end
  end
  local chunk, err = loadfile(fixture, "t", { math = math })
  if not chunk then return nil, err end
  return chunk()
end

local function build_arg(a)
  if type(a) ~= "table" then return a end
  if a.none then return nil end
  if a.list then
    local l = {}
    for i, x in ipairs(a.list) do l[i] = build_arg(x) end
    return l
  end
  local t = torch.tensor(a.tensor.data, { dtype = a.tensor.dtype })
  if a.tensor.t then t = t:t() end
  return t
end

local function build_args(c)
  local args = {}
  for i = 1, c.n do args[i] = build_arg(c.args[i]) end
  return args
end

local function invoke(c, form)
  local args = build_args(c)
  if form == "torch" then
    local f = torch[c.fn]
    assert(type(f) == "function", "torch." .. c.fn .. " is missing")
    return table.pack(f(table.unpack(args, 1, c.n)))
  end
  local self = args[1]
  local m = self[c.fn]
  assert(type(m) == "function", "tensor method " .. c.fn .. " is missing")
  return table.pack(m(self, table.unpack(args, 2, c.n)))
end

local function check(results, c, form)
  for i, e in ipairs(c.out) do
    local got = results[i]
    local what = form .. " output " .. i
    H.assert_meta(got, e.shape, e.dtype, what)
    H.assert_values(got, e.data, e.exact, what)
  end
end

local cases, load_err = load_cases()

describe("agreement with PyTorch", function()
  it("has its fixtures", function()
    assert.is_table(cases, load_err)
    assert.is_true(#cases > 300, "only " .. tostring(cases and #cases) .. " cases")
  end)
  if not cases then return end

  for _, c in ipairs(cases) do
    it(c.name, function()
      check(invoke(c, c.call), c, c.call)
      if c.both and c.call == "method" then check(invoke(c, "torch"), c, "torch." .. c.fn) end
    end)
  end
end)

describe("the PyTorch comparison can fail", function()
  -- A guard against a checker that accepts anything: perturbed expectations must be rejected.
  it("rejects a perturbed float value, a wrong shape, a wrong dtype and a wrong index", function()
    assert.is_table(cases, load_err)
    local function find(pred)
      for _, c in ipairs(cases) do if pred(c) then return c end end
    end
    local function deep_copy(v)
      if type(v) ~= "table" then return v end
      local r = {}
      for k, x in pairs(v) do r[k] = deep_copy(x) end
      return r
    end
    local f32 = find(function(c) return c.fn == "matmul" and c.out[1].dtype == "float32" and #c.out[1].data > 1 end)
    local idx = find(function(c) return c.fn == "sort" end)
    assert.is_table(f32)
    assert.is_table(idx)
    -- the unperturbed cases pass
    check(invoke(f32, f32.call), f32, "original")
    check(invoke(idx, idx.call), idx, "original")
    local mutations = {
      { f32, function(c) c.out[1].data[2] = c.out[1].data[2] * (1 + 1e-3) + 1e-3 end },
      { f32, function(c) c.out[1].shape[#c.out[1].shape + 1] = 1 end },
      { f32, function(c) c.out[1].dtype = "float64" end },
      { idx, function(c) c.out[2].data[1] = c.out[2].data[1] % 6 + 1 end },
      { idx, function(c) c.out[1].data[1] = c.out[1].data[1] + 1e-4 end },
    }
    for k, m in ipairs(mutations) do
      local c = deep_copy(m[1])
      m[2](c)
      local ok = pcall(check, invoke(c, c.call), c, "mutated")
      assert.is_false(ok, "mutation " .. k .. " of '" .. c.name .. "' was not caught")
    end
  end)
end)
