-- Backward passes that write their result over the incoming gradient when only the engine holds
-- it (src/unary.c's fused_grad, src/nn_norm.c's bn_backward): the same bits as when the gradient
-- is the caller's (and cannot be written over), in graphs where one gradient reaches several
-- nodes, a leaf, or a second backward.
local H = require "spec.helpers"
local torch = H.torch
local nn = torch.nn

local function same(a, b) return torch.equal(a, b) end

describe("backward over the incoming gradient", function()
  local x, g
  before_each(function()
    torch.manual_seed(54)
    x = torch.randn(4, 3, 5, 6, { requires_grad = true })
    g = torch.randn(4, 3, 5, 6)
  end)

  it("relu's gradient reaching two nodes, or a leaf and a node", function()
    (x:relu() + x:relu()):backward(g)
    local mask = x:detach():gt(0):float()
    assert.is_true(same(x.grad, g * mask + g * mask))
    x.grad = nil;
    (x + (x * 1):relu()):backward(g)
    assert.is_true(same(x.grad, g + g * mask))
  end)

  it("chains of unary ops and clamp give the formulas' bits", function()
    local a = (x * 1):relu(); local b = a:sigmoid(); local c = b:sqrt(); local d = c:clamp(0.3, 0.9)
    d:backward(g) -- every gradient but the first is the engine's alone
    a, b, c = a:detach(), b:detach(), c:detach()
    local g1 = g * c:ge(0.3):logical_and(c:le(0.9)):float()
    local g2 = g1 / (c * 2)
    local g3 = g2 * ((1 - b) * b)
    local want = g3 * a:gt(0):float() * 1
    assert.is_true(same(x.grad, want))
  end)

  it("batch_norm gives the bits of the caller-held gradient, training and evaluation", function()
    for _, training in ipairs({ true, false }) do
      local bn = nn.BatchNorm2d(3)
      torch.no_grad(function() bn.weight:uniform_(0.5, 1.5); bn.running_var:uniform_(0.5, 2) end)
      if not training then bn:eval() end
      x.grad = nil
      local y = bn(x);
      (y:relu() + y):backward(g) -- bn's incoming gradient is a fresh sum
      local got, gw = x.grad, bn.weight.grad
      local mask = bn(x):detach():gt(0):float()
      local gy = g * mask + g -- the same gradient, held here
      x.grad = nil; bn.weight.grad = nil
      bn(x):backward(gy)
      assert.is_true(same(got, x.grad))
      assert.is_true(same(gw, bn.weight.grad))
      assert.is_true(same(gy, g * mask + g)) -- and left alone
    end
  end)

  it("a second backward through a retained graph accumulates the same again", function()
    local bn = nn.BatchNorm2d(3)
    local z = (bn(x * 1) * 1):relu()
    z:backward(g, { retain_graph = true })
    local once = x.grad:clone()
    z:backward(g)
    assert.is_true(same(x.grad, once + once))
  end)
end)
