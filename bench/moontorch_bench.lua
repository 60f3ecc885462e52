-- moontorch side of `make bench` (bench/run.sh runs it; bench/pytorch_bench.py is the twin).
-- Prints one result per line, "key<TAB>value", which bench/report.py turns into the table:
--   <workload>  median seconds          <workload>.gflops  achieved GFLOP/s (training)
--   <workload>.rss_mb  peak RSS, MB      <workload>.acc     test accuracy (Fashion-MNIST)
--
--   lua5.4 bench/moontorch_bench.lua [--quick] [--only NAME[,NAME]] [--data DIR] [--tmp DIR]
--   --quick      skip the Fashion-MNIST epoch
--   --only       run only these workloads (common.WORKLOADS, e.g. small_add_x1000,cnn_infer_b1)
--   --load-child PATH MODE   (internal) load PATH (MODE: read or mmap) and print peak RSS
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local now, median, emit, peak_rss_mb = common.now, common.median, common.emit, common.peak_rss_mb

local opts = common.parse_args(arg)

-- Whether any of the named workloads is to run (all of them without --only).
local function want(...)
  if not opts.only then return true end
  for i = 1, select("#", ...) do
    if opts.only[select(i, ...)] then return true end
  end
  return false
end

if opts.load_child then -- a fresh process: its peak RSS is the loader's
  local t0 = now()
  local sd = torch.load(opts.load_child, { mmap = opts.mode == "mmap" })
  emit("seconds", now() - t0)
  emit("rss_mb", peak_rss_mb()) -- right after loading: a mapped file is not read yet
  assert(sd.w1)
  return
end

-- Time fn: `warm` unmeasured calls, then `reps` measured ones; the median in seconds.
local function bench(fn, warm, reps)
  for _ = 1, warm do fn() end
  local t = {}
  for i = 1, reps do
    local t0 = now()
    fn()
    t[i] = now() - t0
  end
  return median(t)
end

torch.manual_seed(0)

-- OpenBLAS sgemm through torch.mm, 1024^3.
if want("sgemm_1024") then
  local a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
  local s = bench(function() return torch.mm(a, b) end, 3, 10)
  emit("sgemm_1024.gflops", 2 * 1024 ^ 3 / s / 1e9)
end

-- mlp_train_b128
if want("mlp_train_b128") then
  local model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
  local opt = torch.optim.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })
  local x, y = torch.randn(128, 784), torch.randint(1, 11, { 128 })  -- classes are 1-based
  local s = bench(function()
    opt:zero_grad()
    F.cross_entropy(model(x), y):backward()
    opt:step()
  end, 5, 30)
  emit("mlp_train_b128", s)
  emit("mlp_train_b128.gflops", common.mlp_flops(128) / s / 1e9)
end

-- The CNN of the issue.
local function cnn()
  return nn.Sequential(
    nn.Conv2d(1, 32, 3, { padding = 1 }), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, { padding = 1 }), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
end

if want("cnn_train_b64", "cnn_infer_b256", "cnn_infer_b1") then
  local model = cnn()
  if want("cnn_train_b64") then
    local opt = torch.optim.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })
    local x, y = torch.randn(64, 1, 28, 28), torch.randint(1, 11, { 64 })
    local s = bench(function()
      opt:zero_grad()
      F.cross_entropy(model(x), y):backward()
      opt:step()
    end, 3, 15)
    emit("cnn_train_b64", s)
    emit("cnn_train_b64.gflops", common.cnn_train_flops(64) / s / 1e9)
  end

  model:eval()
  torch.no_grad(function()
    local x256, x1 = torch.randn(256, 1, 28, 28), torch.randn(1, 1, 28, 28)
    if want("cnn_infer_b256") then emit("cnn_infer_b256", bench(function() return model(x256) end, 3, 15)) end
    if want("cnn_infer_b1") then emit("cnn_infer_b1", bench(function() return model(x1) end, 20, 200)) end
  end)
end

-- small_add_x1000
if want("small_add_x1000") then
  local a, b = torch.randn(16), torch.randn(16)
  emit("small_add_x1000", bench(function()
    for _ = 1, 1000 do local _ = a + b end
  end, 5, 31))
end

-- save_load_400MB: 25 float32 2000x2000 tensors. The loads need the file: with --only a load,
-- it is saved once, untimed.
if want("save_400MB", "load_400MB", "mmap_load_400MB") then
  local sd = torch.OrderedDict and torch.OrderedDict() or {}
  for i = 1, 25 do sd["w" .. i] = torch.randn(2000, 2000) end
  local path = opts.tmp .. "/moontorch_bench_400MB.pt"
  if want("save_400MB") then
    emit("save_400MB", bench(function() torch.save(sd, path) end, 1, 5))
  else
    torch.save(sd, path)
  end
  sd = nil
  collectgarbage()
  if want("load_400MB") then
    emit("load_400MB", bench(function() torch.load(path); collectgarbage() end, 1, 5))
  end
  if want("mmap_load_400MB") then
    emit("mmap_load_400MB", bench(function() torch.load(path, { mmap = true }); collectgarbage() end, 1, 5))
  end
  for _, mode in ipairs({ "read", "mmap" }) do
    local key = mode == "read" and "load_400MB" or "mmap_load_400MB"
    if want(key) then
      local r = common.run_child(string.format("%s %q --load-child %q %s", common.lua_cmd(), arg[0], path, mode))
      emit(key .. ".rss_mb", r.rss_mb)
    end
  end
  os.remove(path)
end

-- One epoch of the Fashion-MNIST demo's training (examples/fashion_mnist.lua: same net,
-- AdamW, one-cycle schedule, batch 128), then test accuracy. The epoch runs EPOCH_RUNS times
-- from the same seed (the same work each time) and the median time is the result: one epoch
-- is a single sample of a noisy machine.
local EPOCH_RUNS = 3
if not opts.quick and want("fashion_mnist_epoch") then
  local data = torch.utils.data
  local train_set = torch.datasets.FashionMNIST(opts.data, { train = true })
  local test_set = torch.datasets.FashionMNIST(opts.data, { train = false })
  local function once()
    torch.manual_seed(1)
    local loader = data.DataLoader(train_set, { batch_size = 128, shuffle = true, drop_last = true })
    local test_loader = data.DataLoader(test_set, { batch_size = 1000 })
    local model = nn.Sequential(
      nn.Conv2d(1, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(16, 32, 3, { padding = 1, bias = false }), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    local opt = torch.optim.AdamW(model:parameters(), { lr = 0.003, weight_decay = 1e-4 })
    local sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.003, { epochs = 1, steps_per_epoch = #loader })
    local t0 = now()
    model:train()
    for x, y in loader:iter() do
      local loss = F.cross_entropy(model(x), y)
      opt:zero_grad()
      loss:backward()
      opt:step()
      sched:step()
    end
    local elapsed = now() - t0
    model:eval()
    local correct, n = 0, 0
    torch.no_grad(function()
      for x, y in test_loader:iter() do
        correct = correct + model(x):argmax(2):eq(y):sum():item()
        n = n + y:size(1)
      end
    end)
    return elapsed, correct / n
  end
  local times, acc = {}, nil
  for r = 1, EPOCH_RUNS do
    local t, a = once()
    times[r], acc = t, acc or a
  end
  emit("fashion_mnist_epoch", common.median(times))
  emit("fashion_mnist_epoch.acc", acc)
end
