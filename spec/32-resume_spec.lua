-- Exact resume across processes (SPEC §5 and §6): a training run of N steps, and the same run
-- cut in two — the first lua5.4 process trains K steps and saves a general checkpoint
-- {epoch, model, optimizer, scheduler, rng = torch.get_rng_state(), loss} with torch.save, a
-- second one rebuilds everything, loads the checkpoint and trains the remaining steps — end
-- with bit-identical parameters, loss and learning rate. Every step draws random numbers (the
-- minibatch, the dropout mask), so the RNG state, the optimizer's buffers and the scheduler's
-- position all have to come back exactly. Controls show the check has teeth: resuming without
-- the RNG state, or without the optimizer state, gives different parameters.
local H = require "spec.helpers"
local torch = H.torch

local N, K = 24, 10

-- The training script both processes run. MODE: "full" (N steps), "first" (K steps, then the
-- checkpoint), "resume" (checkpoint, then steps K+1..N), "resume_no_rng" / "resume_no_opt"
-- (controls: one part of the checkpoint left out). CONFIG: "nn" (nn.Sequential with Dropout,
-- SGD with Nesterov momentum, OneCycleLR cycling the momentum) or "manual" (a hand-written
-- model whose dropout mask comes from torch.rand, AMSGrad Adam, CosineAnnealingLR).
local SCRIPT = [==[
local MODE, CONFIG, N, K, CKPT, OUT = ...
local torch = require "moontorch"
local optim, lr_scheduler = torch.optim, torch.optim.lr_scheduler

torch.manual_seed(20240)
local x, y = torch.randn(64, 4), torch.randn(64, 3)

local params, forward, model_state, load_model_state, opt, sched
if CONFIG == "nn" then
  local nn = torch.nn
  local model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
  model:train()
  params = model:parameters()
  forward = function(xb) return model(xb) end
  model_state = function() return model:state_dict() end
  load_model_state = function(sd) model:load_state_dict(sd) end
  opt = optim.SGD(params, { lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 1e-4 })
  sched = lr_scheduler.OneCycleLR(opt, 0.2, { total_steps = N })
else
  local w1 = (torch.randn(4, 16) * 0.5):requires_grad_()
  local b1 = torch.zeros(16):requires_grad_()
  local w2 = (torch.randn(16, 3) * 0.25):requires_grad_()
  params = { w1, b1, w2 }
  forward = function(xb)
    local h = (xb:matmul(w1) + b1):relu()
    local keep = torch.rand(h.shape):ge(0.3):float() / 0.7
    return (h * keep):matmul(w2)
  end
  model_state = function() return torch.OrderedDict({ { "w1", w1 }, { "b1", b1 }, { "w2", w2 } }) end
  load_model_state = function(sd)
    torch.no_grad(function() w1:copy_(sd.w1); b1:copy_(sd.b1); w2:copy_(sd.w2) end)
  end
  opt = optim.Adam(params, { lr = 0.01, amsgrad = true, weight_decay = 1e-3 })
  sched = lr_scheduler.CosineAnnealingLR(opt, 7, { eta_min = 1e-4 })
end

local function train_step()
  local idx = torch.randint(1, 65, { 16 })
  local xb, yb = x:index_select(1, idx), y:index_select(1, idx)
  local loss = ((forward(xb) - yb) ^ 2):mean()
  opt:zero_grad()
  loss:backward()
  opt:step()
  sched:step()
  return loss:item()
end

local first, loss = 1, nil
if MODE:match("^resume") then
  local ckpt = torch.load(CKPT)
  load_model_state(ckpt.model)
  if MODE ~= "resume_no_opt" then opt:load_state_dict(ckpt.optimizer) end
  sched:load_state_dict(ckpt.scheduler)
  if MODE ~= "resume_no_rng" then torch.set_rng_state(ckpt.rng) end
  first, loss = ckpt.epoch + 1, ckpt.loss
end

for step = first, MODE == "first" and K or N do loss = train_step() end

if MODE == "first" then
  torch.save({ epoch = K, model = model_state(), optimizer = opt:state_dict(), scheduler = sched:state_dict(),
    rng = torch.get_rng_state(), loss = loss }, CKPT)
else
  torch.save({ params = model_state(), loss = loss, lr = opt.param_groups[1].lr, last_epoch = sched.last_epoch }, OUT)
end
]==]

local function run(mode, config, ckpt, out)
  local prelude = string.format("local function args() return %q, %q, %d, %d, %q, %q end\n", mode, config, N, K,
    ckpt, out)
  local code = prelude .. "return (load(" .. string.format("%q", SCRIPT) .. ", 'train'))(args())"
  local output, ok = H.run_lua(code)
  assert(ok, config .. " " .. mode .. " run failed:\n" .. output)
end

local function same_params(a, b)
  local n = 0
  for name, t in pairs(a) do
    n = n + 1
    local u = b[name]
    if not (torch.is_tensor(u) and torch.equal(t, u)) then return false, name end
  end
  for _ in pairs(b) do n = n - 1 end
  return n == 0, "(key sets differ)"
end

describe("exact resume across processes", function()
  local dir

  setup(function()
    local f = assert(io.popen("mktemp -d /tmp/moontorch-resume.XXXXXX"))
    dir = f:read("l")
    f:close()
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  for _, config in ipairs({ "manual", "nn" }) do
    it("continues bit for bit after a checkpoint: " .. config, function()
      local p = function(name) return dir .. "/" .. config .. "." .. name end
      run("full", config, p("unused"), p("full.pt"))
      run("first", config, p("ckpt.pt"), p("unused"))
      run("resume", config, p("ckpt.pt"), p("resumed.pt"))

      local ckpt = torch.load(p("ckpt.pt"))
      assert.are.equal(K, ckpt.epoch)
      assert.are.equal("float", math.type(ckpt.loss))
      assert.are.equal("uint8", ckpt.rng.dtype)
      assert.are.equal(K, ckpt.scheduler.last_epoch)
      assert.is_truthy(next(ckpt.optimizer.state), "the optimizer state holds per-parameter buffers")

      local full, resumed = torch.load(p("full.pt")), torch.load(p("resumed.pt"))
      local ok, name = same_params(full.params, resumed.params)
      assert(ok, config .. ": parameter " .. tostring(name) .. " differs after resuming")
      assert.are.equal(full.loss, resumed.loss)
      assert.are.equal(full.lr, resumed.lr)
      assert.are.equal(N, resumed.last_epoch)

      -- controls: leaving out the RNG state or the optimizer state must show
      run("resume_no_rng", config, p("ckpt.pt"), p("no_rng.pt"))
      run("resume_no_opt", config, p("ckpt.pt"), p("no_opt.pt"))
      assert.is_false((same_params(full.params, torch.load(p("no_rng.pt")).params)))
      assert.is_false((same_params(full.params, torch.load(p("no_opt.pt")).params)))
    end)
  end
end)
