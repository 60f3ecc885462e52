-- torch.jit: traced models, the deployment format (SPEC section 6). A trace runs a model once
-- on example inputs and records every core op it performs as a graph; the graph runs again on
-- new inputs, saves to one file, and loads and runs from plain C with no Lua (moontorch.h,
-- mt_graph_load / mt_graph_run; the moontorch-run program).
--
--   local traced = torch.jit.trace(model, x)          -- or {x, y} for several inputs
--   local y = traced(x2)                               -- runs the graph
--   traced:save("model.pt")                            -- graph and weights in one file
--   local loaded = torch.jit.load("model.pt")          -- the same callable
--   print(traced)                                      -- the nodes, one per line
--   traced:graph()                                     -- the file's contents as Lua tables
--
-- What a trace records, as PyTorch's torch.jit.trace does: the ops, not the Lua code that
-- chose them. Lua control flow (if, loops, early returns) runs once, on the example, and the
-- branch it took is frozen into the graph; so are Lua numbers computed from tensor values
-- (t:item(), tolist) and sizes read with t:size() (an LSTM unrolls to the example's sequence
-- length; torch.zeros(x:size(1), ...) keeps the example's batch size). Trace with inputs of
-- the shape the model will see, and models whose control flow does not depend on the data.
--
-- The trace runs a module in eval mode (dropout off, batch norm on its running statistics)
-- with autograd recording off, then puts every submodule's mode back; a plain function runs
-- as it is (put the modules it calls in eval mode first). Tensors that existed
-- before the trace (parameters, buffers) become the graph's constants; so do tensors the
-- forward makes with creation functions (zeros, ones, full, tensor, arange, eye, ...). The
-- constants of a traced model are the model's own tensors, shared; a saved file holds copies.
--
-- Refused, with an error naming what went wrong: random ops (torch.rand, randn, dropout in
-- training mode), in-place ops (t:add_(...), t[i] = v), results that are not tensors, and
-- tensors that appear during the forward without an op the tracer knows.
--
-- Inputs and outputs: the graph takes the example inputs' count of tensors, in order. Its
-- outputs are the tensors the forward returns, flattened in order: several results, and arrays
-- of tensors nested in them (an LSTM's `output, {h_n, c_n}` gives three). A traced model called
-- with inputs returns one tensor when the graph has one output, else an array of them; so does
-- a loaded one, and moontorch-run writes its outputs the same way.
local torch = require "moontorch"
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

local J = core._jit
local is_tensor = torch.is_tensor

local jit = {}

local fail = require("moontorch.errors").raiser("moontorch.")

local typename = require("moontorch.errors").typename

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- ------------------------------------------------------------------------------------------
-- TracedModule

local TracedModule = { __name = "moontorch.jit.TracedModule" }
TracedModule.__index = TracedModule

local function wrap(graph) return setmetatable({ _graph = graph }, TracedModule) end

local function check_traced(m, fname)
  if getmetatable(m) ~= TracedModule then
    fail(fname, "bad argument #1 (traced module expected, got %s)", typename(m))
  end
end

-- traced(x), traced(x, y) or traced({x, y}): runs the graph on new inputs.
function TracedModule:forward(...)
  check_traced(self, "jit.TracedModule")
  local inputs = table.pack(...)
  if inputs.n == 1 and type(inputs[1]) == "table" then inputs = table.pack(table.unpack(inputs[1])) end
  for i = 1, inputs.n do
    if not is_tensor(inputs[i]) then
      fail("jit.TracedModule", "input %d is a %s, expected a tensor", i, typename(inputs[i]))
    end
  end
  local outs = self._graph:run(inputs)
  if #outs == 1 then return outs[1] end
  return outs
end
TracedModule.__call = TracedModule.forward

function TracedModule:save(path)
  check_traced(self, "jit.save")
  self._graph:save(path)
end

-- The graph as the file holds it: {format, version, inputs, outputs, constants, nodes}, dicts
-- as ordered tables in file order; constants are the graph's own tensors.
function TracedModule:graph()
  check_traced(self, "jit.TracedModule.graph")
  return self._graph:value(ordered.adopt)
end

local function value_str(v)
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = value_str(v[i]) end
    return "[" .. table.concat(parts, ", ") .. "]"
  elseif type(v) == "string" then
    return string.format("%q", v)
  elseif math.type(v) == "float" then
    return string.format("%.9g", v)
  end
  return tostring(v)
end

local function ids_str(ids)
  local parts = {}
  for i = 1, #ids do parts[i] = ids[i] < 0 and "None" or "%" .. ids[i] end
  return table.concat(parts, ", ")
end

-- One line per node, as `%5 = conv2d(%0, %1, %2, stride=[1, 1], ...)`, then the constants.
function TracedModule:__tostring()
  local g = self:graph()
  local lines = { "TracedModule(" .. ids_str(g.inputs) .. ")" }
  for _, node in ipairs(g.nodes) do
    local args = { ids_str(node.inputs) }
    for name, v in pairs(node.attrs) do args[#args + 1] = name .. "=" .. value_str(v) end
    if args[1] == "" then table.remove(args, 1) end
    lines[#lines + 1] = string.format("  %s = %s(%s)", ids_str(node.outputs), node.op, table.concat(args, ", "))
  end
  lines[#lines + 1] = "  return " .. ids_str(g.outputs)
  local ids = {}
  for id in pairs(g.constants) do ids[#ids + 1] = id end
  table.sort(ids)
  if #ids > 0 then lines[#lines + 1] = "constants:" end
  for _, id in ipairs(ids) do
    local t = g.constants[id]
    lines[#lines + 1] = string.format("  %%%d: %s [%s]", id, t.dtype, table.concat(t.shape, ", "))
  end
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------------------------------------
-- Tracing

-- The example inputs as an array: one tensor, or an array of tensors.
local function example_list(v)
  if is_tensor(v) then return { v, n = 1 } end
  if type(v) ~= "table" then
    fail("jit.trace", "bad argument #2 (tensor or list of tensors expected, got %s)", typename(v))
  end
  local list = { n = #v }
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > list.n then
      fail("jit.trace", "bad argument #2 (a list of tensors has keys 1..n; found key %s)", tostring(k))
    end
  end
  for i = 1, list.n do
    if not is_tensor(v[i]) then
      fail("jit.trace", "bad argument #2 (example input %d is a %s, expected a tensor)", i, typename(v[i]))
    end
    list[i] = v[i]
  end
  return list
end

-- Appends the tensors of one result to `out`, in order; raises for anything else.
local function flatten(v, where, out, depth)
  if is_tensor(v) then
    out[#out + 1] = v
    return
  end
  if type(v) == "table" and getmetatable(v) == nil and depth < 32 then
    local n = #v
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        fail("jit.trace", "%s is a table with key %s; a traced function returns tensors or arrays of tensors", where,
          type(k) == "string" and "'" .. k .. "'" or tostring(k))
      end
    end
    for i = 1, n do flatten(v[i], where .. "[" .. i .. "]", out, depth + 1) end
    return
  end
  fail("jit.trace", "%s is a %s; a traced function returns tensors or arrays of tensors", where, typename(v))
end

-- Each submodule's training flag, to put back after the trace.
local function modes_of(model)
  local saved = {}
  for _, m in ipairs(model:modules()) do saved[#saved + 1] = { m, rawget(m, "training") } end
  return saved
end

local function restore_modes(saved)
  for _, e in ipairs(saved) do rawset(e[1], "training", e[2]) end
end

-- torch.jit.trace(model_or_fn, example_inputs) -> TracedModule
function jit.trace(model, example_inputs)
  if not is_callable(model) then
    fail("jit.trace", "bad argument #1 (module or function expected, got %s)", typename(model))
  end
  local inputs = example_list(example_inputs)
  local is_module = require("moontorch.nn.module").is_module(model)

  local saved = is_module and modes_of(model)
  if is_module then model:eval() end
  local grad_mode = torch.set_grad_enabled(false)
  local ok, tr = pcall(J.trace_begin)
  local res
  if ok then
    res = table.pack(pcall(function()
      for i = 1, inputs.n do J.trace_input(tr, inputs[i]) end
      return model(table.unpack(inputs, 1, inputs.n))
    end))
  end
  torch.set_grad_enabled(grad_mode)
  if saved then restore_modes(saved) end
  if not ok then error(tr, 0) end
  if not res[1] then
    J.trace_abort(tr)
    error(res[2], 0)
  end

  local outs = {}
  local err
  ok, err = pcall(function()
    if res.n == 1 then fail("jit.trace", "the traced function returned nothing") end
    for i = 2, res.n do flatten(res[i], "result " .. (i - 1), outs, 0) end
  end)
  if not ok then
    J.trace_abort(tr)
    error(err, 0)
  end
  return wrap(J.trace_end(tr, outs))
end

function jit.save(m, path)
  check_traced(m, "jit.save")
  m._graph:save(path)
end

function jit.load(path)
  if type(path) ~= "string" then fail("jit.load", "bad argument #1 (path expected, got %s)", typename(path)) end
  return wrap(J.load(path))
end

-- true for what torch.jit.trace / load return.
function jit.is_traced(v) return getmetatable(v) == TracedModule end

jit.TracedModule = TracedModule

return jit
