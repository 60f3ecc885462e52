#!/usr/bin/python3
"""Generate PyTorch reference cases for spec/16-pytorch_spec.lua.

Usage: /usr/bin/python3 tools/gen_fixtures.py OUTDIR     (writes OUTDIR/pytorch_cases.lua)

Each case is computed by PyTorch (python3-torch, 1.13) on small deterministic inputs and
written as a Lua table:

    { name = "...", call = "method" | "torch", fn = "sum", both = true,
      n = 3, args = { ARG, ARG, ... },
      out = { { dtype = "float32", shape = {2, 3}, data = {...flat, row-major...}, exact = false }, ... } }

ARG is a Lua number / boolean / string, or
    { tensor = { dtype = "int64", data = NESTED, t = true } }   -- `t = true`: apply :t() after creation
    { list = { ARG, ... } }                                       -- a Lua array of tensors
    { none = true }                                               -- nil in that position

call = "method" calls args[1]:fn(args[2..n]); "torch" calls torch.fn(args[1..n]); both = true
asks the spec to check the torch.fn form too. Dims and indices are already converted to
moontorch's 1-based convention (negative dims are kept: they count from the end in both).
Index-valued outputs (argmax, max(d), sort, topk) are shifted by one as well. Floats are
written with %.17g, so nothing is lost; NaN and infinities as 0/0, 1/0, -1/0.
"""

import math
import os
import sys

import torch

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]
TDT = {name: getattr(torch, name) for name in DTYPES}
NAME_OF = {v: k for k, v in TDT.items()}
FLOATS = {"float32", "float64", "float16", "bfloat16"}

GEN = torch.Generator().manual_seed(20240601)
CASES = []


# ---------------------------------------------------------------------------------------------
# Encoding Python values as Lua source

def lua_num(v, is_float):
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_float or isinstance(v, float):
        v = float(v)
        if math.isnan(v):
            return "0/0"
        if math.isinf(v):
            return "1/0" if v > 0 else "-1/0"
        s = "%.17g" % v
        if not any(c in s for c in ".eEn"):
            s += ".0"  # keep it a Lua float
        return s
    v = int(v)
    if v == -(2 ** 63):
        return "math.mininteger"
    return str(v)


def lua_nested(v, is_float):
    if isinstance(v, list):
        return "{" + ", ".join(lua_nested(x, is_float) for x in v) + "}"
    return lua_num(v, is_float)


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LuaTensor:
    """A tensor argument whose Lua value differs from the Python one (1-based indices)."""

    def __init__(self, lua, py):
        self.lua, self.py = lua, py


class LuaList:
    def __init__(self, items):
        self.items = items


class LuaOnly:
    """An argument that exists on the Lua side only (its Python counterpart is a keyword)."""

    def __init__(self, v):
        self.v = v


def enc_tensor(x):
    dt = NAME_OF[x.dtype]
    transposed = x.dim() == 2 and not x.is_contiguous() and x.t().is_contiguous()
    src = x.t() if transposed else x
    data = src.tolist()
    s = "{tensor = {dtype = %s, data = %s" % (lua_str(dt), lua_nested(data, dt in FLOATS))
    if transposed:
        s += ", t = true"
    return s + "}}"


def enc_arg(a):
    if isinstance(a, LuaTensor):
        return enc_tensor(a.lua)
    if isinstance(a, LuaOnly):
        return enc_arg(a.v)
    if isinstance(a, LuaList):
        return "{list = {" + ", ".join(enc_arg(x) for x in a.items) + "}}"
    if isinstance(a, torch.Tensor):
        return enc_tensor(a)
    if a is None:
        return "{none = true}"
    if isinstance(a, str):
        return lua_str(a)
    return lua_num(a, isinstance(a, float))


def enc_out(t, exact):
    dt = NAME_OF[t.dtype]
    flat = t.reshape(-1).tolist()
    return "{dtype = %s, shape = {%s}, data = {%s}, exact = %s}" % (
        lua_str(dt), ", ".join(str(s) for s in t.shape), ", ".join(lua_num(v, dt in FLOATS) for v in flat),
        "true" if exact else "false")


def add(name, call, fn, args, outputs, both=False, exact=False, index_outputs=()):
    """Records one case. `outputs` is a tensor or a tuple of tensors computed by PyTorch."""
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    outs = []
    for i, o in enumerate(outputs):
        if i in index_outputs:
            outs.append(enc_out(o + 1, True))
        else:
            outs.append(enc_out(o, exact or NAME_OF[o.dtype] not in FLOATS))
    CASES.append("  {name = %s, call = %s, fn = %s, both = %s, n = %d,\n   args = {%s},\n   out = {%s}}" % (
        lua_str(name), lua_str(call), lua_str(fn), "true" if both else "false", len(args),
        ", ".join(enc_arg(a) for a in args), ", ".join(outs)))


def ld(d):
    """A 0-based (or negative) PyTorch dim as moontorch's 1-based one."""
    return d + 1 if d >= 0 else d


def shape_str(*shapes):
    return " x ".join("[" + ",".join(str(s) for s in sh) + "]" for sh in shapes)


def randn(*shape, dtype="float32"):
    return torch.randn(tuple(shape), generator=GEN, dtype=torch.float64).to(TDT[dtype])


def randint(lo, hi, *shape, dtype="int64"):
    return torch.randint(lo, hi, tuple(shape), generator=GEN).to(TDT[dtype])


# ---------------------------------------------------------------------------------------------
# Cases

def elementwise():
    shapes = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((2, 1, 3), (4, 1)), ((2, 3), ()),
              ((), (3, 2)), ((4,), (3, 1))]
    for dt in ("float32", "float64"):
        for sa, sb in shapes:
            a, b = randn(*sa, dtype=dt), randn(*sb, dtype=dt)
            pa = a.abs() + 0.5                                # positive bases for pow
            bd = torch.where(b >= 0, b + 0.5, b - 0.5)        # divisors away from zero
            tag = "%s %s" % (dt, shape_str(sa, sb))
            add("add " + tag, "method", "add", [a, b], a + b, both=True)
            add("sub " + tag, "method", "sub", [a, b], a - b, both=True)
            add("mul " + tag, "method", "mul", [a, b], a * b, both=True)
            add("div " + tag, "method", "div", [a, bd], a / bd, both=True)
            add("pow " + tag, "method", "pow", [pa, b], pa ** b, both=True)
        # non-contiguous operands (transposed views)
        a, b = randn(3, 2, dtype=dt).t(), randn(3, 2, dtype=dt).t()  # [2, 3] views, not contiguous
        add("add %s transposed operands" % dt, "method", "add", [a, b], a + b, both=True)
        c = randn(3, dtype=dt)
        add("mul %s transposed with [3]" % dt, "method", "mul", [a, c], a * c, both=True)
        # numbers on the right, add with alpha
        x = randn(2, 3, dtype=dt)
        add("add %s number" % dt, "method", "add", [x, 2.5], x + 2.5, both=True)
        add("sub %s integer" % dt, "method", "sub", [x, 3], x - 3, both=True)
        add("mul %s number" % dt, "method", "mul", [x, -1.5], x * -1.5, both=True)
        add("div %s number" % dt, "method", "div", [x, 4.0], x / 4.0, both=True)
        add("pow %s square" % dt, "method", "pow", [x, 2], x ** 2, both=True)
        add("pow %s sqrt" % dt, "method", "pow", [x.abs(), 0.5], x.abs() ** 0.5, both=True)
        y = randn(2, 3, dtype=dt)
        add("add %s alpha" % dt, "method", "add", [x, y, LuaOnly(2.0)], torch.add(x, y, alpha=2.0), both=True)
        add("sub %s alpha" % dt, "method", "sub", [x, y, LuaOnly(0.5)], torch.sub(x, y, alpha=0.5), both=True)

    # integer arithmetic and promotion
    ia, ib = randint(-9, 10, 2, 3), randint(1, 10, 2, 3)
    add("add int64", "method", "add", [ia, ib], ia + ib, both=True)
    add("mul int64 broadcast", "method", "mul", [ia, ib[0]], ia * ib[0], both=True)
    add("div int64 true division gives float32", "method", "div", [ia, ib], ia / ib, both=True)
    add("add int64 + 1.5 gives float32", "method", "add", [ia, 1.5], ia + 1.5, both=True)
    i32 = randint(-9, 10, 3, dtype="int32")
    add("add int32 + int64 gives int64", "method", "add", [i32, ia], i32 + ia, both=True)
    add("mul int32 * 3 stays int32", "method", "mul", [i32, 3], i32 * 3, both=True)
    f32 = randn(3)
    add("add int32 + float32", "method", "add", [i32, f32], i32 + f32, both=True)
    f64 = randn(3, dtype="float64")
    add("add float32 + float64", "method", "add", [f32, f64], f32 + f64, both=True)
    add("add float32 + 0-dim float64 stays float32", "method", "add", [f32, f64[0]], f32 + f64[0], both=True)


def unary():
    ops = ["neg", "abs", "exp", "tanh", "sigmoid", "relu"]
    pos_ops = ["log", "sqrt"]
    for dt in ("float32", "float64"):
        x = randn(3, 4, dtype=dt) * 2
        p = x.abs() + 0.1
        xt = randn(4, 3, dtype=dt).t()
        for op in ops:
            add("%s %s" % (op, dt), "method", op, [x], getattr(torch, op)(x), both=True)
            add("%s %s transposed" % (op, dt), "method", op, [xt], getattr(torch, op)(xt))
        for op in pos_ops:
            add("%s %s" % (op, dt), "method", op, [p], getattr(torch, op)(p), both=True)
        add("clamp %s" % dt, "method", "clamp", [x, -0.5, 0.5], x.clamp(-0.5, 0.5), both=True)
        add("clamp %s min only" % dt, "method", "clamp", [x, 0.0], x.clamp(min=0.0), both=True)
        add("clamp %s max only" % dt, "method", "clamp", [x, None, 0.3], x.clamp(max=0.3), both=True)
        s = torch.tensor([0.0, -1.0, float("inf"), float("-inf"), float("nan")], dtype=TDT[dt])
        for op in ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs"]:
            add("%s %s special values" % (op, dt), "method", op, [s], getattr(torch, op)(s))
    xi = randint(-5, 6, 5)
    for op in ["neg", "abs", "relu", "exp", "sqrt", "sigmoid"]:
        add("%s int64" % op, "method", op, [xi], getattr(torch, op)(xi))
    add("clamp int64", "method", "clamp", [xi, -2, 3], xi.clamp(-2, 3))


def comparisons():
    a = randint(0, 3, 3, 1).to(torch.float32)
    b = randint(0, 3, 1, 4).to(torch.float32)
    for op in ["eq", "ne", "lt", "le", "gt", "ge"]:
        add("%s broadcast" % op, "method", op, [a, b], getattr(torch, op)(a, b), both=True)
        add("%s number" % op, "method", op, [b, 1], getattr(torch, op)(b, 1), both=True)
        ia, ib = randint(-2, 3, 6, dtype="int8"), randint(-2, 3, 6, dtype="int16")
        add("%s int8 vs int16" % op, "method", op, [ia, ib], getattr(torch, op)(ia, ib), both=True)
    m = randint(0, 2, 2, 3).bool()
    add("all", "method", "all", [m], m.all(), both=True)
    add("any", "method", "any", [m], m.any(), both=True)
    add("all dim 2", "method", "all", [m, 2], m.all(1))
    add("any dim 1", "method", "any", [m, 1], m.any(0))


def reductions():
    for dt in ("float32", "float64"):
        x = randn(2, 3, 4, dtype=dt)
        add("sum %s" % dt, "method", "sum", [x], x.sum(), both=True)
        add("mean %s" % dt, "method", "mean", [x], x.mean(), both=True)
        add("var %s" % dt, "method", "var", [x], x.var(), both=True)
        add("std %s" % dt, "method", "std", [x], x.std(), both=True)
        add("max %s" % dt, "method", "max", [x], x.max(), both=True)
        add("min %s" % dt, "method", "min", [x], x.min(), both=True)
        add("argmax %s" % dt, "method", "argmax", [x], x.argmax(), both=True, index_outputs=(0,))
        for d in (0, 1, 2, -1, -3):
            add("sum %s dim %d" % (dt, d), "method", "sum", [x, ld(d)], x.sum(d), both=True)
            add("sum %s dim %d keepdim" % (dt, d), "method", "sum", [x, ld(d), True], x.sum(d, keepdim=True))
            add("mean %s dim %d" % (dt, d), "method", "mean", [x, ld(d)], x.mean(d), both=True)
            add("mean %s dim %d keepdim" % (dt, d), "method", "mean", [x, ld(d), True], x.mean(d, keepdim=True))
            add("var %s dim %d" % (dt, d), "method", "var", [x, ld(d)], x.var(d), both=True)
            add("std %s dim %d" % (dt, d), "method", "std", [x, ld(d)], x.std(d), both=True)
            v, i = x.max(d)
            add("max %s dim %d" % (dt, d), "method", "max", [x, ld(d)], (v, i), both=True, index_outputs=(1,))
            v, i = x.min(d, keepdim=True)
            add("min %s dim %d keepdim" % (dt, d), "method", "min", [x, ld(d), True], (v, i), index_outputs=(1,))
            add("argmax %s dim %d" % (dt, d), "method", "argmax", [x, ld(d)], x.argmax(d), both=True,
                index_outputs=(0,))
            add("argmax %s dim %d keepdim" % (dt, d), "method", "argmax", [x, ld(d), True],
                x.argmax(d, keepdim=True), index_outputs=(0,))
            add("softmax %s dim %d" % (dt, d), "method", "softmax", [x, ld(d)], x.softmax(d), both=True)
            add("log_softmax %s dim %d" % (dt, d), "method", "log_softmax", [x, ld(d)], x.log_softmax(d), both=True)
            add("cumsum %s dim %d" % (dt, d), "method", "cumsum", [x, ld(d)], x.cumsum(d), both=True)
        xt = randn(5, 3, dtype=dt).t()
        add("sum %s transposed dim 2" % dt, "method", "sum", [xt, 2], xt.sum(1))
        add("softmax %s transposed dim 1" % dt, "method", "softmax", [xt, 1], xt.softmax(0))
        big = randn(2, 5, dtype=dt) * 300
        add("softmax %s large values" % dt, "method", "softmax", [big, 2], big.softmax(1))
        add("log_softmax %s large values" % dt, "method", "log_softmax", [big, 2], big.log_softmax(1))
        s = randn(3, 6, dtype=dt)
        for d in (0, 1, -1):
            v, i = s.sort(d)
            add("sort %s dim %d" % (dt, d), "method", "sort", [s, ld(d)], (v, i), both=True, index_outputs=(1,))
            v, i = s.sort(d, descending=True)
            add("sort %s dim %d descending" % (dt, d), "method", "sort", [s, ld(d), LuaOnly(True)], (v, i),
                index_outputs=(1,))
        v, i = s.topk(3)
        add("topk %s k=3" % dt, "method", "topk", [s, 3], (v, i), both=True, index_outputs=(1,))
        v, i = s.topk(2, 0)
        add("topk %s k=2 dim 1" % dt, "method", "topk", [s, 2, 1], (v, i), index_outputs=(1,))
        v, i = s.topk(2, 1, largest=False)
        add("topk %s k=2 dim 2 smallest" % dt, "method", "topk", [s, 2, 2, LuaOnly(False)], (v, i),
            index_outputs=(1,))
    xi = randint(-50, 50, 3, 4)
    add("sum int64 dim 2", "method", "sum", [xi, 2], xi.sum(1), both=True)
    add("cumsum int64 dim 1", "method", "cumsum", [xi, 1], xi.cumsum(0), both=True)
    i16 = randint(-50, 50, 3, 4, dtype="int16")
    add("sum int16 gives int64", "method", "sum", [i16], i16.sum(), both=True)
    v, i = i16.max(1)
    add("max int16 dim 2", "method", "max", [i16, 2], (v, i), index_outputs=(1,))


def matmuls():
    pairs = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 2, 3), (2, 3, 4)),
             ((2, 1, 2, 3), (3, 3, 2)), ((2, 2, 3), (3, 4)), ((3, 4), (2, 4, 5)), ((2, 2, 3), (3,))]
    for dt in ("float32", "float64"):
        for sa, sb in pairs:
            a, b = randn(*sa, dtype=dt), randn(*sb, dtype=dt)
            add("matmul %s %s" % (dt, shape_str(sa, sb)), "method", "matmul", [a, b], a @ b, both=True)
        a, b = randn(3, 2, dtype=dt).t(), randn(4, 3, dtype=dt).t()
        add("matmul %s transposed x transposed" % dt, "method", "matmul", [a, b], a @ b, both=True)
        c = randn(3, 4, dtype=dt)
        add("mm %s transposed x contiguous" % dt, "method", "mm", [a, c], a.mm(c), both=True)
        d, e = randn(4, 3, dtype=dt), randn(3, 5, dtype=dt)
        add("mm %s" % dt, "method", "mm", [d, e], d.mm(e), both=True)
        f, g = randn(3, 2, 4, dtype=dt), randn(3, 4, 2, dtype=dt)
        add("bmm %s" % dt, "method", "bmm", [f, g], f.bmm(g), both=True)


def indexing():
    for dt in ("float32", "int64", "float16", "bool", "uint8"):
        x = randn(4, 5).mul(10).round().to(TDT[dt]) if dt != "bool" else randint(0, 2, 4, 5).bool()
        for d, idx in ((0, torch.tensor([3, 0, 0, 2])), (1, torch.tensor([4, 1])), (-1, torch.tensor([2]))):
            add("index_select %s dim %d" % (dt, d), "method", "index_select", [x, ld(d), LuaTensor(idx + 1, idx)],
                x.index_select(d, idx), both=True)
        gi = torch.randint(0, 5, (4, 3), generator=GEN)
        add("gather %s dim 2" % dt, "method", "gather", [x, 2, LuaTensor(gi + 1, gi)], x.gather(1, gi), both=True)
        gi0 = torch.randint(0, 4, (2, 5), generator=GEN)
        add("gather %s dim 1" % dt, "method", "gather", [x, 1, LuaTensor(gi0 + 1, gi0)], x.gather(0, gi0),
            both=True)
        mask = randint(0, 2, 1, 5).bool()
        fill = True if dt == "bool" else 7
        add("masked_fill %s" % dt, "method", "masked_fill", [x, mask, fill], x.masked_fill(mask, fill))
    xf = randn(3, 4)
    m = randint(0, 2, 3, 1).bool()
    add("masked_fill float32 with -inf", "method", "masked_fill", [xf, m, float("-inf")],
        xf.masked_fill(m, float("-inf")))
    cond = randint(0, 2, 3, 1).bool()
    a, b = randn(3, 4), randn(4, dtype="float64")
    add("where broadcast with promotion", "torch", "where", [cond, a, b], torch.where(cond, a, b))
    ia, ib = randint(-5, 5, 2, 3), randint(-5, 5, 2, 3)
    add("where int64", "torch", "where", [ia.gt(0), ia, ib], torch.where(ia.gt(0), ia, ib))


def joins():
    for dt in ("float32", "int32", "bool"):
        mk = (lambda *s: randint(0, 2, *s).bool()) if dt == "bool" else (lambda *s: randn(*s).mul(5).round().to(TDT[dt]))
        a, b, c = mk(2, 3), mk(1, 3), mk(4, 3)
        add("cat %s dim 1" % dt, "torch", "cat", [LuaList([a, b, c]), 1], torch.cat([a, b, c], 0))
        p, q = mk(2, 1), mk(2, 4)
        add("cat %s dim 2" % dt, "torch", "cat", [LuaList([p, q]), 2], torch.cat([p, q], 1))
        add("cat %s dim -1" % dt, "torch", "cat", [LuaList([p, q]), -1], torch.cat([p, q], -1))
        r, s = mk(2, 3), mk(2, 3)
        for d in (0, 1, 2, -1):
            add("stack %s dim %d" % (dt, d), "torch", "stack", [LuaList([r, s, r]), ld(d)], torch.stack([r, s, r], d))
    a, b = randint(0, 9, 2), randn(3)
    add("cat promotes int64 with float32", "torch", "cat", [LuaList([a, b]), 1], torch.cat([a, b]))
    t = randn(3, 2).t()
    add("cat of transposed views", "torch", "cat", [LuaList([t, t]), 2], torch.cat([t, t], 1))


def conversions():
    values = {
        "float": [0.0, 1.0, -1.0, 2.5, -2.5, 0.75, 100.25, -100.9, 126.0],
        "uint8": [0.0, 1.0, 2.5, 0.75, 100.25, 126.0, 255.0],
        "int": [0, 1, -1, 2, -7, 100, 127, -128, 300, -300, 70000],
        "bool": [True, False, True],
    }
    for src in DTYPES:
        for dst in DTYPES:
            if src == "bool":
                x = torch.tensor(values["bool"])
            elif src in FLOATS:
                # Negative floats to uint8 and out-of-range floats to integers are undefined in C
                # (and PyTorch): keep those out.
                vals = values["uint8"] if dst == "uint8" else values["float"]
                if dst in ("int8",):
                    vals = [v for v in vals if -128 < v < 128]
                x = torch.tensor(vals, dtype=torch.float64).to(TDT[src])
            else:
                x = torch.tensor(values["int"]).to(TDT[src])
            add("to %s -> %s" % (src, dst), "method", "to", [x, dst], x.to(TDT[dst]), exact=True)
    # rounding to nearest even and overflow in the half types (from float32 and float64)
    half = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 65504.0, 65519.0, 65520.0, 1e5, -1e5,
            2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14 - 2 ** -24, 0.1, -0.0, float("inf"), float("nan")]
    bhalf = [1.00390625, 1.01171875, 1.0 + 2 ** -9, 0.1, 3e38, -1e-38, 1e-40, float("-inf"), float("nan")]
    for src in ("float32", "float64"):
        x = torch.tensor(half, dtype=torch.float64).to(TDT[src])
        add("to %s -> float16 rounding" % src, "method", "to", [x, "float16"], x.to(torch.float16), exact=True)
        y = torch.tensor(bhalf, dtype=torch.float64).to(TDT[src])
        add("to %s -> bfloat16 rounding" % src, "method", "to", [y, "bfloat16"], y.to(torch.bfloat16), exact=True)
    z = torch.tensor([0.1, 1 + 2 ** -24, 3.4e38, 1e39, 1e-46], dtype=torch.float64)
    add("to float64 -> float32 rounding", "method", "to", [z, "float32"], z.to(torch.float32), exact=True)
    r = randn(2, 3)
    li = randint(-9, 9, 4)
    add("float() of int64", "method", "float", [li], li.float(), exact=True)
    add("double() of float32", "method", "double", [r], r.double(), exact=True)
    add("long() of float32", "method", "long", [r * 10], (r * 10).long(), exact=True)


def check_double_rounding():
    """float64 -> float16 in PyTorch goes through float32; make sure no case here depends on it."""
    import numpy  # python3-torch depends on numpy
    vals = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 65519.0, 65520.0, 0.1, 2 ** -25, 3 * 2 ** -26]
    for v in vals:
        with numpy.errstate(over="ignore"):
            direct = numpy.float16(numpy.float64(v))
            via = numpy.float16(numpy.float32(v))
        if float(direct) != float(via):
            raise SystemExit("gen_fixtures: %r rounds differently through float32" % v)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: gen_fixtures.py OUTDIR\n")
        return 2
    torch.set_num_threads(1)
    check_double_rounding()
    elementwise()
    unary()
    comparisons()
    reductions()
    matmuls()
    indexing()
    joins()
    conversions()
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "pytorch_cases.lua")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("-- Generated by tools/gen_fixtures.py with PyTorch %s. Do not edit.\n" % torch.__version__)
        f.write("return {\n")
        f.write(",\n".join(CASES))
        f.write("\n}\n")
    os.replace(tmp, path)
    print("gen_fixtures: wrote %d cases to %s" % (len(CASES), path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
