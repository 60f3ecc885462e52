-- moontorch.errors: the one shape of the Lua surface's error messages,
-- "moontorch.<package>.<function>: <the problem>", raised at level 0 — the function named is
-- the place, so Lua's "file:line:" prefix would only point into the library.
local M = {}

-- raiser("moontorch.nn.") -> fail(fname, fmt, ...) raising "moontorch.nn.<fname>: <message>".
function M.raiser(prefix)
  return function(fname, fmt, ...)
    error(prefix .. fname .. ": " .. string.format(fmt, ...), 0)
  end
end

-- A value's type for messages: a metatable's __name (e.g. "moontorch.Tensor") or type(v).
function M.typename(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then return mt.__name end
  return type(v)
end

return M
