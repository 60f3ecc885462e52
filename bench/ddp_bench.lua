-- Data-parallel step time (issue 10; docs/performance.md, "Data-parallel training"): one
-- training step of the benchmark's conv net (cnn_train_b64 of bench/moontorch_bench.lua) on a
-- global batch of 64, in one process and on 2 MPI ranks with DistributedDataParallel (32 per
-- rank), and the communication share of a DDP step.
--
--   make bench-ddp                              (builds, then runs this with no arguments)
--   lua5.4 bench/ddp_bench.lua [--steps N] [--warmup N] [--markdown]
--       runs every configuration below as a child process and prints the table
--   lua5.4 bench/ddp_bench.lua --one [--batch N] [--steps N] [--warmup N] [--bucket-mb X]
--       (internal) one configuration: plain when started alone, DDP under mpirun; prints
--       "key<TAB>value" lines (rank 0)
--
-- Configurations: 1 process with 1 and with 2 threads (the whole 2-core machine), DDP on 1 rank
-- (the reducer's own cost) and on 2 ranks with 1 thread each (the ranks share the cores, so
-- each gets one: MOONTORCH_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1): with the default 25 MB
-- buckets (the net's 1.69 MB of gradients make 2: a first one of at most 1 MB, as PyTorch's,
-- then the rest), with 0.25 MB ones, and with Open MPI's mpi_yield_when_idle = 1 (a rank
-- waiting in MPI yields its core instead of polling it). The step is zero_grad, forward,
-- cross-entropy, backward (DDP: gradients all-reduced in buckets on the communication thread
-- while backward goes on), SGD with momentum; its time is the median over --steps steps after
-- --warmup. The communication share is the all-reduce of one step's
-- gradients, timed alone with the ranks starting together, over the step time. The reducer's
-- own count (reducer:stats(), the communication thread's time inside MPI per step) is shown
-- too: it overlaps backward, and includes waiting for the slower rank. CPU / step is rank 0's
-- process CPU time (os.clock, all threads) per measured step, barriers included: what a step
-- costs in work, which other load on the machine changes less than the step's wall time.
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local now, median = common.now, common.median

local o = { steps = 30, warmup = 5, batch = 64, one = false, markdown = false, bucket_mb = 25 }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--one" then o.one = true
    elseif a == "--markdown" then o.markdown = true
    elseif a == "--bucket-mb" then
      o.bucket_mb = tonumber(arg[i + 1] or "")
      if not o.bucket_mb or o.bucket_mb <= 0 then error("--bucket-mb needs a positive number", 0) end
      i = i + 1
    elseif a == "--steps" or a == "--warmup" or a == "--batch" then
      o[a:sub(3)] = math.tointeger(tonumber(arg[i + 1] or ""))
      if not o[a:sub(3)] or o[a:sub(3)] < 1 then error(a .. " needs a positive integer", 0) end
      i = i + 1
    else
      error("ddp_bench.lua: unknown argument " .. a .. " (--steps N, --warmup N, --markdown)", 0)
    end
    i = i + 1
  end
end

-- ---------------------------------------------------------------------------------------------
-- One configuration

if o.one then
  local torch = require "moontorch"
  local nn, F, dist = torch.nn, torch.nn.functional, torch.distributed
  local under_mpirun = os.getenv("OMPI_COMM_WORLD_SIZE") ~= nil
  local rank, world = 0, 1
  if under_mpirun then
    dist.init_process_group({ backend = "mpi" })
    rank, world = dist.get_rank(), dist.get_world_size()
  end
  torch.manual_seed(rank)
  local model = nn.Sequential(
    nn.Conv2d(1, 32, 3, { padding = 1 }), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, { padding = 1 }), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
  local net = under_mpirun and nn.parallel.DistributedDataParallel(model, { bucket_cap_mb = o.bucket_mb }) or model
  local opt = torch.optim.SGD(net:parameters(), { lr = 0.01, momentum = 0.9 })
  local x, y = torch.randn(o.batch, 1, 28, 28), torch.randint(1, 11, { o.batch })
  local function step()
    opt:zero_grad()
    F.cross_entropy(net(x), y):backward()
    opt:step()
  end
  for _ = 1, o.warmup do step() end
  local before = under_mpirun and net:comm_stats()
  local times, cpu0 = {}, os.clock()
  for i = 1, o.steps do
    if under_mpirun then dist.barrier() end -- every step starts together: no carried-over skew
    local t0 = now()
    step()
    times[i] = now() - t0
  end
  local s, cpu = median(times), (os.clock() - cpu0) / o.steps
  -- The all-reduce alone: the gradients' bytes in one float32 tensor, every rank starting
  -- together, so this is the transfer without waiting for a slower rank.
  local ar
  if under_mpirun then
    local n = 0
    for _, p in ipairs(model:parameters()) do n = n + p:numel() end
    local flat, t = torch.ones(n), {}
    for i = 1, o.steps do
      dist.barrier()
      local t0 = now()
      dist.all_reduce(flat, { op = "avg" })
      t[i] = now() - t0
    end
    ar = median(t)
  end
  if rank == 0 then
    common.emit("world", world)
    common.emit("step_seconds", s)
    common.emit("cpu_seconds", cpu) -- this process's CPU time per step, all its threads
    if under_mpirun then
      local after = net:comm_stats()
      common.emit("comm_seconds", (after.comm_seconds - before.comm_seconds) / o.steps)
      common.emit("allreduce_seconds", ar)
      common.emit("comm_mb", (after.bytes - before.bytes) / o.steps / 1e6)
      common.emit("buckets", (after.buckets - before.buckets) / o.steps)
      common.emit("num_buckets", after.num_buckets)
    end
  end
  if under_mpirun then dist.destroy_process_group() end
  return
end

-- ---------------------------------------------------------------------------------------------
-- The driver

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local lua = common.lua_cmd()
local script = q(arg[0])
local args = string.format("--one --steps %d --warmup %d", o.steps, o.warmup)

local CONFIGS = {
  { name = "1 process, 1 thread", threads = 1, np = nil, batch = 64 },
  { name = "1 process, 2 threads", threads = 2, np = nil, batch = 64 },
  { name = "DDP, 1 rank x 1 thread", threads = 1, np = 1, batch = 64 },
  { name = "DDP, 2 ranks x 1 thread", threads = 1, np = 2, batch = 32 },
  { name = "DDP, 2 ranks x 1 thread, 0.25 MB buckets", threads = 1, np = 2, batch = 32, bucket_mb = 0.25 },
  { name = "DDP, 2 ranks x 1 thread, yield_when_idle", threads = 1, np = 2, batch = 32, yield = true },
}

local function first_line(cmd)
  local p = io.popen(cmd)
  local l = p and p:read("l")
  if p then p:close() end
  return l or "?"
end
-- The load matters: the ranks share the cores with whatever else runs.
io.stderr:write(string.format("machine: %s cores, load average %s; %d measured steps after %d warm-up steps per configuration\n",
  first_line("nproc"), first_line("cut -d' ' -f1-3 /proc/loadavg"), o.steps, o.warmup))
local rows = {}
for _, c in ipairs(CONFIGS) do
  io.stderr:write("running: " .. c.name .. "...\n")
  local env = string.format("MOONTORCH_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d OMPI_MCA_mpi_yield_when_idle=%d", c.threads,
    c.threads, c.yield and 1 or 0)
  local launch = c.np and string.format("mpirun --allow-run-as-root --oversubscribe -np %d ", c.np) or ""
  local r = common.run_child(string.format("env %s %s%s %s %s --batch %d --bucket-mb %s", env, launch, lua, script, args,
    c.batch, c.bucket_mb or 25))
  r.name = c.name
  rows[#rows + 1] = r
end

local base = rows[1].step_seconds
local head = { "configuration", "step (ms)", "samples/s", "vs 1 process, 1 thread", "CPU / step, rank 0 (ms)",
  "MB all-reduced / step in buckets",
  "all-reduce alone (ms)", "comm thread in MPI / step (ms)", "comm share" }
local lines = {}
for _, r in ipairs(rows) do
  lines[#lines + 1] = {
    r.name, string.format("%.1f", r.step_seconds * 1e3), string.format("%.0f", 64 / r.step_seconds),
    string.format("%.2fx", base / r.step_seconds), string.format("%.1f", r.cpu_seconds * 1e3),
    r.comm_mb and string.format("%.2f in %d", r.comm_mb, r.num_buckets) or "-",
    r.allreduce_seconds and string.format("%.2f", r.allreduce_seconds * 1e3) or "-",
    r.comm_seconds and string.format("%.1f", r.comm_seconds * 1e3) or "-",
    r.allreduce_seconds and string.format("%.1f%%", 100 * r.allreduce_seconds / r.step_seconds) or "-",
  }
end
if o.markdown then
  print("| " .. table.concat(head, " | ") .. " |")
  print("|" .. string.rep("---|", #head))
  for _, l in ipairs(lines) do print("| " .. table.concat(l, " | ") .. " |") end
else
  local widths = {}
  for i, h in ipairs(head) do widths[i] = #h end
  for _, l in ipairs(lines) do
    for i, v in ipairs(l) do widths[i] = math.max(widths[i], #v) end
  end
  local function row(l)
    local cells = {}
    for i, v in ipairs(l) do cells[i] = (i == 1 and "%-" or "%") .. widths[i] .. "s" end
    return string.format(table.concat(cells, "  "), table.unpack(l))
  end
  print(row(head))
  for _, l in ipairs(lines) do print(row(l)) end
end
