-- torch.optim.RMSprop, as PyTorch 1.13's:
--
--   g = grad (negated with maximize) + weight_decay * param
--   square_avg = alpha * square_avg + (1 - alpha) * g * g
--   centered: grad_avg = alpha * grad_avg + (1 - alpha) * g;  avg = sqrt(square_avg - grad_avg^2)
--   else      avg = sqrt(square_avg)
--   momentum > 0: buf = momentum * buf + g / (avg + eps);  param = param - lr * buf
--   else          param = param - lr * g / (avg + eps)
--
-- State: step (a plain integer count in PyTorch 1.13; it does not enter the update), square_avg,
-- momentum_buffer (momentum > 0) and grad_avg (centered).
local torch = require "moontorch"
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

return function(optim)
  local nonneg = optim.nonnegative

  optim.RMSprop = optim.Optimizer:extend("RMSprop", {
    hyper = {
      { "lr", 1e-2, "number", nonneg },
      { "momentum", 0, "number", nonneg },
      { "alpha", 0.99, "number", nonneg },
      { "eps", 1e-8, "number", nonneg },
      { "centered", false, "boolean" },
      { "weight_decay", 0, "number", nonneg },
      { "foreach", nil, "foreach" },
      { "maximize", false, "boolean" },
      { "differentiable", false, "false" },
    },
    state = {
      { "step", "count", true },
      { "square_avg", "tensor", true },
      { "momentum_buffer", "tensor" },
      { "grad_avg", "tensor" },
    },
    update = function(self, group, gi)
      local state = self.state
      for _, p in ipairs(group.params) do
        if p.grad ~= nil then
          local s = state[p]
          if s == nil or next(s) == nil then
            s = ordered.new()
            s.step = 0
            s.square_avg = torch.zeros_like(p)
            state[p] = s
          end
          -- made when first needed (also when momentum or centered is switched on later)
          if group.momentum > 0 and s.momentum_buffer == nil then s.momentum_buffer = torch.zeros_like(p) end
          if group.centered and s.grad_avg == nil then s.grad_avg = torch.zeros_like(p) end
          s.step = s.step + 1
        end
      end
      core._rmsprop_step(group, gi, state)
    end,
  })
end
