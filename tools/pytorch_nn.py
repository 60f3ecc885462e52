#!/usr/bin/python3
"""PyTorch's side of spec/26-functional_spec.lua: every torch.nn.functional function that
moontorch has, called by PyTorch 1.13 (Debian's /usr/bin/python3) on fixed inputs.

Usage: /usr/bin/python3 tools/pytorch_nn.py OUTDIR     (writes OUTDIR/pytorch_nn.lua)

The file returns a list of cases:

    { name = "conv2d stride 2", fn = "conv2d", seed = nil | int,
      n = 3, args = { ARG, ... },       -- positional arguments as moontorch takes them
      opts = { name = ARG, ... } | nil,  -- PyTorch's keyword arguments: the trailing options table
      outs = { TENSOR | ... },           -- every result, in order
      grad_out = TENSOR | nil,           -- the gradient fed back into outs[1]
      grads = { [i] = TENSOR | false },  -- then the gradient of positional argument i (false: none)
      after = { [i] = TENSOR } }         -- arguments the call updates in place, afterwards

ARG is a Lua number, boolean or string, {none = true} (nil), {list = {...}} (nil entries as
{none = true}), or a TENSOR: {dtype = "float64", shape = {...}, data = {flat, row-major},
requires_grad = bool}. Floats are written as hex literals, exactly.

Lua's conventions are applied on the way out: class targets, Embedding ids and padding_idx,
ignore_index and the indices max_pool2d returns are shifted to 1-based (the binding shifts
class targets and ignore_index alike, so Python's -100 with the default ignore_index stays
-100), and softmax's dim counts from 1. With `seed`, both sides call torch.manual_seed(seed)
right before the call (dropout draws from the default generator, bit-identical to PyTorch's).
"""
import math
import os
import sys
import warnings

import torch
import torch.nn.functional as F

warnings.simplefilter("ignore")  # the deprecated forms (size_average, implicit dim) are tested on purpose

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64", torch.int32: "int32",
               torch.bool: "bool"}
F64, F32 = torch.float64, torch.float32
GEN = torch.Generator().manual_seed(20240611)
CASES = []

# ------------------------------------------------------------------------------------------
# Lua literals


def lua_num(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "(0/0)"
    if math.isinf(v):
        return "math.huge" if v > 0 else "(-math.huge)"
    return "(" + v.hex() + ")"


def lua_key(k):
    return k if k.isidentifier() else '["%s"]' % k


def lua_tensor(t, requires_grad=False):
    t = t.detach()
    return "{dtype = %s, shape = {%s}, data = {%s}, requires_grad = %s}" % (
        '"%s"' % DTYPE_NAMES[t.dtype], ", ".join(str(s) for s in t.shape),
        ", ".join(lua_num(v) for v in t.reshape(-1).tolist()), "true" if requires_grad else "false")


def lua_value(v):
    if v is None:
        return "{none = true}"
    if isinstance(v, torch.Tensor):
        return lua_tensor(v, v.requires_grad)
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, (bool, int, float)):
        return lua_num(v)
    if isinstance(v, (list, tuple)):
        return "{list = {%s}}" % ", ".join(lua_value(x) for x in v)
    raise TypeError("no Lua form for %r" % type(v))


# ------------------------------------------------------------------------------------------
# Inputs


class Lua:
    """A value that PyTorch and moontorch spell differently: `py` goes to PyTorch, `lua` to Lua."""

    def __init__(self, py, lua):
        self.py, self.lua = py, lua


def py_of(v):
    return v.py if isinstance(v, Lua) else v


def lua_of(v):
    return v.lua if isinstance(v, Lua) else v


def rand(*shape, dtype=F64, grad=True, lo=-2.0, hi=2.0):
    t = torch.rand(*shape, generator=GEN, dtype=F64) * (hi - lo) + lo
    return t.to(dtype).requires_grad_(grad)


def randn(*shape, dtype=F64, grad=True, scale=1.0):
    return (torch.randn(*shape, generator=GEN, dtype=F64) * scale).to(dtype).requires_grad_(grad)


def classes(n_classes, *shape, ignore_at=(), ignore_index=None):
    """Class targets, 0-based for PyTorch and 1-based for Lua; positions in ignore_at (flat)
    hold the ignore_index (PyTorch's explicit one, or the default -100)."""
    t = torch.randint(0, n_classes, shape, generator=GEN)
    flat = t.view(-1)
    py_ignore = -100 if ignore_index is None else ignore_index
    for i in ignore_at:
        flat[i] = py_ignore
    lua = torch.where(t == py_ignore, torch.tensor(-100 if ignore_index is None else ignore_index + 1), t + 1)
    return Lua(t, lua)


def ignore(index):
    """An explicit ignore_index: a class value, shifted with the targets."""
    return Lua(index, index + 1)


def index_arg(i):
    """A 1-based index or dim for Lua (negative ones count from the end in both)."""
    return Lua(i, i + 1 if i >= 0 else i)


def ids(num, *shape):
    t = torch.randint(0, num, shape, generator=GEN)
    return Lua(t, t + 1)


# ------------------------------------------------------------------------------------------
# Cases


def case(name, fn, *args, seed=None, after=(), index_outputs=(), **kwargs):
    """Calls F.<fn> on args / kwargs, feeds a fixed gradient back through the first result and
    records results, gradients of the positional tensors and the arguments in `after`."""
    py_args = [py_of(a) for a in args]
    py_kwargs = {k: py_of(v) for k, v in kwargs.items()}
    inputs = [lua_value(lua_of(a)) for a in args]  # before the call: some are updated in place
    opts = {k: lua_value(lua_of(v)) for k, v in kwargs.items()}
    if seed is not None:
        torch.manual_seed(seed)
    outs = getattr(F, fn)(*py_args, **py_kwargs)
    if not isinstance(outs, tuple):
        outs = (outs,)
    grad_out = None
    if outs[0].requires_grad:
        grad_out = torch.randn(outs[0].shape, generator=GEN, dtype=F64).to(outs[0].dtype)
        outs[0].backward(grad_out)
    out_lua = []
    for i, o in enumerate(outs):
        out_lua.append(lua_tensor(o + 1 if i in index_outputs else o))
    grads = []
    for i, a in enumerate(py_args):
        if isinstance(a, torch.Tensor) and a.requires_grad:
            grads.append("[%d] = %s" % (i + 1, "false" if a.grad is None else lua_tensor(a.grad)))
    after_lua = ["[%d] = %s" % (i + 1, lua_tensor(py_args[i])) for i in after]
    fields = [
        'name = "%s"' % name, 'fn = "%s"' % fn, "n = %d" % len(args),
        "args = {%s}" % ", ".join(inputs),
        "outs = {%s}" % ", ".join(out_lua),
        "grads = {%s}" % ", ".join(grads),
        "after = {%s}" % ", ".join(after_lua),
    ]
    if seed is not None:
        fields.append("seed = %d" % seed)
    if opts:
        fields.append("opts = {%s}" % ", ".join("%s = %s" % (lua_key(k), v) for k, v in opts.items()))
    if grad_out is not None:
        fields.append("grad_out = %s" % lua_tensor(grad_out))
    CASES.append("{" + ",\n  ".join(fields) + "}")


def linear_cases():
    case("linear", "linear", randn(3, 4), randn(5, 4), randn(5))
    case("linear without bias, 3-D input", "linear", randn(2, 3, 4), randn(5, 4))
    case("linear float32", "linear", randn(6, 7, dtype=F32), randn(3, 7, dtype=F32), randn(3, dtype=F32))
    case("linear with bias as an option", "linear", randn(1, 4), randn(2, 4), bias=randn(2))


def conv_cases():
    case("conv1d", "conv1d", randn(2, 3, 10), randn(4, 3, 3), randn(4))
    case("conv1d stride, padding, dilation", "conv1d", randn(2, 3, 11), randn(4, 3, 3), randn(4),
         stride=2, padding=2, dilation=2)
    case("conv1d groups, positional", "conv1d", randn(2, 4, 9), randn(6, 2, 3), None, 1, 1, 1, 2)
    case("conv1d padding same, even kernel", "conv1d", randn(2, 3, 8), randn(2, 3, 4), randn(2), padding="same")
    case("conv1d padding valid, unbatched", "conv1d", randn(3, 10), randn(4, 3, 3), padding="valid")
    case("conv1d float32", "conv1d", randn(2, 3, 12, dtype=F32), randn(5, 3, 5, dtype=F32), randn(5, dtype=F32),
         padding=2)
    case("conv2d", "conv2d", randn(2, 3, 6, 7), randn(4, 3, 3, 3), randn(4))
    case("conv2d stride, padding, dilation as pairs", "conv2d", randn(2, 3, 9, 8), randn(4, 3, 3, 2), randn(4),
         stride=(2, 1), padding=(1, 2), dilation=(2, 1))
    case("conv2d positional stride and padding", "conv2d", randn(1, 2, 7, 7), randn(3, 2, 3, 3), randn(3), 2, 1)
    case("conv2d groups", "conv2d", randn(2, 4, 6, 6), randn(6, 2, 3, 3), randn(6), groups=2, padding=1)
    case("conv2d depthwise", "conv2d", randn(2, 3, 5, 5), randn(3, 1, 3, 3), None, groups=3)
    case("conv2d padding same, even kernel, dilation", "conv2d", randn(1, 2, 6, 7), randn(3, 2, 2, 3), randn(3),
         padding="same", dilation=(1, 2))
    case("conv2d unbatched", "conv2d", randn(3, 5, 6), randn(2, 3, 2, 2), randn(2), stride=(1, 2))
    case("conv2d float32", "conv2d", randn(2, 3, 8, 8, dtype=F32), randn(8, 3, 3, 3, dtype=F32),
         randn(8, dtype=F32), stride=2, padding=1)


def pool_cases():
    case("max_pool2d", "max_pool2d", randn(2, 3, 6, 6), 2)
    case("max_pool2d stride, padding, indices", "max_pool2d", randn(2, 2, 7, 6), 3, stride=2, padding=1,
         return_indices=True, index_outputs=(1,))
    case("max_pool2d dilation, ceil_mode, pairs", "max_pool2d", randn(1, 2, 9, 8), (2, 3), stride=(2, 1),
         dilation=(2, 1), ceil_mode=True, return_indices=True, index_outputs=(1,))
    case("max_pool2d unbatched, positional", "max_pool2d", randn(3, 5, 5), 2, 1, 1)
    case("max_pool2d float32", "max_pool2d", randn(2, 4, 8, 8, dtype=F32), 2)
    case("avg_pool2d", "avg_pool2d", randn(2, 3, 6, 6), 2)
    case("avg_pool2d padding without counting it", "avg_pool2d", randn(2, 2, 7, 6), 3, stride=2, padding=1,
         count_include_pad=False)
    case("avg_pool2d ceil_mode", "avg_pool2d", randn(1, 2, 8, 7), (3, 2), stride=2, padding=1, ceil_mode=True)
    case("avg_pool2d divisor_override", "avg_pool2d", randn(1, 2, 6, 6), 2, divisor_override=3)
    case("avg_pool2d divisor_override, ceil_mode", "avg_pool2d", randn(2, 2, 7, 8), 3, stride=2, padding=1,
         ceil_mode=True, divisor_override=5)
    case("avg_pool2d float32", "avg_pool2d", randn(2, 3, 8, 8, dtype=F32), 2)
    case("adaptive_avg_pool2d", "adaptive_avg_pool2d", randn(2, 3, 7, 5), (3, 2))
    case("adaptive_avg_pool2d to 1", "adaptive_avg_pool2d", randn(2, 3, 4, 6), 1)
    case("adaptive_avg_pool2d keeping a size", "adaptive_avg_pool2d", randn(1, 2, 5, 9), [None, 4])
    case("adaptive_avg_pool2d float32, unbatched", "adaptive_avg_pool2d", randn(3, 9, 9, dtype=F32), 4)


def norm_cases():
    for dtype in (F64, F32):
        tag = " float32" if dtype == F32 else ""
        case("batch_norm training" + tag, "batch_norm", randn(4, 3, 5, 2, dtype=dtype),
             randn(3, dtype=dtype, grad=False), rand(3, dtype=dtype, grad=False, lo=0.5, hi=2),
             randn(3, dtype=dtype), randn(3, dtype=dtype), True, 0.2, after=(1, 2))
    case("batch_norm evaluation", "batch_norm", randn(4, 3, 5), randn(3, grad=False),
         rand(3, grad=False, lo=0.5, hi=2), randn(3), randn(3))
    case("batch_norm training without running stats", "batch_norm", randn(6, 4), None, None, training=True)
    case("batch_norm 2-D input, options", "batch_norm", randn(5, 3), randn(3, grad=False),
         rand(3, grad=False, lo=0.5, hi=2), weight=randn(3), training=True, momentum=0.5, eps=1e-3, after=(1, 2))
    case("layer_norm", "layer_norm", randn(3, 5), [5], randn(5), randn(5))
    case("layer_norm over two dims, no affine", "layer_norm", randn(2, 3, 4), [3, 4], eps=1e-3)
    case("layer_norm shape as an int (Lua only)", "layer_norm", randn(4, 6), Lua([6], 6), randn(6))
    case("layer_norm float32", "layer_norm", randn(8, 16, dtype=F32), (16,), randn(16, dtype=F32),
         randn(16, dtype=F32))


def embedding_cases():
    case("embedding", "embedding", ids(6, 4), randn(6, 3))
    case("embedding 2-D ids, padding_idx", "embedding", ids(5, 3, 4), randn(5, 2), index_arg(2))
    case("embedding negative padding_idx", "embedding", ids(5, 7), randn(5, 2), padding_idx=-1)
    case("embedding max_norm", "embedding", ids(6, 5), randn(6, 4, scale=2), max_norm=1.5, after=(1,))
    case("embedding max_norm, norm_type 1", "embedding", ids(6, 5), randn(6, 4, grad=False, scale=2),
         max_norm=2.0, norm_type=1.0, after=(1,))
    case("embedding float32", "embedding", ids(10, 6), randn(10, 5, dtype=F32), padding_idx=index_arg(3))


def dropout_cases():
    case("dropout", "dropout", randn(4, 5), seed=1)
    case("dropout p = 0.3", "dropout", randn(3, 4, 5), 0.3, seed=2)
    case("dropout evaluation", "dropout", randn(3, 4), training=False)
    case("dropout float32", "dropout", randn(64, dtype=F32), p=0.7, seed=3)
    case("dropout2d", "dropout2d", randn(3, 4, 2, 2), seed=4)
    case("dropout2d 3-D is [N, C, L]", "dropout2d", randn(2, 6, 3), 0.4, seed=5)


def activation_cases():
    x = lambda dtype=F64: randn(3, 4, dtype=dtype)
    case("relu", "relu", x())
    case("leaky_relu", "leaky_relu", x())
    case("leaky_relu slope", "leaky_relu", x(), 0.2)
    case("gelu", "gelu", x())
    case("gelu tanh", "gelu", x(), approximate="tanh")
    case("silu", "silu", x())
    case("tanh", "tanh", x())
    case("sigmoid", "sigmoid", x())
    for name in ("relu", "leaky_relu", "gelu", "silu"):
        case(name + " float32", name, randn(5, 6, dtype=F32))
    case("softmax", "softmax", randn(3, 5), index_arg(1))
    case("softmax dim -1, float32", "softmax", randn(2, 3, 4, dtype=F32), dim=-1)
    case("softmax implicit dim, 3-D", "softmax", randn(2, 3, 4))
    case("softmax implicit dim, 2-D", "softmax", randn(2, 3))
    case("softmax dtype", "softmax", randn(3, 4, dtype=F32), index_arg(0), dtype=Lua(torch.float64, "float64"))
    case("log_softmax", "log_softmax", randn(4, 6), dim=index_arg(1))
    case("log_softmax float32", "log_softmax", randn(4, 6, dtype=F32), dim=index_arg(0))


def loss_cases():
    for fn in ("mse_loss", "l1_loss", "smooth_l1_loss"):
        case(fn, fn, randn(3, 4), randn(3, 4))
        case(fn + " sum", fn, randn(3, 4), randn(3, 4, grad=False), reduction="sum")
        case(fn + " none", fn, randn(2, 5), randn(2, 5), reduction="none")
        case(fn + " legacy size_average", fn, randn(2, 3), randn(2, 3), size_average=False)
        case(fn + " float32", fn, randn(4, 5, dtype=F32), randn(4, 5, dtype=F32))
    case("smooth_l1_loss beta", "smooth_l1_loss", randn(4, 5), randn(4, 5), beta=0.5)
    case("mse_loss broadcast target", "mse_loss", randn(3, 4), randn(4, grad=False))

    case("cross_entropy", "cross_entropy", randn(5, 4), classes(4, 5))
    case("cross_entropy weight", "cross_entropy", randn(6, 3), classes(3, 6), randn(3, grad=False).abs())
    case("cross_entropy default ignore_index", "cross_entropy", randn(6, 3), classes(3, 6, ignore_at=(1, 4)))
    case("cross_entropy ignore_index", "cross_entropy", randn(6, 4), classes(4, 6, ignore_at=(0, 3),
         ignore_index=2), ignore_index=ignore(2))
    case("cross_entropy label_smoothing", "cross_entropy", randn(5, 4), classes(4, 5), label_smoothing=0.1)
    case("cross_entropy label_smoothing, weight, ignore_index, sum", "cross_entropy", randn(7, 5),
         classes(5, 7, ignore_at=(2,), ignore_index=0), weight=rand(5, grad=False, lo=0.2, hi=2),
         ignore_index=ignore(0), label_smoothing=0.2, reduction="sum")
    case("cross_entropy none, K-dim", "cross_entropy", randn(2, 3, 4, 2), classes(3, 2, 4, 2), reduction="none")
    case("cross_entropy unbatched", "cross_entropy", randn(5), classes(5))
    case("cross_entropy probabilities, label_smoothing", "cross_entropy", randn(4, 3),
         F.softmax(randn(4, 3, grad=False), 1), label_smoothing=0.3)
    case("cross_entropy float32", "cross_entropy", randn(8, 10, dtype=F32), classes(10, 8))
    case("cross_entropy positional legacy arguments", "cross_entropy", randn(4, 3), classes(3, 4), None, None,
         -100, False)

    logp = lambda *s: F.log_softmax(randn(*s, grad=False), 1).requires_grad_()
    case("nll_loss", "nll_loss", logp(5, 4), classes(4, 5))
    case("nll_loss weight, ignore_index", "nll_loss", logp(6, 3), classes(3, 6, ignore_at=(5,), ignore_index=1),
         rand(3, grad=False, lo=0.5, hi=1.5), ignore_index=ignore(1))
    case("nll_loss none, K-dim", "nll_loss", logp(2, 4, 3), classes(4, 2, 3), reduction="none")
    case("nll_loss sum", "nll_loss", logp(3, 5), classes(5, 3, ignore_at=(1,)), reduction="sum")

    probs = lambda *s, dtype=F64: torch.sigmoid(randn(*s, grad=False)).to(dtype).requires_grad_()
    case("binary_cross_entropy", "binary_cross_entropy", probs(3, 4), rand(3, 4, lo=0, hi=1))
    case("binary_cross_entropy weight, sum", "binary_cross_entropy", probs(3, 4), rand(3, 4, lo=0, hi=1, grad=False),
         rand(4, grad=False, lo=0.5, hi=2), reduction="sum")
    case("binary_cross_entropy none", "binary_cross_entropy", probs(5), rand(5, lo=0, hi=1), reduction="none")
    case("binary_cross_entropy float32", "binary_cross_entropy", probs(4, 4, dtype=F32),
         rand(4, 4, lo=0, hi=1, dtype=F32))
    bcel = "binary_cross_entropy_with_logits"
    case(bcel, bcel, randn(3, 4, scale=3), rand(3, 4, lo=0, hi=1))
    case(bcel + " weight, pos_weight", bcel, randn(3, 4, scale=3), rand(3, 4, lo=0, hi=1),
         rand(3, 1, lo=0.5, hi=2, grad=False), pos_weight=rand(4, lo=0.5, hi=3, grad=False))
    case(bcel + " none", bcel, randn(2, 5, scale=3), rand(2, 5, lo=0, hi=1, grad=False), reduction="none")
    case(bcel + " float32", bcel, randn(6, 3, dtype=F32, scale=4), rand(6, 3, lo=0, hi=1, dtype=F32))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pytorch_nn.py OUTDIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for make in (linear_cases, conv_cases, pool_cases, norm_cases, embedding_cases, dropout_cases,
                 activation_cases, loss_cases):
        make()
    path = os.path.join(out_dir, "pytorch_nn.lua")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("-- Written by tools/pytorch_nn.py (PyTorch %s); do not edit.\n" % torch.__version__)
        f.write("return {\n" + ",\n".join(CASES) + "\n}\n")
    os.replace(tmp, path)
    print("%d cases -> %s" % (len(CASES), path))


if __name__ == "__main__":
    main()
