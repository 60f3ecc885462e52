"""Turns the key/value outputs of bench/moontorch_bench.lua and bench/pytorch_bench.py into the
table of `make bench`: medians, ratio ours/PyTorch, and the goals of issue 8.

    python3 bench/report.py OURS.tsv PYTORCH_1THREAD.tsv PYTORCH_2THREADS.tsv [--markdown]

PyTorch's figure for each workload is the faster of its thread settings (the one used is shown).
Prints "goals met: N/M" last; the exit status is 0 either way (a measurement, not a test).
"""
import sys

DATA_MB = 25 * 2000 * 2000 * 4 / 1e6  # the save/load state dict, 400 MB


def read(path):
    r = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("\t")
            if v:
                r[k] = float(v)
    return r


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    md = "--markdown" in sys.argv
    ours = read(args[0])
    theirs = {1: read(args[1]), 2: read(args[2])}

    def best(key):  # (seconds, threads) of PyTorch's faster setting
        c = [(t[key], n) for n, t in theirs.items() if key in t]
        return min(c) if c else (None, None)

    rows, met, total = [], 0, 0

    def row(name, o, p, threads, goal_ratio, unit="s", ratio=None, verdict=None):
        nonlocal met, total
        if ratio is None and o is not None and p:
            ratio = o / p
        if verdict is None and goal_ratio is not None and ratio is not None:
            verdict = ratio <= goal_ratio
        if verdict is not None:
            total += 1
            met += verdict
        fmt = (lambda v: "-" if v is None else (f"{v:.2f} s" if unit == "s" and v >= 1 else
                                                f"{v * 1e3:.3f} ms" if unit == "s" else f"{v:.1f} {unit}"))
        rows.append([name, fmt(o), fmt(p) + (f" ({threads}t)" if threads else ""),
                     "-" if ratio is None else f"{ratio:.2f}",
                     "-" if goal_ratio is None else f"<= {goal_ratio}",
                     "-" if verdict is None else ("pass" if verdict else "FAIL")])

    for name, goal in [("mlp_train_b128", 0.8), ("cnn_train_b64", 0.8), ("cnn_infer_b256", 0.8),
                       ("cnn_infer_b1", 0.5), ("small_add_x1000", 0.3),
                       ("save_400MB", 0.8), ("load_400MB", 0.5)]:
        p, n = best(name)
        row(name, ours.get(name), p, n, goal)
    p, n = best("load_400MB")
    row("mmap_load_400MB (vs PyTorch load)", ours.get("mmap_load_400MB"), p, n, 0.05)
    p, n = best("load_400MB.rss_mb")
    o = ours.get("load_400MB.rss_mb")
    rows.append(None)
    row("load_400MB peak RSS", o, p, n, None, unit="MB",
        verdict=None if o is None else o <= DATA_MB + 64)
    rows[-1][4] = f"<= {DATA_MB + 64:.0f} MB"
    row("mmap_load_400MB peak RSS", ours.get("mmap_load_400MB.rss_mb"), None, None, None, unit="MB")
    if "fashion_mnist_epoch" in ours:
        rows.append(None)
        p, n = best("fashion_mnist_epoch")
        row("fashion_mnist_epoch", ours["fashion_mnist_epoch"], p, n, 0.8)
        oa, pa = ours.get("fashion_mnist_epoch.acc"), theirs[n].get("fashion_mnist_epoch.acc") if n else None
        ok = None if oa is None or pa is None else oa >= pa - 0.005
        rows.append(["fashion_mnist test accuracy", f"{oa:.4f}" if oa is not None else "-",
                     f"{pa:.4f}" if pa is not None else "-", "-", ">= PyTorch - 0.5 pt",
                     "-" if ok is None else ("pass" if ok else "FAIL")])
        if ok is not None:
            total += 1
            met += ok
    rows.append(None)
    for key, label in [("sgemm_1024.gflops", "sgemm 1024^3 via torch.mm"),
                       ("mlp_train_b128.gflops", "mlp_train_b128 achieved"),
                       ("cnn_train_b64.gflops", "cnn_train_b64 achieved")]:
        src = key.rsplit(".", 1)[0]
        n = best(src)[1] if src in theirs[1] else None
        p = theirs[n].get(key) if n else max((t[key] for t in theirs.values() if key in t), default=None)
        row(label, ours.get(key), p, n, None, unit="GFLOP/s", ratio=None)

    head = ["workload", "moontorch", "PyTorch 1.13 (threads)", "ratio", "goal", "result"]
    body = [r for r in rows if r is not None]
    w = [max(len(str(r[i])) for r in body + [head]) for i in range(len(head))]
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
    else:
        line = lambda r: "  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r))
        print(line(head))
        print("-" * (sum(w) + 2 * (len(w) - 1)))
        for r in rows:
            print("" if r is None else line(r))
    print(f"\ngoals met: {met}/{total}")


if __name__ == "__main__":
    main()
