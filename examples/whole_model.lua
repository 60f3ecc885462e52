-- Workflow: save the whole model, architecture included, and load it without building it.
-- torch.save(model, path) stores each module's class name and constructor arguments as data,
-- next to the state dict; torch.load(path) rebuilds the model. Built-in layers always load;
-- a class of your own (nn.Module:extend("Name")) loads once the code defining it has run.
-- No code is stored in the file, and PyTorch opens it as a plain dict.
--
--   lua5.4 examples/whole_model.lua [DIR]                (writes DIR/, default runs/examples)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")

-- A class of our own: its constructor arguments (hidden, classes) are what the file records.
local TinyNet = nn.Module:extend("TinyNet")
function TinyNet:__init(hidden, classes)
  self.conv = nn.Conv2d(1, 4, 3, { padding = 1 })
  self.fc = nn.Linear(4 * 4 * 4, hidden)
  self.out = nn.Linear(hidden, classes)
end
function TinyNet:forward(x)
  local h = F.max_pool2d(F.relu(self.conv(x)), 2):flatten(2)
  return self.out(F.relu(self.fc(h)))
end

torch.manual_seed(0)
local x = torch.randn(2, 1, 8, 8)

-- A model of our class, and one made only of built-in layers.
local net = TinyNet(16, 3)
local seq = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.LayerNorm(10), nn.Tanh())
net:eval()
torch.save(net, dir .. "/tinynet.pt")
torch.save(seq, dir .. "/sequential.pt")

local net2 = torch.load(dir .. "/tinynet.pt") -- TinyNet is defined above, so it can be rebuilt
local seq2 = torch.load(dir .. "/sequential.pt")
print(string.format("loaded a %s (%d parameter tensors) and a %s of %d layers", net2:_get_name(),
  #net2:parameters(), seq2:_get_name(), #seq2:children()))
assert(getmetatable(net2) == TinyNet and not net2.training, "class and eval mode come back")
assert(torch.equal(net2(x), net(x)) and torch.equal(seq2(x), seq(x)))
print("both give the same outputs as the models that were saved")

-- Models inside other tables are saved and rebuilt the same way.
torch.save({ model = net, note = "TinyNet(16, 3)" }, dir .. "/bundle.pt")
local bundle = torch.load(dir .. "/bundle.pt")
assert(torch.equal(bundle.model(x), net(x)))
print("a model inside a table came back too: " .. bundle.note)
