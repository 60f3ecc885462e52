-- Workflow: a general checkpoint, and resuming from it exactly.
-- Save everything training needs to continue: the epoch, the model's and the optimizer's state
-- dicts, the scheduler's, the random generator's state and the last loss. Loading it into
-- freshly built objects continues the run bit for bit: same batches, same dropout masks, same
-- optimizer moments, same learning rates.
--
--   lua5.4 examples/checkpoint_resume.lua [DIR]          (writes DIR/, default runs/examples)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
local path = dir .. "/checkpoint.pt"

torch.manual_seed(0)
local x = torch.randn(512, 8)
local y = (x:narrow(2, 1, 4):sum(2, true) - x:narrow(2, 5, 4):sum(2, true)):tanh() + torch.randn(512, 1) * 0.1
local loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), { batch_size = 32, shuffle = true })

-- Everything a run is made of, built the same way by the first run and by the resumed one.
local function new_run()
  local model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
  local optimizer = torch.optim.SGD(model:parameters(), { lr = 0.05, momentum = 0.9 })
  local scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2, { gamma = 0.5 })
  return { model = model, optimizer = optimizer, scheduler = scheduler, epoch = 0 }
end

local function train_epoch(run)
  run.model:train()
  local total = 0
  for xb, yb in loader:iter() do -- each pass reshuffles, from the default generator
    local loss = F.mse_loss(run.model(xb), yb)
    run.optimizer:zero_grad()
    loss:backward()
    run.optimizer:step()
    total = total + loss:item()
  end
  run.scheduler:step()
  run.epoch = run.epoch + 1
  return total / #loader
end

-- The uninterrupted run: 6 epochs, with a checkpoint after epoch 3.
local full = new_run()
local loss
for epoch = 1, 6 do
  loss = train_epoch(full)
  if epoch == 3 then
    torch.save({
      epoch = epoch,
      model_state_dict = full.model:state_dict(),
      optimizer_state_dict = full.optimizer:state_dict(),
      scheduler_state_dict = full.scheduler:state_dict(),
      rng_state = torch.get_rng_state(),
      loss = loss,
    }, path)
    print(string.format("epoch %d: loss %.5f, checkpoint saved to %s", epoch, loss, path))
  end
end
print(string.format("uninterrupted: epoch 6 loss %.5f, lr %g", loss, full.optimizer.param_groups[1].lr))

-- The resumed run, as a new process would do it: build fresh objects, then load the checkpoint.
torch.manual_seed(1234) -- whatever state the new process is in: the checkpoint's state replaces it
local resumed = new_run()
local ckpt = torch.load(path)
resumed.model:load_state_dict(ckpt.model_state_dict)
resumed.optimizer:load_state_dict(ckpt.optimizer_state_dict)
resumed.scheduler:load_state_dict(ckpt.scheduler_state_dict)
torch.set_rng_state(ckpt.rng_state)
resumed.epoch = ckpt.epoch
local resumed_loss
while resumed.epoch < 6 do resumed_loss = train_epoch(resumed) end
print(string.format("resumed at epoch %d: epoch 6 loss %.5f, lr %g", ckpt.epoch, resumed_loss,
  resumed.optimizer.param_groups[1].lr))

assert(resumed_loss == loss, "the resumed run's loss differs")
for name, t in pairs(full.model:state_dict()) do
  assert(torch.equal(t, resumed.model:state_dict()[name]), name .. " differs after resuming")
end
print("the resumed run ends with the same weights and loss, bit for bit")
