-- SPEC §6 "Writes are atomic": a child lua5.4 process saves a ~2 MB checkpoint in a loop and is
-- killed with SIGKILL at random moments, 100 times. After each kill the target must load and be
-- one complete version (its tensor filled with its version number, of the size that version
-- has), never older than the last one seen, and at most one stale temporary may lie beside it;
-- the next save removes it. Also: two processes saving to one path at once while a third loads
-- it over and over (never a torn file), a save into a missing directory, into an unwritable
-- directory (as root, whom chmod does not stop: a read-only bind mount, else the saver runs as
-- nobody), and onto a full disk (a 4 MB tmpfs, and `ulimit -f`), each failing clearly and
-- leaving the old file as it was.
local H = require "spec.helpers"
local torch = H.torch

local ROUNDS = 100        -- kills (issue 9 asks for at least 100)
local N = 512 * 1024      -- int32 elements of a version's tensor: 2 MB, plus up to 6 x 16 kB

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
    print(string.format("\n  SIGKILLs: %d; %d left a temporary (killed mid-save), %d found a newer version (T = %.3f s)",
      ROUNDS, mid_save, progressed, T))
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

  it("two processes saving to one path at once never leave a torn file, while a third keeps loading it", function()
    -- Each round: savers A and B each save COUNT versions of ~1 MB to the same target while a
    -- reader loads it in a loop until both are done, checking every load is one whole version.
    local COUNT, NN = 12, N // 2
    local READER = [[
      local torch = require "moontorch"
      local target, stop, n = os.getenv("CS_TARGET"), os.getenv("CS_STOP"), tonumber(os.getenv("CS_N"))
      local loads, bad, first_bad = 0, 0, nil
      local function check(obj)
        local v = obj.version
        assert(math.type(v) == "integer" and obj.tag == "v" .. v and obj.extra[1] == v, "fields of version " .. tostring(v))
        assert(obj.w:numel() == n + (v % 7) * 4096, "size of version " .. v)
        assert(obj.w:min():item() == v and obj.w:max():item() == v, "values of version " .. v)
      end
      repeat
        local done = io.open(stop, "r")
        if done then done:close() end
        local ok, err = pcall(function() check(torch.load(target)) end)
        loads = loads + 1
        if not ok then bad = bad + 1 first_bad = first_bad or tostring(err) end
      until done
      io.write(string.format("loads=%d bad=%d %s\n", loads, bad, first_bad or ""))
    ]]
    local total_loads = 0
    for round = 1, 5 do
      torch.save({ version = round, tag = "v" .. round, w = torch.full({ NN + (round % 7) * 4096 }, round, { dtype = "int32" }),
        extra = { round, round + 1 } }, target)
      local stop = dir .. "/stop"
      os.remove(stop)
      local function saver(start)
        return env({ CS_TARGET = target, CS_START = tostring(start), CS_N = tostring(NN), CS_COUNT = tostring(COUNT),
          CS_CODE = CHILD }) .. " sh -c 'exec lua5.4 -e \"$CS_CODE\"'"
      end
      local reader = env({ CS_TARGET = target, CS_STOP = stop, CS_N = tostring(NN), CS_CODE = READER }) ..
          " sh -c 'exec lua5.4 -e \"$CS_CODE\"'"
      local a0, b0 = round * 1000 + 100, round * 1000 + 500
      local script = "(" .. reader .. ") & r=$!; (" .. saver(a0) .. ") & a=$!; (" .. saver(b0) .. ") & b=$!; " ..
          "wait $a; ra=$?; wait $b; rb=$?; touch " .. H.shquote(stop) .. "; wait $r; rr=$?; echo \"rc=$ra,$rb,$rr\""
      local _, o = sh("sh -c " .. H.shquote(script))
      assert(o:match("rc=0,0,0"), "round " .. round .. ": a saver or the reader failed: " .. o)
      local loads, bad = o:match("loads=(%d+) bad=(%d+)")
      assert(loads, o)
      assert(tonumber(bad) == 0, "round " .. round .. ": the reader saw a torn file: " .. o)
      total_loads = total_loads + tonumber(loads)
      -- the last save of either saver won; nothing else is left in the directory
      local ok, obj = pcall(torch.load, target)
      assert(ok, tostring(obj))
      local v = obj.version
      assert(v == a0 + COUNT or v == b0 + COUNT, "round " .. round .. ": version " .. tostring(v) .. " is not a last save")
      assert(obj.w:numel() == NN + (v % 7) * 4096 and obj.w:min():item() == v and obj.w:max():item() == v)
      os.remove(stop)
      assert.are.same({ "model.pt" }, listdir(ckdir))
    end
    assert(total_loads >= 10, "the reader loaded only " .. total_loads .. " times: the test saw too little")
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

  -- Writes version 3 to path and returns its bytes.
  local function write_old(path)
    torch.save({ version = 3, tag = "v3", w = torch.full({ N + (3 % 7) * 4096 }, 3, { dtype = "int32" }), extra = { 3, 4 } },
      path)
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    return bytes
  end

  local function same_file(path, bytes)
    local f = assert(io.open(path, "rb"))
    local now = f:read("a")
    f:close()
    return now == bytes
  end

  local is_root = (select(2, sh("id -u")) or ""):match("^0") ~= nil

  it("a save into an unwritable directory fails clearly and leaves the old file intact", function()
    local d = dir .. "/ro"
    assert(os.execute("mkdir -p " .. H.shquote(d)))
    local path = d .. "/model.pt"
    local before = write_old(path)
    local newer = { version = 4, w = torch.full({ 1000 }, 4, { dtype = "int32" }) }
    local how, err
    if not is_root then
      assert(os.execute("chmod 555 " .. H.shquote(d)))
      how = "chmod 555"
      local ok, e = pcall(torch.save, newer, path)
      assert(os.execute("chmod 755 " .. H.shquote(d)))
      assert(not ok, "the save into a read-only directory succeeded")
      err = tostring(e)
    elseif sh("mount --bind " .. H.shquote(d) .. " " .. H.shquote(d) .. " && mount -o remount,bind,ro " .. H.shquote(d)) then
      -- chmod does not stop root; a read-only bind mount of the directory does
      how = "read-only bind mount"
      local ok, e = pcall(torch.save, newer, path)
      sh("umount " .. H.shquote(d))
      assert(not ok, "the save into a read-only mount succeeded")
      err = tostring(e)
    elseif sh("command -v setpriv") then
      -- no mounts allowed: the saver runs as nobody, whom chmod 555 does stop
      how = "setpriv nobody"
      assert(os.execute("chmod 555 " .. H.shquote(d)))
      local code = [[
        local torch = require "moontorch"
        local ok, e = pcall(torch.save, { version = 4 }, os.getenv("CS_TARGET"))
        io.write(ok and "SAVED" or ("ERROR " .. tostring(e)), "\n")
      ]]
      local _, out = sh(env({ CS_TARGET = path, CS_CODE = code }) ..
        " setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'exec lua5.4 -e \"$CS_CODE\"'")
      assert(os.execute("chmod 755 " .. H.shquote(d)))
      if out:find("module 'moontorch", 1, true) then
        pending("cannot make a directory unwritable for root here (no mount; nobody cannot read the build): " .. out)
      end
      assert(out:match("^ERROR "), "the save as nobody did not fail: " .. out)
      err = out
    else
      pending("cannot make a directory unwritable for root here: no mount permission and no setpriv")
    end
    assert(err:find("moontorch.save", 1, true) and err:find(path, 1, true), how .. ": " .. err)
    local low = err:lower()
    assert(low:find("read%-only") or low:find("permission denied"), how .. ": the error does not say why: " .. err)
    assert(same_file(path, before), how .. ": the old file changed")
    assert.are.equal(3, verify(path))
    assert.are.same({ "model.pt" }, listdir(d))
  end)

  it("a save onto a full disk (a 4 MB tmpfs) fails clearly and leaves the old file intact", function()
    -- The child writes version 3 (~2 MB), then tries a 16 MB version, and checks the rest
    -- itself: the tmpfs may live in a mount namespace of its own (unshare) that ends with it.
    local d = dir .. "/full"
    assert(os.execute("mkdir -p " .. H.shquote(d)))
    local code = [[
      local torch = require "moontorch"
      local path, n = os.getenv("CS_TARGET"), tonumber(os.getenv("CS_N"))
      torch.save({ version = 3, tag = "v3", w = torch.full({ n + (3 % 7) * 4096 }, 3, { dtype = "int32" }), extra = { 3, 4 } },
        path)
      local f = assert(io.open(path, "rb")) local before = f:read("a") f:close()
      local ok, err = pcall(torch.save, { version = 9, w = torch.full({ 4 * 1024 * 1024 }, 9, { dtype = "int32" }) }, path)
      f = assert(io.open(path, "rb")) local after = f:read("a") f:close()
      local old = torch.load(path)
      local p = io.popen("ls -A " .. path:match("^(.*)/"))
      local names = p:read("a"):gsub("\n", " ")
      p:close()
      io.write(ok and "SAVED" or ("ERROR " .. tostring(err)), "\n", before == after and "INTACT" or "CHANGED", "\n",
        "VERSION ", tostring(old.version), " ", tostring(old.w:min():item()), " ", tostring(old.w:max():item()), "\n",
        "FILES ", names, "\n")
    ]]
    local run = env({ CS_TARGET = d .. "/model.pt", CS_N = tostring(N), CS_CODE = code }) ..
        " sh -c 'exec lua5.4 -e \"$CS_CODE\"'"
    local ok, out
    if is_root and sh("mount -t tmpfs -o size=4m tmpfs " .. H.shquote(d)) then
      ok, out = sh(run)
      sh("umount " .. H.shquote(d))
    elseif sh("unshare -rm true") then
      ok, out = sh("unshare -rm sh -c " .. H.shquote("mount -t tmpfs -o size=4m tmpfs " .. H.shquote(d) .. " && " .. run))
    else
      pending("cannot mount a small tmpfs here (not root, no user namespaces); the ulimit -f case below still runs")
    end
    assert(ok, "the child failed: " .. out)
    local target = d .. "/model.pt"
    assert(out:match("^ERROR "), "the save onto a full disk did not fail: " .. out)
    assert(out:find("moontorch.save", 1, true) and out:find(target, 1, true), out)
    assert(out:lower():find("no space", 1, true), "the error does not say the disk is full: " .. out)
    assert(out:find("\nINTACT\n", 1, true), "the old file changed: " .. out)
    assert(out:find("\nVERSION 3 3 3\n", 1, true), "the old file does not load as version 3: " .. out)
    assert(out:find("\nFILES model.pt \n", 1, true), "something beside model.pt was left: " .. out)
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
