-- Workflow: load a checkpoint that PyTorch wrote, and hand one back.
-- moontorch's files are PyTorch's zip checkpoint format, and state-dict keys are PyTorch's, so a
-- model defined the same way in both takes the other's weights as they are. This example has
-- PyTorch (Debian's python3-torch) train a small conv net and save a general checkpoint, loads
-- it here, checks the outputs against PyTorch's, trains one more step, and lets PyTorch load the
-- result with weights_only=True. Without PyTorch it says so and stops.
--
--   lua5.4 examples/from_pytorch.lua [DIR]               (writes DIR/, default runs/examples)
--   PYTHON=/path/to/python3 picks the interpreter (default: /usr/bin/python3, else python3)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
os.execute("mkdir -p " .. q(dir))

local python
local candidates = os.getenv("PYTHON") and { os.getenv("PYTHON") } or { "/usr/bin/python3", "python3" }
for _, p in ipairs(candidates) do
  if os.execute(q(p) .. " -c 'import torch' >/dev/null 2>&1") then
    python = p
    break
  end
end
if not python then
  print("skipped: no Python with PyTorch found (apt-get install python3-torch, or set PYTHON)")
  return
end

-- The PyTorch side: MODE "make" trains and saves; MODE "check" loads what moontorch wrote.
local script = dir .. "/pytorch_side.py"
local f = assert(io.open(script, "w"))
f:write([[
import sys, torch, torch.nn as nn, torch.nn.functional as F
mode, d = sys.argv[1], sys.argv[2]
def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
if mode == "make":
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    torch.save({"epoch": 5, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": opt.state_dict(), "loss": loss.item()}, d + "/from_pytorch.pt")
    model.eval()
    with torch.no_grad():
        torch.save({"x": x, "y": y + 1, "logits": model(x)}, d + "/pytorch_io.pt")  # labels 1-based for Lua
else:
    sd = torch.load(d + "/from_moontorch.pt", weights_only=True)
    io = torch.load(d + "/moontorch_io.pt", weights_only=True)
    model = make()
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        ok = torch.allclose(model(io["x"]), io["logits"], rtol=1e-5, atol=1e-6)
    print("PyTorch loaded moontorch's state dict (weights_only=True): outputs", "match" if ok else "DIFFER")
    sys.exit(0 if ok else 1)
]])
f:close()
assert(os.execute(q(python) .. " " .. q(script) .. " make " .. q(dir)), "the PyTorch side failed")

-- The same architecture in moontorch: nn.Sequential names its children "0", "1", ... as
-- PyTorch does, so the keys match.
local model = nn.Sequential(nn.Conv2d(1, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
local opt = torch.optim.SGD(model:parameters(), { lr = 0.1, momentum = 0.9 })
local ckpt = torch.load(dir .. "/from_pytorch.pt")
model:load_state_dict(ckpt.model_state_dict)
opt:load_state_dict(ckpt.optimizer_state_dict)
local keys = {}
for name in pairs(ckpt.model_state_dict) do keys[#keys + 1] = name end
print(string.format("loaded PyTorch's checkpoint (epoch %d, loss %.4f) into the same architecture: %s", ckpt.epoch,
  ckpt.loss, table.concat(keys, " ")))

local io_pt = torch.load(dir .. "/pytorch_io.pt")
model:eval()
local logits = torch.no_grad(function() return model(io_pt.x) end)
assert(torch.allclose(logits, io_pt.logits, 1e-5, 1e-6), "moontorch's outputs differ from PyTorch's")
print(string.format("same outputs as PyTorch (largest difference %.2g)", (logits - io_pt.logits):abs():max():item()))

-- One more training step here (labels are 1-based in moontorch), then back to PyTorch.
model:train()
local loss = F.cross_entropy(model(io_pt.x), io_pt.y)
opt:zero_grad()
loss:backward()
opt:step()
model:eval()
torch.save(model:state_dict(), dir .. "/from_moontorch.pt")
torch.save({ x = io_pt.x, logits = torch.no_grad(function() return model(io_pt.x) end) }, dir .. "/moontorch_io.pt")
assert(os.execute(q(python) .. " " .. q(script) .. " check " .. q(dir)), "PyTorch could not use moontorch's file")
