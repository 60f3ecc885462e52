-- Checkpoint files: torch.save / torch.load (PyTorch's zip format, or safetensors for paths
-- ending in ".safetensors" or opts.format = "safetensors") and torch.serialize /
-- torch.deserialize (the PyTorch format in a string). This file checks arguments and options
-- and picks the format; the C binding (binding/lmt_serialize.c) converts Lua values to the
-- core's value trees and back, and the core reads and writes the files.
--
--   torch.save({epoch = 5, model = sd}, "ckpt.pt")
--   local ckpt = torch.load("ckpt.pt")                  -- dicts come back as ordered tables
--   torch.save(sd, "model.safetensors", {metadata = {format = "pt"}})
--   local tensors, metadata = torch.load("model.safetensors", {mmap = true})
local ordered = require "moontorch.ordered"

local M = {}

-- Errors carry no position, like those the C binding raises: "moontorch.<name>: <problem>".
local fail = require("moontorch.errors").raiser("moontorch.")

local typename = require("moontorch.errors").typename

local FORMATS = { pytorch = true, safetensors = true }

local OPTIONS = {
  save = { format = "string", metadata = "table" },
  load = { format = "string", mmap = "boolean" },
}

-- Checks the options table of `fname` (argument #argn): known names, right types.
local function check_opts(fname, opts, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    fail(fname, "bad argument #%d (options table expected, got %s)", argn, typename(opts))
  end
  local known = OPTIONS[fname]
  for k, v in pairs(opts) do
    if known[k] == nil then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      fail(fname, "unknown option %s (known options: %s)",
        type(k) == "string" and "'" .. k .. "'" or tostring(k), table.concat(names, ", "))
    end
    if type(v) ~= known[k] then
      fail(fname, "opts.%s must be a %s, got %s", k, known[k], typename(v))
    end
  end
  if opts.format ~= nil and not FORMATS[opts.format] then
    fail(fname, "opts.format must be 'pytorch' or 'safetensors', got '%s'", opts.format)
  end
  return opts
end

local function check_path(fname, path)
  if type(path) ~= "string" then fail(fname, "bad argument #2 (path expected, got %s)", typename(path)) end
  if path == "" then fail(fname, "bad argument #2 (path is empty)") end
end

local function format_of(path, opts)
  if opts.format then return opts.format end
  return path:sub(-12) == ".safetensors" and "safetensors" or "pytorch"
end

function M.install(torch, core)
  local adopt = ordered.adopt

  torch.OrderedDict = ordered.new
  torch.is_ordered = ordered.is_ordered

  -- torch.save(obj, path[, opts]); opts: format ("pytorch" | "safetensors"), metadata
  -- (safetensors only: string -> string).
  function torch.save(obj, path, opts)
    check_path("save", path)
    opts = check_opts("save", opts, 3)
    if format_of(path, opts) == "safetensors" then
      if type(obj) ~= "table" or torch.is_tensor(obj) then
        fail("save", "a safetensors file holds a table of name -> tensor, got %s", typename(obj))
      end
      local metadata = opts.metadata
      if metadata ~= nil then
        for k, v in pairs(metadata) do
          if type(k) ~= "string" or type(v) ~= "string" then
            fail("save", "opts.metadata must map strings to strings; its key %s holds a %s",
              type(k) == "string" and "'" .. k .. "'" or tostring(k), typename(v))
          end
        end
      end
      core._safetensors_save(obj, metadata, path)
    else
      if opts.metadata ~= nil then
        fail("save", "opts.metadata is for safetensors files (path ending in .safetensors or opts.format = 'safetensors')")
      end
      core._save(obj, path)
    end
  end

  -- torch.load(path[, opts]) -> obj, or for safetensors: tensors (ordered), metadata (or nil).
  -- opts: format ("pytorch" | "safetensors"), mmap (map tensor data instead of reading it).
  function torch.load(path, opts)
    if type(path) ~= "string" then fail("load", "bad argument #1 (path expected, got %s)", typename(path)) end
    if path == "" then fail("load", "bad argument #1 (path is empty)") end
    opts = check_opts("load", opts, 2)
    if format_of(path, opts) == "safetensors" then
      return core._safetensors_load(path, opts.mmap == true, adopt)
    end
    return core._load(path, opts.mmap == true, adopt)
  end

  -- torch.serialize(obj) -> string: what torch.save would write to a file.
  function torch.serialize(obj, extra)
    if extra ~= nil then fail("serialize", "bad argument #2 (serialize takes no options, got %s)", typename(extra)) end
    return core._serialize(obj)
  end

  -- torch.deserialize(str) -> obj
  function torch.deserialize(str, extra)
    if type(str) ~= "string" then fail("deserialize", "bad argument #1 (string expected, got %s)", typename(str)) end
    if extra ~= nil then fail("deserialize", "bad argument #2 (deserialize takes no options, got %s)", typename(extra)) end
    return core._deserialize(str, adopt)
  end

  -- Whole models (SPEC section 6): save / load / serialize / deserialize turn modules into
  -- plain data and model files back into modules (lua/moontorch/nn/model_io.lua).
  require("moontorch.nn.model_io").install(torch)
end

return M
