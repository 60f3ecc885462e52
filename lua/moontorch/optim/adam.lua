-- torch.optim.Adam and torch.optim.AdamW, as PyTorch 1.13's:
--
--   g = grad (negated with maximize);  Adam: g = g + weight_decay * param
--                                      AdamW: param = param * (1 - lr * weight_decay)
--   exp_avg = beta1 * exp_avg + (1 - beta1) * g
--   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
--   amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used below instead
--   param = param - lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps)
--
-- State: step (a 0-dim float32 tensor, t above), exp_avg, exp_avg_sq, and max_exp_avg_sq with
-- amsgrad, made on a parameter's first step with a gradient.
local torch = require "moontorch"
local core = require "moontorch.core"
local ordered = require "moontorch.ordered"

return function(optim)
  local nonneg = optim.nonnegative

  local STATE = {
    { "step", "step", true },
    { "exp_avg", "tensor", true },
    { "exp_avg_sq", "tensor", true },
    { "max_exp_avg_sq", "tensor" },
  }

  local function updater(decoupled)
    return function(self, group, gi)
      local state, amsgrad = self.state, group.amsgrad
      for _, p in ipairs(group.params) do
        if p.grad ~= nil then
          local s = state[p]
          if s == nil or next(s) == nil then
            s = ordered.new()
            s.step = torch.tensor(0.0)
            s.exp_avg = torch.zeros_like(p)
            s.exp_avg_sq = torch.zeros_like(p)
            state[p] = s
          end
          -- amsgrad switched on later (PyTorch would fail): the maximum starts from zero
          if amsgrad and s.max_exp_avg_sq == nil then s.max_exp_avg_sq = torch.zeros_like(p) end
        end
      end
      core._adam_step(group, gi, state, decoupled)
    end
  end

  optim.Adam = optim.Optimizer:extend("Adam", {
    hyper = {
      { "lr", 1e-3, "number", nonneg },
      { "betas", { 0.9, 0.999 }, "betas", optim.check_betas },
      { "eps", 1e-8, "number", nonneg },
      { "weight_decay", 0, "number", nonneg },
      { "amsgrad", false, "boolean" },
      { "maximize", false, "boolean" },
      { "foreach", nil, "foreach" },
      { "capturable", false, "false" },
      { "differentiable", false, "false" },
      { "fused", false, "false" },
    },
    state = STATE,
    update = updater(false),
  })

  optim.AdamW = optim.Optimizer:extend("AdamW", {
    hyper = {
      { "lr", 1e-3, "number", nonneg },
      { "betas", { 0.9, 0.999 }, "betas", optim.check_betas },
      { "eps", 1e-8, "number", nonneg },
      { "weight_decay", 1e-2, "number", nonneg },
      { "amsgrad", false, "boolean" },
      { "foreach", nil, "foreach" },
      { "maximize", false, "boolean" },
      { "capturable", false, "false" },
    },
    state = STATE,
    update = updater(true),
  })
end
