-- Workflow: save a trained model's weights for inference, load them into a fresh model.
-- The state dict (parameters and buffers by name) is what to save: the code builds the model,
-- the file holds only tensors, and the same file loads in PyTorch.
--
--   lua5.4 examples/save_load_inference.lua [DIR]        (writes DIR/, default runs/examples)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")

local function make_model()
  return nn.Sequential(nn.Linear(4, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
end

-- A quick training run on a toy problem: the class is the index of the largest of 3 features.
torch.manual_seed(0)
local x = torch.randn(256, 4)
local _, y = x:narrow(2, 1, 3):max(2) -- 1-based class ids, as cross_entropy wants them
local model = make_model()
local opt = torch.optim.Adam(model:parameters(), { lr = 0.01 })
for _ = 1, 100 do
  local loss = F.cross_entropy(model(x), y)
  opt:zero_grad()
  loss:backward()
  opt:step()
end

-- Save: PyTorch's zip format (.pt) or safetensors (chosen by the file name).
torch.save(model:state_dict(), dir .. "/weights.pt")
torch.save(model:state_dict(), dir .. "/weights.safetensors")

-- Load: build the architecture, copy the weights in, switch to eval mode. eval() matters:
-- dropout becomes the identity and batch norm uses its running statistics.
model:eval()
local x_new = torch.randn(8, 4)
local expected = torch.no_grad(function() return model(x_new) end)
for _, file in ipairs({ "weights.pt", "weights.safetensors" }) do
  local fresh = make_model()
  local result = fresh:load_state_dict((torch.load(dir .. "/" .. file))) -- strict: keys must match
  assert(#result.missing_keys == 0 and #result.unexpected_keys == 0)
  fresh:eval()
  local got = torch.no_grad(function() return fresh(x_new) end)
  assert(torch.equal(got, expected), file .. ": the reloaded model predicts differently")
  print(string.format("%-20s reloaded: same outputs, bit for bit; predictions %s", file,
    table.concat(got:argmax(2):tolist(), " ")))
end

-- Large files: map the tensor data instead of reading it (the tensors share the file's pages).
local sd = torch.load(dir .. "/weights.pt", { mmap = true })
local mapped = make_model()
mapped:load_state_dict(sd)
mapped:eval()
assert(torch.equal(torch.no_grad(function() return mapped(x_new) end), expected))
print("weights.pt mapped with {mmap = true}: same outputs")
