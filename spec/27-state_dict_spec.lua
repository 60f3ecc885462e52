-- State dicts and whole models against the real PyTorch (Debian's 1.13, /usr/bin/python3), both
-- ways. tools/pytorch_state_dicts.py builds the architectures below in Python and saves one
-- file (state_dicts.pt) with their state-dict keys / shapes / dtypes, iterator names and
-- reprs, trained-and-perturbed state dicts with inputs and eval outputs (float32 and float64),
-- PyTorch's warm-start report and error message, a DataParallel ("module.") state dict,
-- torch.nn.init results after manual_seed, and clip_grad_norm_ cases. This spec writes the
-- same architectures in Lua, loads PyTorch's state dicts STRICTLY and compares; then it saves
-- files the tool checks on PyTorch's side (an add_prefix'ed state dict for DataParallel and
-- whole-model files, which PyTorch opens as plain dicts and loads into its own modules).
local H = require "spec.helpers"
local torch = H.torch
local nn = torch.nn
local F = nn.functional

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local tool = source_dir .. "/tools/pytorch_state_dicts.py"
local PYTHON = "/usr/bin/python3"

local sh = H.sh

local function keys(sd)
  local out = {}
  for k in pairs(sd) do out[#out + 1] = k end
  return out
end

local function names(iter)
  local out = {}
  for name in iter do out[#out + 1] = name end
  return out
end

local function assert_close(got, want, dtype, what)
  local tol = dtype == "float64" and 1e-8 or 2e-4
  H.assert_meta(got, want.shape, want.dtype, what)
  assert(got:allclose(want, tol, tol), what .. ": values differ\n" .. tostring(got) .. "\nexpected\n" .. tostring(want))
end

-- ------------------------------------------------------------------------------------------
-- The architectures of tools/pytorch_state_dicts.py, in Lua

local function nested()
  return nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
    nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 3))))
end

local Stack = nn.Module:extend("Stack")
function Stack:__init()
  self.embed = nn.Linear(6, 8)
  self.blocks = nn.ModuleList({ nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 8) })
  self.heads = nn.ModuleDict(torch.OrderedDict({ { "score", nn.Linear(8, 3) }, { "aux", nn.Linear(8, 1, { bias = false }) } }))
  self.scale = nn.Parameter(torch.ones(1) * 1.5)
  self:register_buffer("steps", torch.zeros({}, { dtype = "int64" }))
  self:register_buffer("cache", torch.zeros(8), false)
  self:register_parameter("unused", nil)
  self:register_buffer("absent", nil)
  self.shared = self.embed
end
function Stack:forward(x)
  local h = self.embed(x)
  for _, b in ipairs(self.blocks) do h = F.relu(b(h)) end
  return self.heads.score(h) * self.scale + self.heads.aux(h)
end

local ConvNet = nn.Module:extend("ConvNet")
function ConvNet:__init(classes)
  self.conv = nn.Conv2d(1, 4, 3, { padding = 1 })
  self.bn = nn.BatchNorm2d(4)
  self.conv2 = nn.Conv2d(4, 6, 3, { stride = 2, bias = false })
  self.norm_free = nn.BatchNorm2d(6, { affine = false, track_running_stats = false })
  self.drop = nn.Dropout(0.5)
  self.fc = nn.Linear(6 * 3 * 3, classes or 5)
end
function ConvNet:forward(x)
  x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
  x = F.relu(self.norm_free(self.conv2(x)))
  return self.fc(self.drop(x:flatten(2)))
end

local Recurrent = nn.Module:extend("Recurrent")
function Recurrent:__init()
  self.lstm = nn.LSTM(4, 5, { num_layers = 2, batch_first = true })
  self.gru = nn.GRU(5, 3)
  self.norm = nn.LayerNorm(3)
  self.emb = nn.Embedding(7, 4, { padding_idx = 1 })
end

local Classifier = nn.Module:extend("Classifier")
function Classifier:__init(classes, extra)
  self.features = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16))
  self.fc = nn.Linear(16, classes)
  if extra then self.proj = nn.Linear(16, 16) end
end
function Classifier:forward(x) return self.fc(self.features(x)) end

-- A Linear written from scratch under another class name: PyTorch's nn.Linear state dicts load
-- into it because only names and shapes matter.
local Affine = nn.Module:extend("SpecAffine")
function Affine:__init(n_in, n_out)
  self.weight = nn.Parameter(torch.zeros(n_out, n_in))
  self.bias = nn.Parameter(torch.zeros(n_out))
end
function Affine:forward(x) return x:matmul(self.weight:t()) + self.bias end

local ARCHS = {
  nested = nested, stack = Stack, conv = ConvNet, recurrent = Recurrent,
  bn_variants = function()
    return nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm1d(3, { affine = false }),
      nn.BatchNorm2d(2, { track_running_stats = false }))
  end,
}

-- ------------------------------------------------------------------------------------------

describe("state dicts against PyTorch", function()
  local dir, data

  setup(function()
    local ok, out = sh("mktemp -d /tmp/moontorch-sd.XXXXXX")
    assert(ok, out)
    dir = out:gsub("%s+$", "")
    ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " write " .. H.shquote(dir))
    assert(ok, "tools/pytorch_state_dicts.py write failed:\n" .. out)
    data = torch.load(dir .. "/state_dicts.pt")
  end)

  teardown(function()
    if dir then sh("rm -rf " .. H.shquote(dir)) end
  end)

  it("has PyTorch's keys, shapes, dtypes and iterator names for the same architectures", function()
    for name, arch in pairs(data.archs) do
      local model = ARCHS[name]()
      local sd = model:state_dict()
      assert.same(arch.keys, keys(sd), name)
      local i = 0
      for k, t in pairs(sd) do
        i = i + 1
        H.assert_meta(t, arch.shapes[i], arch.dtypes[i], name .. " " .. k)
      end
      assert.same(arch.params, names(model:named_parameters()), name)
      assert.same(arch.buffers, names(model:named_buffers()), name)
      assert.same(arch.modules, names(model:named_modules()), name)
      if name ~= "recurrent" then -- Embedding's padding_idx is 1-based here
        assert.equal(arch.repr, tostring(model), name)
      end
    end
  end)

  it("loads PyTorch's state dicts strictly and reproduces the outputs, float32 and float64", function()
    for name, net in pairs(data.nets) do
      local model = ARCHS[name]()
      local res = model:load_state_dict(net.state)
      assert.same({ missing_keys = {}, unexpected_keys = {}, mismatched_keys = {} }, res)
      model:eval()
      assert_close(model(net.input), net.output, "float32", name)
      for k, t in pairs(model:state_dict()) do
        assert(torch.equal(t, net.state[k]), name .. ": " .. k .. " differs after loading")
      end

      local model64 = ARCHS[name]():double()
      model64:load_state_dict(net.state64)
      model64:eval()
      assert_close(model64(net.input64), net.output64, "float64", name .. " (float64)")

      -- a float64 state dict into a float32 model: converted on the way in
      local conv = ARCHS[name]()
      conv:load_state_dict(net.state64)
      conv:eval()
      assert_close(conv(net.input64:float()), net.output64:float(), "float32", name .. " (float64 weights)")
      assert.equal("float32", conv:parameters()[1].dtype)
    end
    local bn = data.nets.conv.state["bn.num_batches_tracked"]
    assert.same({ "int64", 2 }, { bn.dtype, bn:item() })
  end)

  it("loads nn.Linear's state dicts into a Linear written in Lua under another name", function()
    local net = data.nets.nested
    local model = nn.Sequential(Affine(4, 8), nn.ReLU(),
      nn.Sequential(Affine(8, 8), nn.Tanh(), nn.Sequential(Affine(8, 3))))
    model:load_state_dict(net.state)
    assert_close(model(net.input), net.output, "float32", "SpecAffine")
  end)

  it("warm-starts: reports missing and unexpected keys as PyTorch does, and its size-mismatch error", function()
    local warm = data.warm
    local target = Classifier(4, true)
    local fc_before = target.fc.weight:clone()
    local res = target:load_state_dict(warm.partial, { strict = false })
    assert.same(warm.missing, res.missing_keys)
    assert.same(warm.unexpected, res.unexpected_keys)
    assert.same({}, res.mismatched_keys)
    assert(torch.equal(target.features[1].weight, warm.source["features.0.weight"]))
    assert(torch.equal(target.fc.weight, fc_before))

    -- strict, with shapes that differ: PyTorch's message, shapes written as lists
    local fresh = Classifier(4, true)
    local before = fresh.features[1].weight:clone()
    local err = H.error_of(fresh.load_state_dict, fresh, warm.source)
    local want = warm.error:gsub("torch%.Size%((%b[])%)", "%1"):gsub("%. \n", ".\n")
    assert.equal("moontorch.load_state_dict: " .. want, err)
    assert(torch.equal(fresh.features[1].weight, before), "a failed load must copy nothing")
    -- the mismatch raises even when strict = false
    err = H.error_of(fresh.load_state_dict, fresh, warm.source, { strict = false })
    assert.truthy(err:find("size mismatch for fc.weight: copying a param with shape [10, 16] from checkpoint, the shape in current model is [4, 16].", 1, true))
    assert.falsy(err:find("Missing", 1, true))

    res = fresh:load_state_dict(warm.source, { strict = false, skip_mismatched = true })
    assert.same({ "proj.weight", "proj.bias" }, res.missing_keys)
    assert.same({}, res.unexpected_keys)
    assert.same({ "fc.weight", "fc.bias" }, res.mismatched_keys)
    assert(torch.equal(fresh.features[3].bias, warm.source["features.2.bias"]))
    -- strict still reports the missing keys when mismatches are skipped
    err = H.error_of(fresh.load_state_dict, fresh, warm.source, { skip_mismatched = true })
    assert.truthy(err:find('Missing key(s) in state_dict: "proj.weight", "proj.bias".', 1, true))
    assert.falsy(err:find("size mismatch", 1, true))
  end)

  it("strips and adds the \"module.\" prefix of DataParallel state dicts", function()
    local sd = data.ddp.state
    local plain = nn.utils.strip_prefix(sd, "module.")
    assert.same(data.ddp.plain_keys, keys(plain))
    local model = Classifier(10)
    model:load_state_dict(plain)
    assert(torch.equal(model.fc.weight, sd["module.fc.weight"]))
    local back = nn.utils.add_prefix(model:state_dict(), "module.")
    assert.same(keys(sd), keys(back))
    torch.save(back, dir .. "/lua_ddp.pt")
  end)

  it("initialises with torch.nn.init exactly as PyTorch after the same seed", function()
    local init = nn.init
    local calls = {
      uniform = { { 4, 5 }, function(t) init.uniform_(t, -0.3, 0.7) end },
      normal = { { 4, 5 }, function(t) init.normal_(t, 0.5, 2.0) end },
      xavier_uniform = { { 6, 4, 3 }, function(t) init.xavier_uniform_(t, { gain = init.calculate_gain("tanh") }) end },
      xavier_normal = { { 6, 4, 3 }, function(t) init.xavier_normal_(t) end },
      kaiming_uniform = { { 5, 3, 2, 2 }, function(t) init.kaiming_uniform_(t, { a = math.sqrt(5) }) end },
      kaiming_uniform_relu_out = { { 7, 4 }, function(t) init.kaiming_uniform_(t, { mode = "fan_out", nonlinearity = "relu" }) end },
      kaiming_normal = { { 5, 3, 2, 2 }, function(t) init.kaiming_normal_(t) end },
      kaiming_normal_leaky = { { 7, 4 }, function(t) init.kaiming_normal_(t, 0.2, "fan_out") end },
    }
    local n = 0
    for name, want in pairs(data.init) do
      local c = assert(calls[name], name)
      torch.manual_seed(11)
      local t = torch.empty(c[1])
      c[2](t)
      assert(torch.equal(t, want), name .. ":\n" .. tostring(t) .. "\nexpected\n" .. tostring(want))
      n = n + 1
    end
    assert.equal(8, n)
  end)

  it("clips gradient norms as clip_grad_norm_ does", function()
    for i, c in ipairs(data.clip) do
      local params = {}
      for j, g in ipairs(c.before) do
        params[j] = torch.zeros(g.shape):requires_grad_()
        params[j].grad = g:clone()
      end
      local total = nn.utils.clip_grad_norm_(params, c.max_norm, c.norm_type)
      local what = string.format("case %d (max_norm %g, norm_type %g)", i, c.max_norm, c.norm_type)
      H.assert_meta(total, {}, "float32", what)
      assert(total:allclose(c.total, 1e-5, 1e-6), what .. ": total " .. tostring(total) .. " vs " .. tostring(c.total))
      for j, p in ipairs(params) do
        assert(p.grad:allclose(c.after[j], 1e-5, 1e-6), what .. ": grad " .. j)
      end
    end
  end)

  it("writes whole models that PyTorch opens as plain dicts and loads into its own modules", function()
    local net = data.nets.stack
    local model = Stack()
    model:load_state_dict(net.state)
    model:eval()
    torch.save(model, dir .. "/lua_stack.pt")
    local seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 2, { bias = false }))
    torch.save(seq, dir .. "/lua_seq.pt")

    -- and back in Lua: the same model, in eval mode, without drawing from the generator
    torch.manual_seed(5)
    local expected = torch.rand(3)
    torch.manual_seed(5)
    local back = torch.load(dir .. "/lua_stack.pt")
    assert(torch.equal(torch.rand(3), expected), "loading a model must not move the random stream")
    assert.equal("Stack", back:_get_name())
    assert.is_false(back.training)
    assert.is_false(back.blocks[1][2].training)
    assert_close(back(net.input), net.output, "float32", "reloaded Stack")
    assert.equal(back.embed, back.shared)

    local ok, out = sh(PYTHON .. " " .. H.shquote(tool) .. " check " .. H.shquote(dir))
    assert(ok, "PyTorch's checks failed:\n" .. out)
    local n = 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^ok ") then n = n + 1 end
    end
    assert.equal(3, n, out)
  end)
end)

describe("whole-model files", function()
  local dir

  setup(function()
    local ok, out = sh("mktemp -d /tmp/moontorch-models.XXXXXX")
    assert(ok, out)
    dir = out:gsub("%s+$", "")
  end)

  teardown(function()
    if dir then sh("rm -rf " .. H.shquote(dir)) end
  end)

  local function same_params(a, b)
    local sa, sb = a:state_dict(), b:state_dict()
    assert.same(keys(sa), keys(sb))
    for k, t in pairs(sa) do assert(torch.equal(t, sb[k]), k) end
  end

  it("rebuilds built-in models in a fresh process that never touched torch.nn", function()
    local code = string.format([[
      local torch = require "moontorch"
      local nn = torch.nn
      torch.manual_seed(1)
      local m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, {bias = false}))
      local x = torch.randn(5, 3)
      torch.save(m, %q)
      torch.save({x = x, y = m(x)}, %q)
    ]], dir .. "/builtin.pt", dir .. "/builtin_io.pt")
    local out, ok = H.run_lua(code)
    assert(ok, out)
    out, ok = H.run_lua(string.format([[
      local torch = require "moontorch"
      assert(rawget(torch, "nn") == nil and package.loaded["moontorch.nn"] == nil)
      local m = torch.load(%q)
      local d = torch.load(%q)
      assert(torch.equal(m(d.x), d.y), "outputs differ")
      assert(m.training == true)
      io.write(tostring(m))
    ]], dir .. "/builtin.pt", dir .. "/builtin_io.pt"))
    assert(ok, out)
    assert.equal("Sequential(\n" ..
      "  (0): Linear(in_features=3, out_features=4, bias=True)\n" ..
      "  (1): ReLU()\n" ..
      "  (2): Linear(in_features=4, out_features=2, bias=False)\n" ..
      ")", out)
  end)

  it("rebuilds an extend()ed class once its file is required, and names a missing one", function()
    local f = assert(io.open(dir .. "/spec_wrapped_model.lua", "w"))
    f:write([[
      local torch = require "moontorch"
      local nn = torch.nn
      local Wrapped = nn.Module:extend("SpecWrappedNet")
      function Wrapped:__init(inner, scale, opts)
        self.inner, self.scale = inner, scale
        self.post = nn.Sequential(nn.ReLU(), nn.Linear(inner.out_features, opts.out))
      end
      function Wrapped:forward(x) return self.post(self.inner(x) * self.scale) end
      return Wrapped
    ]])
    f:close()
    local out, ok = H.run_lua(string.format([[
      package.path = %q .. "/?.lua;" .. package.path
      local torch = require "moontorch"
      local Wrapped = require "spec_wrapped_model"
      torch.manual_seed(2)
      local m = Wrapped(torch.nn.Linear(3, 4), 2.5, {out = 2}):eval()
      local x = torch.randn(6, 3)
      torch.save(m, %q)
      torch.save({x = x, y = m(x)}, %q)
    ]], dir, dir .. "/wrapped.pt", dir .. "/wrapped_io.pt"))
    assert(ok, out)

    local err = H.error_of(torch.load, dir .. "/wrapped.pt")
    assert.equal("moontorch.load: model class 'SpecWrappedNet' is not defined (require the file that defines it first)", err)
    local saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
    require "spec_wrapped_model"
    package.path = saved_path
    local m = torch.load(dir .. "/wrapped.pt")
    local io_ = torch.load(dir .. "/wrapped_io.pt")
    assert.equal("SpecWrappedNet", m:_get_name())
    assert.equal(2.5, m.scale)
    assert.is_false(m.training)
    assert(torch.equal(m(io_.x), io_.y))
  end)

  it("writes models inside other tables, and through serialize / deserialize", function()
    local a = nested()
    local b = nn.ModuleDict({ enc = nn.Linear(2, 2), dec = nn.Linear(2, 3) })
    local ckpt = { model = a, parts = { b }, epoch = 3 }
    torch.save(ckpt, dir .. "/ckpt.pt")
    assert.equal(a, ckpt.model) -- the caller's table is left alone
    local back = torch.load(dir .. "/ckpt.pt")
    assert.equal(3, back.epoch)
    same_params(a, back.model)
    same_params(b, back.parts[1])
    assert.same({ "dec", "enc" }, back.parts[1]:keys())
    local m = torch.deserialize(torch.serialize(a))
    same_params(a, m)
    assert.equal(tostring(a), tostring(m))
  end)

  it("records containers' current children, ordered tables, nil arguments and modules among arguments", function()
    local seq = nn.Sequential()
    seq:append(nn.Linear(2, 3))
    seq:append(nn.Tanh())
    local named = nn.Sequential(torch.OrderedDict({ { "z", nn.Linear(1, 1) }, { "a", nn.ReLU() } }))
    local list = nn.ModuleList()
    list:append(nn.Linear(3, 3))
    local Holes = nn.Module:extend("SpecHoles")
    function Holes:__init(a, b, c, opts)
      assert(b == nil and getmetatable(opts) == nil, "arguments come back as they were passed")
      self.a, self.c, self.opts = a, c, opts
      self.lin = nn.Linear(a, opts.n)
    end
    local holes = Holes(2, nil, nn.Linear(1, 1), { n = 1 })
    for _, m in ipairs({ seq, named, list }) do
      local back = torch.deserialize(torch.serialize(m))
      assert.equal(tostring(m), tostring(back))
      same_params(m, back)
    end
    local back = torch.deserialize(torch.serialize(holes))
    assert.equal(2, back.a)
    assert.equal("Linear", back.c:_get_name())
    same_params(holes, back)
  end)

  it("refuses what it cannot write or rebuild, naming the problem", function()
    H.expect_error(function() torch.save(nested(), dir .. "/m.safetensors") end, "save", "state_dict")
    local Cyclic = nn.Module:extend("SpecCyclic")
    function Cyclic:__init(cfg) self.cfg = cfg end
    local cfg = {}
    cfg.self = cfg
    H.expect_error(function() torch.serialize(Cyclic(cfg)) end, "save", "cycle")

    local Fragile = nn.Module:extend("SpecFragile")
    function Fragile:__init(n) self.lin = nn.Linear(n, 2) end
    local s = torch.serialize(Fragile(3))
    function Fragile:__init() error("boom", 0) end
    H.expect_error(function() torch.deserialize(s) end, "deserialize", "could not construct model class 'SpecFragile': boom")
    function Fragile:__init(n) self.lin = nn.Linear(n + 1, 2) end
    H.expect_error(function() torch.deserialize(s) end, "deserialize", "size mismatch for lin.weight")
    torch.save({ ["moontorch.model"] = { class = "SpecNowhere", args = {} }, state_dict = {} }, dir .. "/ghost.pt")
    assert.equal("moontorch.load: model class 'SpecNowhere' is not defined (require the file that defines it first)",
      H.error_of(torch.load, dir .. "/ghost.pt"))
  end)
end)
