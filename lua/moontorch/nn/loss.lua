-- Loss modules of torch.nn: MSELoss, L1Loss, SmoothL1Loss, CrossEntropyLoss, NLLLoss, BCELoss
-- and BCEWithLogitsLoss, as PyTorch 1.13's: constructor arguments in PyTorch's order
-- (positionally, or named in one trailing options table: nn.CrossEntropyLoss({label_smoothing =
-- 0.1}), nn.NLLLoss(w, {ignore_index = 1})), class weights registered as the buffer "weight"
-- (and "pos_weight"), so they are in the state dict as in PyTorch, and reduction = "mean" |
-- "sum" | "none" (or PyTorch's deprecated size_average / reduce). Class targets and
-- ignore_index are 1-based like every index in moontorch; ignore_index = -100 (the default)
-- means target value -100.
local torch = require "moontorch"
local Module = require("moontorch.nn.module").Module
local F = require "moontorch.nn.functional"
local U = require "moontorch.nn.layers_util"

local Loss = {}

local REDUCTIONS = { mean = true, sum = true, none = true }

-- PyTorch's _Reduction.legacy_get_string, then a check of the result.
local function reduction_of(cname, a)
  local r = a.reduction
  if a.size_average ~= nil or a.reduce ~= nil then
    local size_average, reduce = a.size_average, a.reduce
    if size_average == nil then size_average = true end
    if reduce == nil then reduce = true end
    r = reduce and (size_average and "mean" or "sum") or "none"
  end
  if not REDUCTIONS[r] then
    error(string.format("moontorch.nn.%s: reduction must be 'mean', 'sum' or 'none', got %s", cname, U.repr(r)), 0)
  end
  return r
end

local function check_weight(cname, what, w)
  if w ~= nil and not torch.is_tensor(w) then
    error(string.format("moontorch.nn.%s: %s must be a tensor, got %s", cname, what, type(w)), 0)
  end
  return w
end

local function check_index(cname, v)
  local i = math.tointeger(v)
  if not i then error(string.format("moontorch.nn.%s: ignore_index must be an integer, got %s", cname, tostring(v)), 0) end
  return i
end

-- Defines a loss class: `args` is its bind spec (PyTorch's parameters), init(self, a) stores
-- what forward needs, forward(self, input, target) computes.
local function loss_class(cname, args, init, forward)
  local cls = Module:extend(cname)
  args.defaults = args.defaults or {}
  args.defaults.reduction = args.defaults.reduction or "mean"
  function cls:__init(...)
    local a = U.bind(cname, args, ...)
    self.reduction = reduction_of(cname, a)
    if init then init(self, a) end
  end
  cls.forward = forward
  Loss[cname] = cls
  return cls
end

loss_class("MSELoss", { "size_average", "reduce", "reduction" }, nil,
  function(self, input, target) return F.mse_loss(input, target, { reduction = self.reduction }) end)

loss_class("L1Loss", { "size_average", "reduce", "reduction" }, nil,
  function(self, input, target) return F.l1_loss(input, target, { reduction = self.reduction }) end)

loss_class("SmoothL1Loss", { "size_average", "reduce", "reduction", "beta", defaults = { beta = 1.0 } },
  function(self, a)
    if type(a.beta) ~= "number" or a.beta < 0 then
      error("moontorch.nn.SmoothL1Loss: beta must be a non-negative number, got " .. tostring(a.beta), 0)
    end
    self.beta = a.beta
  end,
  function(self, input, target)
    return F.smooth_l1_loss(input, target, { reduction = self.reduction, beta = self.beta })
  end)

loss_class("CrossEntropyLoss", { "weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing",
  defaults = { ignore_index = -100, label_smoothing = 0.0 } },
  function(self, a)
    self:register_buffer("weight", check_weight("CrossEntropyLoss", "weight", a.weight))
    self.ignore_index = check_index("CrossEntropyLoss", a.ignore_index)
    if type(a.label_smoothing) ~= "number" or a.label_smoothing < 0 or a.label_smoothing > 1 then
      error("moontorch.nn.CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got " ..
        tostring(a.label_smoothing), 0)
    end
    self.label_smoothing = a.label_smoothing
  end,
  -- input: logits [N, C] or [N, C, d1, ...] (or [C]); target: 1-based classes or probabilities
  function(self, input, target)
    return F.cross_entropy(input, target, self.weight, { ignore_index = self.ignore_index,
      reduction = self.reduction, label_smoothing = self.label_smoothing })
  end)

loss_class("NLLLoss", { "weight", "size_average", "ignore_index", "reduce", "reduction",
  defaults = { ignore_index = -100 } },
  function(self, a)
    self:register_buffer("weight", check_weight("NLLLoss", "weight", a.weight))
    self.ignore_index = check_index("NLLLoss", a.ignore_index)
  end,
  -- input: log-probabilities; target: 1-based classes
  function(self, input, target)
    return F.nll_loss(input, target, self.weight, { ignore_index = self.ignore_index, reduction = self.reduction })
  end)

loss_class("BCELoss", { "weight", "size_average", "reduce", "reduction" },
  function(self, a) self:register_buffer("weight", check_weight("BCELoss", "weight", a.weight)) end,
  -- input: probabilities in [0, 1]
  function(self, input, target)
    return F.binary_cross_entropy(input, target, self.weight, { reduction = self.reduction })
  end)

loss_class("BCEWithLogitsLoss", { "weight", "size_average", "reduce", "reduction", "pos_weight" },
  function(self, a)
    self:register_buffer("weight", check_weight("BCEWithLogitsLoss", "weight", a.weight))
    self:register_buffer("pos_weight", check_weight("BCEWithLogitsLoss", "pos_weight", a.pos_weight))
  end,
  -- input: logits; pos_weight (one per class, over the last dim) weighs the positive examples
  function(self, input, target)
    return F.binary_cross_entropy_with_logits(input, target, self.weight,
      { reduction = self.reduction, pos_weight = self.pos_weight })
  end)

return Loss
