#!/usr/bin/python3
"""PyTorch's side of spec/27-state_dict_spec.lua (Debian's /usr/bin/python3 + torch 1.13).

    pytorch_state_dicts.py write OUTDIR   writes OUTDIR/state_dicts.pt (one torch.save'd dict)
    pytorch_state_dicts.py check OUTDIR   checks the files the spec wrote into OUTDIR and prints
                                          one "ok <name>" or "FAIL <name>: <why>" line each;
                                          exits 1 on any failure

The architectures below are written again, layer for layer, in the spec. state_dicts.pt holds:

  "archs":  name -> {"keys": [...], "shapes": [[...], ...], "dtypes": [...], "params": [...],
            "buffers": [...], "modules": [...], "repr": str(model)}: the state-dict keys in
            order with their shapes and dtypes, named_parameters / named_buffers /
            named_modules names, and the repr
  "nets":   name -> {"state": state dict, "input": x, "output": model(x) in eval mode,
            "state64" / "input64" / "output64": the same in float64}. Batch norm has run two
            training passes first, so running statistics and num_batches_tracked are not the
            defaults; every parameter is perturbed away from its initial value
  "warm":   the warm-start case: "source" (Classifier(10) state dict), "partial" (the same
            without fc.*, plus old_head.*), "missing" / "unexpected" (PyTorch's
            load_state_dict(partial, strict=False) into Classifier(4, extra=True)) and "error"
            (PyTorch's message for the strict load of "source" into that model)
  "ddp":    nn.DataParallel(Classifier(10)).state_dict() (keys prefixed "module.") and the plain
            keys
  "init":   name -> a tensor filled by a torch.nn.init function right after manual_seed
  "clip":   cases of clip_grad_norm_: grads before, max_norm, norm_type, grads after, total

`check` reads what the spec saved: "lua_ddp.pt" (add_prefix'ed state dict: loads strictly into
DataParallel(Classifier(10))), "lua_stack.pt" (a whole Stack model: plain dict with class, args,
training, and a state dict that loads strictly into the Python Stack and reproduces its output)
and "lua_seq.pt" (a whole Sequential of built-in layers with its constructor arguments).
"""
import collections
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

GEN = torch.Generator().manual_seed(20240615)


def randn(*shape, dtype=torch.float32):
    return torch.randn(shape, generator=GEN, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------------------
# Architectures (mirrored in spec/27-state_dict_spec.lua)

def nested():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                         nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 3))))


class Stack(nn.Module):
    """ModuleList, ModuleDict, a shared child, own parameter and buffers (persistent and not),
    an absent parameter and an absent buffer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 8)])
        self.heads = nn.ModuleDict(collections.OrderedDict([("score", nn.Linear(8, 3)),
                                                            ("aux", nn.Linear(8, 1, bias=False))]))
        self.scale = nn.Parameter(torch.ones(1) * 1.5)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache", torch.zeros(8), persistent=False)
        self.register_parameter("unused", None)
        self.register_buffer("absent", None)
        self.shared = self.embed

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = F.relu(b(h))
        return self.heads["score"](h) * self.scale + self.heads["aux"](h)


class ConvNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, bias=False)
        self.norm_free = nn.BatchNorm2d(6, affine=False, track_running_stats=False)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6 * 3 * 3, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)  # 14x14 -> 7x7; conv2: 3x3
        x = F.relu(self.norm_free(self.conv2(x)))
        return self.fc(self.drop(x.flatten(1)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True)
        self.gru = nn.GRU(5, 3)
        self.norm = nn.LayerNorm(3)
        self.emb = nn.Embedding(7, 4, padding_idx=0)


class Classifier(nn.Module):
    def __init__(self, classes, extra=False):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16))
        self.fc = nn.Linear(16, classes)
        if extra:
            self.proj = nn.Linear(16, 16)

    def forward(self, x):
        return self.fc(self.features(x))


def describe(model):
    sd = model.state_dict()
    return {
        "keys": list(sd.keys()),
        "shapes": [list(v.shape) for v in sd.values()],
        "dtypes": [str(v.dtype).replace("torch.", "") for v in sd.values()],
        "params": [n for n, _ in model.named_parameters()],
        "buffers": [n for n, _ in model.named_buffers()],
        "modules": [n for n, _ in model.named_modules()],
        "repr": repr(model),
    }


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(randn(*p.shape, dtype=p.dtype) * 0.3)
    return model


def net_case(make, input_shape, dtype):
    torch.manual_seed(0)
    model = perturb(make().to(dtype))
    model.train()
    for _ in range(2):  # batch norm statistics
        with torch.no_grad():
            model(randn(*input_shape, dtype=dtype))
    model.eval()
    x = randn(*input_shape, dtype=dtype)
    with torch.no_grad():
        y = model(x)
    return model.state_dict(), x, y


def nets():
    out = {}
    for name, make, shape in [("stack", Stack, (5, 6)), ("conv", ConvNet, (3, 1, 14, 14)),
                              ("nested", nested, (2, 4))]:
        sd, x, y = net_case(make, shape, torch.float32)
        sd64, x64, y64 = net_case(make, shape, torch.float64)
        out[name] = {"state": sd, "input": x, "output": y, "state64": sd64, "input64": x64, "output64": y64}
    return out


def warm():
    torch.manual_seed(1)
    source = Classifier(10)
    sd = source.state_dict()
    partial = collections.OrderedDict((k, v) for k, v in sd.items() if not k.startswith("fc."))
    partial["old_head.weight"] = sd["fc.weight"]
    partial["old_head.bias"] = sd["fc.bias"]
    target = Classifier(4, extra=True)
    result = target.load_state_dict(partial, strict=False)
    try:
        Classifier(4, extra=True).load_state_dict(sd)
        error = None
    except RuntimeError as e:
        error = str(e)
    return {"source": sd, "partial": partial, "missing": list(result.missing_keys),
            "unexpected": list(result.unexpected_keys), "error": error}


def ddp():
    torch.manual_seed(2)
    model = nn.DataParallel(Classifier(10))  # on the CPU it only wraps: keys gain "module."
    return {"state": model.state_dict(), "plain_keys": list(model.module.state_dict().keys())}


def inits():
    init = nn.init
    cases = collections.OrderedDict()

    def case(name, shape, fn):
        torch.manual_seed(11)
        t = torch.empty(shape)
        fn(t)
        cases[name] = t

    case("uniform", (4, 5), lambda t: init.uniform_(t, -0.3, 0.7))
    case("normal", (4, 5), lambda t: init.normal_(t, 0.5, 2.0))
    case("xavier_uniform", (6, 4, 3), lambda t: init.xavier_uniform_(t, gain=init.calculate_gain("tanh")))
    case("xavier_normal", (6, 4, 3), lambda t: init.xavier_normal_(t))
    case("kaiming_uniform", (5, 3, 2, 2), lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)))
    case("kaiming_uniform_relu_out", (7, 4), lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"))
    case("kaiming_normal", (5, 3, 2, 2), lambda t: init.kaiming_normal_(t))
    case("kaiming_normal_leaky", (7, 4), lambda t: init.kaiming_normal_(t, a=0.2, mode="fan_out"))
    return cases


def clips():
    out = []
    for max_norm, norm_type in [(1.0, 2.0), (0.5, math.inf), (3.0, 1.0), (1e6, 2.0), (0.25, 3.0)]:
        grads = [randn(3, 4), randn(5), randn(2, 2, 2)]
        params = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        out.append({"max_norm": max_norm, "norm_type": norm_type, "before": grads,
                    "after": [p.grad for p in params], "total": total})
    return out


def write(outdir):
    archs = collections.OrderedDict()
    torch.manual_seed(0)
    for name, make in [("nested", nested), ("stack", Stack), ("conv", ConvNet), ("recurrent", Recurrent),
                       ("bn_variants", lambda: nn.Sequential(nn.BatchNorm1d(3), nn.BatchNorm1d(3, affine=False),
                                                             nn.BatchNorm2d(2, track_running_stats=False)))]:
        archs[name] = describe(make())
    data = {"archs": archs, "nets": nets(), "warm": warm(), "ddp": ddp(), "init": inits(), "clip": clips()}
    torch.save(data, os.path.join(outdir, "state_dicts.pt"))


# ---------------------------------------------------------------------------------------------
# check: files the spec wrote

def check(outdir):
    failures = 0
    data = torch.load(os.path.join(outdir, "state_dicts.pt"))

    def report(name, fn):
        nonlocal failures
        try:
            fn()
            print("ok", name)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failures += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))

    def ddp_file():
        sd = torch.load(os.path.join(outdir, "lua_ddp.pt"), weights_only=True)
        assert list(sd.keys()) == list(data["ddp"]["state"].keys()), list(sd.keys())
        model = nn.DataParallel(Classifier(10))
        model.load_state_dict(sd)  # strict
        for k, v in data["ddp"]["state"].items():
            assert torch.equal(model.state_dict()[k], v), k

    def stack_file():
        path = os.path.join(outdir, "lua_stack.pt")
        d = torch.load(path, weights_only=True)
        assert type(d) is dict or isinstance(d, collections.OrderedDict), type(d)
        assert list(d.keys()) == ["moontorch.model", "state_dict"], list(d.keys())
        info = d["moontorch.model"]
        assert info["class"] == "Stack", info
        assert list(info["args"]) == [], info
        assert info["training"] is False, info
        net = data["nets"]["stack"]
        assert list(d["state_dict"].keys()) == list(net["state"].keys()), list(d["state_dict"].keys())
        model = Stack()
        model.load_state_dict(d["state_dict"])  # strict
        model.eval()
        with torch.no_grad():
            y = model(net["input"])
        assert torch.allclose(y, net["output"], rtol=2e-4, atol=2e-4), (y, net["output"])

    def seq_file():
        d = torch.load(os.path.join(outdir, "lua_seq.pt"))  # holds floats outside tensors
        info = d["moontorch.model"]
        assert info["class"] == "Sequential" and info["training"] is True, info
        args = info["args"]
        want = [("Linear", [4, 8]), ("ReLU", []), ("Dropout", [0.25]), ("Linear", [8, 2, {"bias": False}])]
        assert len(args) == len(want), args
        for a, (cls, cargs) in zip(args, want):
            desc = a["moontorch.module"]
            assert desc["class"] == cls and list(desc["args"]) == cargs, (desc, cls, cargs)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 2, bias=False))
        model.load_state_dict(d["state_dict"])  # strict

    report("lua_ddp.pt", ddp_file)
    report("lua_stack.pt", stack_file)
    report("lua_seq.pt", seq_file)
    return failures


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit("usage: pytorch_state_dicts.py write|check OUTDIR")
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(1 if check(sys.argv[2]) else 0)


if __name__ == "__main__":
    main()
