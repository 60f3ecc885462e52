-- moontorch: deep learning for Lua 5.4 with a C core.
--
--   local torch = require "moontorch"
--   local x = torch.randn(2, 3)
--   print((x * 2 + 1):sum(2))
--
-- Dims and indices are 1-based (t:size(1), t[1], argmax results); negative dims count from the
-- end. Tensors are userdata: `==` compares identity (Lua's __eq must give one boolean), so use
-- t:eq(u) for the elementwise comparison and torch.equal(a, b) for "same shape and values".
-- Nothing here sets a global.
local core = require "moontorch.core"

local torch = {}

-- dtype constants: the strings themselves, under PyTorch's names and aliases.
local DTYPES = {
  float32 = "float32", float = "float32",
  float64 = "float64", double = "float64",
  float16 = "float16", half = "float16",
  bfloat16 = "bfloat16",
  int64 = "int64", long = "int64",
  int32 = "int32", int = "int32",
  int16 = "int16", short = "int16",
  int8 = "int8",
  uint8 = "uint8",
  bool = "bool",
}
for name, dtype in pairs(DTYPES) do torch[name] = dtype end

-- Creation functions and friends from the C module.
for name, fn in pairs(core) do
  if name:sub(1, 1) ~= "_" then torch[name] = fn end
end

require("moontorch.tensor").install(torch, core)
-- requires_grad / grad setters, torch.no_grad / enable_grad (SPEC section 3).
require("moontorch.autograd").install(torch, core)
-- torch.save / load / serialize / deserialize, torch.OrderedDict / is_ordered.
require("moontorch.serialization").install(torch, core)

-- The methods table every tensor shares: `function torch.Tensor:foo() ... end` adds t:foo().
torch.Tensor = core._methods

-- Every math method is also a function: torch.exp(t) = t:exp(), torch.add(a, b) = a:add(b).
-- Methods about one tensor's own storage or Lua-side conversion stay methods only.
local METHOD_ONLY = {
  size = true, stride = true, dim = true, ndimension = true, nelement = true,
  is_contiguous = true, element_size = true, storage_offset = true, data_ptr = true,
  item = true, tolist = true, to = true, contiguous = true,
  float = true, double = true, half = true, bfloat16 = true, long = true, int = true,
  short = true, char = true, byte = true, bool = true,
  copy_ = true, fill_ = true, zero_ = true,
  uniform_ = true, normal_ = true, bernoulli_ = true, random_ = true,
  new_zeros = true, new_ones = true, new_empty = true, new_full = true, new_tensor = true,
}
for name, fn in pairs(core._methods) do
  if torch[name] == nil and not METHOD_ONLY[name] then torch[name] = fn end
end

function torch.get_default_dtype() return "float32" end

torch._VERSION = "0.1.0"

-- Subpackages that require "moontorch" themselves load on first use (torch.nn), so that
-- loading them here is no require loop. Whole-model files load without touching torch.nn first
-- (serialization.lua hooks lua/moontorch/nn/model_io.lua in).
local SUBPACKAGES = {
  nn = "moontorch.nn", optim = "moontorch.optim", jit = "moontorch.jit",
  utils = "moontorch.utils", datasets = "moontorch.datasets",
  distributed = "moontorch.distributed",
}
setmetatable(torch, {
  __index = function(t, k)
    local name = SUBPACKAGES[k]
    if name == nil then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})

return torch
