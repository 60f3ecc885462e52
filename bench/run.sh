#!/bin/sh
# `make bench`: builds moontorch (make build, BUILD_DIR, default build/), then runs the workloads
# of issue 8 in moontorch and in PyTorch (once with 1 thread, once with 2; OpenBLAS kept to 1
# thread in both so it does not oversubscribe PyTorch's own threads) and prints the table
# (bench/report.py). Options: --quick skips the Fashion-MNIST epoch; --markdown prints the
# table as Markdown (for docs/performance.md); --only NAME[,NAME] runs only those workloads
# (sgemm_1024, mlp_train_b128, cnn_train_b64, cnn_infer_b256, cnn_infer_b1, small_add_x1000,
# save_400MB, load_400MB, mmap_load_400MB, fashion_mnist_epoch; the table shows "-" for the
# rest). BENCH_ARGS in `make bench` passes them.
# The full run takes about 2 minutes on the 2-core machine of docs/performance.md, so the
# Fashion-MNIST epoch is on by default.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
LUA=${LUA:-lua5.4}
PYTHON=${PYTHON:-/usr/bin/python3}

QUICK= MD= ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=--quick ;;
    --markdown) MD=--markdown ;;
    --only)
      [ $# -ge 2 ] || { echo "bench/run.sh: --only needs NAME[,NAME]" >&2; exit 2; }
      ONLY="--only $2"; shift ;;
    --only=*) ONLY="--only ${1#--only=}" ;;
    *) echo "bench/run.sh: unknown option $1 (--quick, --markdown, --only NAME[,NAME])" >&2; exit 2 ;;
  esac
  shift
done

(cd "$ROOT" && make build BUILD_DIR="$BUILD_DIR" >/dev/null)

OUT=$(mktemp -d "${TMPDIR:-/tmp}/moontorch-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT INT TERM

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" >&2
echo "running moontorch workloads..." >&2
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD_DIR/?.so;;" \
  "$LUA" "$ROOT/bench/moontorch_bench.lua" --tmp "$OUT" $QUICK $ONLY > "$OUT/ours.tsv"
for n in 1 2; do
  echo "running PyTorch workloads, $n thread(s)..." >&2
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$n MKL_NUM_THREADS=$n \
    "$PYTHON" "$ROOT/bench/pytorch_bench.py" --threads $n --tmp "$OUT" $QUICK $ONLY > "$OUT/torch$n.tsv"
done
echo >&2
"$PYTHON" "$ROOT/bench/report.py" "$OUT/ours.tsv" "$OUT/torch1.tsv" "$OUT/torch2.tsv" $MD
