-- torch.distributed (SPEC section 9): collectives over MPI, for data-parallel training started as
--   mpirun -np N lua5.4 train.lua
--
--   local dist = torch.distributed
--   dist.init_process_group({backend = "mpi"})       -- once per process
--   local rank, world = dist.get_rank(), dist.get_world_size()   -- rank is 0-based, as MPI's
--   dist.all_reduce(t)                                -- in place: the sum over ranks
--   dist.all_reduce(t, {op = "avg"})                  -- or dist.ReduceOp.AVG; "max", "min"
--   dist.broadcast(t, 0)                              -- rank 0's values everywhere
--   dist.barrier()
--   dist.destroy_process_group()                      -- at the end (MPI cannot start again)
--
-- The C side (src/dist.c, binding/lmt_dist.c) does the communication; this file checks the
-- arguments and the process group's state, so every misuse is an error that names the function
-- and says what to do. The tensors must have the same shape and dtype on every rank (each rank
-- only sees its own, as with PyTorch): a mismatch is undefined there and here.
local torch = require "moontorch"
local core = require "moontorch.core"

local dist = {}

local mtype = math.type

local fail = require("moontorch.errors").raiser("moontorch.distributed.")

local typename = require("moontorch.errors").typename

-- PyTorch's torch.distributed.ReduceOp, as the strings all_reduce takes.
dist.ReduceOp = { SUM = "sum", AVG = "avg", MAX = "max", MIN = "min" }
local OPS = { sum = true, avg = true, max = true, min = true }

-- "fresh" until init_process_group, "up" until destroy_process_group, then "destroyed".
local state = "fresh"

-- Closed before MPI goes down: a reducer's communication thread must not outlive MPI.
local reducers = setmetatable({}, { __mode = "k" })

local function built_with_mpi() return type(core._dist_available) == "function" and core._dist_available() end

local HOW = "call torch.distributed.init_process_group({backend = \"mpi\"}) first, in a script started by "
  .. "mpirun (mpirun -np 2 lua5.4 script.lua)"

local function need_group(fname)
  if state == "up" then return end
  if state == "destroyed" then
    fail(fname, "the default process group was destroyed (destroy_process_group); MPI cannot start again in this process")
  end
  fail(fname, "Default process group has not been initialized: %s", HOW)
end

-- is_available(): whether this moontorch was built with MPI.
function dist.is_available() return built_with_mpi() == true end
dist.is_mpi_available = dist.is_available

function dist.is_initialized() return state == "up" end

-- "mpi" once initialised (the only backend).
function dist.get_backend()
  need_group("get_backend")
  return "mpi"
end

local INIT_OPTIONS = { backend = true, world_size = true, rank = true }

-- init_process_group([{backend = "mpi"}]) (or init_process_group("mpi")): joins the job that
-- mpirun started. MPI numbers the ranks and counts the world; world_size / rank, when given,
-- must agree with it (PyTorch's MPI backend takes them from MPI the same way).
function dist.init_process_group(opts)
  local F = "init_process_group"
  if type(opts) == "string" then opts = { backend = opts } end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then fail(F, "bad argument #1 (options table or backend name expected, got %s)", typename(opts)) end
  for k in pairs(opts) do
    if not INIT_OPTIONS[k] then fail(F, "unknown option '%s' (known: backend, rank, world_size)", tostring(k)) end
  end
  local backend = opts.backend
  if backend == nil then backend = "mpi" end
  if type(backend) ~= "string" then fail(F, "backend must be a string, got %s", typename(backend)) end
  if backend:lower() ~= "mpi" then
    fail(F, "backend '%s' is not supported: moontorch communicates over MPI (use {backend = \"mpi\"} and start "
      .. "the script with mpirun)", backend)
  end
  if state == "up" then fail(F, "trying to initialize the default process group twice!") end
  if state == "destroyed" then
    fail(F, "the default process group was destroyed in this process, and MPI cannot be initialized again")
  end
  if not built_with_mpi() then
    fail(F, "this moontorch was built without MPI (install Debian's libopenmpi-dev and openmpi-bin, then rebuild)")
  end
  for _, k in ipairs({ "world_size", "rank" }) do
    local v = opts[k]
    if v ~= nil and (mtype(v) ~= "integer" or v < 0) then fail(F, "%s must be a non-negative integer, got %s", k, tostring(v)) end
  end
  local ok, err = pcall(core._dist_init)
  if not ok then
    -- The core says why (e.g. not started by mpirun); say it under this function's name.
    local why = tostring(err):gsub("^moontorch%.[%w_.]+: ", "")
    fail(F, "%s", why)
  end
  state = "up"
  local world, rank = core._dist_world_size(), core._dist_rank()
  if (opts.world_size ~= nil and opts.world_size ~= world) or (opts.rank ~= nil and opts.rank ~= rank) then
    fail(F, "world_size = %s, rank = %s were given, but mpirun started this process as rank %d of %d",
      tostring(opts.world_size), tostring(opts.rank), rank, world)
  end
end

function dist.get_rank()
  need_group("get_rank")
  return core._dist_rank()
end

function dist.get_world_size()
  need_group("get_world_size")
  return core._dist_world_size()
end

local function check_tensor(fname, t)
  if not torch.is_tensor(t) then fail(fname, "bad argument #1 (tensor expected, got %s)", typename(t)) end
end

-- all_reduce(t[, {op = "sum"}]) (the op may also come alone: all_reduce(t, dist.ReduceOp.MAX)):
-- replaces t, on every rank, by the elementwise reduction of all ranks' t. "avg" divides the
-- sum by the world size. Returns t.
function dist.all_reduce(t, opts)
  local F = "all_reduce"
  check_tensor(F, t)
  local op = "sum"
  if type(opts) == "string" then
    op = opts
  elseif type(opts) == "table" then
    for k in pairs(opts) do
      if k ~= "op" then fail(F, "unknown option '%s' (known: op)", tostring(k)) end
    end
    op = opts.op or "sum"
  elseif opts ~= nil then
    fail(F, "bad argument #2 (options table {op = ...} or op name expected, got %s)", typename(opts))
  end
  if type(op) ~= "string" or not OPS[op:lower()] then
    fail(F, "unknown op %s (one of \"sum\", \"avg\", \"max\", \"min\", or torch.distributed.ReduceOp.SUM/AVG/MAX/MIN)",
      type(op) == "string" and "'" .. op .. "'" or typename(op))
  end
  need_group(F)
  core._dist_all_reduce(t, op:lower())
  return t
end

-- broadcast(t, src): t takes rank src's values (src is 0-based), in place, on every rank. Returns t.
function dist.broadcast(t, src)
  local F = "broadcast"
  check_tensor(F, t)
  if mtype(src) ~= "integer" then fail(F, "bad argument #2 (src must be an integer rank, got %s)", tostring(src)) end
  need_group(F)
  local world = core._dist_world_size()
  if src < 0 or src >= world then
    fail(F, "src %d is out of range: ranks are 0..%d (0-based, as MPI numbers them)", src, world - 1)
  end
  core._dist_broadcast(t, src)
  return t
end

-- barrier(): returns once every rank has called it.
function dist.barrier()
  need_group("barrier")
  core._dist_barrier()
end

-- destroy_process_group(): closes the DDP reducers still open, then shuts MPI down. Call it
-- once at the end; collectives are errors afterwards.
function dist.destroy_process_group()
  need_group("destroy_process_group")
  for r in pairs(reducers) do r:close() end
  state = "destroyed"
  core._dist_finalize()
end

-- (For nn.parallel) a gradient reducer over params, closed with the process group.
function dist._new_reducer(fname, params, bucket_cap_bytes)
  need_group(fname)
  local r = core._ddp_new(params, bucket_cap_bytes)
  reducers[r] = true
  return r
end

return dist
