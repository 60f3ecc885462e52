-- The library's thread count (src/parallel.c, binding/lmt_threads.c): its default, the
-- MOONTORCH_NUM_THREADS override, torch.set_num_threads / get_num_threads and their errors, and
-- kernels on the pool giving the same bits for every thread count.
local H = require "spec.helpers"
local torch = H.torch
local nn, F = torch.nn, torch.nn.functional

-- The bits of every value of t, as one string.
local function bits(t)
  local l = t:double():contiguous():view(-1):tolist()
  local parts = {}
  for i, v in ipairs(l) do parts[i] = string.pack("<d", v) end
  return table.concat(parts)
end

describe("threads: the count", function()
  local saved
  before_each(function() saved = torch.get_num_threads() end)
  after_each(function() torch.set_num_threads(saved) end)

  it("defaults to the CPUs the process may use", function()
    local ok, out = H.sh("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc") -- nproc obeys those
    assert.is_true(ok, out)
    local out2, ok2 = H.run_lua('io.write(require("moontorch").get_num_threads())')
    assert.is_true(ok2, out2)
    -- run_lua inherits MOONTORCH_NUM_THREADS when the test runner sets it
    local want = tonumber(os.getenv("MOONTORCH_NUM_THREADS")) or tonumber(out)
    assert.are.equal(want, tonumber(out2))
  end)

  it("takes MOONTORCH_NUM_THREADS at load, ignoring a bad value", function()
    local ok, out = H.sh("MOONTORCH_NUM_THREADS=3 lua5.4 -e " ..
      H.shquote('io.write(require("moontorch").get_num_threads())'))
    assert.is_true(ok, out)
    assert.are.equal("3", out)
    local ok2, out2 = H.sh("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc")
    assert.is_true(ok2, out2)
    for _, bad in ipairs({ "0", "-2", "two", "" }) do
      local ok3, out3 = H.sh("MOONTORCH_NUM_THREADS=" .. H.shquote(bad) .. " lua5.4 -e " ..
        H.shquote('io.write(require("moontorch").get_num_threads())'))
      assert.is_true(ok3, out3)
      assert.are.equal(tonumber(out2), tonumber(out3), "MOONTORCH_NUM_THREADS=" .. bad)
    end
  end)

  it("is set and read back", function()
    for _, n in ipairs({ 1, 2, 5, 64 }) do
      torch.set_num_threads(n)
      assert.are.equal(n, torch.get_num_threads())
    end
  end)

  it("refuses counts outside 1..64 and non-integers, naming the function", function()
    H.expect_error(function() torch.set_num_threads(0) end, "set_num_threads", "1 to 64")
    H.expect_error(function() torch.set_num_threads(65) end, "set_num_threads", "1 to 64")
    H.expect_error(function() torch.set_num_threads(-1) end, "set_num_threads", "1 to 64")
    H.expect_error(function() torch.set_num_threads(1.5) end, "set_num_threads", "integer")
    H.expect_error(function() torch.set_num_threads("2") end, "set_num_threads", "integer")
    H.expect_error(function() torch.set_num_threads() end, "set_num_threads", "integer")
  end)
end)

describe("threads: results do not depend on the count", function()
  local saved
  before_each(function() saved = torch.get_num_threads() end)
  after_each(function() torch.set_num_threads(saved) end)

  -- forward and gradients of the pooled kernels, sized to be split into many chunks
  local function run()
    torch.manual_seed(11)
    local x = torch.randn(64, 16, 28, 28, { requires_grad = true })
    local bn = nn.BatchNorm2d(16)
    local h = F.relu(bn(x))
    local p = F.max_pool2d(h, 2)
    local a = F.avg_pool2d(h, 2)
    local e = (p * 0.5):exp()
    local loss = e:sum() + a:sum() + F.adaptive_avg_pool2d(h, { 3, 3 }):sum()
    loss:backward()
    return { bits(p), bits(a), bits(e), bits(loss), bits(x.grad), bits(bn.weight.grad), bits(bn.bias.grad),
      bits(bn.running_var) }
  end

  it("gives the same bits with 1, 2 and 3 threads", function()
    torch.set_num_threads(1)
    local ref = run()
    for _, n in ipairs({ 2, 3 }) do
      torch.set_num_threads(n)
      local got = run()
      for i = 1, #ref do assert.is_true(ref[i] == got[i], "result " .. i .. " differs with " .. n .. " threads") end
    end
  end)
end)
