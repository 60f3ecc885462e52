-- Helpers shared by the layer and loss classes (layers.lua, layers_conv.lua, rnn.lua, loss.lua):
-- PyTorch-style argument parsing, option checks and repr formatting. Not part of torch.nn.
local init = require "moontorch.nn.initializers"

local U = {}

-- ------------------------------------------------------------------------------------------
-- Default initialisation

-- PyTorch's reset_parameters of Linear and the convolutions: init.kaiming_uniform_(w, a =
-- sqrt(5)), then init.uniform_(bias, -1/sqrt(fan_in), 1/sqrt(fan_in)). With fan_in = 0, Linear
-- draws the bias from [0, 0] and a convolution (skip_empty = true) draws nothing, as in PyTorch.
function U.reset_fan_in(weight, bias, skip_empty)
  init.kaiming_uniform_(weight, { a = math.sqrt(5) })
  if bias then
    local fan_in = init._calculate_fan_in_and_fan_out(weight)
    if not (skip_empty and fan_in == 0) then
      local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
      init.uniform_(bias, -bound, bound)
    end
  end
end

-- A trailing options table is a plain table that is not a size list: empty, or without [1].
local function is_options(v)
  return type(v) == "table" and getmetatable(v) == nil and (next(v) == nil or rawget(v, 1) == nil)
end
U.is_options = is_options

-- Binds a constructor's arguments the way Python binds PyTorch's: positionally in `names`'s
-- order, then by name from one trailing options table. `spec` is an array of parameter names
-- and a map name -> default (nil: no default); `spec.required` counts the leading names that
-- must be given. Unknown option names and a value given both ways are errors, as a typo in a
-- Python keyword argument is.
--   local a = U.bind("Linear", {"in_features", "out_features", "bias", "dtype",
--                     required = 2, defaults = {bias = true}}, ...)
function U.bind(cname, spec, ...)
  local n = select("#", ...)
  local args = { ... }
  local opts
  if n > 0 and is_options(args[n]) then
    opts = args[n]
    args[n] = nil
    n = n - 1
  end
  if n > #spec then
    error(string.format("moontorch.nn.%s: takes at most %d positional arguments (%d given)", cname, #spec, n), 0)
  end
  local out, known = {}, {}
  for i, name in ipairs(spec) do
    known[name] = true
    out[name] = args[i]
  end
  if opts then
    for k, v in pairs(opts) do
      if not known[k] then
        error(string.format("moontorch.nn.%s: unexpected option '%s'", cname, tostring(k)), 0)
      end
      if out[k] ~= nil then
        error(string.format("moontorch.nn.%s: '%s' given both positionally and as an option", cname, k), 0)
      end
      out[k] = v
    end
  end
  for i = 1, spec.required or 0 do
    if out[spec[i]] == nil then
      error(string.format("moontorch.nn.%s: missing argument '%s'", cname, spec[i]), 0)
    end
  end
  for k, v in pairs(spec.defaults or {}) do
    if out[k] == nil then out[k] = v end
  end
  return out
end

-- Checks that v is a positive integer (or a number with an integral value) and returns it
-- as an integer.
function U.int(cname, what, v, min)
  min = min or 1
  local i = math.tointeger(v)
  if not i or i < min then
    error(string.format("moontorch.nn.%s: %s must be an integer >= %d, got %s", cname, what, min, tostring(v)), 0)
  end
  return i
end

-- An int or a table of `n` ints as a table of n ints (PyTorch's _pair / _single).
function U.tuple(cname, what, v, n, min)
  local out = {}
  if type(v) == "table" then
    if #v ~= n then
      error(string.format("moontorch.nn.%s: %s must be an integer or %d integers, got %d values",
        cname, what, n, #v), 0)
    end
    for i = 1, n do out[i] = U.int(cname, what, v[i], min) end
  else
    local x = U.int(cname, what, v, min)
    for i = 1, n do out[i] = x end
  end
  return out
end

local DTYPES = { float32 = "float32", float = "float32", float64 = "float64", double = "float64" }

-- The dtype a layer's parameters use: float32 unless opts.dtype names float64.
function U.dtype(cname, d)
  if d == nil then return "float32" end
  local r = DTYPES[d]
  if not r then
    error(string.format("moontorch.nn.%s: dtype must be \"float32\" or \"float64\", got %s", cname, tostring(d)), 0)
  end
  return r
end

-- The probability p of a dropout layer, checked as PyTorch checks it.
function U.probability(cname, p)
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(string.format("moontorch.nn.%s: dropout probability has to be between 0 and 1, but got %s",
      cname, tostring(p)), 0)
  end
  return p
end

-- Python's repr of a float: the shortest digits that read back the same, fixed notation for
-- exponents in [-4, 16), scientific otherwise ("0.1", "1e-05", "1.0", "1e+16").
local function pyfloat(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  local s
  for p = 1, 17 do
    s = string.format("%." .. (p - 1) .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, mant, exp = s:match("^(-?)([%d.]+)e([-+]%d+)$")
  local digits = mant:gsub("%.", "")
  local e = tonumber(exp)
  if e >= -4 and e < 16 then
    if e < 0 then return sign .. "0." .. string.rep("0", -e - 1) .. digits end
    if #digits <= e + 1 then return sign .. digits .. string.rep("0", e + 1 - #digits) .. ".0" end
    return sign .. digits:sub(1, e + 1) .. "." .. digits:sub(e + 2)
  end
  local m = #digits > 1 and (digits:sub(1, 1) .. "." .. digits:sub(2)) or digits
  return string.format("%s%se%s%02d", sign, m, e < 0 and "-" or "+", math.abs(e))
end
U.pyfloat = pyfloat

-- Python's repr of a Lua value: True / False / None, ints, floats, quoted strings, and tables
-- as tuples ("(3, 3)", "(3,)").
function U.repr(v)
  local t = type(v)
  if v == nil then return "None" end
  if t == "boolean" then return v and "True" or "False" end
  if t == "number" then return math.type(v) == "integer" and tostring(v) or pyfloat(v) end
  if t == "string" then return "'" .. v .. "'" end
  if t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = U.repr(v[i]) end
    if #parts == 1 then return "(" .. parts[1] .. ",)" end
    return "(" .. table.concat(parts, ", ") .. ")"
  end
  return tostring(v)
end

-- "name=value, ..." for the given names of self, in order.
function U.fields(self, names)
  local parts = {}
  for i, name in ipairs(names) do parts[i] = name .. "=" .. U.repr(self[name]) end
  return table.concat(parts, ", ")
end

return U
