-- Tensor memory and Lua's garbage collector: temporaries are reclaimed without explicit
-- collectgarbage calls, <close> frees at once, views keep their storage alive. The RSS checks
-- run in fresh interpreters so that they measure only themselves.
local H = require "spec.helpers"
local torch = H.torch

local RSS = [[
  local function rss_mb()
    local f = assert(io.open("/proc/self/status", "r"))
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
  end
]]

local function run_measured(body)
  local out, ok = H.run_lua(RSS .. [[
    local torch = require "moontorch"
    local peak = 0
    -- sample() returns true once RSS passes 1 GB: the loops stop there, the check has failed
    -- anyway, and a broken build does not take the machine's memory.
    local function sample() local r = rss_mb(); if r > peak then peak = r end; return peak > 1024 end
  ]] .. body .. [[
    io.write(string.format("PEAK:%.1f:END", peak))
  ]])
  assert.is_true(ok, out)
  local peak = tonumber(out:match("PEAK:([%d.]+):END"))
  assert.is_number(peak, out)
  return peak
end

describe("memory", function()
  it("10 GB of 10 MB temporaries without collectgarbage stay under 500 MB RSS", function()
    local peak = run_measured([[
      local x = torch.ones(2500000)          -- 10 MB of float32
      for i = 1, 1000 do                     -- 1000 x 10 MB = 10 GB allocated
        local y = x * 2                      -- a fresh 10 MB result, written
        if i % 10 == 0 and sample() then break end
      end
      for i = 1, 250 do                      -- and through creation functions
        local z = torch.zeros(2500000)
        local w = torch.full({ 2500000 }, 1.5)
        if i % 10 == 0 and sample() then break end
      end
    ]])
    assert.is_true(peak < 500, string.format("peak RSS %.0f MB", peak))
  end)

  it("many small temporaries are reclaimed as well", function()
    if os.getenv("MOONTORCH_SANITIZE") then
      pending("RSS is not measured under sanitizers: ASan keeps freed memory in quarantine")
      return
    end
    local peak = run_measured([[
      local x = torch.ones(1000)
      for i = 1, 200000 do                   -- 200000 x 4 kB = 800 MB allocated
        local y = x + i
        if i % 1000 == 0 and sample() then break end
      end
    ]])
    assert.is_true(peak < 300, string.format("peak RSS %.0f MB", peak))
  end)

  it("<close> frees a tensor at once, even with the collector stopped", function()
    -- 100 MB tensors: far above malloc's mmap threshold, so a freed one leaves RSS at once
    -- (smaller blocks may stay resident in the heap, fragmented by the garbage the stopped
    -- collector keeps).
    local peak = run_measured([[
      collectgarbage("stop")
      for i = 1, 30 do                       -- 30 x 100 MB = 3 GB
        local t <close> = torch.ones(25000000)
        if sample() then break end
      end
      collectgarbage("restart")
    ]])
    assert.is_true(peak < 500, string.format("peak RSS %.0f MB", peak))
  end)

  it("a closed tensor used again raises an error or still holds its values, never crashes", function()
    local t = torch.ones(4)
    do
      local c <close> = t
    end
    local ok, v = pcall(function() return t:sum():item() end)
    if ok then
      assert.are.equal(4.0, v)
    else
      assert.is_string(v)
    end
    -- closing twice is harmless
    do
      local c <close> = t
    end
  end)

  it("a view keeps its storage alive after the base is collected", function()
    local v
    do
      local base = torch.arange(10)
      v = base:narrow(1, 3, 4)
    end
    collectgarbage()
    collectgarbage()
    local _ = torch.zeros(100000) -- reuse freed memory if it was freed
    assert.are.same({ 2, 3, 4, 5 }, v:tolist())
  end)

  it("a base keeps working after its views are collected", function()
    local base = torch.arange(6):view(2, 3)
    for _ = 1, 100 do
      local _ = base:t():select(1, 2)
    end
    collectgarbage()
    collectgarbage()
    assert.are.same({ { 0, 1, 2 }, { 3, 4, 5 } }, base:tolist())
  end)
end)
