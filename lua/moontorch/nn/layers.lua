-- The layers of torch.nn (SPEC section 4) that are not convolutions, pooling or recurrent:
-- Linear, Embedding, BatchNorm1d/2d, LayerNorm, Dropout, Dropout2d, the activations, Flatten
-- and Identity. Convolutions and pooling are in layers_conv.lua, LSTM/GRU in rnn.lua.
--
-- Each class follows its PyTorch 1.13 counterpart: constructor arguments in PyTorch's order
-- (positionally, or by name in one trailing options table: nn.Linear(3, 4, {bias = false})),
-- parameter and buffer names, registration order (so state dicts are key-for-key PyTorch's),
-- the default initialisation with the same draws from the default generator (so
-- torch.manual_seed(0); nn.Linear(3, 4) holds PyTorch's numbers), and extra_repr. Dims and
-- indices are 1-based as everywhere in moontorch (Flatten's start_dim defaults to 2, Embedding
-- ids and padding_idx are in 1..num_embeddings). Parameters are float32 unless opts.dtype =
-- "float64". PyTorch's momentum=None (a cumulative average in batch norm) is momentum = false.
local torch = require "moontorch"
local Module = require("moontorch.nn.module").Module
local Parameter = require("moontorch.nn.module").Parameter
local F = require "moontorch.nn.functional"
local init = require "moontorch.nn.initializers"
local U = require "moontorch.nn.layers_util"

local L = {}

-- ------------------------------------------------------------------------------------------
-- Linear

local Linear = Module:extend("Linear")
L.Linear = Linear

function Linear:__init(...)
  local a = U.bind("Linear", { "in_features", "out_features", "bias", "dtype", required = 2,
    defaults = { bias = true } }, ...)
  self.in_features = U.int("Linear", "in_features", a.in_features, 0)
  self.out_features = U.int("Linear", "out_features", a.out_features, 0)
  local dtype = U.dtype("Linear", a.dtype)
  self.weight = Parameter(torch.empty(self.out_features, self.in_features, { dtype = dtype }))
  if a.bias then
    self.bias = Parameter(torch.empty(self.out_features, { dtype = dtype }))
  else
    self:register_parameter("bias", nil)
  end
  self:reset_parameters()
end

function Linear:reset_parameters() U.reset_fan_in(self.weight, self.bias) end

-- Forwards read registered parameters and buffers from self._values directly: Module's
-- __index is a function, one metamethod call per read (registered names never exist in the
-- class chain). Plain fields fall back to self.name when nil there.
function Linear:forward(x)
  local v = self._values
  return F.linear(x, v.weight, v.bias)
end

function Linear:extra_repr()
  return string.format("in_features=%d, out_features=%d, bias=%s", self.in_features, self.out_features,
    U.repr(self.bias ~= nil))
end

-- ------------------------------------------------------------------------------------------
-- Embedding

local Embedding = Module:extend("Embedding")
L.Embedding = Embedding

local EMBEDDING_ARGS = { "num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type",
  "scale_grad_by_freq", "sparse", "_weight", "_freeze", "dtype", required = 2,
  defaults = { norm_type = 2.0, scale_grad_by_freq = false, sparse = false, _freeze = false } }

function Embedding:__init(...)
  local a = U.bind("Embedding", EMBEDDING_ARGS, ...)
  local n = U.int("Embedding", "num_embeddings", a.num_embeddings, 0)
  self.num_embeddings = n
  self.embedding_dim = U.int("Embedding", "embedding_dim", a.embedding_dim, 0)
  if a.padding_idx ~= nil then
    -- 1-based; a negative index counts from the end, as in PyTorch
    local p = math.tointeger(a.padding_idx)
    if not p or p == 0 or p > n or p < -n then
      error(string.format("moontorch.nn.Embedding: padding_idx must be within num_embeddings (1..%d or -%d..-1), got %s",
        n, n, tostring(a.padding_idx)), 0)
    end
    self.padding_idx = p < 0 and n + p + 1 or p
  end
  if a.scale_grad_by_freq or a.sparse then
    error("moontorch.nn.Embedding: scale_grad_by_freq and sparse gradients are not supported", 0)
  end
  self.max_norm, self.norm_type = a.max_norm, a.norm_type
  self.scale_grad_by_freq, self.sparse = false, false
  if a._weight ~= nil then
    local w = a._weight
    if not torch.is_tensor(w) or w:dim() ~= 2 or w:size(1) ~= n or w:size(2) ~= self.embedding_dim then
      error(string.format("moontorch.nn.Embedding: _weight must be a [%d, %d] tensor", n, self.embedding_dim), 0)
    end
    self.weight = Parameter(w, not a._freeze)
  else
    self.weight = Parameter(torch.empty(n, self.embedding_dim, { dtype = U.dtype("Embedding", a.dtype) }))
    self:reset_parameters()
  end
end

function Embedding:reset_parameters()
  init.normal_(self.weight)
  if self.padding_idx then init.zeros_(self.weight[self.padding_idx]) end
end

function Embedding:forward(ids)
  return F.embedding(ids, self.weight, self.padding_idx, self.max_norm, self.norm_type)
end

function Embedding:extra_repr()
  local s = string.format("%d, %d", self.num_embeddings, self.embedding_dim)
  if self.padding_idx then s = s .. ", padding_idx=" .. self.padding_idx end
  if self.max_norm ~= nil then s = s .. ", max_norm=" .. U.repr(self.max_norm) end
  if self.norm_type ~= 2 then s = s .. ", norm_type=" .. U.repr(self.norm_type) end
  return s
end

-- nn.Embedding.from_pretrained(embeddings[, {freeze = true, padding_idx, max_norm, norm_type}]): an Embedding
-- holding `embeddings` (a 2-D tensor, used as the weight itself), frozen unless freeze = false.
function Embedding.from_pretrained(embeddings, opts)
  opts = opts or {}
  if not torch.is_tensor(embeddings) or embeddings:dim() ~= 2 then
    error("moontorch.nn.Embedding.from_pretrained: embeddings must be a 2-D tensor", 0)
  end
  local freeze = opts.freeze
  if freeze == nil then freeze = true end
  return Embedding(embeddings:size(1), embeddings:size(2),
    { padding_idx = opts.padding_idx, max_norm = opts.max_norm, norm_type = opts.norm_type, _weight = embeddings,
      _freeze = freeze })
end

-- ------------------------------------------------------------------------------------------
-- Batch norm. BatchNorm1d and BatchNorm2d differ only in the input ranks they accept.

local BATCHNORM_ARGS = { "num_features", "eps", "momentum", "affine", "track_running_stats", "dtype",
  required = 1, defaults = { eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true } }

local function batchnorm_init(self, cname, ...)
  local a = U.bind(cname, BATCHNORM_ARGS, ...)
  local n = U.int(cname, "num_features", a.num_features, 0)
  local dtype = U.dtype(cname, a.dtype)
  self.num_features, self.eps = n, a.eps
  if a.momentum ~= false and type(a.momentum) ~= "number" then
    error("moontorch.nn." .. cname .. ": momentum must be a number, or false for a cumulative average", 0)
  end
  self.momentum = a.momentum or nil -- nil: cumulative moving average (PyTorch's None)
  self.affine, self.track_running_stats = a.affine and true or false, a.track_running_stats and true or false
  if self.affine then
    self.weight = Parameter(torch.ones(n, { dtype = dtype }))
    self.bias = Parameter(torch.zeros(n, { dtype = dtype }))
  else
    self:register_parameter("weight", nil)
    self:register_parameter("bias", nil)
  end
  if self.track_running_stats then
    self:register_buffer("running_mean", torch.zeros(n, { dtype = dtype }))
    self:register_buffer("running_var", torch.ones(n, { dtype = dtype }))
    self:register_buffer("num_batches_tracked", torch.tensor(0, { dtype = "int64" }))
  else
    self:register_buffer("running_mean", nil)
    self:register_buffer("running_var", nil)
    self:register_buffer("num_batches_tracked", nil)
  end
end

local function batchnorm_methods(cls, cname, ranks, expected)
  function cls:__init(...) batchnorm_init(self, cname, ...) end

  function cls:reset_running_stats()
    if self.track_running_stats then
      self.running_mean:zero_()
      self.running_var:fill_(1)
      self.num_batches_tracked:zero_()
    end
  end

  function cls:reset_parameters()
    self:reset_running_stats()
    if self.affine then
      init.ones_(self.weight)
      init.zeros_(self.bias)
    end
  end

  -- PyTorch's _BatchNorm.forward: statistics of the batch in training (updating the running
  -- ones when they are tracked), the running ones in evaluation when there are any.
  function cls:forward(x)
    if not torch.is_tensor(x) or not ranks[x:dim()] then
      error(string.format("moontorch.nn.%s: expected %s input (got %s)", cname, expected,
        torch.is_tensor(x) and (x:dim() .. "D") or type(x)), 0)
    end
    local v, training = self._values, self.training
    local momentum, eps, track = v.momentum, v.eps, v.track_running_stats
    if momentum == nil then momentum = self.momentum end
    if eps == nil then eps = self.eps end
    if track == nil then track = self.track_running_stats end
    local factor = momentum or 0.0
    local tracked = v.num_batches_tracked
    if training and track and tracked ~= nil then
      tracked:add_(1)
      if momentum == nil then factor = 1.0 / tracked:item() end
    end
    local running_mean, running_var = v.running_mean, v.running_var
    local use_batch_stats = training or (running_mean == nil and running_var == nil)
    local pass_stats = not training or track
    return F.batch_norm(x, pass_stats and running_mean or nil, pass_stats and running_var or nil,
      v.weight, v.bias, use_batch_stats, factor, eps)
  end

  function cls:extra_repr()
    return string.format("%d, %s", self.num_features,
      U.fields(self, { "eps", "momentum", "affine", "track_running_stats" }))
  end
  return cls
end

L.BatchNorm1d = batchnorm_methods(Module:extend("BatchNorm1d"), "BatchNorm1d", { [2] = true, [3] = true },
  "2D or 3D")
L.BatchNorm2d = batchnorm_methods(Module:extend("BatchNorm2d"), "BatchNorm2d", { [4] = true }, "4D")

-- ------------------------------------------------------------------------------------------
-- LayerNorm

local LayerNorm = Module:extend("LayerNorm")
L.LayerNorm = LayerNorm

function LayerNorm:__init(...)
  local a = U.bind("LayerNorm", { "normalized_shape", "eps", "elementwise_affine", "dtype", required = 1,
    defaults = { eps = 1e-5, elementwise_affine = true } }, ...)
  local shape = a.normalized_shape
  if type(shape) ~= "table" then shape = { shape } end
  local s = {}
  for i = 1, #shape do s[i] = U.int("LayerNorm", "normalized_shape", shape[i], 0) end
  self.normalized_shape, self.eps = s, a.eps
  self.elementwise_affine = a.elementwise_affine and true or false
  local dtype = U.dtype("LayerNorm", a.dtype)
  if self.elementwise_affine then
    self.weight = Parameter(torch.ones(s, { dtype = dtype }))
    self.bias = Parameter(torch.zeros(s, { dtype = dtype }))
  else
    self:register_parameter("weight", nil)
    self:register_parameter("bias", nil)
  end
end

function LayerNorm:reset_parameters()
  if self.elementwise_affine then
    init.ones_(self.weight)
    init.zeros_(self.bias)
  end
end

function LayerNorm:forward(x)
  return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
end

function LayerNorm:extra_repr()
  return string.format("%s, %s", U.repr(self.normalized_shape), U.fields(self, { "eps", "elementwise_affine" }))
end

-- ------------------------------------------------------------------------------------------
-- Dropout: zeroes with probability p (whole channels for Dropout2d) in training mode only.

local function dropout_class(cname, fn)
  local cls = Module:extend(cname)
  function cls:__init(...)
    local a = U.bind(cname, { "p", "inplace", defaults = { p = 0.5, inplace = false } }, ...)
    self.p = U.probability(cname, a.p)
    self.inplace = a.inplace and true or false
  end
  function cls:forward(x)
    local v = self._values
    local p, inplace = v.p, v.inplace
    if p == nil then p = self.p end
    if inplace == nil then inplace = self.inplace end
    return F[fn](x, p, self.training, inplace)
  end
  function cls:extra_repr() return U.fields(self, { "p", "inplace" }) end
  return cls
end

L.Dropout = dropout_class("Dropout", "dropout")
L.Dropout2d = dropout_class("Dropout2d", "dropout2d")

-- ------------------------------------------------------------------------------------------
-- Activations

-- A layer without state that applies fn(x, self) (args: the constructor's bind spec).
local function activation(cname, args, forward, extra_repr)
  local cls = Module:extend(cname)
  function cls:__init(...)
    local a = U.bind(cname, args, ...)
    for _, name in ipairs(args) do self[name] = a[name] end
  end
  cls.forward = forward
  cls.extra_repr = extra_repr
  return cls
end

local function inplace_repr(self) return self.inplace and "inplace=True" or "" end

L.ReLU = activation("ReLU", { "inplace", defaults = { inplace = false } },
  function(self, x)
    local inplace = self._values.inplace
    if inplace == nil then inplace = self.inplace end
    return F.relu(x, inplace)
  end, inplace_repr)

L.LeakyReLU = activation("LeakyReLU", { "negative_slope", "inplace", defaults = { negative_slope = 1e-2, inplace = false } },
  function(self, x) return F.leaky_relu(x, self.negative_slope, self.inplace) end,
  function(self) return "negative_slope=" .. U.repr(self.negative_slope) .. (self.inplace and ", inplace=True" or "") end)

L.GELU = activation("GELU", { "approximate", defaults = { approximate = "none" } },
  function(self, x) return F.gelu(x, self.approximate) end,
  function(self) return "approximate=" .. U.repr(self.approximate) end)

L.SiLU = activation("SiLU", { "inplace", defaults = { inplace = false } },
  function(self, x) return F.silu(x, self.inplace) end, inplace_repr)

L.Tanh = activation("Tanh", {}, function(_, x) return F.tanh(x) end)
L.Sigmoid = activation("Sigmoid", {}, function(_, x) return F.sigmoid(x) end)

-- Softmax / LogSoftmax: dim is 1-based; without one, PyTorch's legacy choice (the first dim of
-- a 0-, 1- or 3-D input, else the second).
local function softmax_dim(self, x)
  if self.dim ~= nil then return self.dim end
  local d = x:dim()
  return (d == 0 or d == 1 or d == 3) and 1 or 2
end

L.Softmax = activation("Softmax", { "dim" },
  function(self, x) return F.softmax(x, softmax_dim(self, x)) end,
  function(self) return "dim=" .. U.repr(self.dim) end)

L.LogSoftmax = activation("LogSoftmax", { "dim" },
  function(self, x) return F.log_softmax(x, softmax_dim(self, x)) end,
  function(self) return "dim=" .. U.repr(self.dim) end)

-- Flatten(start_dim = 2, end_dim = -1): 1-based, so the batch dim stays, as PyTorch's default.
L.Flatten = activation("Flatten", { "start_dim", "end_dim", defaults = { start_dim = 2, end_dim = -1 } },
  function(self, x)
    local v = self._values
    local s, e = v.start_dim, v.end_dim
    if s == nil then s = self.start_dim end
    if e == nil then e = self.end_dim end
    return x:flatten(s, e)
  end,
  function(self) return U.fields(self, { "start_dim", "end_dim" }) end)

-- Identity ignores its constructor arguments, as PyTorch's does.
local Identity = Module:extend("Identity")
L.Identity = Identity
function Identity:__init() end
function Identity:forward(x) return x end

return L
