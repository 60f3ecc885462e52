-- torch.nn.parallel (SPEC section 9): DistributedDataParallel, data-parallel training over MPI.
--
--   torch.distributed.init_process_group({backend = "mpi"})       -- under mpirun -np N
--   local ddp = nn.parallel.DistributedDataParallel(model)         -- rank 0's weights everywhere
--   local optimizer = torch.optim.SGD(ddp:parameters(), {lr = 0.1})
--   for x, y in loader:iter() do                                   -- each rank its own shard
--     optimizer:zero_grad()
--     F.cross_entropy(ddp(x), y):backward()                        -- grads averaged over ranks
--     optimizer:step()                                             -- the same step on every rank
--   end
--   if dist.get_rank() == 0 then torch.save(ddp:state_dict(), "model.pt") end  -- "module." keys
--
-- The wrapped model is the child "module" (ddp.module), so state-dict keys carry the "module."
-- prefix, as PyTorch's do (nn.utils.strip_prefix(sd, "module.") loads them into a plain model).
-- At construction every rank checks that all ranks wrap the same architecture, then takes rank
-- 0's parameters and buffers. The reducer (src/dist_reducer.c) hooks into autograd: during each
-- backward it all-reduces the gradients in buckets of about bucket_cap_mb on a communication
-- thread, while the rest of backward runs, and leaves them averaged over the ranks when
-- backward returns. So N ranks on 1/N of a batch each end with the gradients, and after the
-- optimizer step the parameters, that one process gets on the whole batch (for a loss that is
-- a mean over the batch).
local torch = require "moontorch"
local module = require "moontorch.nn.module"

local parallel = {}

local Module, is_module = module.Module, module.is_module
local NAME = "nn.parallel.DistributedDataParallel"

local fail = require("moontorch.errors").raiser("moontorch.")

local typename = require("moontorch.errors").typename

local DDP = Module:extend("DistributedDataParallel")
parallel.DistributedDataParallel = DDP

local OPTIONS = { bucket_cap_mb = true, broadcast_buffers = true }

-- A number for the architecture (the dtypes and shapes of the parameters and buffers, in
-- order), so that ranks can compare theirs with two small all-reduces.
local DTYPE_CODE = { float32 = 1, float64 = 2, float16 = 3, bfloat16 = 4, int64 = 5, int32 = 6, int16 = 7,
  int8 = 8, uint8 = 9, bool = 10 }

local function fingerprint(tensors)
  local h, numel = 17, 0
  local function mix(v) h = (h * 31 + v) & 0x3fffffffffff end
  for _, t in ipairs(tensors) do
    mix(DTYPE_CODE[t.dtype] or 0)
    mix(t:dim())
    for _, s in ipairs(t.shape) do mix(s) end
    numel = numel + t:numel()
  end
  return h, numel
end

-- Every rank raises the same error when any two ranks differ (nobody is left waiting).
local function check_same_everywhere(dist, params, buffers)
  local hp, np = fingerprint(params)
  local hb, nb = fingerprint(buffers)
  local mine = torch.tensor({ #params, np, hp, #buffers, nb, hb }, { dtype = "int64" })
  local hi, lo = mine:clone(), mine:clone()
  dist.all_reduce(hi, { op = "max" })
  dist.all_reduce(lo, { op = "min" })
  if not torch.equal(hi, lo) then
    fail(NAME, "the ranks wrap different models (rank %d has %d parameters with %d elements and %d buffers "
      .. "with %d elements; the shapes or dtypes differ on some rank): build the same model on every rank",
      dist.get_rank(), #params, np, #buffers, nb)
  end
end

local function requiring_grad(params)
  local out = {}
  for _, p in ipairs(params) do
    if p.requires_grad then out[#out + 1] = p end
  end
  return out
end

-- DistributedDataParallel(model[, {bucket_cap_mb = 25, broadcast_buffers = true}])
--   bucket_cap_mb      the size of one all-reduce of gradients, in MiB (PyTorch's default)
--   broadcast_buffers  before each forward in training mode (with grad enabled), rank 0's
--                      buffers (BatchNorm's running statistics) replace the others', as PyTorch
function DDP:__init(model, opts)
  if not is_module(model) then fail(NAME, "bad argument #1 (module expected, got %s)", typename(model)) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" or is_module(opts) or torch.is_tensor(opts) then
    fail(NAME, "bad argument #2 (options table expected, got %s)", typename(opts))
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then fail(NAME, "unknown option '%s' (known: broadcast_buffers, bucket_cap_mb)", tostring(k)) end
  end
  local cap = opts.bucket_cap_mb
  if cap == nil then cap = 25 end
  if type(cap) ~= "number" or not (cap > 0) or cap == math.huge then
    fail(NAME, "bucket_cap_mb must be a positive number, got %s", tostring(cap))
  end
  local broadcast_buffers = opts.broadcast_buffers
  if broadcast_buffers == nil then broadcast_buffers = true end
  if type(broadcast_buffers) ~= "boolean" then
    fail(NAME, "broadcast_buffers must be a boolean, got %s", typename(broadcast_buffers))
  end
  local dist = torch.distributed
  if not dist.is_initialized() then
    fail(NAME, "the default process group is not initialized: call torch.distributed.init_process_group"
      .. "({backend = \"mpi\"}) first, in a script started by mpirun")
  end
  local params = model:parameters()
  if #requiring_grad(params) == 0 then
    fail(NAME, "DistributedDataParallel is not needed when a module doesn't have any parameter that requires a gradient")
  end

  local buffers = model:buffers()
  check_same_everywhere(dist, params, buffers)
  -- Rank 0's state everywhere: all parameters (frozen ones too) and all buffers.
  torch.no_grad(function()
    for _, t in ipairs(params) do dist.broadcast(t, 0) end
    for _, t in ipairs(buffers) do dist.broadcast(t, 0) end
  end)

  self.module = model
  self._ddp = {
    dist = dist,
    bucket_cap_bytes = math.floor(cap * 1024 * 1024),
    broadcast_buffers = broadcast_buffers,
    sync = true, -- false inside no_sync
  }
  self:_make_reducer()
end

-- A reducer over the parameters that require grad (again after to() replaced them).
function DDP:_make_reducer()
  local d = self._ddp
  if d.reducer then d.reducer:close() end
  d.params = requiring_grad(self.module:parameters())
  d.reducer = d.dist._new_reducer(NAME, d.params, d.bucket_cap_bytes)
end

-- forward(...): the wrapped model's forward. As in PyTorch, whether the coming backward
-- averages gradients is decided here: on, except for a forward inside no_sync.
function DDP:forward(...)
  local d = self._ddp
  if not d.dist.is_initialized() then
    fail(NAME .. ".forward", "the default process group was destroyed; DDP needs it")
  end
  d.reducer:set_enabled(d.sync)
  if d.broadcast_buffers and self.training and torch.is_grad_enabled() and d.dist.get_world_size() > 1 then
    local buffers = self.module:buffers()
    if #buffers > 0 then
      torch.no_grad(function()
        for _, b in ipairs(buffers) do d.dist.broadcast(b, 0) end
      end)
    end
  end
  return self.module(...)
end

-- no_sync(fn) runs fn() with gradient averaging off for the forwards inside it (their backwards
-- accumulate local gradients only; the next synchronised backward averages the accumulated
-- sums), and returns what fn returns. Without fn it turns averaging off and returns a value
-- that turns it back on when closed, for Lua 5.4's to-be-closed variables:
--   do
--     local _ <close> = ddp:no_sync()
--     ddp(x1):backward()                      -- local only
--   end
--   ddp(x2):backward()                        -- averages the sum of both
function DDP:no_sync(fn)
  local d = self._ddp
  local before = d.sync
  d.sync = false
  local function restore() d.sync = before end
  if fn == nil then
    return setmetatable({}, { __close = restore, __name = "moontorch.nn.parallel.no_sync" })
  end
  if type(fn) ~= "function" then
    restore()
    fail(NAME .. ".no_sync", "bad argument #1 (function expected, got %s)", typename(fn))
  end
  local res = table.pack(pcall(fn))
  restore()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- comm_stats(): what the reducer has done so far, {comm_seconds = time the communication
-- thread spent in all-reduces, bytes = bytes all-reduced, buckets = all-reduces}.
function DDP:comm_stats() return self._ddp.reducer:stats() end

-- to(dtype) converts the wrapped model (a dtype change makes new parameter tensors), then
-- rebuilds the reducer over the new ones.
function DDP:to(dtype)
  local before = self._ddp.params
  Module.to(self, dtype)
  local now = requiring_grad(self.module:parameters())
  local changed = #now ~= #before
  for i = 1, #now do
    if now[i] ~= before[i] then changed = true end
  end
  if changed then self:_make_reducer() end
  return self
end

return parallel
