-- Fashion-MNIST end to end: what `make demo` runs. Nine steps, each saying what it does and what
-- it proves: load the data, train a small conv net, checkpoint every epoch and resume in a new
-- process, evaluate, save for inference, warm-start a different model, keep two models in one
-- file, trace for deployment, draw the learning curves.
--
--   make demo                                           (builds first; DEMO_ARGS="..." passes options)
--   lua5.4 examples/fashion_mnist.lua [options]        (from the repository root, after make)
--
--   --data DIR        the IDX files (default: /usr/share/datasets/fashion-mnist, which Debian's
--                     dataset-fashion-mnist installs)
--   --out DIR         checkpoints, model files and curves.svg (default: runs/fashion-mnist)
--   --epochs N        training epochs (default 5)
--   --batch-size N    (default 128)
--   --lr X            peak learning rate of the one-cycle schedule (default 0.003)
--   --seed N          (default 1)
--   --target X        the test accuracy to reach, else the exit status is 1 (default 0.90)
--   --progress MODE   bar (redrawn on one line), lines, or auto: bar on a terminal (default)
--   --resume FILE     continue a run from one of its checkpoints, in this process
--   --train-only      stop after training (with --resume: how step 3 runs the resumed process)
--   --help            print this
--
-- Everything it writes goes under --out; a second run overwrites it.
local torch = require "moontorch"
local nn, F = torch.nn, torch.nn.functional
local data = torch.utils.data

-- ---------------------------------------------------------------------------------------------
-- Options

local cfg = {
  data = "/usr/share/datasets/fashion-mnist", out = "runs/fashion-mnist",
  epochs = 5, batch_size = 128, lr = 0.003, seed = 1, target = 0.90, progress = "auto",
  resume = nil, train_only = false,
}
local NUMERIC = { epochs = "integer", batch_size = "integer", seed = "integer", lr = "number", target = "number" }

local options = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/options.lua")
local usage_error = options.parse(arg, cfg, { numeric = NUMERIC, flags = { train_only = true },
  optional = { resume = true } })
if cfg.progress ~= "auto" and cfg.progress ~= "bar" and cfg.progress ~= "lines" then
  usage_error("--progress is bar, lines or auto")
end
if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 then
  usage_error("--epochs and --batch-size must be at least 1, --lr positive")
end

-- A live bar only when stdout is a terminal: `test -t 1` runs with our stdout.
local use_bar = cfg.progress == "bar"
if cfg.progress == "auto" then
  local term = os.getenv("TERM")
  use_bar = term ~= nil and term ~= "dumb" and os.execute("test -t 1") == true
end

-- The terminal's width, for the bar: $COLUMNS, else what the terminal says, else 80.
local term_columns = 80
if use_bar then
  local p = io.popen("stty size </dev/tty 2>/dev/null")
  local cols = p and p:read("a"):match("^%d+ (%d+)")
  if p then p:close() end
  term_columns = tonumber(os.getenv("COLUMNS")) or tonumber(cols) or 80
end

-- Wall-clock seconds with 10 ms resolution (Linux's /proc/uptime; whole seconds elsewhere).
-- os.clock() would count CPU time, which OpenBLAS's threads inflate.
local function now()
  local f = io.open("/proc/uptime")
  local t = f and f:read("n")
  if f then f:close() end
  return t or os.time()
end

local function hms(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%d:%02d", s // 60, s % 60)
end

local T0 = now()

local function step(n, title, what)
  print()
  local head = string.format("== Step %d/9: %s ", n, title)
  print(head .. string.rep("=", math.max(3, 78 - #head)) .. string.format(" [%s]", hms(now() - T0)))
  if what then print("   " .. what) end
end

local function say(fmt, ...) print("   " .. string.format(fmt, ...)) end

-- A check the demo stands on: prints what it proved, or stops the demo.
local function proved(ok, fmt, ...)
  local msg = string.format(fmt, ...)
  if not ok then
    io.stderr:write("\nFAILED: ", msg, "\n")
    os.exit(1)
  end
  print("   proved: " .. msg)
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function kib(path) return string.format("%.0f KiB", file_size(path) / 1024) end

os.execute("mkdir -p '" .. cfg.out:gsub("'", "'\\''") .. "'")
local function out(name) return cfg.out .. "/" .. name end

-- ---------------------------------------------------------------------------------------------
-- The models

-- Conv -> batch norm -> ReLU -> 2x2 max pool, twice (28x28 -> 14x14 -> 7x7), then dropout and a
-- two-layer classifier. Convs feeding batch norm need no bias (the norm's shift replaces it).
local function features()
  return nn.Sequential(
    nn.Conv2d(1, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, { padding = 1, bias = false }), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten())
end

local FashionNet = nn.Module:extend("FashionNet")
function FashionNet:__init(classes)
  self.features = features()
  self.classifier = nn.Sequential(nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes))
end
function FashionNet:forward(x) return self.classifier(self.features(x)) end

-- The warm-start target of step 6: the same trunk, the hidden layer without its last Linear,
-- and a new 5-way `head`.
local CoarseNet = nn.Module:extend("CoarseNet")
function CoarseNet:__init()
  self.features = features()
  self.classifier = nn.Sequential(nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU())
  self.head = nn.Linear(128, 5)
end
function CoarseNet:forward(x) return self.head(self.classifier(self.features(x))) end

-- ---------------------------------------------------------------------------------------------
-- Training and evaluation

-- One line of progress: redrawn in place on a terminal, printed a few times per epoch otherwise.
local Progress = {}
Progress.__index = Progress

-- label: what runs ("epoch 2/5"); steps: how many; prefix: indentation.
function Progress.new(label, steps, prefix)
  return setmetatable({ label = label, steps = steps, t0 = now(), prefix = prefix or "", next_line = 1 }, Progress)
end

function Progress:update(i, loss, acc)
  local elapsed = now() - self.t0
  local rate = elapsed > 0 and i / elapsed or nil -- nil until the clock has ticked
  local stats = string.format("loss %.4f acc %.4f %s steps/s ETA %s", loss, acc,
    rate and string.format("%.1f", rate) or "...", rate and hms((self.steps - i) / rate) or "-:--")
  if use_bar then
    -- One line that fits the terminal (a wrapped line could not be redrawn): the bar takes
    -- what the text leaves, between 8 and 30 columns.
    local head, tail = self.prefix .. self.label .. " [", string.format("] %d/%d %s", i, self.steps, stats)
    local width = math.max(8, math.min(30, term_columns - 1 - #head - #tail))
    local done = math.floor(width * i / self.steps)
    local bar = string.rep("=", done) .. (done < width and ">" or "") .. string.rep(" ", width - done - 1)
    io.write("\r", (head .. bar .. tail):sub(1, term_columns - 1), "\27[K")
    io.stdout:flush()
  elseif i >= self.next_line or i == self.steps then
    print(string.format("%s%s  step %d/%d  %s", self.prefix, self.label, i, self.steps, stats))
    io.stdout:flush()
    self.next_line = i + math.max(1, self.steps // 4)
  end
end

function Progress:finish()
  if use_bar then io.write("\r\27[K") end
end

-- Loss and accuracy of `model` in eval mode over a loader; `map` (optional) relabels targets.
local function evaluate(model, loader, map)
  model:eval()
  return torch.no_grad(function()
    local loss, correct, n = 0, 0, 0
    for x, y in loader:iter() do
      if map then y = map:index_select(1, y) end
      local logits = model(x)
      loss = loss + F.cross_entropy(logits, y, { reduction = "sum" }):item()
      correct = correct + logits:argmax(2):eq(y):sum():item()
      n = n + y:size(1)
    end
    return loss / n, correct / n
  end)
end

-- The run: model, optimizer, scheduler and history, built the same way in every process.
local function new_run(train_loader)
  local model = FashionNet(10)
  local optimizer = torch.optim.AdamW(model:parameters(), { lr = cfg.lr, weight_decay = 1e-4 })
  local scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr,
    { epochs = cfg.epochs, steps_per_epoch = #train_loader })
  return { model = model, optimizer = optimizer, scheduler = scheduler, epoch = 0,
    history = { epochs = {}, points = {} } }
end

-- The general checkpoint: everything a new process needs to continue exactly where this one is.
local function save_checkpoint(run, loss, path)
  torch.save({
    epoch = run.epoch,
    model_state_dict = run.model:state_dict(),
    optimizer_state_dict = run.optimizer:state_dict(),
    scheduler_state_dict = run.scheduler:state_dict(),
    rng_state = torch.get_rng_state(),
    loss = loss,
    history = run.history,
    config = { epochs = cfg.epochs, batch_size = cfg.batch_size, lr = cfg.lr, seed = cfg.seed },
  }, path)
end

local function load_checkpoint(run, path)
  local ckpt = torch.load(path)
  -- The schedule spans the whole run, so a run continues with the settings it started with.
  for k, v in pairs(ckpt.config) do
    if cfg[k] ~= v then
      usage_error(string.format("%s was saved by a run with --%s %s; resume it with the same setting",
        path, k:gsub("_", "-"), tostring(v)))
    end
  end
  run.model:load_state_dict(ckpt.model_state_dict)
  run.optimizer:load_state_dict(ckpt.optimizer_state_dict)
  run.scheduler:load_state_dict(ckpt.scheduler_state_dict)
  torch.set_rng_state(ckpt.rng_state) -- the shuffles and dropout masks to come
  run.epoch, run.history = ckpt.epoch, ckpt.history
  return ckpt
end

-- Trains the epochs after run.epoch up to cfg.epochs, evaluating and checkpointing after each.
local function train(run, train_loader, test_loader, prefix)
  local model, optimizer, scheduler = run.model, run.optimizer, run.scheduler
  local steps = #train_loader
  while run.epoch < cfg.epochs do
    local epoch = run.epoch + 1
    model:train()
    local progress = Progress.new(string.format("epoch %d/%d", epoch, cfg.epochs), steps, prefix)
    local loss_sum, correct, seen, i = 0, 0, 0, 0
    local seg_loss, seg_correct, seg_seen, seg_len = 0, 0, 0, math.max(1, steps // 10)
    for x, y in train_loader:iter() do
      local logits = model(x)
      local loss = F.cross_entropy(logits, y)
      optimizer:zero_grad()
      loss:backward()
      optimizer:step()
      scheduler:step()

      i = i + 1
      local l, c, b = loss:item(), logits:detach():argmax(2):eq(y):sum():item(), y:size(1)
      loss_sum, correct, seen = loss_sum + l * b, correct + c, seen + b
      seg_loss, seg_correct, seg_seen = seg_loss + l * b, seg_correct + c, seg_seen + b
      if i % seg_len == 0 or i == steps then -- a point of the training curve every ~1/10 epoch
        table.insert(run.history.points, { x = epoch - 1 + i / steps, loss = seg_loss / seg_seen, acc = seg_correct / seg_seen })
        seg_loss, seg_correct, seg_seen = 0, 0, 0
      end
      progress:update(i, loss_sum / seen, correct / seen)
    end
    progress:finish()
    local seconds = now() - progress.t0
    local test_loss, test_acc = evaluate(model, test_loader)
    run.epoch = epoch
    table.insert(run.history.epochs, { epoch = epoch, train_loss = loss_sum / seen, train_acc = correct / seen,
      test_loss = test_loss, test_acc = test_acc, seconds = seconds })
    local path = out(string.format("checkpoint-epoch%d.pt", epoch))
    save_checkpoint(run, loss_sum / seen, path)
    print(string.format("%sepoch %d/%d  train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1fs, %.1f steps/s -> %s",
      prefix, epoch, cfg.epochs, loss_sum / seen, correct / seen, test_loss, test_acc, seconds, steps / seconds, path))
    io.stdout:flush()
  end
end

-- ---------------------------------------------------------------------------------------------
-- Step 1: data

if not cfg.train_only then
  print(string.format("moontorch %s: Fashion-MNIST end to end (%s progress)", torch._VERSION,
    use_bar and "live" or "line-by-line"))
  step(1, "load Fashion-MNIST",
    "torch.datasets.FashionMNIST reads the gzip IDX files; a DataLoader shuffles and batches them.")
end

local ok, train_set, test_set = pcall(function()
  return torch.datasets.FashionMNIST(cfg.data, { train = true }), torch.datasets.FashionMNIST(cfg.data, { train = false })
end)
if not ok then
  io.stderr:write("fashion_mnist.lua: cannot read the dataset: ", tostring(train_set), "\n")
  os.exit(1)
end
-- With no generator of its own, the loader shuffles from the default one: the RNG state in a
-- checkpoint therefore fixes the order of every epoch after it.
local train_loader = data.DataLoader(train_set, { batch_size = cfg.batch_size, shuffle = true, drop_last = true })
local test_loader = data.DataLoader(test_set, { batch_size = 1000 })
local classes = train_set.classes

if not cfg.train_only then
  say("%s", tostring(train_set))
  say("%s", tostring(test_set))
  local x, y = train_set:get(1)
  say("sample 1: image %s %s in [%.0f, %.0f], label %d = %q (labels are 1..10, the file's 0..9 + 1)",
    x.dtype, "[" .. table.concat(x.shape, ", ") .. "]", x:min():item(), x:max():item(), y, classes[y])
  say("%d training batches of %d per epoch (shuffled, the last partial batch dropped), %d test batches",
    #train_loader, cfg.batch_size, #test_loader)
end

-- ---------------------------------------------------------------------------------------------
-- Step 2: training (in the resumed process of step 3, the only step)

torch.manual_seed(cfg.seed)
local run = new_run(train_loader)

local function resume()
  local ckpt = load_checkpoint(run, cfg.resume)
  print(string.format("%sresumed from %s: epoch %d done, loss %.4f; training epochs %d..%d",
    cfg.train_only and "" or "   ", cfg.resume, ckpt.epoch, ckpt.loss, ckpt.epoch + 1, cfg.epochs))
end

if cfg.train_only then
  if cfg.resume then resume() end
  train(run, train_loader, test_loader, "")
  os.exit(0)
end

step(2, "train a small conv net",
  "conv -> batch norm -> ReLU -> max pool (x2) -> dropout -> linear -> ReLU -> linear; AdamW with a one-cycle schedule.")
say("%s", (tostring(run.model):gsub("\n", "\n   ")))
local n_params = 0
for _, p in ipairs(run.model:parameters()) do n_params = n_params + p:numel() end
say("%d parameters; %d epochs of %d steps; a general checkpoint after every epoch", n_params, cfg.epochs, #train_loader)
if cfg.resume then resume() end
local train_t0 = now()
train(run, train_loader, test_loader, "   ")
local train_seconds = now() - train_t0
local first, last = run.history.epochs[1], run.history.epochs[#run.history.epochs]
if #run.history.epochs > 1 then
  proved(last.train_loss < first.train_loss, "the training loss fell from %.4f (epoch 1) to %.4f (epoch %d) in %s",
    first.train_loss, last.train_loss, #run.history.epochs, hms(train_seconds))
end

-- ---------------------------------------------------------------------------------------------
-- Step 3: resume in a new process

step(3, "resume from a checkpoint in a new process",
  "a fresh lua5.4 process loads the checkpoint of the epoch before the last and trains the last one again.")

-- Compares two trees of tables and tensors; returns the number of tensors compared, or nil and
-- the path of the first difference.
local function same(a, b, path)
  if torch.is_tensor(a) or torch.is_tensor(b) then
    if not (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)) then
      return nil, path
    end
    return 1
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then return nil, path end
    return 0
  end
  local n = 0
  for k, v in pairs(a) do
    local c, where = same(v, b[k], path .. "." .. tostring(k))
    if not c then return nil, where end
    n = n + c
  end
  for k in pairs(b) do
    if a[k] == nil then return nil, path .. "." .. tostring(k) end
  end
  return n
end

local resumed_out = out("resumed")
do
  local lo = 0
  while arg[lo - 1] do lo = lo - 1 end -- arg[lo] is the interpreter itself
  local from = out(string.format("checkpoint-epoch%d.pt", cfg.epochs - 1))
  if cfg.epochs < 2 then
    say("skipped: needs at least 2 epochs")
  else
    local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
    local cmd = table.concat({ q(arg[lo]), q(arg[0]), "--resume", q(from), "--train-only", "--progress", "lines",
      "--data", q(cfg.data), "--out", q(resumed_out), "--epochs", cfg.epochs, "--batch-size", cfg.batch_size,
      "--lr", string.format("%.17g", cfg.lr), "--seed", cfg.seed }, " ")
    say("$ %s %s --resume %s --train-only ...", arg[lo], arg[0], from)
    local pipe = assert(io.popen(cmd .. " 2>&1"))
    for line in pipe:lines() do
      print("   | " .. line)
      io.stdout:flush()
    end
    local ok = pipe:close()
    proved(ok == true, "the resumed process ran to the end")
    local a = torch.load(out(string.format("checkpoint-epoch%d.pt", cfg.epochs)))
    local b = torch.load(resumed_out .. string.format("/checkpoint-epoch%d.pt", cfg.epochs))
    for _, key in ipairs({ "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "rng_state", "loss" }) do
      local n, where = same(a[key], b[key], key)
      proved(n ~= nil, "%s is identical after the resumed epoch%s", key,
        n and n > 0 and string.format(" (%d tensor%s, bit for bit)", n, n == 1 and "" or "s") or (n and "" or " (differs at " .. where .. ")"))
    end
    say("so a run killed at any epoch continues, in a new process, exactly as if it had never stopped")
  end
end

-- ---------------------------------------------------------------------------------------------
-- Step 4: evaluation

step(4, "evaluate in eval() mode", "dropout off, batch norm on its running statistics, no autograd.")
local model = run.model
model:eval()
local test_x, test_y = test_set:tensors()
local preds = torch.no_grad(function()
  local parts = {}
  for s = 1, test_x:size(1), 1000 do
    parts[#parts + 1] = model(test_x:narrow(1, s, math.min(1000, test_x:size(1) - s + 1))):argmax(2)
  end
  return torch.cat(parts, 1)
end)
local hits = preds:eq(test_y)
local accuracy = hits:sum():item() / test_y:size(1)
print(string.format("   test accuracy: %.4f", accuracy))
local per_class = {}
for c = 1, #classes do
  local mask = test_y:eq(c)
  local n = mask:sum():item()
  per_class[#per_class + 1] = string.format("%-12s %.3f", classes[c], n > 0 and hits:logical_and(mask):sum():item() / n or 0)
end
for r = 1, #per_class, 2 do say("%s    %s", per_class[r], per_class[r + 1] or "") end
local target_met = accuracy >= cfg.target
if cfg.target > 0 then
  say("target %.2f: %s", cfg.target, target_met and "met" or "NOT met")
end

-- ---------------------------------------------------------------------------------------------
-- Step 5: save for inference

step(5, "save the state dict for inference and reload it",
  "the weights alone, as .pt (PyTorch's zip format) and .safetensors; the code builds the model.")
local sd = model:state_dict()
torch.save(sd, out("model_weights.pt"))
torch.save(sd, out("model_weights.safetensors"), { metadata = { classes = table.concat(classes, ",") } })
say("%s (%s), %s (%s)", out("model_weights.pt"), kib(out("model_weights.pt")), out("model_weights.safetensors"),
  kib(out("model_weights.safetensors")))
local sample_x, sample_y = test_x:narrow(1, 1, 8), test_y:narrow(1, 1, 8)
local expected = torch.no_grad(function() return model(sample_x) end)
for _, file in ipairs({ "model_weights.pt", "model_weights.safetensors" }) do
  local fresh = FashionNet(10)                       -- new random weights
  fresh:load_state_dict((torch.load(out(file))))     -- strict: every key must match
  fresh:eval()
  local got = torch.no_grad(function() return fresh(sample_x) end)
  proved(torch.equal(got, expected), "a fresh FashionNet loaded from %s gives the same logits, bit for bit", file)
end
local names = {}
for i = 1, 8 do
  local p, t = expected[i]:argmax():item(), sample_y[i]:item()
  names[i] = classes[p] .. (p == t and "" or " (is " .. classes[t] .. ")")
end
say("predictions for test images 1..8: %s", table.concat(names, ", "))

-- ---------------------------------------------------------------------------------------------
-- Step 6: warm start

step(6, "warm-start a different model",
  "a 5-class task (tops, trousers, dresses, footwear, bags) reuses the trained trunk; only the head is new.")
-- The 10 classes -> 5 coarse ones: T-shirt, Pullover, Coat, Shirt are tops; Sandal, Sneaker,
-- Ankle boot are footwear.
local COARSE = torch.tensor({ 1, 2, 1, 3, 1, 4, 1, 4, 5, 4 })
local COARSE_NAMES = { "top", "trouser", "dress", "footwear", "bag" }
local coarse = CoarseNet()
local result = coarse:load_state_dict(torch.load(out("model_weights.pt")), { strict = false })
say("load_state_dict(sd, {strict = false}):")
say("  missing keys (new, left as initialised): %s", table.concat(result.missing_keys, ", "))
say("  unexpected keys (in the file, not in the model): %s", table.concat(result.unexpected_keys, ", "))
proved(torch.equal(coarse.features[1].weight, model.features[1].weight)
  and torch.equal(coarse.classifier[2].weight, model.classifier[2].weight),
  "the trunk and hidden layer now hold the trained weights")
-- Fine-tune the head alone: the trunk is frozen (no gradients) and its batch norms stay on
-- their running statistics.
coarse:requires_grad_(false)
coarse.head:requires_grad_(true)
local head_opt = torch.optim.Adam(coarse.head:parameters(), { lr = 0.003 })
local ft_steps = math.min(150, #train_loader)
coarse:train()
coarse.features:eval()
local progress = Progress.new("fine-tune", ft_steps, "   ")
local ft_loss, ft_correct, ft_seen, i = 0, 0, 0, 0
for x, y in train_loader:iter() do
  i = i + 1
  y = COARSE:index_select(1, y)
  local logits = coarse(x)
  local loss = F.cross_entropy(logits, y)
  head_opt:zero_grad()
  loss:backward()
  head_opt:step()
  ft_loss, ft_correct, ft_seen = ft_loss + loss:item() * y:size(1), ft_correct + logits:detach():argmax(2):eq(y):sum():item(), ft_seen + y:size(1)
  progress:update(i, ft_loss / ft_seen, ft_correct / ft_seen)
  if i == ft_steps then break end
end
progress:finish()
local _, coarse_acc = evaluate(coarse, test_loader, COARSE)
say("fine-tuned the head for %d steps (%.1fs): 5-class test accuracy %.4f (%s)", ft_steps, now() - progress.t0,
  coarse_acc, table.concat(COARSE_NAMES, ", "))
proved(coarse_acc > 0.5, "the warm-started model classifies far above chance (0.2 for 5 classes)")

-- ---------------------------------------------------------------------------------------------
-- Step 7: several models in one file

step(7, "save two models and their optimizers in one file",
  "one dict holding each model's state dict and its optimizer's, reloaded into fresh objects.")
local both = out("two_models.pt")
torch.save({
  fashion = { model_state_dict = model:state_dict(), optimizer_state_dict = run.optimizer:state_dict() },
  coarse = { model_state_dict = coarse:state_dict(), optimizer_state_dict = head_opt:state_dict() },
}, both)
say("%s (%s)", both, kib(both))
do
  local ckpt = torch.load(both)
  local m1, m2 = FashionNet(10), CoarseNet()
  m1:load_state_dict(ckpt.fashion.model_state_dict)
  m2:load_state_dict(ckpt.coarse.model_state_dict)
  local o1 = torch.optim.AdamW(m1:parameters(), { lr = cfg.lr })
  local o2 = torch.optim.Adam(m2.head:parameters(), { lr = 0.003 })
  o1:load_state_dict(ckpt.fashion.optimizer_state_dict)
  o2:load_state_dict(ckpt.coarse.optimizer_state_dict)
  for _, c in ipairs({ { "FashionNet", m1, model, o1, run.optimizer }, { "CoarseNet", m2, coarse, o2, head_opt } }) do
    local n1 = same(c[2]:state_dict(), c[3]:state_dict(), "model")
    local n2 = same(c[4]:state_dict(), c[5]:state_dict(), "optimizer")
    proved(n1 ~= nil and n2 ~= nil, "%s and its optimizer came back identical (%d + %d tensors)", c[1], n1 or 0, n2 or 0)
  end
end

-- ---------------------------------------------------------------------------------------------
-- Step 8: deployment

step(8, "trace the model and run it from C",
  "torch.jit.trace records the eval-mode forward pass; moontorch-run executes the file without Lua.")

-- The moontorch-run program: $MOONTORCH_RUN, else the build tree next to this script, else PATH.
local function find_runner()
  local candidates = { os.getenv("MOONTORCH_RUN") }
  local dir = arg[0]:match("^(.*)/[^/]*$") or "."
  candidates[#candidates + 1] = dir .. "/../build/bin/moontorch-run"
  for _, c in ipairs(candidates) do
    local f = c ~= "" and io.open(c, "rb")
    if f then
      f:close()
      return c
    end
  end
  local p = io.popen("command -v moontorch-run 2>/dev/null")
  local found = p:read("l")
  p:close()
  return found
end

local jit_ok, jit = pcall(function() return torch.jit end)
local runner = find_runner()
if not (jit_ok and jit and jit.trace) then
  say("skipped: torch.jit is not available yet (it arrives with the deployment issue, issue 7)")
elseif not runner then
  say("skipped: the moontorch-run program was not found (build it with `make build`, or set MOONTORCH_RUN)")
else
  local traced = jit.trace(model, sample_x)
  local traced_path = out("model_traced.pt")
  traced:save(traced_path)
  local inputs, outputs = out("inputs.pt"), out("outputs.pt")
  torch.save(sample_x, inputs)
  say("%s (%s): the graph and its weights", traced_path, kib(traced_path))
  local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  say("$ %s %s %s %s", runner, traced_path, inputs, outputs)
  local ok = os.execute(table.concat({ q(runner), q(traced_path), q(inputs), q(outputs) }, " "))
  proved(ok == true, "moontorch-run ran the traced model")
  local from_c = torch.load(outputs)
  local diff = (from_c - expected):abs():max():item()
  proved(torch.allclose(from_c, expected, 1e-5, 1e-6), "the C program's logits match the Lua model's (%s)",
    diff == 0 and "bit for bit" or string.format("largest difference %.2g", diff))
end

-- ---------------------------------------------------------------------------------------------
-- Step 9: learning curves

step(9, "draw the learning curves", "loss and accuracy per epoch, as an SVG file any browser opens.")

-- Round numbers for axis ticks: 1, 2, 2.5 or 5 times a power of ten.
local function nice_step(range, n)
  local raw = range / n
  local p = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if raw <= m * p * (1 + 1e-9) then return m * p end
  end
  return 10 * p
end

local function fmt_tick(v)
  local s = string.format("%.3f", v):gsub("0+$", ""):gsub("%.$", "")
  return s
end

-- One panel: {title, ylabel, lo, hi, series = {{name, color, points = {{x, y}}, dash, markers}}}.
local function panel(svg, x0, y0, w, h, p, epochs)
  local L, R, T, B = 58, 14, 34, 46 -- margins
  local pw, ph = w - L - R, h - T - B
  local step_y = nice_step(p.hi - p.lo, 5)
  local lo, hi = math.floor(p.lo / step_y + 1e-9) * step_y, math.ceil(p.hi / step_y - 1e-9) * step_y
  if hi <= lo then hi = lo + step_y end
  local function X(v) return x0 + L + pw * v / epochs end
  local function Y(v) return y0 + T + ph * (1 - (v - lo) / (hi - lo)) end
  local add = function(s) svg[#svg + 1] = s end
  add(string.format('<text x="%.1f" y="%.1f" class="title">%s</text>', x0 + L + pw / 2, y0 + 20, p.title))
  add(string.format('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="frame"/>', x0 + L, y0 + T, pw, ph))
  for v = lo, hi + step_y / 2, step_y do
    add(string.format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>', X(0), Y(v), X(epochs), Y(v)))
    add(string.format('<text x="%.1f" y="%.1f" class="ytick">%s</text>', X(0) - 6, Y(v) + 4, fmt_tick(v)))
  end
  local xstep = math.max(1, math.ceil(epochs / 10))
  for e = 0, epochs, xstep do
    add(string.format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>', X(e), Y(lo), X(e), Y(hi)))
    add(string.format('<text x="%.1f" y="%.1f" class="xtick">%d</text>', X(e), Y(lo) + 16, e))
  end
  add(string.format('<text x="%.1f" y="%.1f" class="label">epoch</text>', x0 + L + pw / 2, y0 + h - 8))
  add(string.format('<text transform="translate(%.1f %.1f) rotate(-90)" class="label">%s</text>', x0 + 16,
    y0 + T + ph / 2, p.ylabel))
  local function stroke(s)
    return string.format('stroke="%s" stroke-width="%s"%s', s.color, s.width or 2, s.dash and ' stroke-dasharray="6 4"' or "")
  end
  for _, s in ipairs(p.series) do
    local pts = {}
    for _, pt in ipairs(s.points) do pts[#pts + 1] = string.format("%.1f,%.1f", X(pt[1]), Y(pt[2])) end
    add(string.format('<polyline points="%s" fill="none" %s/>', table.concat(pts, " "), stroke(s)))
    if s.markers then
      for _, pt in ipairs(s.points) do
        add(string.format('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>', X(pt[1]), Y(pt[2]), s.color))
      end
    end
  end
  -- The legend, over the curves: top right, or bottom right when p.legend == "bottom".
  local n, lx = #p.series, x0 + L + pw - 186
  local top = p.legend == "bottom" and y0 + T + ph - 10 - n * 18 or y0 + T + 8
  add(string.format('<rect x="%.1f" y="%.1f" width="178" height="%d" class="legendbox"/>', lx - 6, top, n * 18 + 4))
  for k, s in ipairs(p.series) do
    local ly = top + 15 + (k - 1) * 18
    add(string.format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>', lx, ly - 4, lx + 22, ly - 4, stroke(s)))
    add(string.format('<text x="%.1f" y="%.1f" class="legend">%s</text>', lx + 28, ly, s.name))
  end
end

local function write_curves(path, history, target)
  local train_loss, train_acc, test_loss, test_acc = {}, {}, {}, {}
  local ylo_loss, yhi_loss, ylo_acc = math.huge, 0, 1
  for _, pt in ipairs(history.points) do
    train_loss[#train_loss + 1] = { pt.x, pt.loss }
    train_acc[#train_acc + 1] = { pt.x, pt.acc }
  end
  for _, e in ipairs(history.epochs) do
    test_loss[#test_loss + 1] = { e.epoch, e.test_loss }
    test_acc[#test_acc + 1] = { e.epoch, e.test_acc }
  end
  for _, s in ipairs({ train_loss, test_loss }) do
    for _, pt in ipairs(s) do yhi_loss, ylo_loss = math.max(yhi_loss, pt[2]), math.min(ylo_loss, pt[2]) end
  end
  for _, s in ipairs({ train_acc, test_acc }) do
    for _, pt in ipairs(s) do ylo_acc = math.min(ylo_acc, pt[2]) end
  end
  local epochs = #history.epochs
  local W, H = 960, 400
  local svg = {
    string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">', W, H, W, H),
    "<style>text{font-family:Helvetica,Arial,sans-serif;fill:#222}.title{font-size:16px;font-weight:bold;text-anchor:middle}"
      .. ".label{font-size:13px;text-anchor:middle}.xtick{font-size:11px;text-anchor:middle}"
      .. ".ytick{font-size:11px;text-anchor:end}.legend{font-size:12px}"
      .. ".frame{fill:none;stroke:#444;stroke-width:1}.grid{stroke:#ddd;stroke-width:1}"
      .. ".legendbox{fill:white;fill-opacity:0.85;stroke:#bbb;stroke-width:1}</style>",
    string.format('<rect width="%d" height="%d" fill="white"/>', W, H),
  }
  local train_color, test_color = "#1f77b4", "#d62728"
  panel(svg, 0, 0, W / 2, H, {
    title = "Loss (cross-entropy)", ylabel = "loss", lo = 0, hi = yhi_loss,
    series = {
      { name = "train (every 1/10 epoch)", color = train_color, points = train_loss, width = 1.5 },
      { name = "test (end of epoch)", color = test_color, points = test_loss, markers = true },
    },
  }, epochs)
  local acc_series = {
    { name = "train (every 1/10 epoch)", color = train_color, points = train_acc, width = 1.5 },
    { name = "test (end of epoch)", color = test_color, points = test_acc, markers = true },
  }
  if target > 0 then
    acc_series[#acc_series + 1] = { name = string.format("target %.2f", target), color = "#2ca02c", dash = true,
      width = 1.5, points = { { 0, target }, { epochs, target } } }
    ylo_acc = math.min(ylo_acc, target)
  end
  panel(svg, W / 2, 0, W / 2, H, { title = "Accuracy", ylabel = "accuracy", lo = ylo_acc, hi = 1, series = acc_series,
    legend = "bottom" },
    epochs)
  svg[#svg + 1] = "</svg>\n"
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(table.concat(svg, "\n"))
  f:close()
  assert(os.rename(tmp, path))
end

local curves = out("curves.svg")
write_curves(curves, run.history, cfg.target)
say("%s (%s): open it in a browser", curves, kib(curves))
say("%-6s %-11s %-10s %-10s %-9s %s", "epoch", "train loss", "train acc", "test loss", "test acc", "seconds")
for _, e in ipairs(run.history.epochs) do
  say("%-6d %-11.4f %-10.4f %-10.4f %-9.4f %.1f", e.epoch, e.train_loss, e.train_acc, e.test_loss, e.test_acc, e.seconds)
end

print()
print(string.format("Done: all nine steps in %s; test accuracy %.4f. Files are in %s/.", hms(now() - T0), accuracy,
  cfg.out))
if cfg.target > 0 and not target_met then
  io.stderr:write(string.format("test accuracy %.4f is below the target %.2f\n", accuracy, cfg.target))
  os.exit(1)
end
