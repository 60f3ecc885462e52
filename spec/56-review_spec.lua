-- Review of the one-pass dropout (src/nn_misc.c's dropout_fused): its node must look like the
-- composite's, input * mask through MulBackward0, as PyTorch 1.13 records it:
--   >>> F.dropout(torch.randn(3, requires_grad=True).exp(), 0.5).grad_fn.next_functions
--   ((<ExpBackward0>, 0), (None, 0))
-- (lua/moontorch/autograd.lua: next_functions has one entry per input of the op, in PyTorch's
-- order). A contiguous float32/float64 input takes the one pass; a strided one the composite.
local H = require "spec.helpers"
local torch = H.torch
local F = torch.nn.functional

describe("dropout's node", function()
  for _, case in ipairs({ { "contiguous float32", function(x) return x end },
                          { "contiguous float64", function(x) return x:double() end },
                          { "strided float32", function(x) return x:t() end } }) do
    local what, shape = case[1], case[2]
    it(what .. " input: MulBackward0 with the input's edge and the mask's (none)", function()
      torch.manual_seed(56)
      local leaf = torch.randn(4, 5, { requires_grad = true })
      local x = shape(leaf:exp())
      local y = F.dropout(x, 0.5, true)
      assert.are.equal("MulBackward0", y.grad_fn:name())
      local nf = y.grad_fn.next_functions
      assert.are.equal(2, #nf)
      assert.is_true(nf[1] == x.grad_fn)
      assert.is_false(nf[2])
      y:sum():backward()
      local kept = y:detach():ne(0)
      -- d/dx of sum(x * mask) is the mask (0 or 2 here), through exp's derivative
      local want = kept:to(leaf.dtype):mul(2):mul(x:detach())
      if what:find("strided") then want = want:t() end
      assert.is_true(torch.allclose(leaf.grad:to("float64"), want:to("float64"), 1e-6, 1e-6))
    end)
  end
end)
