-- Workflow: warm-start a model from another model's weights (transfer learning).
-- load_state_dict(sd, {strict = false}) copies every key both have and reports the others;
-- {skip_mismatched = true} also skips keys whose shapes differ; nn.utils.strip_prefix renames
-- keys (a DistributedDataParallel checkpoint's "module." prefix). Then freeze what was loaded
-- and train the new parts.
--
--   lua5.4 examples/warm_start.lua [DIR]                 (writes DIR/, default runs/examples)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
local path = dir .. "/pretrained.pt"

local function body() return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()) end

-- The model that was trained: a body and a 10-way head.
local Pretrained = nn.Module:extend("Pretrained")
function Pretrained:__init()
  self.body = body()
  self.head = nn.Linear(32, 10)
end

-- A new task: the same body, a 3-way classifier under another name.
local NewTask = nn.Module:extend("NewTask")
function NewTask:__init()
  self.body = body()
  self.classifier = nn.Linear(32, 3)
end
function NewTask:forward(x) return self.classifier(self.body(x)) end

torch.manual_seed(0)
local pretrained = Pretrained()
torch.save(pretrained:state_dict(), path)
local sd = torch.load(path)

-- 1. Different names: strict = false loads the body and lists the rest.
local model = NewTask()
local r = model:load_state_dict(sd, { strict = false })
print("missing keys:    " .. table.concat(r.missing_keys, ", "))
print("unexpected keys: " .. table.concat(r.unexpected_keys, ", "))
assert(torch.equal(model.body[1].weight, pretrained.body[1].weight))

-- 2. Same names, other shapes: an error by default (it names the key and both shapes) ...
local Resized = nn.Module:extend("Resized")
function Resized:__init()
  self.body = body()
  self.head = nn.Linear(32, 3)
end
local ok, err = pcall(function() Resized():load_state_dict(sd) end)
assert(not ok)
print("shape mismatch:  " .. err:match("size mismatch for [^\n]*"))
-- ... or skipped with skip_mismatched = true.
r = Resized():load_state_dict(sd, { skip_mismatched = true })
print("mismatched keys: " .. table.concat(r.mismatched_keys, ", "))

-- 3. Prefixed keys, as a DistributedDataParallel model saves them: strip the prefix.
local ddp_sd = nn.utils.add_prefix(sd, "module.")
for k in pairs(ddp_sd) do print("a DDP checkpoint's first key: " .. k) break end
r = NewTask():load_state_dict(nn.utils.strip_prefix(ddp_sd, "module."), { strict = false })
assert(#r.missing_keys == 2 and #r.unexpected_keys == 2)

-- Fine-tune: freeze the loaded body, train only the new classifier.
model.body:requires_grad_(false)
local opt = torch.optim.Adam(model.classifier:parameters(), { lr = 0.01 })
local x = torch.randn(128, 8)
local _, y = x:narrow(2, 1, 3):max(2)
local before = model.body[1].weight:clone()
local first
for step = 1, 50 do
  local loss = F.cross_entropy(model(x), y)
  opt:zero_grad()
  loss:backward()
  opt:step()
  first = first or loss:item()
  if step == 50 then print(string.format("fine-tuned the classifier: loss %.4f -> %.4f", first, loss:item())) end
end
assert(torch.equal(model.body[1].weight, before), "the frozen body must not change")
print("the frozen body kept its pretrained weights")
