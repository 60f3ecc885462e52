-- Workflow: deploy a model. torch.jit.trace runs the model once in eval mode and records its
-- ops as a graph; traced:save writes graph and weights to one file, which torch.jit.load runs
-- in Lua and the moontorch-run program (plain C on moontorch.h, no Lua) runs anywhere.
--
--   lua5.4 examples/deploy.lua [DIR]                     (writes DIR/, default runs/examples)
--   MOONTORCH_RUN=/path/to/moontorch-run picks the runner (default: build/bin/, else PATH)
local torch = require "moontorch"
local nn = torch.nn

local dir = arg[1] or "runs/examples"
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
os.execute("mkdir -p " .. q(dir))

local ok, jit = pcall(function() return torch.jit end)
if not (ok and jit and jit.trace) then
  print("skipped: torch.jit is not available yet (it arrives with the deployment issue, issue 7)")
  return
end

torch.manual_seed(0)
local model = nn.Sequential(nn.Conv2d(1, 8, 3, { padding = 1 }), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 14 * 14, 10))
local x = torch.randn(4, 1, 28, 28)

-- Trace with an input of the shape the model will see; tracing uses eval mode (dropout off).
local traced = jit.trace(model, x)
local path = dir .. "/traced.pt"
traced:save(path)
model:eval()
local expected = torch.no_grad(function() return model(x) end)

local loaded = jit.load(path) -- no model code needed: the graph is in the file
assert(torch.equal(loaded(x), expected), "the loaded graph computes something else")
print("torch.jit.load(" .. path .. ") gives the model's outputs")

-- The same file from C: moontorch-run MODEL INPUTS OUTPUTS, with tensors in checkpoint files.
local runner = os.getenv("MOONTORCH_RUN")
if not runner then
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  local built = here .. "/../build/bin/moontorch-run"
  local f = io.open(built, "rb")
  if f then
    f:close()
    runner = built
  else
    local p = io.popen("command -v moontorch-run 2>/dev/null")
    runner = p:read("l")
    p:close()
  end
end
if not runner then
  print("moontorch-run not found (make build, or set MOONTORCH_RUN): skipping the C side")
  return
end
torch.save(x, dir .. "/inputs.pt")
assert(os.execute(table.concat({ q(runner), q(path), q(dir .. "/inputs.pt"), q(dir .. "/outputs.pt") }, " ")),
  "moontorch-run failed")
local from_c = torch.load(dir .. "/outputs.pt")
assert(torch.allclose(from_c, expected, 1e-5, 1e-6), "moontorch-run's outputs differ")
print(string.format("moontorch-run %s: same outputs from C (largest difference %.2g)", path,
  (from_c - expected):abs():max():item()))
