#!/bin/sh
# `make bench`: builds moontorch (make build, BUILD_DIR, default build/), then runs the workloads
# of issue 8 in moontorch and in PyTorch (once with 1 thread, once with 2; OpenBLAS kept to 1
# thread in both so it does not oversubscribe PyTorch's own threads) and prints the table
# (bench/report.py). Options: --quick skips the Fashion-MNIST epoch; --markdown prints the
# table as Markdown (for docs/performance.md). BENCH_ARGS in `make bench` passes them.
# The full run takes about 5 minutes on the 2-core machine of docs/performance.md, so the
# Fashion-MNIST epoch is on by default.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
LUA=${LUA:-lua5.4}
PYTHON=${PYTHON:-/usr/bin/python3}

QUICK= MD=
for a in "$@"; do
  case $a in
    --quick) QUICK=--quick ;;
    --markdown) MD=--markdown ;;
    *) echo "bench/run.sh: unknown option $a (--quick, --markdown)" >&2; exit 2 ;;
  esac
done

(cd "$ROOT" && make build BUILD_DIR="$BUILD_DIR" >/dev/null)

OUT=$(mktemp -d "${TMPDIR:-/tmp}/moontorch-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT INT TERM

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" >&2
echo "running moontorch workloads..." >&2
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD_DIR/?.so;;" \
  "$LUA" "$ROOT/bench/moontorch_bench.lua" --tmp "$OUT" $QUICK > "$OUT/ours.tsv"
for n in 1 2; do
  echo "running PyTorch workloads, $n thread(s)..." >&2
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$n MKL_NUM_THREADS=$n \
    "$PYTHON" "$ROOT/bench/pytorch_bench.py" --threads $n --tmp "$OUT" $QUICK > "$OUT/torch$n.tsv"
done
echo >&2
"$PYTHON" "$ROOT/bench/report.py" "$OUT/ours.tsv" "$OUT/torch1.tsv" "$OUT/torch2.tsv" $MD
