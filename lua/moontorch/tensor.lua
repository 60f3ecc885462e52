-- Tensor methods written in Lua on top of the C binding (moontorch.core): printing,
-- comparisons of whole tensors, NaN/Inf tests, norms, splitting, and the new_* constructors.
-- install(torch, core) adds them to the one methods table that every tensor shares.
local format = require "moontorch.format"

local M = {}

local FLOAT = { float32 = true, float64 = true, float16 = true, bfloat16 = true }

-- Errors carry no position, like those the C binding raises: "moontorch.<name>: <problem>".
local fail = require("moontorch.errors").raiser("moontorch.")

local function check_tensor(torch, v, fname, n)
  if not torch.is_tensor(v) then
    local got = type(v)
    if got == "table" or got == "userdata" then got = (getmetatable(v) or {}).__name or got end
    fail(fname, "bad argument #%d (tensor expected, got %s)", n, got)
  end
end

function M.install(torch, core)
  local Tensor = core._methods
  local meta = core._metatable

  meta.__tostring = function(t) return format.tostring(torch, t) end

  function Tensor.is_floating_point(t)
    check_tensor(torch, t, "is_floating_point", 1)
    return FLOAT[t.dtype] == true
  end

  -- NaN is the one value unequal to itself; x - x is NaN exactly for NaN and +-Inf.
  function Tensor.isnan(t)
    check_tensor(torch, t, "isnan", 1)
    if FLOAT[t.dtype] then return t:ne(t) end
    return torch.zeros_like(t, { dtype = "bool" })
  end

  function Tensor.isfinite(t)
    check_tensor(torch, t, "isfinite", 1)
    if FLOAT[t.dtype] then return (t - t):eq(0) end
    return torch.ones_like(t, { dtype = "bool" })
  end

  function Tensor.isinf(t)
    check_tensor(torch, t, "isinf", 1)
    if FLOAT[t.dtype] then return t:abs():eq(math.huge) end
    return torch.zeros_like(t, { dtype = "bool" })
  end

  -- torch.equal: same shape and same values (NaN is unequal to everything), as a Lua boolean.
  function Tensor.equal(a, b)
    check_tensor(torch, a, "equal", 1)
    check_tensor(torch, b, "equal", 2)
    local sa, sb = a.shape, b.shape
    if #sa ~= #sb then return false end
    for i = 1, #sa do
      if sa[i] ~= sb[i] then return false end
    end
    return a:eq(b):all():item()
  end

  -- |a - b| <= atol + rtol * |b|, elementwise; equal infinities are close; NaNs only with
  -- equal_nan. rtol / atol / equal_nan positionally, or as an options table.
  function Tensor.isclose(a, b, rtol, atol, equal_nan)
    check_tensor(torch, a, "isclose", 1)
    if type(rtol) == "table" then
      rtol, atol, equal_nan = rtol.rtol, rtol.atol, rtol.equal_nan
    end
    rtol, atol = rtol or 1e-5, atol or 1e-8
    if type(rtol) ~= "number" or type(atol) ~= "number" then
      fail("isclose", "rtol and atol must be numbers, got %s and %s", type(rtol), type(atol))
    end
    if not torch.is_tensor(b) then
      if type(b) ~= "number" then check_tensor(torch, b, "isclose", 2) end
      b = torch.full_like(a, b)
    end
    local exact = a:eq(b)
    if not FLOAT[a.dtype] and not FLOAT[b.dtype] then
      a, b = a:double(), b:double()
    end
    local close = (a - b):abs():le(b:abs() * rtol + atol):logical_or(exact)
    if equal_nan then close = close:logical_or(a:ne(a):logical_and(b:ne(b))) end
    return close
  end

  function Tensor.allclose(a, b, rtol, atol, equal_nan)
    check_tensor(torch, a, "allclose", 1)
    check_tensor(torch, b, "allclose", 2)
    return Tensor.isclose(a, b, rtol, atol, equal_nan):all():item()
  end

  -- argsort([dim[, descending]]): the 1-based indices that sort would return.
  function Tensor.argsort(t, dim, descending)
    check_tensor(torch, t, "argsort", 1)
    local _, idx = t:sort(dim, descending)
    return idx
  end

  -- norm([p[, dim[, keepdim]]]): the p-norm (default 2; math.huge for the max norm).
  function Tensor.norm(t, p, dim, keepdim)
    check_tensor(torch, t, "norm", 1)
    p = p or 2
    if type(p) ~= "number" then fail("norm", "bad argument #2 (number expected for p, got %s)", type(p)) end
    local a = t:abs()
    if p == math.huge then return a:amax(dim, keepdim) end
    if p == 1 then return a:sum(dim, keepdim) end
    if p == 2 then return (a * a):sum(dim, keepdim):sqrt() end
    return (a ^ p):sum(dim, keepdim) ^ (1 / p)
  end

  -- split(size, dim) into pieces of `size` (the last may be smaller), or of the sizes in a table.
  function Tensor.split(t, size, dim)
    check_tensor(torch, t, "split", 1)
    dim = dim or 1
    local n = t:size(dim)
    local out = {}
    if type(size) == "table" then
      local start = 1
      for i = 1, #size do
        if math.type(size[i]) ~= "integer" or size[i] < 0 then
          fail("split", "split sizes must be non-negative integers")
        end
        out[i] = t:narrow(dim, start, size[i])
        start = start + size[i]
      end
      if start ~= n + 1 then fail("split", "sizes add up to %d, but dim %d has size %d", start - 1, dim, n) end
      return out
    end
    if math.type(size) ~= "integer" or size < 1 then fail("split", "split size must be a positive integer") end
    for start = 1, n, size do out[#out + 1] = t:narrow(dim, start, math.min(size, n - start + 1)) end
    return out
  end

  -- chunk(n, dim): n pieces (fewer if the dim is short), each of ceil(size / n) elements.
  function Tensor.chunk(t, chunks, dim)
    check_tensor(torch, t, "chunk", 1)
    if math.type(chunks) ~= "integer" or chunks < 1 then fail("chunk", "number of chunks must be a positive integer") end
    dim = dim or 1
    local n = t:size(dim)
    return Tensor.split(t, math.max(1, (n + chunks - 1) // chunks), dim)
  end

  -- unbind(dim): the slices t:select(dim, i) as an array.
  function Tensor.unbind(t, dim)
    check_tensor(torch, t, "unbind", 1)
    dim = dim or 1
    local out = {}
    for i = 1, t:size(dim) do out[i] = t:select(dim, i) end
    return out
  end

  -- new_zeros(size...) and friends: a new tensor with t's dtype unless the options say otherwise.
  local function merged(t, opts)
    local o = { dtype = t.dtype }
    if opts ~= nil then
      if type(opts) ~= "table" then fail("new_tensor", "options must be a table, got %s", type(opts)) end
      for k, v in pairs(opts) do o[k] = v end
    end
    return o
  end

  local function is_options(v)
    return type(v) == "table" and not torch.is_tensor(v) and rawlen(v) == 0 and next(v) ~= nil
  end

  local function with_dtype(t, fname, ...)
    check_tensor(torch, t, fname, 1)
    local args = table.pack(...)
    if is_options(args[args.n]) then
      args[args.n] = merged(t, args[args.n])
    else
      args.n = args.n + 1
      args[args.n] = merged(t)
    end
    return table.unpack(args, 1, args.n)
  end

  function Tensor.new_zeros(t, ...) return torch.zeros(with_dtype(t, "new_zeros", ...)) end
  function Tensor.new_ones(t, ...) return torch.ones(with_dtype(t, "new_ones", ...)) end
  function Tensor.new_empty(t, ...) return torch.empty(with_dtype(t, "new_empty", ...)) end

  function Tensor.new_full(t, size, value, opts)
    check_tensor(torch, t, "new_full", 1)
    return torch.full(size, value, merged(t, opts))
  end

  function Tensor.new_tensor(t, data, opts)
    check_tensor(torch, t, "new_tensor", 1)
    return torch.tensor(data, merged(t, opts))
  end
end

return M
