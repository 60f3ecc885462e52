#!/usr/bin/python3
"""PyTorch's side of spec/30-optim_spec.lua (run with Debian's /usr/bin/python3 + torch 1.13).

    pytorch_optim.py write DIR      runs every case below with torch.optim and writes
                                    DIR/expected.lua (the problem data and the parameters after
                                    each step) and DIR/<case>_pt.pt ({params, optimizer}: the
                                    parameters and optimizer.state_dict() after step K)
    pytorch_optim.py continue DIR   for every DIR/<case>_mt.pt written by moontorch after step K:
                                    builds the optimizer (with wrong learning rates), loads the
                                    state dict, steps on to the end, and compares the state dict
                                    with PyTorch's own after step K; writes DIR/continued.lua
    pytorch_optim.py golden         prints the C table of tests/c/test_optim.c

The problem: parameters of shapes SHAPES, and at step t the gradient g = p * a + b[t] (no
autograd: the same two float ops in both libraries); parameter 2 gets no gradient at the steps
in NO_GRAD (so the optimizer skips it there). The tool numbers steps from 1 and parameters from 1
as the Lua side does.
"""
import math
import os
import sys

import torch

STEPS = 12
K = 5  # the step after which state dicts are exchanged
SHAPES = [[3, 4], [5], []]
NO_GRAD = {(2, 4), (2, 7)}  # (parameter, step)

# name, optimizer class, keyword arguments, dtype, groups (None: one group of all parameters;
# else a list of {"params": [1-based parameter numbers], overrides...})
CASES = [
    ("sgd", "SGD", dict(lr=0.1), "float32", None),
    ("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9), "float32", None),
    ("sgd_dampening_wd", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), "float32", None),
    ("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001), "float32", None),
    ("sgd_maximize", "SGD", dict(lr=0.02, momentum=0.5, maximize=True), "float32", None),
    ("sgd_f64", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), "float64", None),
    ("sgd_groups", "SGD", dict(lr=0.01, momentum=0.9), "float32",
     [{"params": [1, 3], "lr": 0.1, "nesterov": True}, {"params": [2], "momentum": 0.5, "dampening": 0.5}]),
    ("adam", "Adam", dict(lr=0.01), "float32", None),
    ("adam_betas_eps_wd", "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), "float32", None),
    ("adam_amsgrad", "Adam", dict(lr=0.01, amsgrad=True), "float32", None),
    ("adam_maximize", "Adam", dict(lr=0.01, maximize=True, weight_decay=0.01), "float32", None),
    ("adam_f64", "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01), "float64", None),
    ("adam_groups", "Adam", dict(lr=0.01), "float32",
     [{"params": [2]}, {"params": [1, 3], "betas": (0.5, 0.9), "amsgrad": True, "lr": 0.03}]),
    ("adamw", "AdamW", dict(lr=0.01), "float32", None),
    ("adamw_amsgrad", "AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.85, 0.995)), "float32", None),
    ("adamw_maximize_f64", "AdamW", dict(lr=0.01, maximize=True), "float64", None),
    ("rmsprop", "RMSprop", dict(lr=0.01), "float32", None),
    ("rmsprop_centered", "RMSprop", dict(lr=0.01, alpha=0.9, centered=True), "float32", None),
    ("rmsprop_centered_momentum", "RMSprop", dict(lr=0.005, momentum=0.9, centered=True, weight_decay=0.01),
     "float32", None),
    ("rmsprop_momentum_maximize", "RMSprop", dict(lr=0.01, momentum=0.5, maximize=True, eps=1e-6), "float32", None),
    ("rmsprop_f64", "RMSprop", dict(lr=0.01, momentum=0.9, centered=True), "float64", None),
    ("adagrad", "Adagrad", dict(lr=0.1), "float32", None),
    ("adagrad_decay_init_wd", "Adagrad",
     dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01), "float32", None),
    ("adagrad_maximize_eps", "Adagrad", dict(lr=0.05, eps=1e-6, maximize=True), "float32", None),
    ("adagrad_f64", "Adagrad", dict(lr=0.1, lr_decay=0.05), "float64", None),
]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_LR = {"SGD": None, "Adam": 1e-3, "AdamW": 1e-3, "RMSprop": 1e-2, "Adagrad": 1e-2}


def wrong_lr(lr):
    """The learning rate an optimizer is built with before a state dict restores the right one
    (the Lua side uses the same rule)."""
    return lr * 7 + 0.25


# ------------------------------------------------------------------------------------------
# Lua literals


def lua(x):
    if x is True:
        return "true"
    if x is False:
        return "false"
    if x is None:
        return "nil"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "(0/0)"
        if math.isinf(x):
            return "math.huge" if x > 0 else "(-math.huge)"
        return "(" + x.hex() + ")"  # exact
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(x, (list, tuple)):
        return "{" + ", ".join(lua(v) for v in x) + "}"
    if isinstance(x, dict):
        return "{" + ", ".join("[%s] = %s" % (lua(k), lua(v)) for k, v in x.items()) + "}"
    raise TypeError("no Lua literal for %r" % (x,))


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ------------------------------------------------------------------------------------------
# The problem


def problem(dtype):
    """Initial parameters, a, and b[t] for t = 1..STEPS, all exactly representable in dtype."""
    g = torch.Generator().manual_seed(1234)
    dt = DTYPES[dtype]
    init = [(torch.randn(s, generator=g, dtype=torch.float64) * 0.5).to(dt) for s in SHAPES]
    a = [(torch.rand(s, generator=g, dtype=torch.float64) * 1.3 + 0.2).to(dt) for s in SHAPES]
    b = [[torch.randn(s, generator=g, dtype=torch.float64).to(dt) for s in SHAPES] for _ in range(STEPS)]
    return init, a, b


def set_grads(params, a, b, t):
    with torch.no_grad():
        for i, p in enumerate(params):
            p.grad = None if (i + 1, t) in NO_GRAD else p * a[i] + b[t - 1][i]


def build(case, params, lr_rule=None):
    name, cls, kwargs, dtype, groups = case
    kwargs = dict(kwargs)
    if lr_rule:
        kwargs["lr"] = lr_rule(kwargs.get("lr", DEFAULT_LR[cls]))
    if groups is None:
        spec = params
    else:
        spec = []
        for g in groups:
            g = dict(g)
            g["params"] = [params[i - 1] for i in g["params"]]
            if lr_rule and "lr" in g:
                g["lr"] = lr_rule(g["lr"])
            spec.append(g)
    return getattr(torch.optim, cls)(spec, **kwargs)


def run(case, params, opt, first, last, trajectory, at_k=None):
    _, a, b = problem(case[3])
    for t in range(first, last + 1):
        set_grads(params, a, b, t)
        opt.step()
        trajectory[t] = [flat(p) for p in params]
        if t == K and at_k:
            at_k()


def fresh_params(case):
    init, _, _ = problem(case[3])
    return [p.clone().requires_grad_(True) for p in init]


# ------------------------------------------------------------------------------------------
# write


def case_lua(case, trajectory):
    name, cls, kwargs, dtype, groups = case
    init, a, b = problem(dtype)
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    desc = {
        "name": name, "optimizer": cls, "opts": opts, "dtype": dtype,
        "init": [flat(p) for p in init], "a": [flat(x) for x in a],
        "b": [[flat(x) for x in bt] for bt in b],
        "trajectory": [trajectory[t] for t in range(1, STEPS + 1)],
    }
    if groups is not None:
        desc["groups"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in groups]
    return lua(desc)


def write(d):
    out = ["return {", "steps = %d, k = %d, shapes = %s," % (STEPS, K, lua(SHAPES)),
           "no_grad = %s," % lua(sorted([list(x) for x in NO_GRAD])), "cases = {"]
    for case in CASES:
        params = fresh_params(case)
        opt = build(case, params)
        trajectory = {}

        def save():
            torch.save({"params": [p.detach().clone() for p in params], "optimizer": opt.state_dict()},
                       os.path.join(d, case[0] + "_pt.pt"))

        run(case, params, opt, 1, STEPS, trajectory, save)
        out.append(case_lua(case, trajectory) + ",")
    out.append("}}")
    with open(os.path.join(d, "expected.lua"), "w") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------------------------------
# continue


def compare_state_dicts(ours, theirs, problems):
    """Structure and values of a state dict moontorch wrote against PyTorch's own."""
    def note(fmt, *args):
        problems.append(fmt % args)

    if set(ours.keys()) != {"state", "param_groups"}:
        note("top-level keys %s", sorted(ours.keys()))
    og, tg = ours["param_groups"], theirs["param_groups"]
    if len(og) != len(tg):
        note("%d param groups, PyTorch has %d", len(og), len(tg))
    for gi, (o, t) in enumerate(zip(og, tg)):
        want = {k for k, v in t.items() if v is not None}  # None (foreach) has no Lua value
        if set(o.keys()) != want:
            note("param_groups[%d] keys %s, PyTorch's %s", gi, sorted(o.keys()), sorted(want))
        for k in want & set(o.keys()):
            ov, tv = o[k], t[k]
            if isinstance(tv, tuple):
                tv = list(tv)
            if type(ov) != type(tv) and not (isinstance(tv, list) and isinstance(ov, list)):
                note("param_groups[%d][%r] is %s %r, PyTorch's %s %r", gi, k, type(ov).__name__, ov,
                     type(tv).__name__, tv)
            elif ov != tv:
                note("param_groups[%d][%r] = %r, PyTorch's %r", gi, k, ov, tv)
    os_, ts = ours["state"], theirs["state"]
    if set(os_.keys()) != set(ts.keys()):
        note("state ids %s, PyTorch's %s", sorted(os_.keys()), sorted(ts.keys()))
    for pid in set(os_.keys()) & set(ts.keys()):
        o, t = os_[pid], ts[pid]
        want = {k for k, v in t.items() if v is not None}  # SGD keeps momentum_buffer = None
        if set(o.keys()) != want:
            note("state[%d] keys %s, PyTorch's %s", pid, sorted(o.keys()), sorted(want))
        for k in want & set(o.keys()):
            ov, tv = o[k], t[k]
            if torch.is_tensor(tv):
                if not torch.is_tensor(ov):
                    note("state[%d][%r] is %s, PyTorch's is a tensor", pid, k, type(ov).__name__)
                elif ov.dtype != tv.dtype or ov.shape != tv.shape:
                    note("state[%d][%r] is %s %s, PyTorch's %s %s", pid, k, ov.dtype, list(ov.shape), tv.dtype,
                         list(tv.shape))
                elif not torch.allclose(ov, tv, rtol=1e-5, atol=1e-7):
                    note("state[%d][%r] differs from PyTorch's by %g", pid, k, (ov - tv).abs().max().item())
            elif type(ov) != type(tv) or ov != tv:
                note("state[%d][%r] = %r (%s), PyTorch's %r (%s)", pid, k, ov, type(ov).__name__, tv,
                     type(tv).__name__)


def continue_(d):
    by_name = {c[0]: c for c in CASES}
    out = ["return {"]
    for fn in sorted(os.listdir(d)):
        if not fn.endswith("_mt.pt"):
            continue
        name = fn[:-len("_mt.pt")]
        case = by_name[name]
        problems = []
        try:
            data = torch.load(os.path.join(d, fn))  # floats outside tensors: not weights_only in 1.13
            ours = data["optimizer"]
            # PyTorch's own state dict after step K, for comparison
            ref_params = fresh_params(case)
            ref_opt = build(case, ref_params)
            run(case, ref_params, ref_opt, 1, K, {})
            compare_state_dicts(ours, ref_opt.state_dict(), problems)
            # Load ours into an optimizer built with wrong learning rates, then step on.
            params = [p.detach().clone().requires_grad_(True) for p in data["params"]]
            opt = build(case, params, wrong_lr)
            opt.load_state_dict(ours)
            trajectory = {}
            run(case, params, opt, K + 1, STEPS, trajectory)
            traj = [trajectory[t] for t in range(K + 1, STEPS + 1)]
        except Exception as e:  # reported to the spec, which fails with it
            problems.append("%s: %s" % (type(e).__name__, e))
            traj = []
        out.append("[%s] = {problems = %s, trajectory = %s}," % (lua(name), lua(problems), lua(traj)))
    out.append("}")
    with open(os.path.join(d, "continued.lua"), "w") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------------------------------
# golden: the C test's table. The data is dyadic (exact in both dtypes and in C source):
# init[i] = ((i * 37) % 17 - 8) / 8, grad[t][i] = ((i * 13 + t * 7) % 23 - 11) / 16.

GOLDEN_N = 19  # two AVX2 float vectors and a tail
GOLDEN_STEPS = 3
GOLDEN = [
    # label, class, kwargs (the C side lists them in its own order)
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.03)),
    ("SGD", dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.03, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    ("AdamW", dict(lr=0.02, weight_decay=0.05, amsgrad=True, maximize=True, betas=(0.7, 0.9))),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.8, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, eps=1e-4)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, eps=1e-3, weight_decay=0.2, initial_accumulator_value=0.5, maximize=True)),
]
GOLDEN_FIELDS = {  # the C struct's h[] order per class
    "SGD": ["lr", "momentum", "dampening", "weight_decay"],
    "Adam": ["lr", "betas0", "betas1", "eps", "weight_decay"],
    "AdamW": ["lr", "betas0", "betas1", "eps", "weight_decay"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum"],
    "Adagrad": ["lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value"],
}
GOLDEN_FLAGS = [("nesterov", "F_NESTEROV"), ("maximize", "F_MAXIMIZE"), ("amsgrad", "F_AMSGRAD"),
                ("centered", "F_CENTERED")]


def c_hex(x):
    """A C hex literal without trailing zero digits: 0x1.8p+1."""
    m, e = float(x).hex().split("p")
    m = m.rstrip("0").rstrip(".") if "." in m else m
    return m + "p" + e


def golden():
    lines = []
    for cls, kwargs in GOLDEN:
        opt_defaults = getattr(torch.optim, cls)([torch.zeros(1)], **kwargs).param_groups[0]
        h = []
        for f in GOLDEN_FIELDS[cls]:
            v = opt_defaults["betas"][int(f[-1])] if f.startswith("betas") else opt_defaults[f]
            h.append(float(v))
        flags = [c for k, c in GOLDEN_FLAGS if opt_defaults.get(k)] or ["0"]
        for dtype in ("float32", "float64"):
            dt = DTYPES[dtype]
            p = torch.tensor([((i * 37) % 17 - 8) / 8 for i in range(GOLDEN_N)], dtype=dt, requires_grad=True)
            opt = getattr(torch.optim, cls)([p], **kwargs)
            for t in range(1, GOLDEN_STEPS + 1):
                p.grad = torch.tensor([((i * 13 + t * 7) % 23 - 11) / 16 for i in range(GOLDEN_N)], dtype=dt)
                opt.step()
            want = ", ".join(c_hex(v) for v in p.detach().tolist())
            lines.append("    {\"%s %s\", %s, {%s}, %s, %s,\n     {%s}}," % (
                cls, ", ".join("%s=%s" % (k, v) for k, v in kwargs.items()), "K_" + cls.upper(),
                ", ".join(c_hex(x) for x in h), " | ".join(flags), "MT_" + dtype.upper(), want))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "continue":
        continue_(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "golden":
        golden()
    else:
        sys.exit(__doc__)
