-- Autograd as Lua sees it (SPEC section 3). Ops record their graph in the C core; the binding
-- (binding/lmt_autograd.c) exposes the state, and this file adds the settable fields and the
-- grad-mode helpers that take a function.
--
--   t.requires_grad            boolean; settable on leaves (t.requires_grad = true)
--   t:requires_grad_([flag])   the same (flag defaults to true); returns t
--   t.grad                     nil until a backward reaches t, then the accumulated gradient
--                              (the same Lua object on every read); settable to nil or to a
--                              tensor of t's shape and dtype
--   t.grad_fn                  nil for leaves; else the node that made t (see below)
--   t.is_leaf                  true unless t was computed by a recorded op
--   t:backward([grad[, opts]]) back-propagates; grad is needed unless t has one element;
--                              opts.retain_graph keeps the graph for another backward
--   t:detach()                 t's data without history (shares storage)
--   torch.no_grad(fn, ...)     calls fn(...) with recording off and returns its results
--   torch.enable_grad(fn, ...) calls fn(...) with recording on
--   torch.set_grad_enabled(b)  sets the mode (returns the previous one)
--   torch.is_grad_enabled()
--
-- Grad mode belongs to the OS thread, so coroutines share it: a function run by no_grad should
-- not yield, or whoever resumes next would run with recording off.
--
-- A grad_fn is a "moontorch.Node" userdata: fn:name() and tostring(fn) give PyTorch's class
-- name ("MulBackward0"); fn.next_functions is an array with one entry per input of the op, in
-- PyTorch's order: that input's grad_fn, or false where the input is a leaf or does not take
-- part in autograd. Two handles for the same node compare equal with ==. A handle keeps the
-- graph behind it alive, as a tensor does.
local M = {}

function M.install(torch, core)
  local setters = core._setters
  setters.requires_grad = core._set_requires_grad
  setters.grad = core._set_grad

  local is_grad_enabled, set_grad_enabled = core.is_grad_enabled, core.set_grad_enabled

  local function check_callable(fn, fname)
    if type(fn) == "function" then return end
    local mt = getmetatable(fn)
    if type(mt) == "table" and mt.__call ~= nil then return end
    error("moontorch." .. fname .. ": bad argument #1 (function expected, got " .. type(fn) .. ")", 0)
  end

  -- Restores the mode, then returns fn's results or re-raises its error as it was.
  local function finish(prev, ok, ...)
    set_grad_enabled(prev)
    if not ok then error((...), 0) end
    return ...
  end

  local function with_grad_mode(mode, fname)
    return function(fn, ...)
      check_callable(fn, fname)
      local prev = set_grad_enabled(mode)
      return finish(prev, pcall(fn, ...))
    end
  end

  torch.no_grad = with_grad_mode(false, "no_grad")
  torch.enable_grad = with_grad_mode(true, "enable_grad")
  torch.set_grad_enabled = set_grad_enabled
  torch.is_grad_enabled = is_grad_enabled
end

return M
