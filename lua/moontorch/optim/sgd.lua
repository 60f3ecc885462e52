-- torch.optim.SGD: stochastic gradient descent with momentum, dampening, weight decay (L2),
-- Nesterov momentum and maximize, as PyTorch 1.13's:
--
--   d = grad (negated with maximize) + weight_decay * param
--   buf = d on the first step, else momentum * buf + (1 - dampening) * d   (when momentum ~= 0)
--   d = nesterov and d + momentum * buf or buf
--   param = param - lr * d
--
-- State: momentum_buffer (with momentum ~= 0). A parameter that has had a gradient gets a state
-- entry, empty without momentum (PyTorch stores momentum_buffer = None there).
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

return function(optim)
  local nonneg = optim.nonnegative

  optim.SGD = optim.Optimizer:extend("SGD", {
    hyper = {
      { "lr", optim.required, "number", nonneg },
      { "momentum", 0, "number", nonneg },
      { "dampening", 0, "number" },
      { "weight_decay", 0, "number", nonneg },
      { "nesterov", false, "boolean" },
      { "maximize", false, "boolean" },
      { "foreach", nil, "foreach" },
      { "differentiable", false, "false" },
    },
    state = { { "momentum_buffer", "tensor" } },
    check_group = function(g)
      if g.nesterov and (not (g.momentum > 0) or g.dampening ~= 0) then
        return "Nesterov momentum requires a momentum and zero dampening"
      end
    end,
    update = function(self, group, gi)
      local state = self.state
      for _, p in ipairs(group.params) do
        if state[p] == nil and p.grad ~= nil then state[p] = ordered.new() end
      end
      core._sgd_step(group, gi, state) -- makes momentum_buffer on the first step
    end,
  })
end
