-- Convolution and pooling layers of torch.nn: Conv1d, Conv2d, MaxPool2d, AvgPool2d and
-- AdaptiveAvgPool2d, as PyTorch 1.13's (constructor arguments in PyTorch's order, positionally
-- or in a trailing options table; parameter names, default initialisation and extra_repr).
-- The work is done by torch.nn.functional's C kernels.
local torch = require "moontorch"
local Module = require("moontorch.nn.module").Module
local Parameter = require("moontorch.nn.module").Parameter
local F = require "moontorch.nn.functional"
local U = require "moontorch.nn.layers_util"

local L = {}

-- ------------------------------------------------------------------------------------------
-- Conv1d / Conv2d

local CONV_ARGS = { "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
  "bias", "padding_mode", "dtype", required = 3,
  defaults = { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true, padding_mode = "zeros" } }

local PADDING_MODES = { zeros = true, reflect = true, replicate = true, circular = true }

-- PyTorch's _ConvNd.__init__ for n spatial dims.
local function conv_init(self, cname, n, ...)
  local a = U.bind(cname, CONV_ARGS, ...)
  local in_c = U.int(cname, "in_channels", a.in_channels, 0)
  local out_c = U.int(cname, "out_channels", a.out_channels, 0)
  local groups = math.tointeger(a.groups)
  if not groups or groups <= 0 then error("moontorch.nn." .. cname .. ": groups must be a positive integer", 0) end
  if in_c % groups ~= 0 then error("moontorch.nn." .. cname .. ": in_channels must be divisible by groups", 0) end
  if out_c % groups ~= 0 then error("moontorch.nn." .. cname .. ": out_channels must be divisible by groups", 0) end
  self.in_channels, self.out_channels, self.groups = in_c, out_c, groups
  self.kernel_size = U.tuple(cname, "kernel_size", a.kernel_size, n)
  self.stride = U.tuple(cname, "stride", a.stride, n)
  self.dilation = U.tuple(cname, "dilation", a.dilation, n)
  if type(a.padding) == "string" then
    if a.padding ~= "same" and a.padding ~= "valid" then
      error(string.format("moontorch.nn.%s: invalid padding string '%s', should be 'same' or 'valid'", cname,
        a.padding), 0)
    end
    for i = 1, n do
      if a.padding == "same" and self.stride[i] ~= 1 then
        error("moontorch.nn." .. cname .. ": padding='same' is not supported for strided convolutions", 0)
      end
    end
    self.padding = a.padding
  else
    self.padding = U.tuple(cname, "padding", a.padding, n, 0)
  end
  if not PADDING_MODES[a.padding_mode] then
    error(string.format("moontorch.nn.%s: padding_mode must be one of 'zeros', 'reflect', 'replicate', " ..
      "'circular', but got padding_mode='%s'", cname, tostring(a.padding_mode)), 0)
  elseif a.padding_mode ~= "zeros" then
    error(string.format("moontorch.nn.%s: padding_mode='%s' is not supported (only 'zeros')", cname,
      a.padding_mode), 0)
  end
  self.padding_mode = a.padding_mode
  self.output_padding, self.transposed = {}, false
  for i = 1, n do self.output_padding[i] = 0 end

  local dtype = U.dtype(cname, a.dtype)
  local wshape = { out_c, in_c // groups }
  for i = 1, n do wshape[2 + i] = self.kernel_size[i] end
  self.weight = Parameter(torch.empty(wshape, { dtype = dtype }))
  if a.bias then
    self.bias = Parameter(torch.empty(out_c, { dtype = dtype }))
  else
    self:register_parameter("bias", nil)
  end
  self:reset_parameters()
end

local function all_equal(t, v)
  if type(t) ~= "table" then return false end
  for i = 1, #t do if t[i] ~= v then return false end end
  return true
end

local function conv_class(cname, n, fn)
  local cls = Module:extend(cname)
  function cls:__init(...) conv_init(self, cname, n, ...) end
  function cls:reset_parameters() U.reset_fan_in(self.weight, self.bias, true) end
  function cls:forward(x)
    -- fields straight from self._values (Module's __index is a function call per read); a nil
    -- one falls back to self.name, the class chain
    local v = self._values
    local stride, padding, dilation, groups = v.stride, v.padding, v.dilation, v.groups
    if stride == nil then stride = self.stride end
    if padding == nil then padding = self.padding end
    if dilation == nil then dilation = self.dilation end
    if groups == nil then groups = self.groups end
    if n == 1 then -- F.conv1d takes plain ints where PyTorch's _single tuples hold one
      stride, dilation = stride[1], dilation[1]
      if type(padding) == "table" then padding = padding[1] end
    end
    -- positional (as every forward here): F's parser then allocates nothing
    return F[fn](x, v.weight, v.bias, stride, padding, dilation, groups)
  end
  function cls:extra_repr()
    local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
      U.repr(self.kernel_size), U.repr(self.stride))
    if type(self.padding) == "string" then
      s = s .. ", padding=" .. self.padding
    elseif not all_equal(self.padding, 0) then
      s = s .. ", padding=" .. U.repr(self.padding)
    end
    if not all_equal(self.dilation, 1) then s = s .. ", dilation=" .. U.repr(self.dilation) end
    if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
    if self.bias == nil then s = s .. ", bias=False" end
    return s
  end
  return cls
end

-- Over [N, C, L] (or [C, L]) and [N, C, H, W] (or [C, H, W]).
L.Conv1d = conv_class("Conv1d", 1, "conv1d")
L.Conv2d = conv_class("Conv2d", 2, "conv2d")

-- ------------------------------------------------------------------------------------------
-- Pooling. Sizes are kept as given (an int or a table), as PyTorch keeps them for its repr.

local function check_sizes(cname, what, v, min, allow_nil)
  if v == nil and allow_nil then return nil end
  U.tuple(cname, what, v, 2, min)
  return v
end

local MaxPool2d = Module:extend("MaxPool2d")
L.MaxPool2d = MaxPool2d

function MaxPool2d:__init(...)
  local a = U.bind("MaxPool2d", { "kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode",
    required = 1, defaults = { padding = 0, dilation = 1, return_indices = false, ceil_mode = false } }, ...)
  self.kernel_size = check_sizes("MaxPool2d", "kernel_size", a.kernel_size, 1)
  -- stride defaults to the kernel size
  self.stride = check_sizes("MaxPool2d", "stride", a.stride, 1, true) or self.kernel_size
  self.padding = check_sizes("MaxPool2d", "padding", a.padding, 0)
  self.dilation = check_sizes("MaxPool2d", "dilation", a.dilation, 1)
  self.return_indices = a.return_indices and true or false
  self.ceil_mode = a.ceil_mode and true or false
end

-- Returns the pooled tensor, and with return_indices also the 1-based flat positions of the
-- maxima within each input plane.
function MaxPool2d:forward(x)
  local v = self._values -- as in conv's forward: no __index call per field
  local k, s, p, d, c, r = v.kernel_size, v.stride, v.padding, v.dilation, v.ceil_mode, v.return_indices
  if k == nil or s == nil or p == nil or d == nil or c == nil or r == nil then
    k, s, p, d, c, r = self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
  end
  return F.max_pool2d(x, k, s, p, d, c, r)
end

function MaxPool2d:extra_repr()
  return U.fields(self, { "kernel_size", "stride", "padding", "dilation", "ceil_mode" })
end

local AvgPool2d = Module:extend("AvgPool2d")
L.AvgPool2d = AvgPool2d

function AvgPool2d:__init(...)
  local a = U.bind("AvgPool2d", { "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
    "divisor_override", required = 1, defaults = { padding = 0, ceil_mode = false, count_include_pad = true } }, ...)
  self.kernel_size = check_sizes("AvgPool2d", "kernel_size", a.kernel_size, 1)
  self.stride = check_sizes("AvgPool2d", "stride", a.stride, 1, true) or self.kernel_size
  self.padding = check_sizes("AvgPool2d", "padding", a.padding, 0)
  self.ceil_mode = a.ceil_mode and true or false
  self.count_include_pad = a.count_include_pad and true or false
  self.divisor_override = a.divisor_override
end

function AvgPool2d:forward(x)
  return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
    self.divisor_override)
end

function AvgPool2d:extra_repr() return U.fields(self, { "kernel_size", "stride", "padding" }) end

-- AdaptiveAvgPool2d(output_size): an int or {h, w}; an entry false keeps that input size
-- (PyTorch's None).
local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
L.AdaptiveAvgPool2d = AdaptiveAvgPool2d

function AdaptiveAvgPool2d:__init(...)
  local a = U.bind("AdaptiveAvgPool2d", { "output_size", required = 1 }, ...)
  local s = a.output_size
  local ok = math.tointeger(s) and s >= 0
  if type(s) == "table" and #s == 2 then
    ok = true
    for i = 1, 2 do
      if s[i] ~= false and not (math.tointeger(s[i]) and s[i] >= 0) then ok = false end
    end
  end
  if not ok then
    error("moontorch.nn.AdaptiveAvgPool2d: output_size must be an integer or two (false keeps a size), got " ..
      U.repr(s), 0)
  end
  self.output_size = s
end

function AdaptiveAvgPool2d:forward(x) return F.adaptive_avg_pool2d(x, self.output_size) end

function AdaptiveAvgPool2d:extra_repr()
  local s = self.output_size
  if type(s) == "table" then
    return "output_size=(" .. (s[1] == false and "None" or s[1]) .. ", " .. (s[2] == false and "None" or s[2]) .. ")"
  end
  return "output_size=" .. s
end

return L
