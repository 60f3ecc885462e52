-- The examples and the guide (issue 6), run as a user runs them: every script in examples/ to
-- the end in a temporary directory (each asserts what its workflow promises), the Fashion-MNIST
-- demo through all nine steps on a small, learnable synthetic stand-in for the dataset (same
-- IDX format, seconds instead of minutes), and every Lua snippet of docs/guide.md and of the
-- README's tour exactly as printed there.
local H = require "spec.helpers"
local torch = H.torch

local q = H.shquote

local sh_read, ROOT, BIN = H.sh_read, H.ROOT, H.BIN
local RUNNER = BIN .. "/bin/moontorch-run"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local dirs = {}
local function tmpdir()
  local d = sh_read("mktemp -d /tmp/moontorch-examples.XXXXXX"):gsub("\n$", "")
  assert(d ~= "", "mktemp failed")
  dirs[#dirs + 1] = d
  return d
end

-- Runs `lua5.4 <script> <args>` with cwd = dir and extra environment; returns output, ok.
local function run_script(dir, script, args, env)
  local cmd = { "cd", q(dir), "&&", "env" }
  for k, v in pairs(env or {}) do cmd[#cmd + 1] = k .. "=" .. q(v) end
  cmd[#cmd + 1] = "lua5.4"
  cmd[#cmd + 1] = q(script)
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = q(a) end
  local p = assert(io.popen(table.concat(cmd, " ") .. " </dev/null 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

local function has(out, needle)
  assert(out:find(needle, 1, true), "expected the output to contain " .. string.format("%q", needle) .. ":\n" .. out)
end

local function python_has_torch()
  return os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == true
end

local runner_built = exists(RUNNER)
local jit_available = pcall(function() return torch.jit.trace end) and torch.jit ~= nil

teardown(function()
  for _, d in ipairs(dirs) do os.execute("rm -rf " .. q(d)) end
end)

-- ---------------------------------------------------------------------------------------------
-- The workflow scripts

-- name -> {phrases its output must contain, files it must write (under its DIR argument)}
local WORKFLOWS = {
  tour = { says = { "== Views share storage", "moontorch.view: shape [4] is invalid" }, writes = {} },
  save_load_inference = {
    says = { "weights.pt           reloaded: same outputs, bit for bit", "weights.safetensors  reloaded",
      "mapped with {mmap = true}: same outputs" },
    writes = { "weights.pt", "weights.safetensors" },
  },
  checkpoint_resume = {
    says = { "checkpoint saved to", "the resumed run ends with the same weights and loss, bit for bit" },
    writes = { "checkpoint.pt" },
  },
  whole_model = {
    says = { "loaded a TinyNet (6 parameter tensors) and a Sequential of 4 layers",
      "both give the same outputs", "a model inside a table came back too" },
    writes = { "tinynet.pt", "sequential.pt", "bundle.pt" },
  },
  multiple_models = {
    says = { "modelG_state_dict", "optimizerD_state_dict", "both models and both optimizers came back identical" },
    writes = { "gan.pt" },
  },
  warm_start = {
    says = { "missing keys:    classifier.weight, classifier.bias", "unexpected keys: head.weight, head.bias",
      "size mismatch for head.weight: copying a param with shape [10, 32] from checkpoint",
      "mismatched keys: head.weight, head.bias", "first key: module.body.0.weight",
      "the frozen body kept its pretrained weights" },
    writes = { "pretrained.pt" },
  },
  from_pytorch = python_has_torch() and {
    says = { "loaded PyTorch's checkpoint (epoch 5", "same outputs as PyTorch",
      "PyTorch loaded moontorch's state dict (weights_only=True): outputs match" },
    writes = { "from_pytorch.pt", "from_moontorch.pt" },
  } or { says = { "skipped: no Python with PyTorch found" }, writes = {} },
  deploy = jit_available and {
    says = { "gives the model's outputs", runner_built and "same outputs from C" or "moontorch-run not found" },
    writes = { "traced.pt" },
  } or { says = { "skipped: torch.jit is not available yet" }, writes = {} },
}

describe("examples/", function()
  it("has a smoke test for every script", function()
    local listed = sh_read("ls " .. q(ROOT .. "/examples"))
    local n = 0
    for name in listed:gmatch("([%w_]+)%.lua\n") do
      n = n + 1
      -- (the demo is tested below; ddp_fashion_mnist needs mpirun: spec/35 runs it)
      assert(WORKFLOWS[name] or name == "fashion_mnist" or name == "ddp_fashion_mnist",
        "examples/" .. name .. ".lua has no smoke test here")
    end
    assert(n >= 9, "expected the demo and 8 workflow scripts in examples/, found " .. n)
  end)

  for name, expect in pairs(WORKFLOWS) do
    it(name .. ".lua runs to the end and does what it says", function()
      local dir = tmpdir()
      local out, ok = run_script(dir, ROOT .. "/examples/" .. name .. ".lua", { "out" },
        runner_built and { MOONTORCH_RUN = RUNNER } or nil)
      assert(ok, name .. ".lua failed:\n" .. out)
      for _, s in ipairs(expect.says) do has(out, s) end
      for _, f in ipairs(expect.writes) do
        assert(exists(dir .. "/out/" .. f), name .. ".lua did not write out/" .. f .. ":\n" .. out)
      end
    end)
  end

  it("from_pytorch.lua skips cleanly without PyTorch", function()
    local out, ok = run_script(tmpdir(), ROOT .. "/examples/from_pytorch.lua", { "out" },
      { PYTHON = "/nonexistent/python3" })
    assert(ok, out)
    has(out, "skipped: no Python with PyTorch found")
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- The Fashion-MNIST demo on synthetic data


describe("examples/fashion_mnist.lua (the demo)", function()
  local data_dir
  local DEMO = ROOT .. "/examples/fashion_mnist.lua"

  setup(function()
    data_dir = tmpdir()
    H.write_synthetic_fashion(data_dir, "train", 640, 1)
    H.write_synthetic_fashion(data_dir, "t10k", 200, 2)
  end)

  local function demo(args)
    local dir = tmpdir()
    local full = { "--data", data_dir, "--out", "out", "--batch-size", "32" }
    for _, a in ipairs(args) do full[#full + 1] = a end
    local out, ok = run_script(dir, DEMO, full, runner_built and { MOONTORCH_RUN = RUNNER } or nil)
    return out, ok, dir .. "/out"
  end

  it("does all nine steps, proving each, and writes what it says", function()
    local out, ok, dir = demo({ "--epochs", "2", "--target", "0.9" })
    assert(ok, "the demo failed:\n" .. out)
    local last = 0
    for n = 1, 9 do
      local at = out:find("== Step " .. n .. "/9: ", 1, true)
      assert(at and at > last, "step " .. n .. " is missing or out of order:\n" .. out)
      last = at
    end
    assert(not out:find("\r", 1, true), "not a terminal: plain lines, no carriage returns")
    has(out, "epoch 1/2  step 20/20  loss ")
    -- Step 3: the resumed process, and its bit-identical end state.
    has(out, "   | resumed from out/checkpoint-epoch1.pt: epoch 1 done")
    for _, key in ipairs({ "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "rng_state", "loss" }) do
      has(out, "proved: " .. key .. " is identical after the resumed epoch")
    end
    -- Step 4: the accuracy line, and the target.
    local acc = tonumber(out:match("\n   test accuracy: (%d%.%d%d%d%d)\n"))
    assert(acc and acc >= 0.9, "no test accuracy line, or the synthetic task was not learnt:\n" .. out)
    has(out, "target 0.90: met")
    has(out, "gives the same logits, bit for bit")
    has(out, "missing keys (new, left as initialised): head.weight, head.bias")
    has(out, "unexpected keys (in the file, not in the model): classifier.3.weight, classifier.3.bias")
    has(out, "CoarseNet and its optimizer came back identical")
    if jit_available and runner_built then
      has(out, "proved: the C program's logits match the Lua model's")
    else
      has(out, "skipped: ")
    end
    has(out, "Done: all nine steps in ")

    -- The files, readable by torch.load.
    for _, f in ipairs({ "checkpoint-epoch1.pt", "checkpoint-epoch2.pt", "resumed/checkpoint-epoch2.pt",
      "model_weights.pt", "model_weights.safetensors", "two_models.pt", "curves.svg" }) do
      assert(exists(dir .. "/" .. f), "missing " .. f)
    end
    local ckpt = torch.load(dir .. "/checkpoint-epoch2.pt")
    assert.are.equal(2, ckpt.epoch)
    assert.are.equal("uint8", ckpt.rng_state.dtype)
    assert.are.equal("number", type(ckpt.loss))
    assert(torch.is_tensor(ckpt.model_state_dict["features.1.running_mean"]))
    assert(ckpt.optimizer_state_dict.state[0] and ckpt.scheduler_state_dict.last_epoch == 40)
    assert.are.equal(2, #ckpt.history.epochs)
    local weights = torch.load(dir .. "/model_weights.safetensors")
    assert(torch.equal(weights["classifier.3.weight"], ckpt.model_state_dict["classifier.3.weight"]))

    -- The chart: one SVG document with both panels, axes labels and the curves.
    local svg = read_file(dir .. "/curves.svg")
    assert(svg:match("^<svg ") and svg:match("</svg>\n$"), "curves.svg is not one SVG document")
    for _, s in ipairs({ "Loss (cross-entropy)", "Accuracy", ">epoch<", ">loss<", ">accuracy<", "target 0.90" }) do
      assert(svg:find(s, 1, true), "curves.svg lacks " .. s)
    end
    local _, lines = svg:gsub("<polyline ", "")
    assert.are.equal(5, lines) -- train and test loss, train and test accuracy, the target
    if os.execute("/usr/bin/python3 -c '' 2>/dev/null") then
      assert(os.execute("/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "
        .. q(dir .. "/curves.svg")), "curves.svg is not well-formed XML")
    end
  end)

  it("draws a live bar with --progress bar, and fails below the target", function()
    local out, ok = demo({ "--epochs", "1", "--progress", "bar", "--target", "1.01" })
    assert(not ok, "an accuracy below --target must give a failing exit status:\n" .. out)
    has(out, "\r   epoch 1/1 [")
    has(out, "\27[K")
    assert(out:find("steps/s ETA %d+:%d%d"), "the bar shows steps/s and the ETA:\n" .. out)
    has(out, "skipped: needs at least 2 epochs")
    has(out, "target 1.01: NOT met")
    has(out, "Done: all nine steps in ") -- every step still ran
    has(out, "below the target 1.01")
  end)

  it("says which file is missing when the dataset is not there", function()
    local out, ok = run_script(tmpdir(), DEMO, { "--data", tmpdir(), "--out", "out" })
    assert(not ok)
    has(out, "cannot read the dataset")
    has(out, "train-images-idx3-ubyte")
    assert(not out:find("stack traceback", 1, true), "a clean message, not a traceback:\n" .. out)
  end)

  it("rejects unknown options", function()
    local out, ok = run_script(tmpdir(), DEMO, { "--epoch", "3" })
    assert(not ok)
    has(out, "unknown option --epoch")
  end)

  it("checks option values and prints its --help (examples/lib/options.lua)", function()
    local out, ok = run_script(tmpdir(), DEMO, { "--epochs", "2.5" })
    assert(not ok)
    has(out, "fashion_mnist.lua: --epochs needs a number, got 2.5")
    out, ok = run_script(tmpdir(), DEMO, { "--lr" })
    assert(not ok)
    has(out, "--lr needs a value")
    out, ok = run_script(tmpdir(), DEMO, { "stray" })
    assert(not ok)
    has(out, "unexpected argument stray")
    out, ok = run_script(tmpdir(), DEMO, { "--help" })
    assert(ok, out)
    has(out, "--train-only")
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- docs/guide.md and the README tour: every snippet, as printed

-- The code blocks of a Markdown file by "## " section: {title, runs = {{lang, code}, ...}}.
-- Blocks run in order in one directory; consecutive Lua blocks form one chunk, so a section's
-- prose can build on its earlier snippets. ```python blocks (the PyTorch side of a workflow)
-- run on their own, between them.
local function code_sections(path)
  local sections, current, lang, lines = {}, nil, nil, nil
  for line in (read_file(path) .. "\n"):gmatch("(.-)\n") do
    if lang then
      if line:match("^```%s*$") then
        local runs, code = current.runs, table.concat(lines, "\n") .. "\n"
        local last = runs[#runs]
        if lang == "lua" and last and last.lang == "lua" then
          last.code = last.code .. code
        else
          runs[#runs + 1] = { lang = lang, code = code }
        end
        lang = nil
      else
        lines[#lines + 1] = line
      end
    else
      local l = line:match("^```(%w+)%s*$")
      if l == "lua" or l == "python" then
        assert(current, path .. ": a snippet before the first section")
        if #current.runs == 0 then sections[#sections + 1] = current end
        lang, lines = l, {}
      elseif line:match("^## ") then
        current = { title = line:sub(4), runs = {} }
      end
    end
  end
  assert(not lang, path .. ": a code block is not closed")
  return sections
end

local function needs_python(section)
  for _, r in ipairs(section.runs) do
    if r.lang == "python" then return true end
  end
  return false
end

-- Runs a section's blocks in a fresh directory; returns ok, and the output and code of a failure.
local function run_section(section)
  local dir = tmpdir()
  for i, r in ipairs(section.runs) do
    local file = dir .. "/snippet" .. i .. (r.lang == "lua" and ".lua" or ".py")
    write_file(file, r.code)
    local out, ok
    if r.lang == "lua" then
      out, ok = run_script(dir, file, {}, runner_built and { MOONTORCH_RUN = RUNNER } or nil)
    else
      local p = assert(io.popen("cd " .. q(dir) .. " && /usr/bin/python3 " .. q(file) .. " 2>&1"))
      out = p:read("a")
      ok = p:close() == true
    end
    if not ok then return false, out, r.code end
  end
  return true
end

describe("docs/guide.md", function()
  local sections = code_sections(ROOT .. "/docs/guide.md")

  it("has runnable snippets for every workflow", function()
    assert(#sections >= 10, "expected snippets in at least 10 sections, found " .. #sections)
  end)

  for _, s in ipairs(sections) do
    if needs_python(s) and not python_has_torch() then
      pending("the snippets of \"" .. s.title .. "\" (they need /usr/bin/python3 with python3-torch)")
    else
      it("runs the snippets of \"" .. s.title .. "\"", function()
        local ok, out, code = run_section(s)
        assert(ok, "a snippet of \"" .. s.title .. "\" failed:\n" .. tostring(out) .. "\n--- code:\n" .. tostring(code))
      end)
    end
  end
end)

describe("README.md's tour", function()
  it("runs as printed", function()
    local tour
    for _, s in ipairs(code_sections(ROOT .. "/README.md")) do
      if s.title:find("tour", 1, true) then tour = s end
    end
    assert(tour and #tour.runs == 1 and tour.runs[1].lang == "lua", "README.md has no Lua snippet under a tour heading")
    local code = tour.runs[1].code
    assert(code:find("backward", 1, true) and code:find("torch.save", 1, true) and code:find("load_state_dict", 1, true),
      "the tour shows a training loop, saving and loading")
    local dir = tmpdir()
    write_file(dir .. "/tour.lua", code)
    local out, ok = run_script(dir, dir .. "/tour.lua", {})
    assert(ok, "the README tour failed:\n" .. out)
  end)
end)
