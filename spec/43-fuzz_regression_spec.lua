-- Fuzz regression cases through the Lua loaders. The kept hostile inputs (fuzz/regressions/,
-- made by fuzz/make_regressions.py) and anything libFuzzer ever found (fuzz/crashes/) are
-- replayed byte for byte through their C harness by the CTest test_fuzz_regressions; here
-- the ones that are whole files go through what a user calls: torch.load (read and mmap) and
-- torch.deserialize for checkpoints, torch.load for safetensors, torch.jit.load for traced
-- models. Bare pickles (the pickle harness's inputs, and the graph harness's non-zip ones)
-- have no Lua entry point and are left to the CTest. Each file must load or raise an error
-- that names the function, the file and a problem, in under 10 s (the fuzzer's -timeout),
-- in a child process, so that a crash is reported with the file that caused it.
local H = require "spec.helpers"

local source_dir = os.getenv("MT_SOURCE_DIR") or "."

local function files_in(dir)
  local out = {}
  local p = io.popen("ls -A " .. H.shquote(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if not name:match("^%.") then out[#out + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(out)
  return out
end

local function starts_with_pk(path)
  local f = assert(io.open(path, "rb"))
  local head = f:read(2)
  f:close()
  return head == "PK"
end

-- The child: for every path (one per line on stdin) and every way to load it, prints
-- "<how>\t<path>\tOK|ERROR\t<message>\t<seconds>" right after the load, then DONE. A line is
-- printed before each load too ("TRY"), so that a crash names its file.
local CHILD = [[
  local torch = require "moontorch"
  io.stdout:setvbuf("line")
  local function read_all(p) local f = assert(io.open(p, "rb")) local s = f:read("a") f:close() return s end
  local loaders = {
    load = function(p) return torch.load(p) end,
    load_mmap = function(p) return torch.load(p, { mmap = true }) end,
    deserialize = function(p) return torch.deserialize(read_all(p)) end,
    jit_load = function(p) return torch.jit.load(p) end,
  }
  for line in io.lines() do
    local how, path = line:match("^(%S+)\t(.*)$")
    io.write("TRY\t", how, "\t", path, "\n")
    local t0 = os.clock()
    local ok, err = pcall(loaders[how], path)
    io.write(how, "\t", path, "\t", ok and "OK" or "ERROR", "\t", ok and "" or tostring(err):gsub("[\t\n]", " "),
      "\t", string.format("%.3f", os.clock() - t0), "\n")
  end
  io.write("DONE\n")
]]

-- Which Lua loaders each harness's files go through, and the function their errors name.
local plan = {
  checkpoint = function(path)
    return { { "load", "moontorch.load" }, { "load_mmap", "moontorch.load" },
      { "deserialize", "moontorch.deserialize", "serialized data" } }
  end,
  safetensors = function(path)
    return { { "load", "moontorch.load" }, { "load_mmap", "moontorch.load" } }
  end,
  graph = function(path)
    if starts_with_pk(path) then return { { "jit_load", "moontorch.jit.load" } } end
    return {}
  end,
}

describe("fuzz regression inputs through the Lua loaders", function()
  for _, harness in ipairs({ "checkpoint", "safetensors", "graph" }) do
    it(harness .. ": every kept input loads or fails with a clear error, without crashing", function()
      local jobs, expect = {}, {}
      local kept = files_in(source_dir .. "/fuzz/regressions/" .. harness)
      assert(#kept > 0, "no regression inputs in fuzz/regressions/" .. harness)
      local all = {}
      for _, p in ipairs(kept) do all[#all + 1] = p end
      for _, p in ipairs(files_in(source_dir .. "/fuzz/crashes/" .. harness)) do all[#all + 1] = p end
      for _, path in ipairs(all) do
        for _, l in ipairs(plan[harness](path)) do
          jobs[#jobs + 1] = l[1] .. "\t" .. path
          expect[l[1] .. "\t" .. path] = { fn = l[2], names = l[3] or path }
        end
      end
      assert(#jobs > 0, "nothing to replay for " .. harness)
      local dir = H.mktemp_dir("fuzzreg")
      local list = dir .. "/jobs"
      local f = assert(io.open(list, "w"))
      f:write(table.concat(jobs, "\n"), "\n")
      f:close()
      local ok, out, how, code = H.sh("OPENBLAS_NUM_THREADS=1 lua5.4 -e " .. H.shquote(CHILD) .. " < " .. H.shquote(list))
      os.execute("rm -rf " .. H.shquote(dir))
      local last_try = out:match(".*TRY\t([^\n]*)\n[^\n]*$")
      assert(ok and out:find("\nDONE\n", 1, true) or out:match("^DONE\n"),
        "the child died (" .. tostring(how) .. " " .. tostring(code) .. ") while loading: " .. tostring(last_try) ..
        "\n" .. out:sub(-1500))
      local seen = 0
      for line in out:gmatch("[^\n]+") do
        local kind, path, status, msg, secs = line:match("^(%S+)\t([^\t]+)\t(%u+)\t([^\t]*)\t([%d%.]+)$")
        if kind then
          local e = expect[kind .. "\t" .. path]
          assert(e, "unexpected line: " .. line)
          seen = seen + 1
          assert(tonumber(secs) < 10, kind .. " of " .. path .. " took " .. secs .. " s")
          if status == "ERROR" then
            assert(msg:find(e.fn .. ": ", 1, true), kind .. " of " .. path .. ": the error does not name " .. e.fn ..
              ": " .. msg)
            assert(msg:find(e.names, 1, true), kind .. " of " .. path .. ": the error does not name " .. e.names ..
              ": " .. msg)
            -- something after "function: file: " says what is wrong
            local problem = msg:sub((select(2, msg:find(e.names, 1, true))) + 1):gsub("^[:%s]+", "")
            assert(#problem >= 8, kind .. " of " .. path .. ": the error does not say what is wrong: " .. msg)
            assert(not msg:lower():find("out of memory", 1, true), kind .. " of " .. path .. ": " .. msg)
          end
        end
      end
      assert.are.equal(#jobs, seen)
    end)
  end
end)
