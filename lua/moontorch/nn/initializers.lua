-- torch.nn.init (SPEC section 4): in-place initialisers with PyTorch 1.13's formulas, fan
-- computation and gains. Each fills its tensor under no_grad (so parameters can be filled) and
-- returns it. Draws come from torch's default generator exactly as PyTorch's do, so the same
-- seed gives PyTorch's values.
--
--   init.kaiming_uniform_(w, {a = math.sqrt(5)})       -- or positionally: (w, a, mode, nonlinearity)
--   init.xavier_normal_(w, init.calculate_gain("tanh"))
--   init.uniform_(b, -bound, bound); init.zeros_(b)
local torch = require "moontorch"

local M = {}

local fail = require("moontorch.errors").raiser("moontorch.nn.init.")

local typename = require("moontorch.errors").typename

local function check_tensor(fname, t)
  if not torch.is_tensor(t) then fail(fname, "bad argument #1 (tensor expected, got %s)", typename(t)) end
end

-- Arguments after the tensor: positional, or one options table with the names in `names`.
local function args(fname, names, ...)
  local first = ...
  if select("#", ...) == 1 and type(first) == "table" and not torch.is_tensor(first) then
    local known = {}
    for _, n in ipairs(names) do known[n] = true end
    for k in pairs(first) do
      if not known[k] then fail(fname, "unknown option '%s' (known options: %s)", tostring(k), table.concat(names, ", ")) end
    end
    local out = {}
    for i, n in ipairs(names) do out[i] = first[n] end
    return table.unpack(out, 1, #names)
  end
  return ...
end

local function number(fname, name, v, default)
  if v == nil then return default end
  if type(v) ~= "number" then fail(fname, "%s must be a number, got %s", name, typename(v)) end
  return v
end

local function fill(t, method, ...)
  torch.no_grad(t[method], t, ...)
  return t
end

-- calculate_gain(nonlinearity[, param]): the recommended gain for a nonlinearity.
function M.calculate_gain(nonlinearity, param)
  local linear = {
    linear = true, conv1d = true, conv2d = true, conv3d = true, conv_transpose1d = true,
    conv_transpose2d = true, conv_transpose3d = true, sigmoid = true,
  }
  if linear[nonlinearity] then return 1 end
  if nonlinearity == "tanh" then return 5.0 / 3 end
  if nonlinearity == "relu" then return math.sqrt(2.0) end
  if nonlinearity == "leaky_relu" then
    local slope = number("calculate_gain", "negative_slope", param, 0.01)
    return math.sqrt(2.0 / (1 + slope * slope))
  end
  if nonlinearity == "selu" then return 3.0 / 4 end
  fail("calculate_gain", "unsupported nonlinearity %s", tostring(nonlinearity))
end

-- fan_in, fan_out of a weight of at least 2 dims: [out, in, *kernel].
function M._calculate_fan_in_and_fan_out(t)
  check_tensor("_calculate_fan_in_and_fan_out", t)
  if t:dim() < 2 then
    fail("_calculate_fan_in_and_fan_out", "fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (got %d)", t:dim())
  end
  local shape = t.shape
  local receptive = 1
  for i = 3, #shape do receptive = receptive * shape[i] end
  return shape[2] * receptive, shape[1] * receptive
end
M.fan_in_and_fan_out = M._calculate_fan_in_and_fan_out

local function correct_fan(fname, t, mode)
  mode = mode or "fan_in"
  if type(mode) ~= "string" or (mode:lower() ~= "fan_in" and mode:lower() ~= "fan_out") then
    fail(fname, "mode %s not supported, please use one of fan_in, fan_out", tostring(mode))
  end
  local fan_in, fan_out = M._calculate_fan_in_and_fan_out(t)
  return mode:lower() == "fan_in" and fan_in or fan_out
end

function M.uniform_(t, ...)
  check_tensor("uniform_", t)
  local a, b = args("uniform_", { "a", "b" }, ...)
  return fill(t, "uniform_", number("uniform_", "a", a, 0.0), number("uniform_", "b", b, 1.0))
end

function M.normal_(t, ...)
  check_tensor("normal_", t)
  local mean, std = args("normal_", { "mean", "std" }, ...)
  return fill(t, "normal_", number("normal_", "mean", mean, 0.0), number("normal_", "std", std, 1.0))
end

function M.constant_(t, ...)
  check_tensor("constant_", t)
  local val = args("constant_", { "val" }, ...)
  if type(val) ~= "number" and type(val) ~= "boolean" then fail("constant_", "val must be a number, got %s", typename(val)) end
  return fill(t, "fill_", val)
end

function M.zeros_(t)
  check_tensor("zeros_", t)
  return fill(t, "zero_")
end

function M.ones_(t)
  check_tensor("ones_", t)
  return fill(t, "fill_", 1)
end

function M.xavier_uniform_(t, ...)
  check_tensor("xavier_uniform_", t)
  local gain = number("xavier_uniform_", "gain", args("xavier_uniform_", { "gain" }, ...), 1.0)
  local fan_in, fan_out = M._calculate_fan_in_and_fan_out(t)
  local std = gain * math.sqrt(2.0 / (fan_in + fan_out))
  local a = math.sqrt(3.0) * std
  return fill(t, "uniform_", -a, a)
end

function M.xavier_normal_(t, ...)
  check_tensor("xavier_normal_", t)
  local gain = number("xavier_normal_", "gain", args("xavier_normal_", { "gain" }, ...), 1.0)
  local fan_in, fan_out = M._calculate_fan_in_and_fan_out(t)
  local std = gain * math.sqrt(2.0 / (fan_in + fan_out))
  return fill(t, "normal_", 0.0, std)
end

-- Shared by the two kaiming initialisers: the standard deviation, or nil for an empty tensor
-- (PyTorch leaves those alone).
local function kaiming_std(fname, t, ...)
  check_tensor(fname, t)
  local a, mode, nonlinearity = args(fname, { "a", "mode", "nonlinearity" }, ...)
  a = number(fname, "a", a, 0)
  if t:numel() == 0 then return nil end
  local fan = correct_fan(fname, t, mode)
  local gain = M.calculate_gain(nonlinearity or "leaky_relu", a)
  return gain / math.sqrt(fan)
end

function M.kaiming_uniform_(t, ...)
  local std = kaiming_std("kaiming_uniform_", t, ...)
  if std == nil then return t end
  local bound = math.sqrt(3.0) * std
  return fill(t, "uniform_", -bound, bound)
end

function M.kaiming_normal_(t, ...)
  local std = kaiming_std("kaiming_normal_", t, ...)
  if std == nil then return t end
  return fill(t, "normal_", 0.0, std)
end

return M
