-- tostring(t) the way PyTorch prints tensors (torch/_tensor_str.py, default print options):
--
--   tensor([[1., 2.],
--           [3., 4.]])
--
-- 4 decimals, scientific notation when the magnitudes call for it, dtype=... after tensors
-- whose dtype is not a default one (float32, int64, bool), and beyond 1000 elements only the
-- first and last 3 entries of each long dim, with "..." between. Booleans print as PyTorch
-- prints them (True / False), so output can be compared with PyTorch's.
local M = {}

local PRECISION = 4
local THRESHOLD = 1000 -- more elements than this are summarised
local EDGEITEMS = 3
local LINEWIDTH = 80

local floor, huge, max = math.floor, math.huge, math.max
local sformat, srep, concat = string.format, string.rep, table.concat

local FLOAT = { float32 = true, float64 = true, float16 = true, bfloat16 = true }
local DEFAULT_DTYPE = { float32 = true, int64 = true, bool = true }

-- A copy of t with only the first and last EDGEITEMS entries of each long dim.
local function summarized(torch, t)
  local nd = t:dim()
  if nd == 0 then return t end
  local n = t:size(1)
  if nd == 1 then
    if n > 2 * EDGEITEMS then
      return torch.cat({ t:narrow(1, 1, EDGEITEMS), t:narrow(1, n - EDGEITEMS + 1, EDGEITEMS) })
    end
    return t
  end
  local rows = {}
  for i = 1, n do
    if n <= 2 * EDGEITEMS or i <= EDGEITEMS or i > n - EDGEITEMS then
      rows[#rows + 1] = summarized(torch, t[i])
    end
  end
  return torch.stack(rows)
end

local function flatten(v, out)
  if type(v) == "table" then
    for i = 1, #v do flatten(v[i], out) end
  else
    out[#out + 1] = v
  end
  return out
end

local function isfinite(v) return v == v and v ~= huge and v ~= -huge end

-- The number format shared by all elements (PyTorch's _Formatter).
local function formatter(values, floating)
  local f = { floating = floating, int_mode = true, sci_mode = false, width = 1 }
  if not floating then
    for _, v in ipairs(values) do f.width = max(f.width, v == true and 4 or v == false and 5 or #tostring(v)) end
    return f
  end
  local lo, hi, n = huge, 0, 0
  for _, v in ipairs(values) do
    if isfinite(v) and v ~= 0 then
      n = n + 1
      local a = v < 0 and -v or v
      if a < lo then lo = a end
      if a > hi then hi = a end
      if v ~= math.ceil(v) then f.int_mode = false end
    end
  end
  if n == 0 then return f end
  local spec
  if f.int_mode then
    f.sci_mode = hi / lo > 1000 or hi > 1e8
    spec = f.sci_mode and "%." .. PRECISION .. "e" or "%.0f"
  else
    f.sci_mode = hi / lo > 1000 or hi > 1e8 or lo < 1e-4
    spec = "%." .. PRECISION .. (f.sci_mode and "e" or "f")
  end
  local extra = (f.int_mode and not f.sci_mode) and 1 or 0 -- the "." of 3.
  for _, v in ipairs(values) do
    if isfinite(v) and v ~= 0 then f.width = max(f.width, #sformat(spec, v) + extra) end
  end
  return f
end

local function format_value(f, v)
  local s
  if v == true then
    s = "True"
  elseif v == false then
    s = "False"
  elseif not f.floating then
    s = tostring(v)
  elseif v ~= v then
    s = "nan"
  elseif v == huge then
    s = "inf"
  elseif v == -huge then
    s = "-inf"
  elseif f.sci_mode then
    s = sformat("%." .. PRECISION .. "e", v)
  elseif f.int_mode then
    s = sformat("%.0f", v) .. "."
  else
    s = sformat("%." .. PRECISION .. "f", v)
  end
  if #s < f.width then s = srep(" ", f.width - #s) .. s end
  return s
end

-- One dim of the nested list `l`; cut[d] says that dim d was summarised to its edges.
local function tensor_str(l, d, nd, cut, f, indent)
  if d == nd then
    local data = {}
    for i = 1, #l do
      data[#data + 1] = format_value(f, l[i])
      if cut[d] and i == EDGEITEMS then data[#data + 1] = " ..." end
    end
    local per_line = max(1, floor((LINEWIDTH - indent) / (f.width + 2)))
    local lines = {}
    for i = 1, #data, per_line do
      lines[#lines + 1] = concat(data, ", ", i, math.min(i + per_line - 1, #data))
    end
    return "[" .. concat(lines, ",\n" .. srep(" ", indent + 1)) .. "]"
  end
  local slices = {}
  for i = 1, #l do
    slices[#slices + 1] = tensor_str(l[i], d + 1, nd, cut, f, indent + 1)
    if cut[d] and i == EDGEITEMS then slices[#slices + 1] = "..." end
  end
  return "[" .. concat(slices, "," .. srep("\n", nd - d) .. srep(" ", indent + 1)) .. "]"
end

local function add_suffixes(s, suffixes, indent)
  local parts = { s }
  local nl = s:match(".*()\n")
  local last_line_len = nl and (#s - nl + 2) or (#s + 2) -- as PyTorch counts it
  for _, suffix in ipairs(suffixes) do
    if last_line_len + #suffix + 2 > LINEWIDTH then
      parts[#parts + 1] = ",\n" .. srep(" ", indent) .. suffix
      last_line_len = indent + #suffix
    else
      parts[#parts + 1] = ", " .. suffix
      last_line_len = last_line_len + #suffix + 2
    end
  end
  parts[#parts + 1] = ")"
  return concat(parts)
end

function M.tostring(torch, t)
  local prefix = "tensor("
  local indent = #prefix
  local dtype, nd = t.dtype, t:dim()
  local suffixes = {}
  local body
  if t:numel() == 0 then
    if nd ~= 1 then
      local shape = t.shape
      for i = 1, #shape do shape[i] = tostring(shape[i]) end
      suffixes[#suffixes + 1] = "size=(" .. concat(shape, ", ") .. (#shape == 1 and ",)" or ")")
    end
    if dtype ~= "float32" then suffixes[#suffixes + 1] = "dtype=" .. dtype end
    body = "[]"
  else
    if not DEFAULT_DTYPE[dtype] then suffixes[#suffixes + 1] = "dtype=" .. dtype end
    local summarize = t:numel() > THRESHOLD
    local shown = summarize and summarized(torch, t) or t
    local l = shown:tolist()
    local f = formatter(nd == 0 and { l } or flatten(l, {}), FLOAT[dtype] == true)
    if nd == 0 then
      body = format_value(f, l)
    else
      local cut = {}
      for d = 1, nd do cut[d] = summarize and t:size(d) > 2 * EDGEITEMS end
      body = tensor_str(l, 1, nd, cut, f, indent)
    end
  end
  -- autograd state, once tensors carry it (nil until then)
  local grad_fn = t.grad_fn
  if grad_fn ~= nil then
    local name = type(grad_fn) == "table" and grad_fn.name or tostring(grad_fn)
    suffixes[#suffixes + 1] = "grad_fn=<" .. tostring(name) .. ">"
  elseif t.requires_grad then
    suffixes[#suffixes + 1] = "requires_grad=True"
  end
  return add_suffixes(prefix .. body, suffixes, indent)
end

return M
