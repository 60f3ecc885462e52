-- torch.nn.functional (alias F): the functional form of every layer and loss, with PyTorch's
-- names, argument order and defaults.
--
--   local F = require "moontorch.nn.functional"     -- also torch.nn.functional
--   local y = F.conv2d(x, w, b, { stride = 2, padding = 1 })
--   local loss = F.cross_entropy(logits, labels, { label_smoothing = 0.1, reduction = "sum" })
--
-- Arguments that PyTorch takes positionally stay positional, in PyTorch's order (a nil stands
-- for an omitted one); any of them may instead be named in one trailing options table, as
-- Python keywords: F.max_pool2d(x, 2), F.max_pool2d(x, 2, nil, 1), F.max_pool2d(x, { kernel_size
-- = 2, padding = 1 }). Kernel sizes, strides, paddings and dilations are an int or a list of two
-- ({2, 3}). Lua's conventions hold: class targets and Embedding ids are 1-based, as are the
-- indices max_pool2d returns and the `dim` of softmax / log_softmax.
--
-- The ops themselves are C kernels with autograd (src/nn_*.c), bound raw as core._nn
-- (binding/lmt_nn.c). This file depends on moontorch.core alone, so that it can be required on
-- its own and from inside require "moontorch" without a loop.
local core = require "moontorch.core"

local raw = core._nn
local is_tensor = core.is_tensor

local F = {}

local fail = require("moontorch.errors").raiser("moontorch.nn.functional.")

local function check_tensor(v, fname, n)
  if not is_tensor(v) then fail(fname, "bad argument #%d (tensor expected, got %s)", n, type(v)) end
end

-- ---- arguments -----------------------------------------------------------------------------

-- An options table is a plain table whose keys are all strings; a list such as {2, 2} is a
-- value. (Tensors are userdata, never tables.)
local function is_options(v)
  if type(v) ~= "table" then return false end
  for k in pairs(v) do
    if type(k) ~= "string" then return false end
  end
  return true
end

-- A parser for a function with PyTorch's parameters `names`, in positional order: it takes the
-- call's arguments (positional ones, then optionally a trailing options table naming any
-- parameter but the first) and returns the values in positional order, `defaults` filling the
-- nils.
--
-- Most calls (and every layer's forward) pass positional arguments only: those go through a
-- generated function without a table, varargs packing or pairs() (a noticeable part of a small
-- model's forward); a call whose last argument is a table takes the general path.
local function fast_path(fname, count, fill, general)
  local params, src = {}, {}
  for i = 1, count do params[i] = "a" .. i end
  local plist = table.concat(params, ", ")
  src[#src + 1] = "local general, select, type"
  for j = 1, #fill do src[#src + 1] = ", d" .. j end
  src[#src + 1] = " = ...\nreturn function(...)\n  local n = select('#', ...)\n"
  src[#src + 1] = "  if n == 0 or n > " .. count .. " or type((select(n, ...))) == 'table' then return general(...) end\n"
  src[#src + 1] = "  local " .. plist .. " = ...\n"
  local values = {}
  for j, f in ipairs(fill) do
    src[#src + 1] = string.format("  if a%d == nil then a%d = d%d end\n", f[1], f[1], j)
    values[j] = f[2]
  end
  src[#src + 1] = "  return " .. plist .. "\nend\n"
  local chunk = assert(load(table.concat(src), "=(signature " .. fname .. ")", "t", {}))
  return chunk(general, select, type, table.unpack(values, 1, #fill))
end

local function signature(fname, names, defaults)
  local position = {}
  for i, name in ipairs(names) do position[name] = i end
  local fill = {}
  for name, v in pairs(defaults or {}) do
    assert(position[name], name)
    fill[#fill + 1] = { position[name], v }
  end
  table.sort(fill, function(x, y) return x[1] < y[1] end) -- a fixed order for the generated code
  local count = #names
  return fast_path(fname, count, fill, function(...)
    local n = select("#", ...)
    local args = { ... }
    local opts = args[n]
    if n > 1 and is_options(opts) then
      args[n] = nil
      n = n - 1
    else
      opts = nil
    end
    if n > count then fail(fname, "expected at most %d positional arguments, got %d", count, n) end
    if opts then
      for k, v in pairs(opts) do
        local i = position[k]
        if not i or i == 1 then fail(fname, "unknown option '%s'", k) end
        if args[i] ~= nil then fail(fname, "%s is given twice: as argument #%d and as an option", k, i) end
        args[i] = v
      end
    end
    for j = 1, #fill do
      local f = fill[j]
      if args[f[1]] == nil then args[f[1]] = f[2] end
    end
    return table.unpack(args, 1, count)
  end)
end

-- PyTorch's deprecated size_average / reduce pair, when either is given, decides the reduction.
local function legacy_reduction(size_average, reduce, reduction)
  if size_average == nil and reduce == nil then return reduction end
  if size_average == nil then size_average = true end
  if reduce == nil then reduce = true end
  if reduce then return size_average and "mean" or "sum" end
  return "none"
end

-- ---- linear and convolution ----------------------------------------------------------------

local linear_args = signature("linear", { "input", "weight", "bias" })

function F.linear(...)
  return raw.linear(linear_args(...))
end

-- The input with `extra` zeros appended along `dim` (1-based).
local function pad_end(input, dim, extra)
  local shape = input.shape
  shape[dim] = extra
  return core.cat({ input, core.zeros(shape, { dtype = input.dtype }) }, dim)
end

-- padding = "valid" (none) or "same" (the output keeps the input's spatial size; stride 1).
-- As PyTorch, an odd total padding puts the extra zero at the end of the dim. Returns the
-- input, padded where needed, and the symmetric padding (a list, one per spatial dim).
local function string_padding(fname, input, weight, padding, stride, dilation, nspatial)
  if padding ~= "valid" and padding ~= "same" then
    fail(fname, "padding must be \"valid\", \"same\" or integers, got \"%s\"", padding)
  end
  local pads = {}
  if padding == "valid" then
    for i = 1, nspatial do pads[i] = 0 end
    return input, pads
  end
  check_tensor(input, fname, 1)
  check_tensor(weight, fname, 2)
  local function nth(v, i)
    if type(v) == "table" then return v[i] or v[1] end
    return v
  end
  for i = 1, nspatial do
    if nth(stride, i) ~= 1 then fail(fname, "padding=\"same\" is not supported for strided convolutions") end
  end
  local wshape = weight.shape
  for i = 1, nspatial do
    local total = nth(dilation, i) * (wshape[#wshape - nspatial + i] - 1)
    pads[i] = total // 2
    if total % 2 == 1 then input = pad_end(input, input:dim() - nspatial + i, 1) end
  end
  return input, pads
end

local conv_names = { "input", "weight", "bias", "stride", "padding", "dilation", "groups" }
local conv_defaults = { stride = 1, padding = 0, dilation = 1, groups = 1 }
local conv1d_args = signature("conv1d", conv_names, conv_defaults)
local conv2d_args = signature("conv2d", conv_names, conv_defaults)

function F.conv1d(...)
  local input, weight, bias, stride, padding, dilation, groups = conv1d_args(...)
  if type(padding) == "string" then
    local pads
    input, pads = string_padding("conv1d", input, weight, padding, stride, dilation, 1)
    padding = pads[1]
  end
  return raw.conv1d(input, weight, bias, stride, padding, dilation, groups)
end

function F.conv2d(...)
  local input, weight, bias, stride, padding, dilation, groups = conv2d_args(...)
  if type(padding) == "string" then
    input, padding = string_padding("conv2d", input, weight, padding, stride, dilation, 2)
  end
  return raw.conv2d(input, weight, bias, stride, padding, dilation, groups)
end

-- ---- pooling ---------------------------------------------------------------------------------

local max_pool2d_args = signature("max_pool2d",
  { "input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices" },
  { padding = 0, dilation = 1, ceil_mode = false, return_indices = false })

-- Returns the output, and with return_indices also the 1-based flat position of each maximum
-- within its input plane (H * W).
function F.max_pool2d(...)
  return raw.max_pool2d(max_pool2d_args(...))
end

local avg_pool2d_args = signature("avg_pool2d",
  { "input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override" },
  { padding = 0, ceil_mode = false, count_include_pad = true })

local function pair(v)
  if type(v) == "table" then return v[1], v[2] end
  return v, v
end

-- Per output position along one dim, the number of input positions its window covers,
-- padding included but not past it: what avg_pool2d divides by with count_include_pad.
local function window_sizes(n_out, size, kernel, stride, pad)
  local sizes = {}
  for o = 1, n_out do
    local start = (o - 1) * stride - pad
    sizes[o] = math.min(start + kernel, size + pad) - start
  end
  return sizes
end

function F.avg_pool2d(...)
  local input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor = avg_pool2d_args(...)
  if divisor == nil then
    return raw.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad)
  end
  -- divisor_override: window sums over a fixed divisor. The sums are the averages that count
  -- padding, times the window sizes they divided by.
  if math.type(divisor) ~= "integer" or divisor == 0 then
    fail("avg_pool2d", "divisor_override must be a non-zero integer, got %s", tostring(divisor))
  end
  local out = raw.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, true)
  local kh, kw = pair(kernel_size)
  local sh, sw = pair(stride == nil and kernel_size or stride)
  local ph, pw = pair(padding)
  local shape, ishape = out.shape, input.shape
  local oh, ow = shape[#shape - 1], shape[#shape]
  local hs = window_sizes(oh, ishape[#ishape - 1], kh, sh, ph)
  local ws = window_sizes(ow, ishape[#ishape], kw, sw, pw)
  local opts = { dtype = out.dtype }
  local scale = core.tensor(hs, opts):view(oh, 1) * core.tensor(ws, opts):view(1, ow) / divisor
  return out * scale
end

local adaptive_avg_pool2d_args = signature("adaptive_avg_pool2d", { "input", "output_size" })

-- output_size: an int or {h, w}; a nil (or false) entry keeps the input's size.
function F.adaptive_avg_pool2d(...)
  return raw.adaptive_avg_pool2d(adaptive_avg_pool2d_args(...))
end

-- ---- normalisation ---------------------------------------------------------------------------

local batch_norm_args = signature("batch_norm",
  { "input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps" },
  { training = false, momentum = 0.1, eps = 1e-5 })

-- In training, batch statistics normalise and the running ones (when given) are updated in
-- place; otherwise the running ones normalise.
function F.batch_norm(...)
  return raw.batch_norm(batch_norm_args(...))
end

local layer_norm_args = signature("layer_norm", { "input", "normalized_shape", "weight", "bias", "eps" },
  { eps = 1e-5 })

function F.layer_norm(...)
  return raw.layer_norm(layer_norm_args(...))
end

-- ---- embedding -------------------------------------------------------------------------------

local embedding_args = signature("embedding",
  { "input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse" },
  { norm_type = 2.0, scale_grad_by_freq = false, sparse = false })

-- PyTorch's embedding_renorm_: each row that `ids` look up whose norm exceeds max_norm is
-- scaled, in place and outside autograd, to norm max_norm.
local function renorm_rows(weight, ids, max_norm, norm_type)
  local list = is_tensor(ids) and ids:flatten():tolist() or ids
  local seen, unique = {}, {}
  for _, id in ipairs(list) do
    if not seen[id] then
      seen[id] = true
      unique[#unique + 1] = id
    end
  end
  if #unique == 0 then return end
  local previous = core.set_grad_enabled(false)
  local ok, err = pcall(function()
    local rows = weight:index_select(1, unique)
    local a = rows:abs()
    local norms
    if norm_type == math.huge then
      norms = a:amax(2)
    elseif norm_type == 1 then
      norms = a:sum(2)
    else
      norms = (a ^ norm_type):sum(2) ^ (1 / norm_type)
    end
    for k, norm in ipairs(norms:tolist()) do
      if norm > max_norm then weight[unique[k]] = rows[k] * (max_norm / (norm + 1e-7)) end
    end
  end)
  core.set_grad_enabled(previous)
  if not ok then error(err, 0) end
end

-- input: 1-based ids (an int64 / int32 tensor, or a list); padding_idx is 1-based too
-- (negative counts from the end), its row gets no gradient.
function F.embedding(...)
  local input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse = embedding_args(...)
  if scale_grad_by_freq then fail("embedding", "scale_grad_by_freq is not supported") end
  if sparse then fail("embedding", "sparse gradients are not supported") end
  if max_norm ~= nil then
    if type(max_norm) ~= "number" or type(norm_type) ~= "number" then
      fail("embedding", "max_norm and norm_type must be numbers")
    end
    -- a lookup first (outside autograd, and discarded): it validates the ids, the weight and
    -- padding_idx before anything is modified
    check_tensor(weight, "embedding", 2)
    raw.embedding(input, weight:detach(), padding_idx)
    renorm_rows(weight, input, max_norm, norm_type)
  end
  return raw.embedding(input, weight, padding_idx)
end

-- ---- dropout ---------------------------------------------------------------------------------

local dropout_names = { "input", "p", "training", "inplace" }
local dropout_defaults = { p = 0.5, training = true, inplace = false }
local dropout_args = signature("dropout", dropout_names, dropout_defaults)
local dropout2d_args = signature("dropout2d", dropout_names, dropout_defaults)

-- The result of an op asked for with inplace = true: written back into the input.
local function into(input, out)
  if out ~= input then input:copy_(out) end
  return input
end

-- Zeroes elements with probability p (drawn from the default generator, as PyTorch draws
-- them) and scales the rest by 1 / (1 - p); the input itself when not training.
function F.dropout(...)
  local input, p, training, inplace = dropout_args(...)
  local out = raw.dropout(input, p, training, false)
  if inplace then return into(input, out) end
  return out
end

-- Zeroes whole channels (dim 2 of [N, C, ...]; a 3-D input is [N, C, L], as in PyTorch 1.13).
function F.dropout2d(...)
  local input, p, training, inplace = dropout2d_args(...)
  local out = raw.dropout(input, p, training, true)
  if inplace then return into(input, out) end
  return out
end

-- ---- activations -----------------------------------------------------------------------------

local relu_args = signature("relu", { "input", "inplace" }, { inplace = false })

function F.relu(...)
  local input, inplace = relu_args(...)
  check_tensor(input, "relu", 1)
  if inplace then return input:relu_() end
  return input:relu()
end

local leaky_relu_args = signature("leaky_relu", { "input", "negative_slope", "inplace" },
  { negative_slope = 0.01, inplace = false })

function F.leaky_relu(...)
  local input, negative_slope, inplace = leaky_relu_args(...)
  local out = raw.leaky_relu(input, negative_slope)
  if inplace then return into(input, out) end
  return out
end

local gelu_args = signature("gelu", { "input", "approximate" }, { approximate = "none" })

-- approximate = "none" (the erf form) or "tanh".
function F.gelu(...)
  return raw.gelu(gelu_args(...))
end

local silu_args = signature("silu", { "input", "inplace" }, { inplace = false })

function F.silu(...)
  local input, inplace = silu_args(...)
  local out = raw.silu(input)
  if inplace then return into(input, out) end
  return out
end

function F.tanh(input)
  check_tensor(input, "tanh", 1)
  return input:tanh()
end

function F.sigmoid(input)
  check_tensor(input, "sigmoid", 1)
  return input:sigmoid()
end

-- softmax / log_softmax(input, dim[, {dtype = ...}]): dim is 1-based; without one, PyTorch's
-- legacy choice (dim 1 for 0-, 1- and 3-D inputs, else dim 2). dtype converts the input first.
local function softmax_like(fname)
  local args = signature(fname, { "input", "dim", "_stacklevel", "dtype" })
  return function(...)
    local input, dim, _, dtype = args(...)
    check_tensor(input, fname, 1)
    if dim == nil then
      local nd = input:dim()
      dim = (nd == 0 or nd == 1 or nd == 3) and 1 or 2
    end
    if dtype ~= nil then input = input:to(dtype) end
    return input[fname](input, dim)
  end
end

F.softmax = softmax_like("softmax")
F.log_softmax = softmax_like("log_softmax")

-- ---- losses ----------------------------------------------------------------------------------
-- reduction = "mean" (default), "sum" or "none"; size_average / reduce are PyTorch's
-- deprecated way of saying the same.

local pair_loss_names = { "input", "target", "size_average", "reduce", "reduction" }
local mean = { reduction = "mean" }

local mse_loss_args = signature("mse_loss", pair_loss_names, mean)

function F.mse_loss(...)
  local input, target, size_average, reduce, reduction = mse_loss_args(...)
  return raw.mse_loss(input, target, legacy_reduction(size_average, reduce, reduction))
end

local l1_loss_args = signature("l1_loss", pair_loss_names, mean)

function F.l1_loss(...)
  local input, target, size_average, reduce, reduction = l1_loss_args(...)
  return raw.l1_loss(input, target, legacy_reduction(size_average, reduce, reduction))
end

local smooth_l1_loss_args = signature("smooth_l1_loss",
  { "input", "target", "size_average", "reduce", "reduction", "beta" }, { reduction = "mean", beta = 1.0 })

function F.smooth_l1_loss(...)
  local input, target, size_average, reduce, reduction, beta = smooth_l1_loss_args(...)
  return raw.smooth_l1_loss(input, target, legacy_reduction(size_average, reduce, reduction), beta)
end

local nll_loss_args = signature("nll_loss",
  { "input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction" },
  { ignore_index = -100, reduction = "mean" })

-- input: log-probabilities [N, C] or [N, C, d1, ...] (or [C]); target: 1-based classes.
function F.nll_loss(...)
  local input, target, weight, size_average, ignore_index, reduce, reduction = nll_loss_args(...)
  return raw.nll_loss(input, target, weight, ignore_index, legacy_reduction(size_average, reduce, reduction))
end

local cross_entropy_args = signature("cross_entropy",
  { "input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing" },
  { ignore_index = -100, reduction = "mean", label_smoothing = 0.0 })

-- input: logits [N, C] or [N, C, d1, ...] (or [C]); target: 1-based classes (integers) or
-- class probabilities (floats, the input's shape).
function F.cross_entropy(...)
  local input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing = cross_entropy_args(...)
  return raw.cross_entropy(input, target, weight, ignore_index, legacy_reduction(size_average, reduce, reduction),
    label_smoothing)
end

-- PyTorch requires the target of the binary losses to have the input's shape exactly.
local function check_same_size(fname, input, target)
  check_tensor(input, fname, 1)
  check_tensor(target, fname, 2)
  local a, b = input.shape, target.shape
  local same = #a == #b
  for i = 1, #a do same = same and a[i] == b[i] end
  if not same then
    fail(fname, "target of shape [%s] must have the input's shape [%s]", table.concat(b, ", "), table.concat(a, ", "))
  end
end

local bce_args = signature("binary_cross_entropy",
  { "input", "target", "weight", "size_average", "reduce", "reduction" }, mean)

-- input: probabilities in [0, 1]; weight broadcasts to the input's shape.
function F.binary_cross_entropy(...)
  local input, target, weight, size_average, reduce, reduction = bce_args(...)
  check_same_size("binary_cross_entropy", input, target)
  return raw.binary_cross_entropy(input, target, weight, legacy_reduction(size_average, reduce, reduction))
end

local bce_logits_args = signature("binary_cross_entropy_with_logits",
  { "input", "target", "weight", "size_average", "reduce", "reduction", "pos_weight" }, mean)

-- input: logits; pos_weight (one per class, broadcast over the last dim) weighs positives.
function F.binary_cross_entropy_with_logits(...)
  local input, target, weight, size_average, reduce, reduction, pos_weight = bce_logits_args(...)
  check_same_size("binary_cross_entropy_with_logits", input, target)
  return raw.binary_cross_entropy_with_logits(input, target, weight,
    legacy_reduction(size_average, reduce, reduction), pos_weight)
end

return F
