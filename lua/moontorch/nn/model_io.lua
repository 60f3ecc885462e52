-- Whole models in checkpoint files (SPEC section 6). torch.save(model, path) writes plain data:
--
--   { ["moontorch.model"] = { class = "Net", args = {...}, training = true },
--     state_dict = <model:state_dict()> }
--
-- where args are the constructor arguments (module:_constructor_args(): those the model was
-- built with, or a container's current children), with every module among them written as
-- { ["moontorch.module"] = { class = ..., args = ... } }, recursively, and every ordered table
-- as { ["moontorch.ordered"] = { {key, value}, ... } } (a loaded file gives every dict back
-- ordered; this tells the ones that were: the others come back as plain tables, as they were
-- passed). PyTorch opens such a file as a plain dict. torch.load turns every such dict back into a model: it looks each class up
-- in the registry of nn.Module:extend (built-in layers always; a user's class once the file
-- that defines it has been required), constructs it with its arguments, loads the state dict
-- strictly and restores train/eval mode. Constructing draws initial weights; the generator's
-- state is restored afterwards, so loading a model does not shift a seeded run's random stream.
-- Models inside other tables ({model = m, epoch = 3}) are written and rebuilt the same way.
--
-- install(torch) wraps torch.save / load / serialize / deserialize. It runs while
-- require "moontorch" is still loading, so this file needs nothing of torch.nn until a model is
-- actually saved (nn is loaded then) or a model file is loaded (nn is required then).
local ordered = require "moontorch.ordered"

local M = {}

local MODEL, MODULE, ORDERED = "moontorch.model", "moontorch.module", "moontorch.ordered"

local fail = require("moontorch.errors").raiser("moontorch.")

local function is_safetensors(path, opts)
  local format = type(opts) == "table" and opts.format or nil
  if format ~= nil then return format == "safetensors" end
  return type(path) == "string" and path:sub(-12) == ".safetensors"
end

-- ------------------------------------------------------------------------------------------
-- Saving

local describe

-- Constructor arguments as data: modules become descriptions, tables are copied (a cycle among
-- them is an error), anything else stays for the serializer to write or refuse.
local function encode_arg(v, mod, visiting, cname)
  if mod.is_module(v) then
    local d = ordered.new()
    d[MODULE] = describe(v, mod, visiting)
    return d
  end
  if type(v) ~= "table" then return v end
  if visiting[v] then fail("save", "the constructor arguments of %s contain a cycle", cname) end
  visiting[v] = true
  local out = {}
  if ordered.is_ordered(v) then
    local pairs_list = {}
    for k, x in pairs(v) do pairs_list[#pairs_list + 1] = { k, encode_arg(x, mod, visiting, cname) } end
    out[ORDERED] = pairs_list
  else
    for k, x in pairs(v) do out[k] = encode_arg(x, mod, visiting, cname) end
  end
  visiting[v] = nil
  return out
end

-- {class, args} of a module; args as an array, or with `n` when it has holes (nil arguments).
function describe(m, mod, visiting)
  local cname = m:_get_name()
  local args = m:_constructor_args()
  local n = args.n or #args
  local out, dense = {}, true
  for i = 1, n do
    if args[i] == nil then dense = false end
    out[i] = encode_arg(args[i], mod, visiting, cname)
  end
  if not dense then out.n = n end
  local d = ordered.new()
  d.class = cname
  d.args = out
  return d
end

local function model_data(m, mod)
  local info = describe(m, mod, {})
  info.training = m.training
  local d = ordered.new()
  d[MODEL] = info
  d.state_dict = m:state_dict()
  return d
end

-- obj with every module in it replaced by its model data; tables on the way to one are copied,
-- the rest is left as it is (including cycles, which the serializer reports).
local function to_data(v, mod, visiting)
  if mod.is_module(v) then return model_data(v, mod), true end
  if type(v) ~= "table" or visiting[v] then return v, false end
  visiting[v] = true
  local keys, values, n, changed = {}, {}, 0, false
  for k, x in pairs(v) do
    local nx, c = to_data(x, mod, visiting)
    n = n + 1
    keys[n], values[n], changed = k, nx, changed or c
  end
  visiting[v] = nil
  if not changed then return v, false end
  local out = ordered.is_ordered(v) and ordered.new() or {}
  for i = 1, n do out[keys[i]] = values[i] end
  return out, true
end

-- ------------------------------------------------------------------------------------------
-- Loading

local function check_info(fname, info, where)
  if type(info) ~= "table" then fail(fname, "%s: the model description is a %s, not a table", where, type(info)) end
  if type(info.class) ~= "string" then fail(fname, "%s: the model description has no class name", where) end
  if info.args ~= nil and type(info.args) ~= "table" then
    fail(fname, "%s: the arguments of model class '%s' are a %s, not a table", where, info.class, type(info.args))
  end
end

local build

-- Loaded constructor arguments, with module descriptions built and tables made plain or
-- ordered as they were saved (in place where possible: the loaded tree is fresh).
local function decode_arg(fname, v, mod, where)
  if type(v) ~= "table" then return v end
  local desc = v[MODULE]
  if desc ~= nil then return build(fname, desc, mod, where) end
  local entries = v[ORDERED]
  if type(entries) == "table" then
    local out = ordered.new()
    for _, e in ipairs(entries) do
      if type(e) ~= "table" or e[1] == nil then fail(fname, "%s: a malformed ordered table among the constructor arguments", where) end
      out[e[1]] = decode_arg(fname, e[2], mod, where)
    end
    return out
  end
  if ordered.is_ordered(v) then setmetatable(v, nil) end
  for k, x in pairs(v) do
    local nx = decode_arg(fname, x, mod, where)
    if nx ~= x then v[k] = nx end
  end
  return v
end

function build(fname, info, mod, where)
  check_info(fname, info, where)
  local cls = mod.get_class(info.class)
  if cls == nil then
    fail(fname, "model class '%s' is not defined (require the file that defines it first)", info.class)
  end
  local args = info.args or {}
  local n = math.tointeger(args.n) or #args
  for i = 1, n do args[i] = decode_arg(fname, args[i], mod, where) end
  local ok, m = pcall(cls, table.unpack(args, 1, n))
  if not ok then fail(fname, "could not construct model class '%s': %s", info.class, tostring(m)) end
  return m
end

local function rebuild(torch, fname, d)
  local info, sd = d[MODEL], d.state_dict
  check_info(fname, info, "model file")
  if type(sd) ~= "table" then fail(fname, "the file for model class '%s' has no state_dict", info.class) end
  require "moontorch.nn" -- the built-in classes
  local mod = require "moontorch.nn.module"
  local rng = torch.get_rng_state()
  local ok, m = pcall(function()
    local model = build(fname, info, mod, "model file")
    local loaded, err = pcall(model.load_state_dict, model, sd)
    if not loaded then fail(fname, "could not load the state dict of model class '%s': %s", info.class, err) end
    return model:train(info.training ~= false)
  end)
  torch.set_rng_state(rng)
  if not ok then error(m, 0) end
  return m
end

local function from_data(torch, fname, v, done)
  if type(v) ~= "table" then return v end
  if done[v] ~= nil then return done[v] end
  if rawget(v, MODEL) ~= nil then
    done[v] = rebuild(torch, fname, v)
    return done[v]
  end
  done[v] = v
  for k, x in pairs(v) do
    local nx = from_data(torch, fname, x, done)
    if nx ~= x then v[k] = nx end
  end
  return v
end

-- ------------------------------------------------------------------------------------------

function M.install(torch)
  local save, load = torch.save, torch.load
  local serialize, deserialize = torch.serialize, torch.deserialize

  -- Models exist only once moontorch.nn.module has been loaded.
  local function prepare(obj)
    local mod = package.loaded["moontorch.nn.module"]
    if type(mod) ~= "table" then return obj end
    return (to_data(obj, mod, {}))
  end

  function torch.save(obj, path, opts)
    if is_safetensors(path, opts) then
      local mod = package.loaded["moontorch.nn.module"]
      if type(mod) == "table" and mod.is_module(obj) then
        fail("save", "a safetensors file holds tensors only: save model:state_dict() instead")
      end
      return save(obj, path, opts)
    end
    return save(prepare(obj), path, opts)
  end

  function torch.serialize(obj, ...)
    return serialize(prepare(obj), ...)
  end

  function torch.load(path, opts)
    if is_safetensors(path, opts) then return load(path, opts) end
    return from_data(torch, "load", load(path, opts), {})
  end

  function torch.deserialize(str, ...)
    return from_data(torch, "deserialize", deserialize(str, ...), {})
  end
end

return M
