#!/usr/bin/python3
"""PyTorch's side of spec/31-lr_scheduler_spec.lua (run with Debian's /usr/bin/python3 + torch 1.13).

    pytorch_sched.py run CASES.json DIR      runs every case with torch.optim.lr_scheduler and
                                             writes DIR/expected.lua; for cases with save_at,
                                             also DIR/<name>.torch.pt (the optimizer's and the
                                             scheduler's state dicts after save_at steps)
    pytorch_sched.py resume CASES.json DIR   for cases with save_at: loads DIR/<name>.lua.pt
                                             (written by moontorch after save_at steps) into a
                                             fresh PyTorch optimizer and scheduler, runs the
                                             remaining steps and writes DIR/resumed.lua

A case (see the spec): name, opt (an optimizer class name), lrs (one per param group), opt_args
(other hyperparameters), group_extra (key -> one value per group, e.g. initial_lr), sched (a
scheduler class name), args (positional arguments after the optimizer; "lambda:NAME" names one
of LAMBDAS below), kwargs, steps (scheduler steps after the constructor's), epochs (instead:
explicit epochs for the deprecated step(epoch)), save_at, overstep (one more step must fail).

Each step is optimizer.step() then scheduler.step(). A run records, after the constructor and
after each step, every group's lr and, when the group has one, its momentum or betas[0]; all
floats are written as hex literals, so the spec compares bits.
"""
import collections
import json
import math
import os
import sys
import warnings

import torch

warnings.filterwarnings("ignore")  # step(epoch) is deprecated; get_lr outside step() etc.

# The same functions as LAMBDAS in the spec, written the same way.
LAMBDAS = {
    "exp95": lambda e: 0.95 ** e,
    "warmup": lambda e: min(1.0, (e + 1) / 5),
    "step3": lambda e: e // 3,
    "inv": lambda e: 1 / (1 + 0.1 * e),
}

LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}


def lua(x):
    if x is None:
        return "nil"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "(0/0)"
        if math.isinf(x):
            return "math.huge" if x > 0 else "(-math.huge)"
        return "(" + x.hex() + ")"  # exact: Lua 5.4 reads hex floats
    if isinstance(x, str):
        return json.dumps(x)  # ASCII with \" and \\ escapes, which Lua reads alike
    if isinstance(x, (list, tuple)):
        return "{" + ", ".join(lua(v) for v in x) + "}"
    if isinstance(x, dict):
        return "{" + ", ".join("%s = %s" % (k if k.isidentifier() and k not in LUA_KEYWORDS else "[%s]" % lua(k),
                                            lua(v)) for k, v in x.items()) + "}"
    raise TypeError("no Lua literal for %r" % type(x))


def resolve(a):
    if isinstance(a, str) and a.startswith("lambda:"):
        return LAMBDAS[a[len("lambda:"):]]
    if isinstance(a, list):
        return [resolve(v) for v in a]
    return a


def build(case):
    """A fresh optimizer (one 2-element parameter per group) and scheduler for the case."""
    groups = []
    for i, lr in enumerate(case["lrs"]):
        g = {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr}
        for key, values in case.get("group_extra", {}).items():
            g[key] = values[i]
        groups.append(g)
    opt = getattr(torch.optim, case["opt"])(groups, lr=case["lrs"][0], **case.get("opt_args", {}))
    sched_cls = getattr(torch.optim.lr_scheduler, case["sched"])
    sched = sched_cls(opt, *[resolve(a) for a in case.get("args", [])], **case.get("kwargs", {}))
    return opt, sched


def record(opt, out):
    lrs, mom = [], []
    for g in opt.param_groups:
        lrs.append(float(g["lr"]))
        if "betas" in g:
            mom.append(float(g["betas"][0]))
        elif "momentum" in g:
            mom.append(float(g["momentum"]))
    out["lrs"].append(lrs)
    if mom:
        out["mom"].append(mom)


def advance(opt, sched, epoch=None):
    opt.step()
    sched.step() if epoch is None else sched.step(epoch)


def portable(sd):
    """A 1.13 scheduler state dict as moontorch reads it: the Counter of MultiStepLR as a dict,
    OneCycleLR's bound method anneal_func as PyTorch 2.2+'s _anneal_func_type."""
    sd = dict(sd)
    if isinstance(sd.get("milestones"), collections.Counter):
        sd["milestones"] = dict(sd["milestones"])
    if "anneal_func" in sd:
        fn = sd.pop("anneal_func")
        sd["_anneal_func_type"] = "cos" if fn.__name__ == "_annealing_cos" else "linear"
    return sd


def run(cases, out_dir):
    expected = {}
    for case in cases:
        out = {"lrs": [], "mom": []}
        try:
            opt, sched = build(case)
            record(opt, out)
            epochs = case.get("epochs") or [None] * case["steps"]
            for k, epoch in enumerate(epochs, 1):
                advance(opt, sched, epoch)
                record(opt, out)
                if case.get("save_at") == k:
                    torch.save({"optimizer": opt.state_dict(), "scheduler": portable(sched.state_dict())},
                               os.path.join(out_dir, case["name"] + ".torch.pt"))
            if case.get("overstep"):
                try:
                    advance(opt, sched)
                    out["overstep_error"] = None
                except ValueError as e:
                    out["overstep_error"] = str(e)
            out["state_keys"] = list(sched.state_dict().keys())
        except Exception as e:  # reported per case, so that the spec names the case
            out["error"] = "%s: %s" % (type(e).__name__, e)
        if not out["mom"]:
            del out["mom"]
        expected[case["name"]] = out
    with open(os.path.join(out_dir, "expected.lua"), "w") as f:
        f.write("return " + lua(expected) + "\n")


def resume(cases, out_dir):
    resumed = {}
    for case in cases:
        if not case.get("save_at"):
            continue
        out = {"lrs": [], "mom": []}
        try:
            opt, sched = build(case)
            saved = torch.load(os.path.join(out_dir, case["name"] + ".lua.pt"))
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            record(opt, out)
            for _ in range(case["save_at"], case["steps"]):
                advance(opt, sched)
                record(opt, out)
        except Exception as e:
            out["error"] = "%s: %s" % (type(e).__name__, e)
        if not out["mom"]:
            del out["mom"]
        resumed[case["name"]] = out
    with open(os.path.join(out_dir, "resumed.lua"), "w") as f:
        f.write("return " + lua(resumed) + "\n")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("run", "resume"):
        sys.exit("usage: pytorch_sched.py run|resume CASES.json DIR")
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    (run if sys.argv[1] == "run" else resume)(cases, sys.argv[3])


if __name__ == "__main__":
    main()
