-- SPEC §6 "Writes are atomic": a child lua5.4 process saves a ~16 MB checkpoint in a loop and is
-- killed with SIGKILL at random moments, many times. After each kill the target must load and
-- be one complete version (its tensor filled with its version number, of the size that version
-- has), never older than the last one seen, and at most one stale temporary may lie beside it;
-- the next save removes it. Also: concurrent savers, a save into a missing directory, and a save
-- that fails for lack of space (`ulimit -f`) leaving the old file as it was.
local H = require "spec.helpers"
local torch = H.torch

local ROUNDS = 40        -- kills (the issue asks for many; ~15 s in all here)
local N = 4 * 1024 * 1024 -- int32 elements of a version's tensor: 16 MB, plus up to 6 x 16 kB

-- A child saving versions START+1, START+2, ... (COUNT of them, or forever) to TARGET.
local CHILD = [[
  local torch = require "moontorch"
  local target, v, n = os.getenv("CS_TARGET"), math.tointeger(tonumber(os.getenv("CS_START"))), tonumber(os.getenv("CS_N"))
  local count = tonumber(os.getenv("CS_COUNT") or "-1")
  while count ~= 0 do
    v = v + 1
    local w = torch.full({ n + (v % 7) * 4096 }, v, { dtype = "int32" })
    torch.save({ version = v, tag = "v" .. v, w = w, extra = { v, v + 1 } }, target)
    count = count - 1
  end
]]

local function wall()
  local f = assert(io.open("/proc/uptime", "r"))
  local t = f:read("n")
  f:close()
  return t
end

local sh = H.sh

local function listdir(path)
  local names = {}
  local p = assert(io.popen("ls -A " .. H.shquote(path)))
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

local function env(vars)
  local parts = {}
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. H.shquote(v) end
  table.sort(parts)
  return table.concat(parts, " ")
end

-- Loads `path` and checks that it is one whole version; returns the version.
local function verify(path, opts)
  local ok, obj = pcall(torch.load, path, opts)
  assert(ok, "the checkpoint does not load: " .. tostring(obj))
  local v = obj.version
  assert(math.type(v) == "integer", "version is " .. tostring(v))
  assert(obj.tag == "v" .. v, "tag " .. tostring(obj.tag) .. " in version " .. v)
  assert(obj.extra[1] == v and obj.extra[2] == v + 1, "extra does not match version " .. v)
  local w = obj.w
  assert(w:numel() == N + (v % 7) * 4096, "version " .. v .. " has " .. w:numel() .. " elements")
  assert(w:min():item() == v and w:max():item() == v, "version " .. v .. " holds other values: torn")
  return v
end

describe("atomic saves", function()
  local dir, ckdir, target, tmpname

  lazy_setup(function()
    local p = assert(io.popen("mktemp -d /tmp/moontorch-crash.XXXXXX"))
    dir = p:read("l")
    p:close()
    ckdir = dir .. "/ck"
    assert(os.execute("mkdir " .. H.shquote(ckdir)))
    target = ckdir .. "/model.pt"
    tmpname = ".model.pt.tmp"
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  it("a process killed with SIGKILL while saving leaves the old or the new file, never a torn one (" .. ROUNDS ..
    " kills)", function()
    local seed = os.time()
    math.randomseed(seed)
    -- One child's start and first save take T: kills come between 0.3 T and 2.5 T, so that
    -- some land before, some during and some after a save, on fast and slow disks alike.
    local t0 = wall()
    local ok, out = sh(env({ CS_TARGET = target, CS_START = "0", CS_N = tostring(N), CS_COUNT = "1", CS_CODE = CHILD }) ..
      " sh -c 'exec lua5.4 -e \"$CS_CODE\"'")
    local T = wall() - t0
    assert(ok, "the first save failed: " .. out)
    local last = verify(target)
    assert.are.equal(1, last)
    local mid_save, progressed = 0, 0
    for round = 1, ROUNDS do
      local delay = math.max(0.02, T * (0.3 + 2.2 * math.random()))
      local start = round * 1000000
      local cmd = env({ CS_TARGET = target, CS_START = tostring(start), CS_N = tostring(N), CS_CODE = CHILD }) ..
          ' sh -c \'lua5.4 -e "$CS_CODE" & pid=$!; sleep ' .. string.format("%.3f", delay) ..
          '; kill -KILL $pid 2>/dev/null; wait $pid; echo "rc=$?"\''
      local _, o = sh(cmd)
      local what = string.format("round %d (seed %d, kill after %.3f s)", round, seed, delay)
      assert(o:match("rc=137"), what .. ": the child was not killed by SIGKILL but ended: " .. o)
      local names = listdir(ckdir)
      local others = {}
      for _, n in ipairs(names) do if n ~= "model.pt" then others[#others + 1] = n end end
      assert(#others <= 1, what .. ": more than one stale file: " .. table.concat(others, ", "))
      if #others == 1 then
        assert.are.equal(tmpname, others[1], what)
        mid_save = mid_save + 1
      end
      local v = verify(target, round % 2 == 0 and { mmap = true } or nil)
      assert(v == last or (v > start and v < start + 1000000), what .. ": version " .. v .. " after " .. last)
      if v ~= last then progressed = progressed + 1 end
      last = v
    end
    -- Both kinds of moment must have been hit for the test to mean something.
    assert(mid_save > 0, "no kill landed in the middle of a save (no temporary was ever left)")
    assert(progressed > 0, "no child ever completed a save")
  end)

  it("the next save removes a stale temporary", function()
    local f = assert(io.open(ckdir .. "/" .. tmpname, "wb"))
    f:write(string.rep("stale garbage ", 100000))
    f:close()
    torch.save({ version = 7, tag = "v7", w = torch.full({ N }, 7, { dtype = "int32" }),
      extra = { 7, 8 } }, target)
    assert.are.same({ "model.pt" }, listdir(ckdir))
    assert.are.equal(7, verify(target))
  end)

  it("concurrent savers take turns: the file is whole and no temporary remains", function()
    local cmds = {}
    for i = 1, 3 do
      cmds[i] = env({ CS_TARGET = target, CS_START = tostring(i * 100), CS_N = tostring(N // 8), CS_COUNT = "8",
        CS_CODE = CHILD }) .. " sh -c 'exec lua5.4 -e \"$CS_CODE\"'"
    end
    local script = "(" .. cmds[1] .. ") & a=$!; (" .. cmds[2] .. ") & b=$!; (" .. cmds[3] .. ") & c=$!; " ..
        "wait $a; ra=$?; wait $b; rb=$?; wait $c; rc=$?; echo \"rc=$ra,$rb,$rc\""
    local _, o = sh("sh -c " .. H.shquote(script))
    assert(o:match("rc=0,0,0"), "a saver failed: " .. o)
    local ok, obj = pcall(torch.load, target)
    assert(ok, tostring(obj))
    local v = obj.version
    assert(v > 100 and v <= 308 and v % 100 >= 1 and v % 100 <= 8, "version " .. tostring(v))
    assert(obj.w:numel() == N // 8 + (v % 7) * 4096 and obj.w:min():item() == v and obj.w:max():item() == v)
    assert.are.same({ "model.pt" }, listdir(ckdir))
  end)

  it("a save into a missing directory raises a clear error and creates nothing", function()
    local path = dir .. "/no/such/dir/model.pt"
    local err = H.expect_error(function() torch.save({ 1 }, path) end, "moontorch.save",
      { "no such file", "not exist", "missing" })
    assert.is_truthy(err:find(dir .. "/no/such/dir", 1, true), err)
    local f = io.open(dir .. "/afile", "w")
    f:write("x")
    f:close()
    H.expect_error(function() torch.save({ 1 }, dir .. "/afile/model.pt") end, "moontorch.save", "not a directory")
    H.expect_error(function() torch.save({ 1 }, "/proc/moontorch-spec.pt") end, "moontorch.save", "/proc/moontorch%-spec.pt")
    assert.is_nil(io.open("/proc/moontorch-spec.pt", "r"))
  end)

  it("a save that runs out of space (ulimit -f) fails clearly and leaves the old file intact", function()
    torch.save({ version = 3, tag = "v3", w = torch.full({ N + (3 % 7) * 4096 }, 3, { dtype = "int32" }), extra = { 3, 4 } },
      target)
    local f = assert(io.open(target, "rb"))
    local before = f:read("a")
    f:close()
    -- 16 MB to write under an 8 MB file-size limit (ulimit -f counts 512- or 1024-byte blocks)
    local code = [[
      local torch = require "moontorch"
      local ok, err = pcall(torch.save, { version = 9, w = torch.full({ 4 * 1024 * 1024 }, 9, { dtype = "int32" }) },
        os.getenv("CS_TARGET"))
      io.write(ok and "SAVED" or ("ERROR " .. tostring(err)), "\n")
    ]]
    local ok, out = sh("sh -c " .. H.shquote("ulimit -f 8192; " .. env({ CS_TARGET = target, CS_CODE = code }) ..
      " sh -c 'exec lua5.4 -e \"$CS_CODE\"'"))
    assert(ok, "the child did not survive the failed write (SIGXFSZ?): " .. out)
    assert(out:match("^ERROR "), "the save did not fail: " .. out)
    assert(out:find("moontorch.save", 1, true) and out:find(target, 1, true), out)
    assert(out:lower():find("too large", 1, true) or out:lower():find("space", 1, true), out)
    f = assert(io.open(target, "rb"))
    local after = f:read("a")
    f:close()
    assert.is_true(before == after, "the old file changed")
    assert.are.equal(3, verify(target))
    assert.are.same({ "model.pt" }, listdir(ckdir))
  end)
end)
