-- nn.Module, nn.Parameter, the containers, torch.nn.init and torch.nn.utils on their own (SPEC
-- section 4): classes and registration, iterators, state_dict / load_state_dict, train / eval,
-- freezing, apply, dtype conversion, repr, Sequential / ModuleList / ModuleDict, the
-- initialisers' formulas and clipping. PyTorch parity of state dicts, init draws and clipping
-- is in spec/27-state_dict_spec.lua.
local H = require "spec.helpers"
local torch = H.torch
local nn = torch.nn

local function names(iter)
  local out = {}
  for name in iter do out[#out + 1] = name end
  return out
end

local function keys(sd)
  local out = {}
  for k in pairs(sd) do out[#out + 1] = k end
  return out
end

-- Small modules of the spec's own, so the module system is tested without the layers.
local Dense = nn.Module:extend("SpecDense")
function Dense:__init(n_in, n_out, opts)
  self.n_in, self.n_out = n_in, n_out
  self.weight = nn.Parameter(torch.randn(n_out, n_in))
  if opts and opts.bias == false then
    self:register_parameter("bias", nil)
  else
    self.bias = nn.Parameter(torch.zeros(n_out))
  end
end
function Dense:forward(x)
  local y = x:matmul(self.weight:t())
  if self.bias then y = y + self.bias end
  return y
end
function Dense:extra_repr()
  return string.format("in=%d, out=%d, bias=%s", self.n_in, self.n_out, tostring(self.bias ~= nil))
end

local Norm = nn.Module:extend("SpecNorm")
function Norm:__init(n)
  self.gain = nn.Parameter(torch.ones(n))
  self:register_buffer("running", torch.zeros(n))
  self:register_buffer("count", torch.zeros({}, { dtype = "int64" }))
  self:register_buffer("scratch", torch.zeros(n), false)
end
function Norm:forward(x) return x * self.gain end

local Net = nn.Module:extend("SpecNet")
function Net:__init(classes)
  self.body = nn.Sequential(Dense(3, 4), Norm(4))
  self.head = Dense(4, classes, { bias = false })
  self.temperature = nn.Parameter(torch.ones(1))
  self.label = "spec"
end
function Net:forward(x) return self.head(self.body(x)) / self.temperature end

describe("nn.Module classes", function()
  it("constructs with the class as a function, records the arguments and calls forward", function()
    local opts = { bias = false }
    local d = Dense(3, 2, opts)
    assert.equal(3, d.n_in)
    assert.equal(3, d._args.n)
    assert.equal(opts, d._args[3])
    assert.is_true(d.training)
    local y = d(torch.ones(5, 3))
    assert.same({ 5, 2 }, y.shape)
    assert.equal("SpecDense", d:_get_name())
    assert.equal(Dense, nn.get_class("SpecDense"))
    assert.equal("<class SpecDense>", tostring(Dense))
  end)

  it("subclasses subclasses, with Class.super for the parent's methods", function()
    local Biased = Dense:extend("SpecBiased")
    function Biased:__init(n_in, n_out)
      Biased.super.__init(self, n_in, n_out)
      self.shift = nn.Parameter(torch.full({ n_out }, 2.0))
    end
    function Biased:forward(x) return Biased.super.forward(self, x) + self.shift end
    local Deeper = Biased:extend("SpecDeeper")
    function Deeper:forward(x) return Deeper.super.forward(self, x) * 2 end
    local m = Deeper(2, 3)
    assert.same({ "weight", "bias", "shift" }, names(m:named_parameters()))
    local x = torch.randn(4, 2)
    local want = (x:matmul(m.weight:t()) + m.bias + 2) * 2
    assert(m(x):allclose(want))
    assert.is_true(m:isinstance(Dense))
    assert.is_true(m:isinstance(nn.Module))
    assert.is_false(m:isinstance(Norm))
    assert.equal(Biased, Deeper.super)
    assert.equal("SpecDeeper(in=2, out=3, bias=true)", tostring(m))
  end)

  it("replaces a class registered again under the same name", function()
    local A = nn.Module:extend("SpecTwice")
    local B = nn.Module:extend("SpecTwice")
    assert.are_not.equal(A, B)
    assert.equal(B, nn.get_class("SpecTwice"))
  end)

  it("refuses bad class names and extend on an instance", function()
    H.expect_error(function() nn.Module:extend("has space") end, "extend", "identifier")
    H.expect_error(function() nn.Module:extend() end, "extend", "identifier")
    H.expect_error(function() Dense(1, 1):extend("X") end, "extend", "class")
  end)

  it("names the module that lacks forward", function()
    local m = nn.Module()
    local err = H.error_of(function() return m(torch.ones(1)) end)
    assert.truthy(err:find('Module [Module] is missing the required "forward" function', 1, true), err)
  end)
end)

describe("nn.Parameter", function()
  it("is the same tensor, requiring grad and remembered as a parameter", function()
    local t = torch.zeros(2)
    local p = nn.Parameter(t)
    assert.equal(t, p)
    assert.is_true(p.requires_grad)
    assert.is_true(nn.is_parameter(p))
    assert.is_false(nn.is_parameter(torch.zeros(2)))
    assert.is_false(nn.Parameter(torch.zeros(1), false).requires_grad)
  end)

  it("detaches a tensor with history (sharing its storage)", function()
    local a = torch.ones(3):requires_grad_()
    local b = a * 2
    local p = nn.Parameter(b)
    assert.is_nil(p.grad_fn)
    assert.is_true(p.is_leaf and p.requires_grad)
    assert.equal(b:data_ptr(), p:data_ptr())
  end)

  it("refuses non-tensors", function()
    H.expect_error(function() nn.Parameter(3) end, "Parameter", "tensor expected")
  end)
end)

describe("registration", function()
  it("registers children, parameters and buffers in assignment order", function()
    local m = Net(2)
    assert.same({ "temperature", "body.0.weight", "body.0.bias", "body.1.gain", "head.weight" },
      names(m:named_parameters()))
    assert.same({ "body.1.running", "body.1.count", "body.1.scratch" }, names(m:named_buffers()))
    assert.same({ "body", "head" }, names(m:named_children()))
    assert.same({ "", "body", "body.0", "body.1", "head" }, names(m:named_modules()))
    assert.equal("spec", m.label)
    assert.is_nil(m.head.bias)
    assert.equal(5, #m:parameters())
    assert.equal(3, #m:buffers())
    assert.equal(2, #m:children())
    assert.equal(5, #m:modules())
  end)

  it("keeps a reassigned name in place, removes with nil, appends a name that comes back", function()
    local m = nn.Module()
    m.a = nn.Parameter(torch.zeros(1))
    m.b = nn.Parameter(torch.zeros(1))
    m.c = nn.Parameter(torch.zeros(1))
    local new = nn.Parameter(torch.ones(1))
    m.a = new
    assert.same({ "a", "b", "c" }, names(m:named_parameters()))
    assert.equal(new, m.a)
    m.b = nil
    assert.is_nil(m.b)
    assert.same({ "a", "c" }, names(m:named_parameters()))
    m.b = nn.Parameter(torch.zeros(1))
    assert.same({ "a", "c", "b" }, names(m:named_parameters()))
  end)

  it("moves a name between kinds and plain fields as PyTorch's __setattr__ does", function()
    local m = nn.Module()
    m.x = 5
    m.x = Dense(1, 1) -- a plain field becomes a child
    assert.same({ "x" }, names(m:named_children()))
    m:register_buffer("buf", torch.zeros(2))
    m.buf = torch.ones(2) -- a tensor assigned to a buffer replaces it
    assert(torch.equal(m:buffers()[1], torch.ones(2)))
    m.buf = nn.Parameter(torch.ones(3)) -- a parameter takes the name over
    assert.same({}, names(m:named_buffers()))
    assert.same({ "buf", "x.weight", "x.bias" }, names(m:named_parameters()))
    m.plain = torch.zeros(1) -- a plain tensor is a plain field
    assert.is_nil(m:state_dict().plain)
  end)

  it("refuses values of the wrong kind for registered names", function()
    local m = Dense(2, 2)
    H.expect_error(function() m.weight = torch.zeros(2, 2) end, "nn.Module", "as parameter 'weight'")
    H.expect_error(function() m.weight = 3 end, "nn.Module", "as parameter 'weight'")
    local n = Net(2)
    H.expect_error(function() n.head = torch.zeros(1) end, "nn.Module", "as child module 'head'")
    local b = Norm(2)
    H.expect_error(function() b.running = "x" end, "nn.Module", "as buffer 'running'")
    H.expect_error(function() m:register_parameter("p", torch.zeros(1)) end, "register_parameter", "nn.Parameter or nil")
    H.expect_error(function() m:register_buffer("b", 3) end, "register_buffer", "tensor or nil")
    H.expect_error(function() m:add_module("c", 3) end, "add_module", "module expected")
  end)

  it("checks names: strings, no dots, not a method, not an existing field", function()
    local m = nn.Module()
    H.expect_error(function() m:register_buffer("a.b", torch.zeros(1)) end, "register_buffer", "can't contain")
    H.expect_error(function() m:register_buffer("", torch.zeros(1)) end, "register_buffer", "empty")
    H.expect_error(function() m:register_parameter(1, nil) end, "register_parameter", "must be a string")
    H.expect_error(function() m.forward = Dense(1, 1) end, "nn.Module", "'forward' already exists")
    H.expect_error(function() m:register_buffer("training", nil) end, "register_buffer", "already exists")
    m.field = 1
    H.expect_error(function() m:register_buffer("field", torch.zeros(1)) end, "register_buffer", "'field' already exists")
    m:register_buffer("buf", torch.zeros(1))
    H.expect_error(function() m:register_parameter("buf", nil) end, "register_parameter", "'buf' already exists")
    m:register_buffer("buf", torch.ones(1), false) -- the same kind again: replaces, now not persistent
    assert.same({}, keys(m:state_dict()))
  end)

  it("keeps absent parameters and buffers out of everything but their place", function()
    local m = nn.Module()
    m:register_parameter("w", nil)
    m:register_buffer("b", nil)
    m.v = nn.Parameter(torch.zeros(1))
    assert.same({ "v" }, keys(m:state_dict()))
    assert.same({ "v" }, names(m:named_parameters()))
    m.w = nn.Parameter(torch.zeros(1)) -- fills the registered place, before v
    assert.same({ "w", "v" }, names(m:named_parameters()))
  end)

  it("counts shared tensors and modules once in iterators, under every name in state dicts", function()
    local m = nn.Module()
    m.a = Dense(2, 2)
    m.b = m.a
    m.c = Dense(2, 2)
    m.c.weight = m.a.weight -- tied
    assert.same({ "a.weight", "a.bias", "c.bias" }, names(m:named_parameters()))
    assert.same({ "", "a", "c" }, names(m:named_modules()))
    assert.same({ "a", "c" }, names(m:named_children()))
    assert.same({ "a.weight", "a.bias", "b.weight", "b.bias", "c.weight", "c.bias" }, keys(m:state_dict()))
  end)

  it("takes prefix and recurse like PyTorch's iterators", function()
    local m = Net(2)
    assert.same({ "temperature" }, names(m:named_parameters("", false)))
    assert.same({ "net.temperature", "net.body.0.weight" },
      { table.unpack(names(m:named_parameters("net")), 1, 2) })
    assert.equal(1, #m:parameters(false))
    assert.same({ "m", "m.body" }, { table.unpack(names(m:named_modules("m")), 1, 2) })
  end)
end)

describe("state_dict", function()
  it("lists parameters then persistent buffers per module, depth first", function()
    local m = Net(2)
    assert.same({ "temperature", "body.0.weight", "body.0.bias", "body.1.gain", "body.1.running",
      "body.1.count", "head.weight" }, keys(m:state_dict()))
    assert.is_true(torch.is_ordered(m:state_dict()))
  end)

  it("shares storage with the model, detached unless keep_vars", function()
    local m = Dense(2, 2)
    local sd = m:state_dict()
    assert.is_false(sd.weight.requires_grad)
    sd.weight:fill_(7)
    assert(torch.equal(m.weight, torch.full({ 2, 2 }, 7.0)))
    assert.equal(m.weight, m:state_dict({ keep_vars = true }).weight)
    assert.same({ "d.weight", "d.bias" }, keys(m:state_dict({ prefix = "d." })))
  end)
end)

describe("load_state_dict", function()
  it("round-trips and converts dtypes, copying in place", function()
    local a, b = Net(2), Net(2)
    local w = b.head.weight
    local res = b:load_state_dict(a:state_dict())
    assert.same({ missing_keys = {}, unexpected_keys = {}, mismatched_keys = {} }, res)
    assert.equal(w, b.head.weight) -- same tensor, new values
    assert(torch.equal(a.head.weight, b.head.weight))
    local sd64 = torch.OrderedDict()
    for k, v in pairs(a:state_dict()) do sd64[k] = v.dtype == "float32" and v:double() * 2 or v end
    b:load_state_dict(sd64)
    assert.equal("float32", b.head.weight.dtype)
    assert(torch.allclose(b.head.weight, a.head.weight * 2))
    assert.is_true(b.head.weight.requires_grad)
  end)

  it("raises one error listing missing and unexpected keys in PyTorch's wording", function()
    local m = Net(2)
    local sd = m:state_dict()
    sd["body.0.bias"] = nil
    sd.temperature = nil
    sd["head.extra"] = torch.zeros(1)
    sd["zzz"] = torch.zeros(1)
    local err = H.error_of(m.load_state_dict, m, sd)
    assert.equal('moontorch.load_state_dict: Error(s) in loading state_dict for SpecNet:\n\t' ..
      'Missing key(s) in state_dict: "temperature", "body.0.bias".\n\t' ..
      'Unexpected key(s) in state_dict: "zzz", "head.extra".', err)
    local res = m:load_state_dict(sd, { strict = false })
    assert.same({ "temperature", "body.0.bias" }, res.missing_keys)
    assert.same({ "zzz", "head.extra" }, res.unexpected_keys)
  end)

  it("reports non-persistent buffers as unexpected and refuses values that are not tensors", function()
    local m = Norm(2)
    local sd = m:state_dict()
    sd.scratch = torch.zeros(2)
    local res = m:load_state_dict(sd, { strict = false })
    assert.same({ "scratch" }, res.unexpected_keys)
    sd.scratch = nil
    sd.gain = "nope"
    H.expect_error(function() m:load_state_dict(sd) end, "load_state_dict",
      'While copying the parameter named "gain", expected a tensor from the checkpoint but received string')
  end)

  it("raises on shape mismatches even when not strict, or skips them on request", function()
    local m = Dense(3, 2)
    local before = m.bias:clone()
    local sd = torch.OrderedDict({ { "weight", torch.zeros(4, 3) }, { "bias", torch.ones(2) } })
    local err = H.error_of(m.load_state_dict, m, sd, { strict = false })
    assert.equal("moontorch.load_state_dict: Error(s) in loading state_dict for SpecDense:\n\t" ..
      "size mismatch for weight: copying a param with shape [4, 3] from checkpoint, the shape in current model is [2, 3].", err)
    assert(torch.equal(m.bias, before), "nothing is copied when loading fails")
    local res = m:load_state_dict(sd, { skip_mismatched = true })
    assert.same({ "weight" }, res.mismatched_keys)
    assert(torch.equal(m.bias, torch.ones(2)))
  end)

  it("loads a 0-dim tensor from a one-element 1-D tensor (older files)", function()
    local m = Norm(2)
    local sd = m:state_dict()
    sd.count = torch.tensor({ 9 })
    m:load_state_dict(sd)
    assert.equal(0, m.count:dim())
    assert.equal(9, m.count:item())
  end)

  it("checks its arguments", function()
    local m = Dense(1, 1)
    H.expect_error(function() m:load_state_dict(5) end, "load_state_dict", "state dict expected")
    H.expect_error(function() m:load_state_dict({}, { strict = "no" }) end, "load_state_dict", "must be a boolean")
    H.expect_error(function() m:load_state_dict({}, { stirct = false }) end, "load_state_dict", "unknown option 'stirct'")
  end)
end)

describe("modes, gradients and conversion", function()
  it("switches train / eval through the whole tree", function()
    local m = Net(2)
    assert.equal(m, m:eval())
    for _, sub in ipairs(m:modules()) do assert.is_false(sub.training) end
    m:train()
    for _, sub in ipairs(m:modules()) do assert.is_true(sub.training) end
    m.body:train(false)
    assert.is_true(m.training)
    assert.is_false(m.body[2].training)
    H.expect_error(function() m:train("yes") end, "train", "boolean")
  end)

  it("zero_grad drops gradients, or zeroes them in place", function()
    local m = Net(2)
    m(torch.randn(3, 3)):sum():backward()
    assert.is_not_nil(m.head.weight.grad)
    local g = m.head.weight.grad
    m:zero_grad(false)
    assert.equal(g, m.head.weight.grad)
    assert(torch.equal(g, torch.zeros_like(g)))
    m:zero_grad()
    for _, p in ipairs(m:parameters()) do assert.is_nil(p.grad) end
  end)

  it("freezes with requires_grad_(false)", function()
    local m = Net(2)
    assert.equal(m.body, m.body:requires_grad_(false))
    m(torch.randn(3, 3)):sum():backward()
    assert.is_nil(m.body[1].weight.grad)
    assert.is_not_nil(m.head.weight.grad)
    m.body:requires_grad_()
    assert.is_true(m.body[1].weight.requires_grad)
  end)

  it("applies a function to children before their parent", function()
    local m = Net(2)
    local seen = {}
    assert.equal(m, m:apply(function(sub) seen[#seen + 1] = sub:_get_name() end))
    assert.same({ "SpecDense", "SpecNorm", "Sequential", "SpecDense", "SpecNet" }, seen)
  end)

  it("converts floating-point parameters, buffers and gradients, keeping ties and kinds", function()
    local m = Net(2)
    m.extra = Dense(4, 2, { bias = false })
    m.extra.weight = m.head.weight
    m(torch.randn(3, 3)):sum():backward()
    local old = m.head.weight:clone()
    assert.equal(m, m:double())
    local w = m.head.weight
    assert.equal("float64", w.dtype)
    assert.is_true(nn.is_parameter(w) and w.requires_grad)
    assert.equal(w, m.extra.weight)
    assert(torch.equal(w, old:double()))
    assert.equal("float64", w.grad.dtype)
    assert.equal("float64", m.body[2].running.dtype)
    assert.equal("int64", m.body[2].count.dtype)
    assert.equal("float64", m(torch.randn(2, 3, { dtype = "float64" })).dtype)
    m:float()
    assert.equal("float32", m.head.weight.dtype)
    assert.equal(m, m:to("cpu"))
    H.expect_error(function() m:to("int64") end, "to", "floating%-point dtype")
  end)
end)

describe("tostring", function()
  it("prints PyTorch's repr with extra_repr and nested children", function()
    local m = Net(2)
    assert.equal("SpecNet(\n" ..
      "  (body): Sequential(\n" ..
      "    (0): SpecDense(in=3, out=4, bias=true)\n" ..
      "    (1): SpecNorm()\n" ..
      "  )\n" ..
      "  (head): SpecDense(in=4, out=2, bias=false)\n" ..
      ")", tostring(m))
    assert.equal("Module()", tostring(nn.Module()))
    local Multi = nn.Module:extend("SpecMulti")
    function Multi:extra_repr() return "a=1\nb=2" end
    assert.equal("SpecMulti(\n  a=1\n  b=2\n)", tostring(Multi()))
  end)
end)

describe("containers", function()
  it("Sequential feeds each layer's output to the next, 1-based in Lua and \"0\"-based in keys", function()
    local a, b, c = Dense(3, 4), Norm(4), Dense(4, 2)
    local seq = nn.Sequential(a, b, c)
    assert.equal(3, #seq)
    assert.equal(a, seq[1])
    assert.equal(c, seq[-1])
    assert.is_nil(seq[4])
    local seen = {}
    for i, m in ipairs(seq) do seen[i] = m end
    assert.same({ a, b, c }, seen)
    local x = torch.randn(2, 3)
    assert(torch.equal(seq(x), c(b(a(x)))))
    assert.same({ "0.weight", "0.bias", "1.gain", "1.running", "1.count", "2.weight", "2.bias" }, keys(seq:state_dict()))
    assert.equal(x, nn.Sequential()(x))
  end)

  it("Sequential appends, inserts, pops and replaces, renumbering as PyTorch", function()
    local a, b, c, d = Dense(1, 1), Dense(1, 1), Dense(1, 1), Dense(1, 1)
    local seq = nn.Sequential(a, b)
    seq:append(c)
    assert.same({ "0", "1", "2" }, names(seq:named_children()))
    seq:insert(1, d)
    assert.same({ d, a, b, c }, seq:children())
    assert.same({ "0", "1", "2", "3" }, names(seq:named_children()))
    assert.equal(a, seq:pop(2))
    assert.same({ d, b, c }, seq:children())
    assert.same({ "0", "1", "2" }, names(seq:named_children()))
    seq[1] = a
    assert.same({ a, b, c }, seq:children())
    seq[#seq + 1] = d
    assert.equal(4, #seq)
    seq:extend({ Dense(1, 1) })
    assert.equal(5, #seq)
    H.expect_error(function() seq[9] = a end, "Sequential", "out of range")
    H.expect_error(function() seq[1] = 5 end, "Sequential", "not a module")
    H.expect_error(function() nn.Sequential(a, 5) end, "Sequential", "argument #2")
  end)

  it("Sequential takes named children from an ordered table", function()
    local seq = nn.Sequential(torch.OrderedDict({ { "inp", Dense(2, 3) }, { "act", Norm(3) } }))
    assert.same({ "inp", "act" }, names(seq:named_children()))
    assert.equal(seq.inp, seq[1])
    assert.equal("inp.weight", keys(seq:state_dict())[1])
  end)

  it("ModuleList holds modules without forward", function()
    local l = nn.ModuleList({ Dense(1, 2), Dense(2, 3) })
    l:append(Dense(3, 4))
    assert.equal(3, #l)
    assert.equal(4, l[-1].n_out)
    assert.same({ "0", "1", "2" }, names(l:named_children()))
    l:insert(-1, Norm(1)) -- before the last
    assert.equal("SpecNorm", l[3]:_get_name())
    l:extend(nn.ModuleList({ Norm(2) }))
    assert.equal(5, #l)
    assert.equal(5, #nn.ModuleList():extend(l:children()))
    local err = H.error_of(function() return l(torch.ones(1)) end)
    assert.truthy(err:find("Module [ModuleList] is missing", 1, true))
    H.expect_error(function() l:append(3) end, "ModuleList", "not a module")
    assert.equal("SpecSubList", nn.ModuleList:extend("SpecSubList")():_get_name())
  end)

  it("ModuleDict registers a plain table sorted, an ordered one in order", function()
    local d = nn.ModuleDict({ zeta = Dense(1, 1), alpha = Norm(1) })
    assert.same({ "alpha", "zeta" }, d:keys())
    local o = nn.ModuleDict(torch.OrderedDict({ { "zeta", Dense(1, 1) }, { "alpha", Norm(1) } }))
    assert.same({ "zeta", "alpha" }, o:keys())
    assert.equal(2, #o)
    assert.equal(o.zeta, o["zeta"])
    assert.same({ o.zeta, o.alpha }, o:values())
    local seen = {}
    for k, m in o:items() do seen[#seen + 1] = k .. "=" .. m:_get_name() end
    assert.same({ "zeta=SpecDense", "alpha=SpecNorm" }, seen)
    assert.is_true(o:contains("alpha"))
    o.beta = Dense(1, 1)
    assert.same({ "zeta", "alpha", "beta" }, o:keys())
    assert.equal("SpecNorm", o:pop("alpha"):_get_name())
    assert.same({ "zeta", "beta" }, o:keys())
    o:update({ gamma = Norm(2) })
    assert.same({ "zeta.weight", "zeta.bias", "beta.weight", "beta.bias", "gamma.gain", "gamma.running", "gamma.count" },
      keys(o:state_dict()))
    o:clear()
    assert.equal(0, #o)
    H.expect_error(function() o.x = 5 end, "ModuleDict", "not a module")
    H.expect_error(function() nn.ModuleDict({ keys = Dense(1, 1) }) end, "add_module", "'keys' already exists")
  end)
end)

describe("torch.nn.init", function()
  local init = nn.init

  it("computes fans and gains as PyTorch", function()
    assert.same({ 3, 5 }, { init._calculate_fan_in_and_fan_out(torch.empty(5, 3)) })
    assert.same({ 3 * 6, 5 * 6 }, { init._calculate_fan_in_and_fan_out(torch.empty(5, 3, 2, 3)) })
    H.expect_error(function() init._calculate_fan_in_and_fan_out(torch.empty(4)) end, "fan", "fewer than 2 dimensions")
    assert.equal(1, init.calculate_gain("conv2d"))
    assert.equal(5 / 3, init.calculate_gain("tanh"))
    assert.equal(math.sqrt(2), init.calculate_gain("relu"))
    assert.equal(math.sqrt(2 / (1 + 0.01 ^ 2)), init.calculate_gain("leaky_relu"))
    assert.equal(math.sqrt(2 / (1 + 0.2 ^ 2)), init.calculate_gain("leaky_relu", 0.2))
    assert.equal(0.75, init.calculate_gain("selu"))
    H.expect_error(function() init.calculate_gain("swish") end, "calculate_gain", "unsupported nonlinearity")
  end)

  it("fills within the bounds of each scheme, on parameters too", function()
    local w = nn.Parameter(torch.empty(64, 32, 3, 3))
    assert.equal(w, init.kaiming_uniform_(w, { a = math.sqrt(5) }))
    local bound = math.sqrt(3) * math.sqrt(2 / (1 + 5)) / math.sqrt(32 * 9)
    assert.is_true(w:abs():amax():item() <= bound)
    assert.is_true(w:abs():amax():item() > 0.9 * bound)
    local x = init.xavier_uniform_(torch.empty(200, 300), 2.0)
    local a = 2.0 * math.sqrt(6 / 500)
    assert.is_true(x:abs():amax():item() <= a and x:abs():amax():item() > 0.95 * a)
    local n = init.kaiming_normal_(torch.empty(400, 500), { mode = "fan_out", nonlinearity = "relu" })
    assert.is_true(math.abs(n:std():item() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400))
    local xn = init.xavier_normal_(torch.empty(300, 500))
    assert.is_true(math.abs(xn:std():item() - math.sqrt(2 / 800)) < 0.02 * math.sqrt(2 / 800))
    local u = init.uniform_(torch.empty(1000), -2, -1)
    assert.is_true(u:amax():item() <= -1 and u:amin():item() >= -2)
    assert(torch.equal(init.zeros_(torch.ones(3)), torch.zeros(3)))
    assert(torch.equal(init.ones_(torch.zeros(3)), torch.ones(3)))
    assert(torch.equal(init.constant_(torch.zeros(2), 0.5), torch.full({ 2 }, 0.5)))
    assert.equal(0, init.kaiming_uniform_(torch.empty(0, 3)):numel()) -- empty: left alone
  end)

  it("takes arguments positionally or in one options table, with the same draws", function()
    torch.manual_seed(3)
    local a = init.kaiming_uniform_(torch.empty(4, 4), 0.1, "fan_out", "leaky_relu")
    torch.manual_seed(3)
    local b = init.kaiming_uniform_(torch.empty(4, 4), { a = 0.1, mode = "fan_out" })
    assert(torch.equal(a, b))
    H.expect_error(function() init.kaiming_uniform_(torch.empty(2, 2), { mode = "fan_avg" }) end, "kaiming_uniform_", "mode fan_avg not supported")
    H.expect_error(function() init.normal_(torch.empty(2), { sd = 1 }) end, "normal_", "unknown option 'sd'")
    H.expect_error(function() init.uniform_({}) end, "uniform_", "tensor expected")
  end)
end)

describe("torch.nn.utils", function()
  local utils = nn.utils

  it("strips and adds prefixes, keeping order and values", function()
    local w, b = torch.zeros(1), torch.ones(1)
    local sd = torch.OrderedDict({ { "module.w", w }, { "module.b", b }, { "other", w } })
    local out = utils.strip_prefix(sd, "module.")
    assert.same({ "w", "b", "other" }, keys(out))
    assert.equal(w, out.w)
    assert.same({ "p.module.w", "p.module.b", "p.other" }, keys(utils.add_prefix(sd, "p.")))
    assert.same({ "a", "c.d" }, keys(utils.strip_prefix({ ["x.c.d"] = w, ["x.a"] = b }, "x."))) -- plain: sorted
    H.expect_error(function() utils.strip_prefix({ ["m.a"] = w, a = b }, "m.") end, "strip_prefix", "would both become 'a'")
    H.expect_error(function() utils.add_prefix(sd, 3) end, "add_prefix", "prefix string expected")
  end)

  it("clips gradient norms, and values", function()
    local p1 = torch.zeros(2):requires_grad_()
    local p2 = torch.zeros(1):requires_grad_()
    local frozen = torch.zeros(3):requires_grad_()
    p1.grad = torch.tensor({ 3.0, 0.0 })
    p2.grad = torch.tensor({ 4.0 })
    local total = utils.clip_grad_norm_({ p1, p2, frozen }, 1.0)
    assert.equal(5, total:item())
    local c = 1 / (5 + 1e-6)
    H.assert_values(p1.grad, { 3 * c, 0 })
    H.assert_values(p2.grad, { 4 * c })
    assert.is_nil(frozen.grad)
    -- under the limit: unchanged
    p1.grad = torch.tensor({ 0.3, 0.4 })
    assert.equal(0.5, utils.clip_grad_norm_(p1, 10.0):item() + 0.0)
    H.assert_values(p1.grad, { 0.3, 0.4 })
    -- max norm
    p1.grad = torch.tensor({ -6.0, 2.0 })
    assert.equal(6, utils.clip_grad_norm_({ p1 }, 3.0, math.huge):item())
    H.assert_values(p1.grad, { -6 * 3 / (6 + 1e-6), 2 * 3 / (6 + 1e-6) })
    assert.equal(0, utils.clip_grad_norm_({ frozen }, 1.0):item())
    p1.grad = torch.tensor({ 0 / 0, 1.0 })
    H.expect_error(function() utils.clip_grad_norm_(p1, 1.0, { error_if_nonfinite = true }) end, "clip_grad_norm_", "non%-finite")
    p1.grad = torch.tensor({ -3.0, 0.5 })
    utils.clip_grad_value_({ p1 }, 1.0)
    H.assert_values(p1.grad, { -1, 0.5 })
  end)
end)
