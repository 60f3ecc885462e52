-- Fashion-MNIST on several processes: data-parallel training over MPI with torch.distributed,
-- nn.parallel.DistributedDataParallel and DistributedSampler. Each rank trains on its own shard
-- of every batch; DDP averages the gradients during backward, so the ranks keep identical
-- weights. Rank 0 prints, evaluates with the others, saves the checkpoint, and loads it back
-- into a plain (unwrapped) model.
--
--   mpirun -np 2 lua5.4 examples/ddp_fashion_mnist.lua [options]     (from the repository root,
--                                                                      after make)
--   As root, Open MPI also wants --allow-run-as-root; with more ranks than cores,
--   --oversubscribe. Where the ranks share a machine's cores, give each one thread, and let
--   a rank that waits for the others yield its core (Open MPI polls otherwise):
--   MOONTORCH_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe \
--     --mca mpi_yield_when_idle 1 -np 2 lua5.4 examples/ddp_fashion_mnist.lua
--
--   --data DIR        the IDX files (default: /usr/share/datasets/fashion-mnist, Debian's
--                     dataset-fashion-mnist)
--   --out DIR         where rank 0 writes ddp_checkpoint.pt (default: runs/ddp-fashion-mnist)
--   --epochs N        (default 1)
--   --steps N         at most N steps per epoch, 0 for all (default 0: 937 steps of 64)
--   --batch-size N    the global batch, split evenly over the ranks (default 64)
--   --lr X            AdamW's learning rate (default 0.002)
--   --seed N          (default 1)
--   --help            print this
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional
local data, dist = torch.utils.data, torch.distributed

-- ---------------------------------------------------------------------------------------------
-- Options (the same on every rank: mpirun gives them all the same arguments)

local cfg = { data = "/usr/share/datasets/fashion-mnist", out = "runs/ddp-fashion-mnist", epochs = 1, steps = 0,
  batch_size = 64, lr = 0.002, seed = 1 }
local NUMERIC = { epochs = "integer", steps = "integer", batch_size = "integer", seed = "integer", lr = "number" }

local options = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/options.lua")
local usage_error = options.parse(arg, cfg, { numeric = NUMERIC })
if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.steps < 0 or cfg.lr <= 0 then
  usage_error("--epochs and --batch-size must be at least 1, --steps at least 0, --lr positive")
end

-- ---------------------------------------------------------------------------------------------
-- The process group

local ok, err = pcall(dist.init_process_group, { backend = "mpi" })
if not ok then
  io.stderr:write("ddp_fashion_mnist.lua: ", tostring(err), "\n")
  os.exit(1)
end
local rank, world = dist.get_rank(), dist.get_world_size()
if cfg.batch_size % world ~= 0 then
  usage_error(string.format("--batch-size %d does not split evenly over %d ranks", cfg.batch_size, world))
end
local per_rank = cfg.batch_size // world

-- Rank 0 speaks for all.
local function say(fmt, ...)
  if rank == 0 then
    print(string.format(fmt, ...))
    io.stdout:flush()
  end
end

-- Wall-clock seconds (10 ms resolution).
local function now()
  local f = io.open("/proc/uptime")
  local t = f and f:read("n")
  if f then f:close() end
  return t or os.time()
end

local T0 = now()
say("moontorch %s: Fashion-MNIST on %d ranks (MPI), global batch %d = %d per rank", torch._VERSION, world,
  cfg.batch_size, per_rank)

-- ---------------------------------------------------------------------------------------------
-- Data: every rank reads the files; DistributedSampler gives each its shard

local loaded, train_set, test_set = pcall(function()
  return torch.datasets.FashionMNIST(cfg.data, { train = true }), torch.datasets.FashionMNIST(cfg.data, { train = false })
end)
if not loaded then
  io.stderr:write(string.format("ddp_fashion_mnist.lua (rank %d): cannot read the dataset: %s\n", rank, tostring(train_set)))
  os.exit(1)
end

-- The same seed on every rank, so that they agree on each epoch's permutation (set_epoch
-- changes it per epoch); each rank then takes every world-th index of it.
local sampler = data.DistributedSampler(train_set, { shuffle = true, seed = cfg.seed })
local train_loader = data.DataLoader(train_set, { batch_size = per_rank, sampler = sampler, drop_last = true })
local steps = #train_loader
if cfg.steps > 0 and cfg.steps < steps then steps = cfg.steps end
say("%d training samples: %d per rank per epoch, %d steps per epoch (of %d)", #train_set, #sampler, steps, #train_loader)

-- ---------------------------------------------------------------------------------------------
-- The model: built on every rank, wrapped in DDP

local FashionNet = nn.Module:extend("FashionNet")
function FashionNet:__init(classes)
  self.features = nn.Sequential(
    nn.Conv2d(1, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, { padding = 1, bias = false }), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten())
  self.classifier = nn.Sequential(nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes))
end
function FashionNet:forward(x) return self.classifier(self.features(x)) end

-- A different seed per rank: the initial weights differ (DDP replaces them with rank 0's) and
-- so do the dropout masks, as each rank's share of the batch is different data anyway.
torch.manual_seed(cfg.seed * 1000 + rank)
local model = FashionNet(10)
local ddp = nn.parallel.DistributedDataParallel(model)
local optimizer = torch.optim.AdamW(ddp:parameters(), { lr = cfg.lr, weight_decay = 1e-4 })
say("DistributedDataParallel over %d parameter tensors (rank 0's initial weights on every rank)", #ddp:parameters())

-- ---------------------------------------------------------------------------------------------
-- Training

-- The mean of x over the ranks (a collective: every rank calls it at the same point).
local function global_mean(x)
  local t = torch.tensor({ x }, { dtype = "float64" })
  dist.all_reduce(t, { op = "avg" })
  return t[1]:item()
end

for epoch = 1, cfg.epochs do
  sampler:set_epoch(epoch - 1)
  ddp:train()
  local t0, i, loss_sum = now(), 0, 0
  local every = math.max(1, steps // 5)
  for x, y in train_loader:iter() do
    optimizer:zero_grad()
    local loss = F.cross_entropy(ddp(x), y)
    loss:backward() -- the gradients come back averaged over the ranks
    optimizer:step()
    i = i + 1
    loss_sum = loss_sum + loss:item()
    if i % every == 0 or i == steps then
      say("epoch %d/%d  step %d/%d  loss %.4f (mean over ranks)  %.1f steps/s", epoch, cfg.epochs, i, steps,
        global_mean(loss_sum / i), i / math.max(now() - t0, 0.01))
    end
    if i == steps then break end
  end
end
local stats = ddp:comm_stats()
say("trained in %.1fs; gradients all-reduced: %.1f MB in %d buckets, %.2fs on the communication thread", now() - T0,
  stats.bytes / 1e6, stats.buckets, stats.comm_seconds)

-- ---------------------------------------------------------------------------------------------
-- Evaluation: each rank its share of the test set, the counts summed over the ranks

-- BatchNorm's running statistics were last updated by each rank's own batch; use rank 0's
-- everywhere (they are what rank 0 saves) so that the whole evaluation sees one model.
torch.no_grad(function()
  for _, b in ipairs(ddp.module:buffers()) do dist.broadcast(b, 0) end
end)

-- Correct predictions and samples of `model` on the test samples `idx` (1-based int64).
local function count_correct(model, idx)
  model:eval()
  local loader = data.DataLoader(data.Subset(test_set, idx), { batch_size = 500 })
  return torch.no_grad(function()
    local correct, n = 0, 0
    for x, y in loader:iter() do
      correct = correct + model(x):argmax(2):eq(y):sum():item()
      n = n + y:size(1)
    end
    return correct, n
  end)
end

local mine = torch.arange(rank + 1, #test_set + 1, world) -- samples rank+1, rank+1+world, ...
local correct, n = count_correct(ddp, mine)
local counts = torch.tensor({ correct, n }, { dtype = "int64" })
dist.all_reduce(counts)
local accuracy = counts[1]:item() / counts[2]:item()
say("test accuracy: %.4f (%d of %d, evaluated on %d ranks)", accuracy, counts[1]:item(), counts[2]:item(), world)

-- ---------------------------------------------------------------------------------------------
-- Checkpoint: rank 0 only (the weights are the same everywhere), then a plain model loads it

local path = cfg.out .. "/ddp_checkpoint.pt"
if rank == 0 then
  os.execute("mkdir -p '" .. cfg.out:gsub("'", "'\\''") .. "'")
  torch.save({ epoch = cfg.epochs, model_state_dict = ddp:state_dict(), optimizer_state_dict = optimizer:state_dict(),
    test_accuracy = accuracy }, path)
  local first
  for k in pairs(ddp:state_dict()) do first = k break end
  say("rank 0 saved %s (state-dict keys carry DDP's prefix: %s)", path, first)
end
dist.barrier() -- nobody goes on (or exits) before the file is complete

if rank == 0 then
  local ckpt = torch.load(path)
  local plain = FashionNet(10)
  plain:load_state_dict(nn.utils.strip_prefix(ckpt.model_state_dict, "module.")) -- strict: every key matches
  local c, total = count_correct(plain, torch.arange(1, #test_set + 1))
  say("a plain FashionNet loaded it with nn.utils.strip_prefix(sd, \"module.\"): test accuracy %.4f", c / total)
  if c ~= counts[1]:item() then
    io.stderr:write(string.format("FAILED: the plain model got %d right, the distributed evaluation %d\n", c, counts[1]:item()))
    os.exit(1)
  end
  say("proved: the plain model makes the same %d correct predictions as the %d ranks together", c, world)
end

dist.destroy_process_group()
say("Done in %.1fs.", now() - T0)
