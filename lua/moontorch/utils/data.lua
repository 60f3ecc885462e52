-- torch.utils.data (SPEC section 8): datasets, samplers and the DataLoader.
--
--   local data = torch.utils.data
--   local ds = data.TensorDataset(x, y)             -- x: [N, ...], y: [N]
--   local x1, y1 = ds:get(1)                        -- or ds[1] == {x1, y1}; #ds == N
--   local loader = data.DataLoader(ds, {batch_size = 64, shuffle = true, drop_last = false})
--   for xb, yb in loader:iter() do ... end          -- or: for xb, yb in loader do ... end
--   #loader                                         -- batches per pass
--
-- Datasets. Anything with a length (#ds) whose samples are ds:get(i) (several values: the
-- fields of a sample) or ds[i] (one value; a sequence table {x, y} stands for the fields
-- x, y), for i in 1..#ds: a TensorDataset, torch.datasets.FashionMNIST, a Subset, a tensor
-- (its rows), a plain Lua array of samples, or a table of your own. A dataset may also have
-- get_batch(idx), which gets a 1-based int64 index tensor and returns the whole collated batch;
-- the loader then calls it once per batch instead of fetching and stacking samples one by one
-- (TensorDataset gathers each tensor with one index_select).
--
-- Batches. Without collate_fn, samples are collated by default_collate: tensors are stacked
-- along a new first dim, integers become an int64 tensor, other numbers a float64 one (as
-- PyTorch's default_collate does), booleans a bool tensor, strings a list; tables are collated
-- field by field. The loader returns the fields as separate values. A collate_fn gets the list
-- of samples (a sample with several fields as a sequence table) and the loader returns what it
-- returns.
--
-- Shuffling and random numbers, as PyTorch 1.13's single-process DataLoader draws them, so that
-- with the same seed a moontorch loop sees the same batches, and then the same dropout masks,
-- as a PyTorch one:
--   1. each pass first draws one 64-bit number from the loader's generator (the default one when
--      none is given): PyTorch's base seed for its workers, unused here but drawn all the same;
--   2. with shuffle = true and no generator, the sampler draws a seed from the default generator
--      and permutes with a fresh Generator seeded with it; with a generator, it permutes with
--      that one.
-- So a run resumed from torch.get_rng_state() (and generator:get_state(), when one is given)
-- saved at the end of an epoch shuffles its next epochs exactly as the uninterrupted run does.
--
-- Iteration: loader:iter() starts a pass and returns its iterator. `for ... in loader do`
-- works too: the loader is called as the iterator, and a call with no previous batch (the
-- loop's first) starts a new pass, so each loop is one full pass. That pass lives in the
-- loader; use loader:iter() for two passes at once.
local torch = require "moontorch"
local core = require "moontorch.core"

local is_tensor, mtype = torch.is_tensor, math.type

local data = {}

local fail = require("moontorch.errors").raiser("moontorch.utils.data.")

local typename = require("moontorch.errors").typename

local function shape_str(t) return "[" .. table.concat(t.shape, ", ") .. "]" end

-- Options tables: unknown keys are errors (a misspelt batch_size would silently be 1).
local function check_options(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or is_tensor(opts) then fail(fname, "options must be a table, got %s", typename(opts)) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      fail(fname, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
  end
  return opts
end

local function is_generator(g) return typename(g) == "moontorch.Generator" end

local function check_generator(fname, g)
  if g ~= nil and not is_generator(g) then fail(fname, "generator must be a torch.Generator, got %s", typename(g)) end
  return g
end

-- A class: Class(...) calls Class.new(self, ...) on a fresh instance; instances find their
-- methods in the class, and integer keys go to Class.__index_int when it exists.
local function class(name)
  local C = { __name = "moontorch.utils.data." .. name }
  C.__index = function(self, k)
    if mtype(k) == "integer" and C.__index_int then return C.__index_int(self, k) end
    return C[k]
  end
  return setmetatable(C, {
    __call = function(cls, ...)
      local self = setmetatable({}, cls)
      cls.new(self, ...)
      return self
    end,
  })
end

-- A 1-based position i into n items (negative counts from the end), or an error.
local function position(fname, i, n)
  local j = i < 0 and n + 1 + i or i
  if j < 1 or j > n then
    fail(fname, "index %d is out of range for a dataset of %d samples", i, n)
  end
  return j
end

-- Indices as a 1-D int64 tensor: from a tensor of integers or a Lua array.
local function index_tensor(fname, what, idx)
  if is_tensor(idx) then
    if idx:dim() ~= 1 then fail(fname, "%s must be 1-D, got shape %s", what, shape_str(idx)) end
    if idx.dtype ~= "int64" then
      if idx.dtype:find("float") or idx.dtype == "bool" then
        fail(fname, "%s must hold integers, got %s", what, idx.dtype)
      end
      idx = idx:long()
    end
    return idx
  end
  if type(idx) ~= "table" then fail(fname, "%s must be a tensor or an array of integers, got %s", what, typename(idx)) end
  for i = 1, #idx do
    if mtype(idx[i]) ~= "integer" then fail(fname, "%s[%d] is %s, not an integer", what, i, tostring(idx[i])) end
  end
  return torch.tensor(idx, { dtype = "int64" }):view(#idx) -- view: an empty array gives shape [0]
end

-- ---------------------------------------------------------------------------------------------
-- Fetching samples and batches

-- The fields of sample i: a table {x, y, n = 2} for several, or the one value itself.
local function fetch(dataset, i)
  if not is_tensor(dataset) and type(dataset.get) == "function" then
    local s = table.pack(dataset:get(i))
    if s.n == 1 then return s[1] end
    s.n = nil
    return s
  end
  local s = dataset[i]
  if s == nil then fail("DataLoader", "sample %d of the dataset is nil", i) end
  return s
end

-- The dataset's batch function (dataset, idx) -> values, or nil.
local function batch_fetcher(dataset)
  if is_tensor(dataset) then
    return function(t, idx) return t:index_select(1, idx) end
  end
  if type(dataset.get_batch) == "function" then return dataset.get_batch end
  return nil
end

local function dataset_len(fname, dataset)
  local tp = type(dataset)
  if tp ~= "table" and tp ~= "userdata" then fail(fname, "the dataset must be a table or tensor, got %s", typename(dataset)) end
  local ok, n = pcall(function() return #dataset end)
  if not ok or mtype(n) ~= "integer" then fail(fname, "the dataset (%s) has no length (#dataset)", typename(dataset)) end
  return n
end

-- ---------------------------------------------------------------------------------------------
-- default_collate

local function is_sequence(t)
  local n = #t
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local collate

local function collate_tensors(items, where)
  for i = 2, #items do
    if not is_tensor(items[i]) then
      fail("default_collate", "%s: sample %d has a %s where sample 1 has a tensor", where, i, typename(items[i]))
    end
  end
  local ok, res = pcall(torch.stack, items, 1)
  if not ok then
    local first = items[1]
    for i = 2, #items do
      local t = items[i]
      if shape_str(t) ~= shape_str(first) then
        fail("default_collate", "%s: sample %d has shape %s, sample 1 has %s", where, i, shape_str(t), shape_str(first))
      end
    end
    fail("default_collate", "%s: %s", where, tostring(res))
  end
  return res
end

local function collate_numbers(items, where)
  local all_int = true
  for i, v in ipairs(items) do
    if type(v) ~= "number" then
      fail("default_collate", "%s: sample %d has a %s where sample 1 has a number", where, i, typename(v))
    end
    if mtype(v) ~= "integer" then all_int = false end
  end
  return torch.tensor(items, { dtype = all_int and "int64" or "float64" }):view(#items)
end

local function collate_tables(items, where)
  local first = items[1]
  local out = {}
  for k in pairs(first) do
    local column = {}
    for i, s in ipairs(items) do
      if type(s) ~= "table" or is_tensor(s) then
        fail("default_collate", "%s: sample %d has a %s where sample 1 has a table", where, i, typename(s))
      end
      if s[k] == nil then fail("default_collate", "%s: sample %d has no field %s", where, i, tostring(k)) end
      column[i] = s[k]
    end
    out[k] = collate(column, where .. "[" .. (type(k) == "string" and string.format("%q", k) or tostring(k)) .. "]")
  end
  for i = 2, #items do
    for k in pairs(items[i]) do
      if first[k] == nil then fail("default_collate", "%s: sample %d has a field %s that sample 1 lacks", where, i, tostring(k)) end
    end
  end
  return out
end

collate = function(items, where)
  local first = items[1]
  if is_tensor(first) then return collate_tensors(items, where) end
  local tp = type(first)
  if tp == "number" then return collate_numbers(items, where) end
  if tp == "boolean" or tp == "string" then
    for i, v in ipairs(items) do
      if type(v) ~= tp then
        fail("default_collate", "%s: sample %d has a %s where sample 1 has a %s", where, i, typename(v), tp)
      end
    end
    if tp == "boolean" then return torch.tensor(items, { dtype = "bool" }):view(#items) end
    return table.move(items, 1, #items, 1, {})
  end
  if tp == "table" then return collate_tables(items, where) end
  fail("default_collate", "%s: cannot collate a %s", where, typename(first))
end

-- Collates a list of samples into a batch. Samples with several fields (sequence tables) give
-- one value per field; a single tensor, number or table gives one value.
function data.default_collate(samples)
  if type(samples) ~= "table" or #samples == 0 then
    fail("default_collate", "expected a non-empty list of samples, got %s", typename(samples))
  end
  local out = collate(samples, "batch")
  local first = samples[1]
  if type(first) == "table" and not is_tensor(first) and is_sequence(first) then
    return table.unpack(out, 1, #first)
  end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- TensorDataset

local TensorDataset = class("TensorDataset")
data.TensorDataset = TensorDataset

-- TensorDataset(t1, t2, ...): sample i is the i-th row of each tensor (all share dim 1).
function TensorDataset:new(...)
  local n = select("#", ...)
  if n == 0 then fail("TensorDataset", "expected at least one tensor") end
  local tensors = { ... }
  for i = 1, n do
    local t = tensors[i]
    if not is_tensor(t) then fail("TensorDataset", "argument #%d is a %s, not a tensor", i, typename(t)) end
    if t:dim() == 0 then fail("TensorDataset", "tensor %d is 0-dim; each tensor needs a first dim of samples", i) end
    if t:size(1) ~= tensors[1]:size(1) then
      fail("TensorDataset", "tensor %d has %d rows (size of dim 1) but tensor 1 has %d", i, t:size(1), tensors[1]:size(1))
    end
  end
  self.tensors = tensors
end

function TensorDataset:__len() return self.tensors[1]:size(1) end

-- Sample i: the i-th row (a view) of each tensor, as separate values.
function TensorDataset:get(i)
  if mtype(i) ~= "integer" then fail("TensorDataset", "index must be an integer, got %s", tostring(i)) end
  local tensors = self.tensors
  i = position("TensorDataset", i, tensors[1]:size(1))
  if #tensors == 1 then return tensors[1][i] end
  local rows = {}
  for k, t in ipairs(tensors) do rows[k] = t[i] end
  return table.unpack(rows, 1, #tensors)
end

-- ds[i]: {row of tensor 1, row of tensor 2, ...}.
function TensorDataset:__index_int(i) return { self:get(i) } end

-- The rows idx (1-based int64) of every tensor, gathered with one index_select each.
function TensorDataset:get_batch(idx)
  local tensors = self.tensors
  if #tensors == 1 then return tensors[1]:index_select(1, idx) end
  local out = {}
  for k, t in ipairs(tensors) do out[k] = t:index_select(1, idx) end
  return table.unpack(out, 1, #tensors)
end

-- ---------------------------------------------------------------------------------------------
-- Subset and random_split

local Subset = class("Subset")
data.Subset = Subset

local function subset_get_batch(self, idx)
  return self._fetch_batch(self.dataset, self.indices:index_select(1, idx))
end

-- Subset(dataset, indices): the samples of dataset at the given (1-based) indices.
function Subset:new(dataset, indices)
  local n = dataset_len("Subset", dataset)
  self.dataset = dataset
  self.indices = index_tensor("Subset", "indices", indices)
  if self.indices:numel() > 0 then
    local lo, hi = self.indices:min():item(), self.indices:max():item()
    if lo < 1 or hi > n then
      fail("Subset", "index %d is out of range for a dataset of %d samples", lo < 1 and lo or hi, n)
    end
  end
  local fetch_batch = batch_fetcher(dataset)
  if fetch_batch then
    self._fetch_batch = fetch_batch
    self.get_batch = subset_get_batch
  end
end

function Subset:__len() return self.indices:numel() end

function Subset:get(i)
  if mtype(i) ~= "integer" then fail("Subset", "index must be an integer, got %s", tostring(i)) end
  local j = self.indices[position("Subset", i, self.indices:numel())]:item()
  local s = fetch(self.dataset, j)
  if type(s) == "table" and not is_tensor(s) and is_sequence(s) and getmetatable(s) == nil then
    return table.unpack(s, 1, #s)
  end
  return s
end

function Subset:__index_int(i)
  local s = table.pack(self:get(i))
  if s.n == 1 then return s[1] end
  s.n = nil
  return s
end

-- random_split(dataset, lengths[, generator]): non-overlapping Subsets of the given lengths
-- (integers summing to #dataset, or fractions summing to 1), by one randperm as PyTorch 1.13
-- draws it (from the default generator unless one is given).
function data.random_split(dataset, lengths, generator)
  local n = dataset_len("random_split", dataset)
  check_generator("random_split", generator)
  if type(lengths) ~= "table" or #lengths == 0 then
    fail("random_split", "lengths must be a non-empty array of numbers, got %s", typename(lengths))
  end
  local sum = 0
  for i, l in ipairs(lengths) do
    if type(l) ~= "number" or l < 0 then fail("random_split", "lengths[%d] must be a non-negative number, got %s", i, tostring(l)) end
    sum = sum + l
  end
  local sizes = {}
  if math.abs(sum - 1) <= 1e-9 and sum <= 1 then
    -- Fractions: floor each share, then hand out the remainder round-robin.
    local total = 0
    for i, f in ipairs(lengths) do
      if f > 1 then fail("random_split", "fraction lengths[%d] = %s is not in [0, 1]", i, tostring(f)) end
      sizes[i] = math.floor(n * f)
      total = total + sizes[i]
    end
    for r = 0, n - total - 1 do
      local k = r % #sizes + 1
      sizes[k] = sizes[k] + 1
    end
  else
    for i, l in ipairs(lengths) do
      if mtype(l) ~= "integer" then
        fail("random_split", "lengths[%d] = %s is not an integer (and the lengths are not fractions summing to 1)", i, tostring(l))
      end
      sizes[i] = l
    end
    if sum ~= n then fail("random_split", "the lengths sum to %d but the dataset has %d samples", sum, n) end
  end
  local perm = core._randperm(n, generator)
  local out, offset = {}, 0
  for i, len in ipairs(sizes) do
    out[i] = Subset(dataset, perm:narrow(1, offset + 1, len))
    offset = offset + len
  end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- Samplers: #sampler, and sampler:indices() giving one pass's 1-based indices (an int64
-- tensor or a Lua array). DistributedSampler and custom samplers follow the same protocol.

local SequentialSampler = class("SequentialSampler")
data.SequentialSampler = SequentialSampler

-- SequentialSampler(dataset or n): 1, 2, ..., n.
function SequentialSampler:new(source)
  if mtype(source) == "integer" then
    if source < 0 then fail("SequentialSampler", "n must be non-negative, got %d", source) end
  else
    dataset_len("SequentialSampler", source)
  end
  self.data_source = source
end

function SequentialSampler:__len()
  local s = self.data_source
  return mtype(s) == "integer" and s or #s
end

function SequentialSampler:indices()
  local n = #self
  if n == 0 then return torch.zeros(0, { dtype = "int64" }) end
  return torch.arange(1, n + 1, { dtype = "int64" })
end

local RandomSampler = class("RandomSampler")
data.RandomSampler = RandomSampler

-- RandomSampler(dataset[, {generator = g}]): a random permutation of 1..#dataset per pass.
function RandomSampler:new(source, opts)
  opts = check_options("RandomSampler", opts, { generator = true })
  dataset_len("RandomSampler", source)
  self.data_source = source
  self.generator = check_generator("RandomSampler", opts.generator)
end

function RandomSampler:__len() return #self.data_source end

function RandomSampler:indices()
  local g = self.generator or torch.Generator(core._random_seed())
  self._n = #self.data_source
  return core._randperm(self._n, g)
end

-- Called by the loader where the pass has used up the indices. PyTorch's RandomSampler then
-- draws one more permutation and yields none of it (its `randperm(n)[:num_samples % n]`); with
-- a generator of the user's, that draw is part of where the next pass starts.
function RandomSampler:done()
  if self.generator and self._n then core._randperm(self._n, self.generator) end
end

local DistributedSampler = class("DistributedSampler")
data.DistributedSampler = DistributedSampler

local DIST_OPTIONS = { num_replicas = true, rank = true, shuffle = true, seed = true, drop_last = true }

-- DistributedSampler(dataset[, {num_replicas, rank, shuffle = true, seed = 0, drop_last = false}]):
-- this rank's share of the dataset, as PyTorch 1.13's sampler of the same name picks it, index
-- for index (1-based here). Each pass permutes 1..#dataset with a Generator seeded with
-- seed + epoch (the same permutation on every rank: call set_epoch(e) before each epoch, or
-- every epoch repeats the first one's order), then pads the list by repeating it from its start
-- to a multiple of num_replicas (drop_last = false) or cuts it down to one (drop_last = true),
-- and keeps every num_replicas-th index from position rank (0-based, as torch.distributed
-- numbers ranks). num_replicas and rank default to the process group's world size and rank.
function DistributedSampler:new(dataset, opts)
  local F = "DistributedSampler"
  opts = check_options(F, opts, DIST_OPTIONS)
  local n = dataset_len(F, dataset)
  local replicas, rank = opts.num_replicas, opts.rank
  if replicas == nil or rank == nil then
    local dist = torch.distributed
    if not dist.is_initialized() then
      fail(F, "%s not given and the default process group is not initialized: pass {num_replicas = N, rank = R}, "
        .. "or call torch.distributed.init_process_group() first (under mpirun)",
        replicas == nil and rank == nil and "num_replicas and rank are" or (replicas == nil and "num_replicas is" or "rank is"))
    end
    if replicas == nil then replicas = dist.get_world_size() end
    if rank == nil then rank = dist.get_rank() end
  end
  if mtype(replicas) ~= "integer" or replicas < 1 then
    fail(F, "num_replicas must be a positive integer, got %s", tostring(replicas))
  end
  if mtype(rank) ~= "integer" or rank < 0 or rank >= replicas then
    fail(F, "Invalid rank %s, rank should be in the interval [0, %d]", tostring(rank), replicas - 1)
  end
  local function flag(name, default)
    local v = opts[name]
    if v == nil then return default end
    if type(v) ~= "boolean" then fail(F, "%s must be a boolean, got %s", name, typename(v)) end
    return v
  end
  local seed = opts.seed
  if seed == nil then seed = 0 end
  if mtype(seed) ~= "integer" then fail(F, "seed must be an integer, got %s", tostring(seed)) end
  self.dataset, self.num_replicas, self.rank, self.seed = dataset, replicas, rank, seed
  self.shuffle, self.drop_last, self.epoch = flag("shuffle", true), flag("drop_last", false), 0
  -- PyTorch's counts: drop_last cuts the tail that does not divide evenly.
  if self.drop_last and n % replicas ~= 0 then
    self.num_samples = -((replicas - n) // replicas) -- ceil((n - replicas) / replicas): 0 when n < replicas
  else
    self.num_samples = -(-n // replicas)
  end
  self.total_size = self.num_samples * replicas
  self._n = n
end

-- set_epoch(e): the next passes permute with seed + e (PyTorch's sampler.set_epoch).
function DistributedSampler:set_epoch(epoch)
  if mtype(epoch) ~= "integer" then fail("DistributedSampler.set_epoch", "epoch must be an integer, got %s", tostring(epoch)) end
  self.epoch = epoch
end

-- The samples this rank sees per pass.
function DistributedSampler:__len() return self.num_samples end

function DistributedSampler:__tostring()
  return string.format("moontorch.utils.data.DistributedSampler(rank %d of %d, %d of %d samples, shuffle=%s, seed=%d, epoch=%d)",
    self.rank, self.num_replicas, self.num_samples, #self.dataset, tostring(self.shuffle), self.seed, self.epoch)
end

-- One pass's 1-based indices for this rank (an int64 tensor of #self entries).
function DistributedSampler:indices()
  local n, total, replicas = #self.dataset, self.total_size, self.num_replicas
  if n ~= self._n then -- the counts were computed for the old size
    fail("DistributedSampler", "the dataset changed size (%d samples, was %d); make a new sampler", n, self._n)
  end
  if total == 0 then return torch.zeros(0, { dtype = "int64" }) end
  local all
  if self.shuffle then
    all = core._randperm(n, torch.Generator(self.seed + self.epoch))
  else
    all = torch.arange(1, n + 1, { dtype = "int64" })
  end
  if total > n then -- pad by repeating the list from its start
    local copies = {}
    for i = 1, -(-total // n) do copies[i] = all end
    all = torch.cat(copies, 1)
  end
  -- Rows of num_replicas consecutive positions; column rank + 1 holds positions rank, rank + R, ...
  return all:narrow(1, 1, total):view(self.num_samples, replicas):select(2, self.rank + 1):contiguous()
end

-- ---------------------------------------------------------------------------------------------
-- DataLoader

local DataLoader = class("DataLoader")
data.DataLoader = DataLoader

local LOADER_OPTIONS = {
  batch_size = true, shuffle = true, sampler = true, drop_last = true, generator = true, collate_fn = true,
}

-- DataLoader(dataset[, {batch_size = 1, shuffle = false, sampler = nil, drop_last = false,
--                       generator = nil, collate_fn = nil}])
function DataLoader:new(dataset, opts)
  local F = "DataLoader"
  opts = check_options(F, opts, LOADER_OPTIONS)
  dataset_len(F, dataset)
  local bs = opts.batch_size
  if bs == nil then bs = 1 end
  if mtype(bs) ~= "integer" or bs < 1 then fail(F, "batch_size must be a positive integer, got %s", tostring(bs)) end
  local function flag(name)
    local v = opts[name]
    if v ~= nil and type(v) ~= "boolean" then fail(F, "%s must be a boolean, got %s", name, typename(v)) end
    return v == true
  end
  local shuffle, drop_last = flag("shuffle"), flag("drop_last")
  local generator = check_generator(F, opts.generator)
  if opts.collate_fn ~= nil and type(opts.collate_fn) ~= "function" then
    fail(F, "collate_fn must be a function, got %s", typename(opts.collate_fn))
  end
  local sampler = opts.sampler
  if sampler ~= nil then
    if shuffle then fail(F, "sampler and shuffle = true cannot be combined (the sampler chooses the order)") end
    if type(sampler) ~= "table" or type(sampler.indices) ~= "function" then
      fail(F, "sampler must have an indices() method, got %s", typename(sampler))
    end
  elseif shuffle then
    sampler = RandomSampler(dataset, { generator = generator })
  else
    sampler = SequentialSampler(dataset)
  end
  self.dataset, self.batch_size, self.drop_last = dataset, bs, drop_last
  self.generator, self.sampler, self.collate_fn = generator, sampler, opts.collate_fn
  self._fetch_batch = not opts.collate_fn and batch_fetcher(dataset) or nil
end

-- Batches per pass.
function DataLoader:__len()
  local n, bs = #self.sampler, self.batch_size
  if self.drop_last then return n // bs end
  return (n + bs - 1) // bs
end

function DataLoader:__tostring()
  return string.format("moontorch.utils.data.DataLoader(%d samples, batch_size=%d, %d batches)", #self.sampler,
    self.batch_size, #self)
end

-- The batch of the samples at idx (a slice of the pass's indices).
function DataLoader:_batch(idx)
  if self._fetch_batch then return self._fetch_batch(self.dataset, idx) end
  local samples = {}
  for k, i in ipairs(idx:tolist()) do samples[k] = fetch(self.dataset, i) end
  return (self.collate_fn or data.default_collate)(samples)
end

-- Starts a pass and returns its iterator: each call gives the next batch's values, then nil.
-- A sampler's optional done() runs where PyTorch's BatchSampler finds its sampler exhausted:
-- while filling a last, partial batch, or else on the call that ends the pass.
function DataLoader:iter()
  core._random_seed(self.generator) -- PyTorch's per-pass base seed: keeps the generator in step
  local sampler = self.sampler
  local indices = index_tensor("DataLoader", "the sampler's indices", sampler:indices())
  local n, bs = indices:numel(), self.batch_size
  local stop = self.drop_last and n - n % bs or n
  local pos, exhausted = 0, false
  local function exhaust()
    if exhausted then return end
    exhausted = true
    if type(sampler.done) == "function" then sampler:done() end
  end
  return function()
    if pos >= stop then
      exhaust()
      return nil
    end
    local len = math.min(bs, stop - pos)
    local idx = indices:narrow(1, pos + 1, len)
    pos = pos + len
    if len < bs then exhaust() end
    return self:_batch(idx)
  end
end

local function end_of_pass(self, first, ...)
  if first == nil then self._pass = nil end
  return first, ...
end

-- `for ... in loader do`: Lua calls the loader as the iterator with the previous batch's first
-- value; a call without one is a loop's first, which starts a new pass.
function DataLoader:__call(_, previous)
  if previous == nil or not self._pass then self._pass = self:iter() end
  return end_of_pass(self, self._pass())
end

return data
