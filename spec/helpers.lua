-- Shared helpers for the tensor specs: value comparison with dtype-aware tolerances, error
-- checks that look at the message (function name + problem), and dtype lists.
local torch = require "moontorch"

local H = { torch = torch }

H.all_dtypes = { "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool" }
H.float_dtypes = { "float32", "float64", "float16", "bfloat16" }
H.math_dtypes = { "float32", "float64" } -- arithmetic is guaranteed for these
H.int_dtypes = { "int64", "int32", "int16", "int8", "uint8" }

H.is_float_dtype = { float32 = true, float64 = true, float16 = true, bfloat16 = true }

-- Relative / absolute tolerances per dtype for computed (not converted) values.
H.tolerance = {
  float64 = { rtol = 1e-10, atol = 1e-12 },
  float32 = { rtol = 2e-5, atol = 1e-5 },
  float16 = { rtol = 2e-3, atol = 1e-3 },
  bfloat16 = { rtol = 1.6e-2, atol = 1e-2 },
}

local function isnan(x) return x ~= x end
H.isnan = isnan

-- Flattens a nested Lua table (as tolist returns) into row-major order.
function H.flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for i = 1, #v do H.flatten(v[i], out) end
  else
    out[#out + 1] = v
  end
  return out
end

-- All elements of t in row-major order as Lua values.
function H.values(t)
  local l = t:tolist()
  if type(l) ~= "table" then return { l } end
  return H.flatten(l)
end

-- true when a and b agree: NaN matches NaN, infinities match exactly, otherwise
-- |a - b| <= atol + rtol * |b|. Booleans and integers compare exactly when rtol/atol are nil.
function H.close(a, b, rtol, atol)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "number" then return a == b end
  if isnan(b) then return isnan(a) end
  if isnan(a) then return false end
  if b == math.huge or b == -math.huge or a == math.huge or a == -math.huge then return a == b end
  if not rtol then return a == b end
  return math.abs(a - b) <= atol + rtol * math.abs(b)
end

local function fmt(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.9g", v)
  end
  return tostring(v)
end

local function list_str(l)
  local parts = {}
  for i = 1, math.min(#l, 24) do parts[i] = fmt(l[i]) end
  if #l > 24 then parts[#parts + 1] = "..." end
  return "{" .. table.concat(parts, ", ") .. "}"
end
H.list_str = list_str

-- Asserts that tensor t has exactly the flat values `expected` (row-major), compared with the
-- tolerance of its dtype (exact for integer and bool dtypes, or when exact == true).
function H.assert_values(t, expected, exact, msg)
  assert(torch.is_tensor(t), (msg or "") .. ": expected a tensor, got " .. type(t))
  local got = H.values(t)
  local tol = (not exact) and H.tolerance[t.dtype] or nil
  local ok = #got == #expected
  local bad
  if ok then
    for i = 1, #got do
      if not H.close(got[i], expected[i], tol and tol.rtol, tol and tol.atol) then
        ok, bad = false, i
        break
      end
    end
  end
  if not ok then
    error(string.format("%svalues differ%s (%s)\n  got:      %s\n  expected: %s", msg and (msg .. ": ") or "",
      bad and (" at flat index " .. bad .. ": " .. fmt(got[bad]) .. " vs " .. fmt(expected[bad])) or
      (" in count: " .. #got .. " vs " .. #expected), t.dtype, list_str(got), list_str(expected)), 2)
  end
end

-- Asserts shape (as a Lua array) and dtype of a tensor.
function H.assert_meta(t, shape, dtype, msg)
  assert(torch.is_tensor(t), (msg or "") .. ": expected a tensor, got " .. type(t))
  local s = t.shape
  local same = #s == #shape
  for i = 1, #shape do same = same and s[i] == shape[i] end
  if not same then
    error(string.format("%sshape is %s, expected %s", msg and (msg .. ": ") or "", list_str(s), list_str(shape)), 2)
  end
  if dtype and t.dtype ~= dtype then
    error(string.format("%sdtype is %s, expected %s", msg and (msg .. ": ") or "", tostring(t.dtype), dtype), 2)
  end
end

-- Calls fn(...) and returns the error message; fails if fn did not raise.
function H.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, but the call succeeded", 2) end
  return tostring(err)
end

-- Asserts that fn raises an error whose message mentions `name` (a Lua pattern, matched
-- case-insensitively; or a list of alternatives) and, when `problems` is given, at least one
-- of its patterns.
function H.expect_error(fn, name, problems, level)
  local ok, err = pcall(fn)
  if ok then
    error("expected an error mentioning '" .. tostring(type(name) == "table" and name[1] or name) ..
      "', but the call succeeded", (level or 1) + 1)
  end
  if type(err) ~= "string" then
    error("expected a string error message, got " .. type(err) .. ": " .. tostring(err), (level or 1) + 1)
  end
  local low = err:lower()
  local names = type(name) == "table" and name or { name }
  local named = false
  for _, n in ipairs(names) do
    if low:find(n:lower()) then named = true break end
  end
  if not named then
    error("error message does not name '" .. table.concat(names, "' or '") .. "': " .. err, (level or 1) + 1)
  end
  if problems then
    if type(problems) == "string" then problems = { problems } end
    local hit = false
    for _, p in ipairs(problems) do
      if low:find(p:lower()) then hit = true break end
    end
    if not hit then
      error("error message does not state the problem (" .. table.concat(problems, " | ") .. "): " .. err,
        (level or 1) + 1)
    end
  end
  return err
end

-- Shell-quotes a string for os.execute / io.popen.
function H.shquote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a Lua 5.4 chunk in a fresh interpreter (same LUA_PATH / LUA_CPATH) and returns its stdout
-- and whether it exited successfully.
function H.run_lua(code)
  local f = assert(io.popen("lua5.4 -e " .. H.shquote(code) .. " 2>&1", "r"))
  local out = f:read("a")
  local ok = f:close()
  return out, ok
end

-- Runs a shell command with stderr merged into the output; returns ok, output, how, code as
-- io.popen's close gives them.
function H.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, how, code = f:close()
  return ok, out, how, code
end

-- A shell command's whole standard output.
function H.sh_read(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return s
end

-- The source tree and the build directory (tools/run-tests.sh sets both, absolute; run by hand
-- from the source tree, the defaults are the working directory and its build/).
H.ROOT = os.getenv("MT_SOURCE_DIR") or H.sh_read("pwd"):gsub("\n$", "")
H.BIN = os.getenv("MT_BINARY_DIR") or H.ROOT .. "/build"

-- A fresh directory /tmp/moontorch-<tag>.XXXXXX.
function H.mktemp_dir(tag)
  local ok, out = H.sh("mktemp -d /tmp/moontorch-" .. tag .. ".XXXXXX")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

-- Loads a Lua data file (fixtures written by the Python tools; only `math` in scope):
-- its value, or nil and the error.
function H.read_lua(path)
  local chunk, err = loadfile(path, "t", { math = math })
  if not chunk then return nil, err end
  return chunk()
end

-- Fashion-MNIST-shaped IDX files (as Debian's, uncompressed) of n images whose class k (0..9) lights an 8x4 block at
-- a place of its own, over noise: learnable in a few dozen steps.
function H.write_synthetic_fashion(dir, prefix, n, seed)
  local state = seed
  local function rand()
    state = (state * 1103515245 + 12345) % 2147483648
    return state >> 8
  end
  local images, labels = { string.pack(">I4I4I4I4", 0x803, n, 28, 28) }, { string.pack(">I4I4", 0x801, n) }
  local row = {}
  for _ = 1, n do
    local k = rand() % 10
    local r0, c0 = 3 + (k // 5) * 12, 2 + (k % 5) * 5
    for r = 0, 27 do
      for c = 0, 27 do
        local lit = r >= r0 and r < r0 + 8 and c >= c0 and c < c0 + 4
        row[r * 28 + c + 1] = lit and 200 + rand() % 56 or rand() % 60
      end
    end
    images[#images + 1] = string.char(table.unpack(row, 1, 392)) .. string.char(table.unpack(row, 393, 784))
    labels[#labels + 1] = string.char(k)
  end
  for name, parts in pairs({ ["-images-idx3-ubyte"] = images, ["-labels-idx1-ubyte"] = labels }) do
    local f = assert(io.open(dir .. "/" .. prefix .. name, "wb"))
    f:write(table.concat(parts))
    f:close()
  end
end

return H
