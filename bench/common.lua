-- Helpers shared by bench/moontorch_bench.lua: clock, median, output, RSS, FLOP counts.
local M = {}

-- Wall clock with microsecond resolution: LuaSocket's gettime (Debian lua-socket). os.clock
-- would count CPU time, which OpenBLAS's threads inflate.
local ok, socket = pcall(require, "socket")
if not ok then
  io.stderr:write("bench: needs LuaSocket for a fine wall clock (apt-get install lua-socket)\n")
  os.exit(1)
end
M.now = socket.gettime

function M.median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

function M.emit(key, value)
  io.write(key, "\t", string.format("%.9g", value), "\n")
  io.stdout:flush()
end

-- This process's peak resident set (VmHWM), in MB (10^6 bytes, as the goal's "data size").
function M.peak_rss_mb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 / 1e6 end
  end
  error("no VmHWM in /proc/self/status")
end

-- The workloads --only accepts (the keys of the timings; the .gflops / .rss_mb / .acc extras
-- come with their workload).
M.WORKLOADS = { "sgemm_1024", "mlp_train_b128", "cnn_train_b64", "cnn_infer_b256", "cnn_infer_b1",
  "small_add_x1000", "save_400MB", "load_400MB", "mmap_load_400MB", "fashion_mnist_epoch" }

-- "--only a,b" -> set {a = true, b = true}; an unknown name is an error listing the valid ones.
function M.parse_only(list)
  local known, set = {}, {}
  for _, w in ipairs(M.WORKLOADS) do known[w] = true end
  for name in (list or ""):gmatch("[^,%s]+") do
    if not known[name] then
      error("--only: unknown workload '" .. name .. "' (one of: " .. table.concat(M.WORKLOADS, ", ") .. ")", 0)
    end
    set[name] = true
  end
  if next(set) == nil then error("--only needs NAME[,NAME...]", 0) end
  return set
end

function M.parse_args(argv)
  local o = { quick = false, data = "/usr/share/datasets/fashion-mnist", tmp = os.getenv("TMPDIR") or "/tmp" }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--quick" then o.quick = true
    elseif a == "--data" then o.data = argv[i + 1]; i = i + 1
    elseif a == "--tmp" then o.tmp = argv[i + 1]; i = i + 1
    elseif a == "--load-child" then o.load_child, o.mode = argv[i + 1], argv[i + 2]; i = i + 2
    elseif a == "--only" then o.only = M.parse_only(argv[i + 1]); i = i + 1
    else error("unknown argument " .. a) end
    i = i + 1
  end
  return o
end

-- The interpreter running us (arg[-1]), to start the load child with.
function M.lua_cmd()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return string.format("%q", arg[i])
end

-- Runs a child of this script and returns its key/value lines as a table.
function M.run_child(cmd)
  local p = assert(io.popen(cmd))
  local r = {}
  for line in p:lines() do
    local k, v = line:match("^(%S+)\t(%S+)$")
    if k then r[k] = tonumber(v) end
  end
  assert(p:close(), "load child failed: " .. cmd)
  return r
end

-- FLOPs of one training step: 3x the forward pass's multiply-adds x2 (forward, grad input,
-- grad weight), counting matmuls and convs only. bench/pytorch_bench.py uses the same counts.
function M.mlp_flops(b)
  return 3 * 2 * b * (784 * 512 + 512 * 256 + 256 * 10)
end

function M.cnn_train_flops(b)
  local fwd = 2 * b * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10)
  return 3 * fwd
end

return M
