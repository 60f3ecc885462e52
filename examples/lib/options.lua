-- examples/lib/options.lua: the command line of the example scripts (`--name value`,
-- `--flag`, `--help`), shared so that each script keeps only its own defaults and checks.
--
--   local options = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/options.lua")
--   local usage_error = options.parse(arg, cfg, { numeric = {...}, flags = {...}, optional = {...} })
--
-- cfg holds the defaults and is filled in place; an option is known when cfg has a value for
-- it, or it is listed in spec.optional (no default) or spec.flags (true when given).
-- spec.numeric maps a key to "integer" or "number". `--help` prints the comment block at the
-- top of the script. Returns usage_error(msg), which prints msg and exits with status 2.
local M = {}

function M.parse(argv, cfg, spec)
  local script = argv[0]:match("([^/]+)$")
  local numeric, flags, optional = spec.numeric or {}, spec.flags or {}, spec.optional or {}

  local function usage_error(msg)
    io.stderr:write(script, ": ", msg, "\n(--help lists the options)\n")
    os.exit(2)
  end

  local i = 1
  while i <= #argv do
    local name = argv[i]:match("^%-%-([%w-]+)$")
    if not name then usage_error("unexpected argument " .. argv[i]) end
    local key = name:gsub("-", "_")
    if key == "help" then -- the comment at the top of the script
      for line in io.lines(argv[0]) do
        if not line:match("^%-%-") then break end
        print((line:gsub("^%-%- ?", "")))
      end
      os.exit(0)
    elseif flags[key] then
      cfg[key] = true
    elseif cfg[key] ~= nil or optional[key] then
      local v = argv[i + 1] or usage_error("--" .. name .. " needs a value")
      if numeric[key] then
        v = tonumber(v)
        if v == nil or (numeric[key] == "integer" and math.type(v) ~= "integer") then
          usage_error("--" .. name .. " needs a number, got " .. argv[i + 1])
        end
      end
      cfg[key] = v
      i = i + 1
    else
      usage_error("unknown option --" .. name)
    end
    i = i + 1
  end
  return usage_error
end

return M
