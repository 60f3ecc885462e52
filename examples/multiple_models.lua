-- Workflow: several models and their optimizers in one file (a GAN's generator and
-- discriminator, an encoder and a decoder, ...). Save one dict of state dicts; to load, build
-- the models and optimizers, then load each part into its owner.
--
--   lua5.4 examples/multiple_models.lua [DIR]            (writes DIR/, default runs/examples)
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional

local dir = arg[1] or "runs/examples"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
local path = dir .. "/gan.pt"

local function build()
  local netG = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
  local netD = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
  local optG = torch.optim.Adam(netG:parameters(), { lr = 2e-4, betas = { 0.5, 0.999 } })
  local optD = torch.optim.Adam(netD:parameters(), { lr = 2e-4, betas = { 0.5, 0.999 } })
  return netG, netD, optG, optD
end

-- A few steps of adversarial training, so that both optimizers have state worth saving.
torch.manual_seed(0)
local netG, netD, optG, optD = build()
local real = torch.randn(64, 2) * 0.5 + 2
for step = 1, 20 do
  local fake = netG(torch.randn(64, 8))
  local d_loss = F.binary_cross_entropy_with_logits(netD(real), torch.ones(64, 1))
    + F.binary_cross_entropy_with_logits(netD(fake:detach()), torch.zeros(64, 1))
  optD:zero_grad()
  d_loss:backward()
  optD:step()
  local g_loss = F.binary_cross_entropy_with_logits(netD(fake), torch.ones(64, 1))
  optG:zero_grad()
  g_loss:backward()
  optG:step()
  if step % 10 == 0 then print(string.format("step %d: loss D %.4f, loss G %.4f", step, d_loss:item(), g_loss:item())) end
end

torch.save({
  modelG_state_dict = netG:state_dict(), modelD_state_dict = netD:state_dict(),
  optimizerG_state_dict = optG:state_dict(), optimizerD_state_dict = optD:state_dict(),
}, path)

-- Loading: fresh objects first, then each state dict into its owner.
local G2, D2, optG2, optD2 = build()
local ckpt = torch.load(path)
G2:load_state_dict(ckpt.modelG_state_dict)
D2:load_state_dict(ckpt.modelD_state_dict)
optG2:load_state_dict(ckpt.optimizerG_state_dict)
optD2:load_state_dict(ckpt.optimizerD_state_dict)

local z = torch.randn(4, 8)
assert(torch.equal(G2(z), netG(z)) and torch.equal(D2(G2(z)), netD(netG(z))))
for i, p in ipairs(netG:parameters()) do
  local a, b = optG.state[p], optG2.state[G2:parameters()[i]]
  assert(torch.equal(a.step, b.step) and torch.equal(a.exp_avg, b.exp_avg) and torch.equal(a.exp_avg_sq, b.exp_avg_sq))
end
print("keys in " .. path .. ":")
for k in pairs(ckpt) do print("  " .. k) end
print("both models and both optimizers came back identical")
