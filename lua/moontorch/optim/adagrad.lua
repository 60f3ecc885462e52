-- torch.optim.Adagrad, as PyTorch 1.13's:
--
--   g = grad (negated with maximize) + weight_decay * param
--   clr = lr / (1 + (t - 1) * lr_decay)
--   sum = sum + g * g
--   param = param - clr * g / (sqrt(sum) + eps)
--
-- State: step (a 0-dim float32 tensor, t above) and sum, made for every parameter when its
-- group is added (sum starts at the group's initial_accumulator_value), as PyTorch does.
local torch = require "moontorch"
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

return function(optim)
  local nonneg = optim.nonnegative

  local function init_state(p, group)
    local s = ordered.new()
    s.step = torch.tensor(0.0)
    s.sum = torch.full_like(p, group.initial_accumulator_value)
    return s
  end

  optim.Adagrad = optim.Optimizer:extend("Adagrad", {
    hyper = {
      { "lr", 1e-2, "number", nonneg },
      { "lr_decay", 0, "number", nonneg },
      { "eps", 1e-10, "number", nonneg },
      { "weight_decay", 0, "number", nonneg },
      { "initial_accumulator_value", 0, "number", nonneg },
      { "foreach", nil, "foreach" },
      { "maximize", false, "boolean" },
    },
    state = { { "step", "step", true }, { "sum", "tensor", true } },
    init_group = function(self, group)
      for _, p in ipairs(group.params) do self.state[p] = init_state(p, group) end
    end,
    update = function(self, group, gi)
      local state = self.state
      for _, p in ipairs(group.params) do
        if p.grad ~= nil then
          local s = state[p]
          if s == nil or next(s) == nil then state[p] = init_state(p, group) end -- e.g. dropped by a load
        end
      end
      core._adagrad_step(group, gi, state)
    end,
  })
end
