-- torch.nn.utils (SPEC section 4): state-dict key renaming and gradient clipping.
--
--   model:load_state_dict(nn.utils.strip_prefix(torch.load("ddp.pt"), "module."))
--   torch.save(nn.utils.add_prefix(model:state_dict(), "module."), "for_ddp.pt")
--   local total = nn.utils.clip_grad_norm_(model:parameters(), 1.0)   -- before optimizer:step()
local torch = require "moontorch"
local ordered = require "moontorch.ordered"
local module = require "moontorch.nn.module"

local M = {}

local fail = require("moontorch.errors").raiser("moontorch.nn.utils.")

local typename = require("moontorch.errors").typename

-- A new ordered state dict with each key renamed by fn (same values, same order; a plain
-- table's keys are taken sorted). Two keys that end up the same are an error.
local function rename(fname, sd, prefix, fn)
  if type(sd) ~= "table" or torch.is_tensor(sd) then fail(fname, "bad argument #1 (state dict expected, got %s)", typename(sd)) end
  if type(prefix) ~= "string" then fail(fname, "bad argument #2 (prefix string expected, got %s)", typename(prefix)) end
  local out, from = ordered.new(), {}
  for _, k in ipairs(module.keys_of(sd)) do
    local nk = type(k) == "string" and fn(k) or k
    if from[nk] ~= nil then
      fail(fname, "keys '%s' and '%s' would both become '%s'", tostring(from[nk]), tostring(k), tostring(nk))
    end
    from[nk] = k
    out[nk] = sd[k]
  end
  return out
end

-- strip_prefix(sd, prefix): keys that start with prefix lose it; the others stay as they are.
function M.strip_prefix(sd, prefix)
  return rename("strip_prefix", sd, prefix, function(k)
    if k:sub(1, #prefix) == prefix then return k:sub(#prefix + 1) end
    return k
  end)
end

-- add_prefix(sd, prefix): every key gets the prefix.
function M.add_prefix(sd, prefix)
  return rename("add_prefix", sd, prefix, function(k) return prefix .. k end)
end

-- The gradients of a tensor or an array of tensors (those that have one).
local function grads_of(fname, params)
  if torch.is_tensor(params) then params = { params } end
  if type(params) ~= "table" then fail(fname, "bad argument #1 (tensor or array of tensors expected, got %s)", typename(params)) end
  local grads = {}
  for i, p in ipairs(params) do
    if not torch.is_tensor(p) then fail(fname, "parameters[%d] is a %s, not a tensor", i, typename(p)) end
    local g = p.grad
    if g ~= nil then grads[#grads + 1] = g end
  end
  return grads
end

-- clip_grad_norm_(params, max_norm[, norm_type][, opts]) scales the gradients in place so that
-- their total norm (the norm of the per-tensor norms) is at most max_norm, as PyTorch 1.13:
-- coefficient max_norm / (total + 1e-6), clamped to 1. norm_type: a number, math.huge for the
-- max norm (default 2); opts: {norm_type = ..., error_if_nonfinite = false}. Returns the total
-- norm before clipping, a 0-dim tensor.
function M.clip_grad_norm_(params, max_norm, norm_type, opts)
  local fname = "clip_grad_norm_"
  if type(norm_type) == "table" and opts == nil then norm_type, opts = nil, norm_type end
  opts = opts or {}
  if type(opts) ~= "table" then fail(fname, "bad argument #4 (options table expected, got %s)", typename(opts)) end
  for k in pairs(opts) do
    if k ~= "norm_type" and k ~= "error_if_nonfinite" then
      fail(fname, "unknown option '%s' (known options: error_if_nonfinite, norm_type)", tostring(k))
    end
  end
  norm_type = norm_type or opts.norm_type or 2
  if type(max_norm) ~= "number" then fail(fname, "bad argument #2 (max_norm must be a number, got %s)", typename(max_norm)) end
  if type(norm_type) ~= "number" then fail(fname, "norm_type must be a number, got %s", typename(norm_type)) end
  local grads = grads_of(fname, params)
  if #grads == 0 then return torch.tensor(0.0) end

  return torch.no_grad(function()
    local norms, dtype = {}, grads[1].dtype
    for i, g in ipairs(grads) do
      norms[i] = norm_type == math.huge and g:abs():amax() or g:norm(norm_type)
      if g.dtype == "float64" then dtype = "float64" end
    end
    local total
    if norm_type == math.huge and #norms == 1 then
      total = norms[1]
    else
      for i = 1, #norms do norms[i] = norms[i]:to(dtype) end
      local stacked = torch.stack(norms)
      total = norm_type == math.huge and stacked:amax() or stacked:norm(norm_type)
    end
    if opts.error_if_nonfinite and not total:isfinite():item() then
      fail(fname, "the total norm of order %s for gradients from `parameters` is non-finite, so it cannot be clipped (set error_if_nonfinite = false to scale the gradients by it anyway)", tostring(norm_type))
    end
    local coef = (max_norm / (total + 1e-6)):clamp(nil, 1.0)
    for _, g in ipairs(grads) do g:mul_(coef:to(g.dtype)) end
    return total
  end)
end

-- clip_grad_value_(params, clip_value): clamps every gradient into [-clip_value, clip_value].
function M.clip_grad_value_(params, clip_value)
  if type(clip_value) ~= "number" then fail("clip_grad_value_", "bad argument #2 (clip_value must be a number, got %s)", typename(clip_value)) end
  local grads = grads_of("clip_grad_value_", params)
  torch.no_grad(function()
    for _, g in ipairs(grads) do g:clamp_(-clip_value, clip_value) end
  end)
end

return M
