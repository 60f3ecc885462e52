-- Writes the moontorch-made seed files of the fuzz corpus (fuzz/corpus/<harness>/):
--   LUA_CPATH="build/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" lua5.4 fuzz/make_seeds.lua
-- then /usr/bin/python3 fuzz/make_seeds.py adds PyTorch-written files and the pickles.
-- Small tensors on purpose: the fuzzer mutates bytes, and small inputs mutate fast.
local torch = require "moontorch"
local nn = torch.nn
local dir = "fuzz/corpus/"
torch.manual_seed(0)

local ck = dir .. "checkpoint/"
torch.save(torch.arange(6):reshape(2, 3), ck .. "tensor.pt")
torch.save({ epoch = 3, lr = 0.5, name = "run", flags = { true, false }, w = torch.randn(2, 2) }, ck .. "mixed.pt")
local base = torch.arange(12, { dtype = torch.float32 })
torch.save({ a = base, view = base:reshape(3, 4):t(), tail = base:narrow(1, 5, 4) }, ck .. "views.pt")
torch.save({ h = torch.ones(3, { dtype = torch.float16 }), b = torch.zeros(2, { dtype = torch.bool }),
             i8 = torch.tensor({ -1, 2 }, { dtype = torch.int8 }) }, ck .. "dtypes.pt")
torch.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU()):state_dict(), ck .. "state_dict.pt")

local st = dir .. "safetensors/"
torch.save({ w = torch.randn(2, 3), b = torch.zeros(3, { dtype = torch.int64 }) }, st .. "two.safetensors",
           { metadata = { format = "pt" } })
torch.save({ s = torch.tensor(1.5), e = torch.zeros(0, 2) }, st .. "scalar_empty.safetensors")

local gr = dir .. "graph/"
torch.jit.trace(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), torch.randn(2, 4)):save(gr .. "mlp.pt")
torch.jit.trace(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Softmax(2)), torch.randn(2, 4)):save(gr .. "softmax.pt")
