"""PyTorch side of `make bench`: the workloads of bench/moontorch_bench.lua, same output format
("key<TAB>value" lines). bench/run.sh runs it once per thread setting and keeps the faster.

    python3 bench/pytorch_bench.py --threads N [--quick] [--only NAME[,NAME]] [--data DIR] [--tmp DIR]

--only runs only the named workloads (WORKLOADS below, as in bench/common.lua).

With --threads 1, run.sh also sets OPENBLAS_NUM_THREADS=1 / OMP_NUM_THREADS=1. PyTorch 1.13 has
no mmap load, so the mmap goal compares moontorch's mmap load with PyTorch's plain load.
"""
import argparse
import gzip
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

now = time.perf_counter

# The workloads --only accepts (the same list as bench/common.lua).
WORKLOADS = ["sgemm_1024", "mlp_train_b128", "cnn_train_b64", "cnn_infer_b256", "cnn_infer_b1",
             "small_add_x1000", "save_400MB", "load_400MB", "mmap_load_400MB", "fashion_mnist_epoch"]


def parse_only(text):
    names = {n for n in text.replace(",", " ").split()}
    bad = sorted(names - set(WORKLOADS))
    if bad:
        raise SystemExit(f"--only: unknown workload '{bad[0]}' (one of: {', '.join(WORKLOADS)})")
    if not names:
        raise SystemExit("--only needs NAME[,NAME...]")
    return names


def emit(key, value):
    print(f"{key}\t{value:.9g}", flush=True)


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM")


def bench(fn, warm, reps):
    for _ in range(warm):
        fn()
    t = []
    for _ in range(reps):
        t0 = now()
        fn()
        t.append(now() - t0)
    return float(np.median(t))


# Same counts as bench/common.lua.
def mlp_flops(b):
    return 3 * 2 * b * (784 * 512 + 512 * 256 + 256 * 10)


def cnn_train_flops(b):
    return 3 * 2 * b * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10)


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def train_step(model, opt, x, y):
    def fn():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return fn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# The epoch runs EPOCH_RUNS times from the same seed (the same work each time); the median time
# is the result: one epoch is a single sample of a noisy machine.
EPOCH_RUNS = 3


def fashion_epoch(data):
    def load(split):
        x = torch.from_numpy(read_idx(f"{data}/{split}-images-idx3-ubyte.gz").copy())
        y = torch.from_numpy(read_idx(f"{data}/{split}-labels-idx1-ubyte.gz").astype(np.int64))
        return x, y
    xtr, ytr = load("train")
    xte, yte = load("t10k")

    def once():
        torch.manual_seed(1)
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        steps = len(xtr) // 128
        opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.003, epochs=1, steps_per_epoch=steps)
        t0 = now()
        model.train()
        # As a DataLoader with shuffle and drop_last: a permutation, whole batches, pixels / 255.
        perm = torch.randperm(len(xtr))
        for i in range(steps):
            idx = perm[i * 128:(i + 1) * 128]
            x = xtr.index_select(0, idx).float().div_(255).unsqueeze(1)
            loss = F.cross_entropy(model(x), ytr.index_select(0, idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        elapsed = now() - t0
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                x = xte[i:i + 1000].float().div_(255).unsqueeze(1)
                correct += (model(x).argmax(1) == yte[i:i + 1000]).sum().item()
        return elapsed, correct / len(xte)

    runs = [once() for _ in range(EPOCH_RUNS)]
    emit("fashion_mnist_epoch", float(np.median([t for t, _ in runs])))
    emit("fashion_mnist_epoch.acc", runs[0][1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--load-child")
    ap.add_argument("--only", type=parse_only)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    def want(*names):  # whether any of these workloads is to run (all without --only)
        return a.only is None or any(n in a.only for n in names)

    if a.load_child:  # a fresh process: its peak RSS is the loader's
        t0 = now()
        sd = torch.load(a.load_child)
        emit("seconds", now() - t0)
        emit("rss_mb", peak_rss_mb())
        return

    torch.manual_seed(0)
    if want("sgemm_1024"):
        a1, b1 = torch.randn(1024, 1024), torch.randn(1024, 1024)
        emit("sgemm_1024.gflops", 2 * 1024 ** 3 / bench(lambda: torch.mm(a1, b1), 3, 10) / 1e9)

    if want("mlp_train_b128"):
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        s = bench(train_step(model, opt, torch.randn(128, 784), torch.randint(0, 10, (128,))), 5, 30)
        emit("mlp_train_b128", s)
        emit("mlp_train_b128.gflops", mlp_flops(128) / s / 1e9)

    if want("cnn_train_b64", "cnn_infer_b256", "cnn_infer_b1"):
        model = cnn()
        if want("cnn_train_b64"):
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            s = bench(train_step(model, opt, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))), 3, 15)
            emit("cnn_train_b64", s)
            emit("cnn_train_b64.gflops", cnn_train_flops(64) / s / 1e9)
        model.eval()
        with torch.no_grad():
            x256, x1 = torch.randn(256, 1, 28, 28), torch.randn(1, 1, 28, 28)
            if want("cnn_infer_b256"):
                emit("cnn_infer_b256", bench(lambda: model(x256), 3, 15))
            if want("cnn_infer_b1"):
                emit("cnn_infer_b1", bench(lambda: model(x1), 20, 200))

    if want("small_add_x1000"):
        a16, b16 = torch.randn(16), torch.randn(16)

        def adds():
            for _ in range(1000):
                a16 + b16
        emit("small_add_x1000", bench(adds, 5, 31))

    # The loads need the file: with --only a load, it is saved once, untimed. PyTorch has no
    # mmap load; mmap_load_400MB is compared with its plain load.
    if want("save_400MB", "load_400MB", "mmap_load_400MB"):
        sd = {f"w{i}": torch.randn(2000, 2000) for i in range(1, 26)}
        path = f"{a.tmp}/pytorch_bench_400MB.pt"
        if want("save_400MB"):
            emit("save_400MB", bench(lambda: torch.save(sd, path), 1, 5))
        else:
            torch.save(sd, path)
        del sd
        if want("load_400MB", "mmap_load_400MB"):
            emit("load_400MB", bench(lambda: torch.load(path), 1, 5))
            out = subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--load-child", path],
                                 check=True, capture_output=True, text=True).stdout
            emit("load_400MB.rss_mb", float(dict(l.split("\t") for l in out.splitlines())["rss_mb"]))
        os.remove(path)

    if not a.quick and want("fashion_mnist_epoch"):
        fashion_epoch(a.data)


if __name__ == "__main__":
    main()
