-- SPEC section 7 (issue 7): the C programs, run as programs. examples/embed_lua is a C host
-- with its own lua_State and the module linked in statically, training a small model;
-- examples/run_traced runs a traced file from C with no Lua, printing Lua's outputs digit for
-- digit; moontorch-run, the command-line runner, reads and writes checkpoint files and fails
-- with clear messages and exit codes. All are found in the build directory (MT_BINARY_DIR).
local H = require "spec.helpers"
local torch = H.torch
local nn = torch.nn

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local q = H.shquote

-- Runs a shell command; returns its exit code and its output (stdout, then stderr if asked).
local function sh(cmd, with_stderr)
  local p = assert(io.popen(cmd .. (with_stderr == false and " 2>/dev/null" or " 2>&1"), "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local function program(path)
  local f = io.open(path, "rb")
  assert(f, path .. " is not built (set MT_BINARY_DIR to the build directory)")
  f:close()
  return path
end

local function tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/moontorch-embed.XXXXXX"))
  local d = p:read("l")
  p:close()
  return d
end

-- The shared libraries a program loads, as ldd lists them.
local function needed(path)
  local _, out = sh("ldd " .. q(path))
  return out
end

-- Every element as the C programs print it (%.9g: a float32 read back exactly).
local function printed(t)
  local parts = {}
  for i, v in ipairs(H.values(t)) do
    parts[i] = math.type(v) == "float" and string.format("%.9g", v) or tostring(v)
  end
  return table.concat(parts, " ")
end

-- run_traced's report of one output.
local function report(index, t)
  return string.format("output %d: %s [%s]\n%s\n", index, t.dtype, table.concat(t.shape, ", "), printed(t))
end

describe("examples/embed_lua, a C host that registers moontorch.core itself", function()
  local exe = build_dir .. "/examples/embed_lua"
  -- Nothing of moontorch can be found on these paths: the Lua files must come from the
  -- directory given, the C module from the program itself.
  local env = "LUA_PATH=/nonexistent/?.lua LUA_PATH_5_4=/nonexistent/?.lua LUA_CPATH=/nonexistent/?.so " ..
    "LUA_CPATH_5_4=/nonexistent/?.so "

  it("trains a small model with SGD, the loss falling at every step", function()
    local code, out = sh(env .. q(program(exe)) .. " " .. q(source_dir .. "/lua"))
    assert.are.equal(0, code, out)
    local losses = {}
    for step, loss in out:gmatch("step +(%d+)  loss ([%d.]+)\n") do
      assert.are.equal(#losses + 1, tonumber(step), out)
      losses[#losses + 1] = tonumber(loss)
    end
    assert.are.equal(12, #losses, out)
    for i = 2, #losses do
      assert.is_true(losses[i] < losses[i - 1], "loss rose at step " .. i .. ":\n" .. out)
    end
    assert.is_true(losses[#losses] < losses[1] / 10, out)
    assert.are.equal(string.format("%.6f", losses[#losses]), out:match("final loss, read from C: ([%d.]+)\n"), out)
  end)

  it("links Lua and moontorch into the program (no core.so, liblua from the system)", function()
    local libs = needed(program(exe))
    assert.is_truthy(libs:find("liblua5.4", 1, true), libs)
    assert.is_falsy(libs:find("libmoontorch", 1, true), libs)
  end)

  it("reports a Lua directory without moontorch in it, with status 1", function()
    local code, out = sh(env .. q(program(exe)) .. " /nowhere")
    assert.are.equal(1, code, out)
    assert.is_truthy(out:find("module 'moontorch' not found", 1, true), out)
    assert.is_truthy(out:find("/nowhere/moontorch/init.lua", 1, true), out)
  end)
end)

describe("examples/run_traced, a traced model run from C with no Lua", function()
  local exe = build_dir .. "/examples/run_traced"
  local dir

  lazy_setup(function() dir = tmpdir() end)
  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("prints the outputs the Lua model gives, on a new input", function()
    torch.manual_seed(7)
    local model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(2))
    torch.jit.trace(model, torch.randn(5, 4)):save(dir .. "/mlp.pt")
    local x = torch.randn(5, 4)
    torch.save(x, dir .. "/x.pt")
    local code, out = sh(q(program(exe)) .. " " .. q(dir .. "/mlp.pt") .. " " .. q(dir .. "/x.pt"))
    assert.are.equal(0, code, out)
    assert.are.equal(report(1, model(x)), out)
  end)

  it("takes one file per input and prints every output", function()
    local w = torch.randn(3, 2)
    local function f(a, b) return { a:matmul(w) + b, (a * a):sum(2) } end
    local a, b = torch.randn(4, 3), torch.randn(4, 2)
    torch.jit.trace(f, { a, b }):save(dir .. "/two.pt")
    a, b = torch.randn(4, 3), torch.randn(4, 2)
    torch.save(a, dir .. "/a.pt")
    torch.save(b, dir .. "/b.pt")
    local code, out = sh(q(exe) .. " " .. q(dir .. "/two.pt") .. " " .. q(dir .. "/a.pt") .. " " .. q(dir .. "/b.pt"))
    assert.are.equal(0, code, out)
    local want = f(a, b)
    assert.are.equal(report(1, want[1]) .. report(2, want[2]), out)
  end)

  it("does not link Lua", function()
    local libs = needed(program(exe))
    assert.is_falsy(libs:find("liblua", 1, true), libs)
  end)

  it("fails with a message and status 1 on bad files and counts", function()
    torch.save({ x = torch.zeros(2) }, dir .. "/dict.pt")
    local cases = {
      { dir .. "/x.pt " .. dir .. "/x.pt", dir .. "/x.pt: not a traced model" },
      { dir .. "/mlp.pt " .. dir .. "/missing.pt", "missing.pt: cannot open" },
      { dir .. "/mlp.pt " .. dir .. "/dict.pt", "dict.pt does not hold a tensor" },
      { dir .. "/mlp.pt " .. dir .. "/x.pt " .. dir .. "/x.pt", "mlp.pt takes 1 input, 2 given" },
    }
    for _, c in ipairs(cases) do
      local code, out = sh(q(exe) .. " " .. c[1])
      assert.are.equal(1, code, c[1] .. ": " .. out)
      assert.is_truthy(out:find("run_traced: ", 1, true), out)
      assert.is_truthy(out:find(c[2], 1, true), c[1] .. ": expected '" .. c[2] .. "' in: " .. out)
    end
    local code, out = sh(q(exe))
    assert.are.equal(2, code, out)
    assert.is_truthy(out:find("usage: run_traced MODEL INPUT...", 1, true), out)
  end)
end)

describe("moontorch-run", function()
  local exe = build_dir .. "/bin/moontorch-run"
  local dir, w

  -- a model of two inputs and two outputs, and one of one each
  lazy_setup(function()
    dir = tmpdir()
    torch.manual_seed(11)
    w = torch.randn(3, 2)
    local a, b = torch.randn(4, 3), torch.randn(4, 2)
    torch.jit.trace(function(x, y) return x:matmul(w) + y, (x * y:sum(2, true)):tanh() end, { a, b })
      :save(dir .. "/two.pt")
    torch.jit.trace(function(x) return x:matmul(w):relu() end, a):save(dir .. "/one.pt")
    torch.save(torch.randn(2, 3), dir .. "/x.pt")
  end)
  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local function run(args) return sh(q(program(exe)) .. " " .. args) end
  local function path(name) return q(dir .. "/" .. name) end

  it("runs a model of several inputs from a list and saves the list of its outputs", function()
    local a, b = torch.randn(6, 3), torch.randn(6, 2)
    torch.save({ a, b }, dir .. "/ab.pt")
    local code, out = run(path("two.pt") .. " " .. path("ab.pt") .. " " .. path("out2.pt"))
    assert.are.equal(0, code, out)
    assert.are.equal("", out) -- quiet on success
    local got = torch.load(dir .. "/out2.pt")
    assert.are.equal(2, #got)
    H.assert_values(got[1], H.values(a:matmul(w) + b), true, "output 1")
    H.assert_values(got[2], H.values((a * b:sum(2, true)):tanh()), true, "output 2")
    assert.are.same({ 6, 2 }, got[1].shape)
    assert.are.same({ 6, 3 }, got[2].shape)
  end)

  it("reads a lone tensor and saves a lone output as a tensor", function()
    local x = torch.load(dir .. "/x.pt")
    local code, out = run(path("one.pt") .. " " .. path("x.pt") .. " " .. path("out1.pt"))
    assert.are.equal(0, code, out)
    local got = torch.load(dir .. "/out1.pt")
    assert.is_true(torch.is_tensor(got))
    assert.is_true(torch.equal(got, x:matmul(w):relu()))
    -- a list of one tensor is as good as the tensor; -- ends the options
    torch.save({ x }, dir .. "/xl.pt")
    code, out = run("-- " .. path("one.pt") .. " " .. path("xl.pt") .. " " .. path("out1.pt"))
    assert.are.equal(0, code, out)
    assert.is_true(torch.equal(torch.load(dir .. "/out1.pt"), x:matmul(w):relu()))
  end)

  it("prints its usage with --help and exits 0", function()
    for _, opt in ipairs({ "--help", "-h" }) do
      local code, out = run(opt)
      assert.are.equal(0, code, out)
      assert.is_truthy(out:find("usage: moontorch-run [--help] MODEL INPUTS OUTPUTS", 1, true), out)
      assert.is_truthy(out:find("Exit status", 1, true), out)
    end
  end)

  it("exits 2 on usage errors", function()
    local cases = {
      { "", "missing MODEL, INPUTS and OUTPUTS" },
      { "a.pt", "missing INPUTS and OUTPUTS" },
      { "a.pt b.pt", "missing OUTPUTS" },
      { "a.pt b.pt c.pt d.pt", "too many arguments" },
      { "--frobnicate a.pt b.pt c.pt", "unknown option '--frobnicate'" },
    }
    for _, c in ipairs(cases) do
      local code, out = run(c[1])
      assert.are.equal(2, code, c[1] .. ": " .. out)
      assert.is_truthy(out:find("moontorch-run: " .. c[2], 1, true), c[1] .. ": " .. out)
      assert.is_truthy(out:find("usage:", 1, true), out)
    end
  end)

  it("exits 1 with a message naming the file and the problem", function()
    torch.save({ a = torch.zeros(1) }, dir .. "/dict.pt")
    torch.save({ torch.zeros(4, 3), "b" }, dir .. "/mixed.pt")
    torch.save({ torch.zeros(4, 3) }, dir .. "/short.pt")
    torch.save({ torch.zeros(4, 5), torch.zeros(4, 2) }, dir .. "/badshape.pt")
    local f = assert(io.open(dir .. "/garbage.pt", "wb"))
    f:write("not a checkpoint at all")
    f:close()
    local cases = {
      { "missing.pt x.pt o.pt", dir .. "/missing.pt: cannot open" },
      { "garbage.pt x.pt o.pt", dir .. "/garbage.pt" },
      { "x.pt x.pt o.pt", dir .. "/x.pt: not a traced model" },
      { "two.pt missing.pt o.pt", dir .. "/missing.pt: cannot open" },
      { "two.pt dict.pt o.pt", dir .. "/dict.pt holds a dict; expected a tensor or a list of tensors" },
      { "two.pt mixed.pt o.pt", dir .. "/mixed.pt: item 2 of the list is a str, not a tensor" },
      { "two.pt short.pt o.pt", dir .. "/short.pt holds a list of 1 tensor, but the model takes 2 inputs" },
      { "two.pt x.pt o.pt", dir .. "/x.pt holds one tensor, but the model takes 2 inputs" },
      { "two.pt badshape.pt o.pt", "running " .. dir .. "/two.pt on " .. dir .. "/badshape.pt: " },
      { "one.pt x.pt nodir/o.pt", dir .. "/nodir/o.pt" },
    }
    for _, c in ipairs(cases) do
      local args = c[1]:gsub("([%w./]+)", function(name) return path(name) end)
      local code, out = run(args)
      assert.are.equal(1, code, c[1] .. ": " .. out)
      assert.is_truthy(out:find("moontorch-run: " .. c[2], 1, true), c[1] .. ": expected '" .. c[2] .. "' in: " .. out)
      assert.is_falsy(io.open(dir .. "/o.pt", "rb"), c[1] .. " wrote an output file")
    end
  end)

  it("does not link Lua", function()
    local libs = needed(program(exe))
    assert.is_falsy(libs:find("liblua", 1, true), libs)
  end)
end)
