#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses (fuzz/fuzz_*.c) with clang and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, then runs each on a copy of its seed
# corpus (fuzz/corpus/<harness>/) for FUZZ_SECONDS (default 60). Crashing inputs are kept in
# fuzz/crashes/<harness>/; any finding fails the run. Needs clang and Debian's
# libclang-rt-14-dev (the fuzzer runtime).
#   FUZZ_SECONDS=600 FUZZ_JOBS=2 fuzz/run.sh [harness ...]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
OUT=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=(pickle checkpoint safetensors graph)

FLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -Isrc $(pkg-config --cflags openblas libzip libcjson zlib 2>/dev/null))
LIBS=(-lopenblas -lzip -lz -lcjson -lm -lpthread)

mkdir -p "$OUT/obj" || exit 2
echo "==> Building the library with $CC ${FLAGS[*]}"
objs=()
for src in src/*.c; do
  obj="$OUT/obj/$(basename "${src%.c}").o"
  objs+=("$obj")
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src -name '*.h' -newer "$obj")" ]; then
    echo "$CC -c $src"
    "$CC" "${FLAGS[@]}" -c "$src" -o "$obj" & 
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  fi
done
wait
for obj in "${objs[@]}"; do [ -e "$obj" ] || { echo "fuzz: building $obj failed" >&2; exit 2; }; done
for h in "${HARNESSES[@]}"; do
  "$CC" "${FLAGS[@]/fuzzer-no-link/fuzzer}" "fuzz/fuzz_$h.c" "${objs[@]}" "${LIBS[@]}" -o "$OUT/fuzz_$h" ||
    { echo "fuzz: building fuzz_$h failed" >&2; exit 2; }
done

# One thread for OpenBLAS and the library: the fuzzer's process stays small and repeatable.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "==> Fuzzing ${HARNESSES[*]} for ${SECONDS_EACH}s each"
pids=()
for h in "${HARNESSES[@]}"; do
  work="$OUT/corpus/$h"
  mkdir -p "$work" "fuzz/crashes/$h"
  [ -d "fuzz/corpus/$h" ] && cp -n fuzz/corpus/"$h"/* "$work"/ 2>/dev/null
  # -rss_limit_mb / -malloc_limit_mb: a file that makes a loader allocate far beyond its size
  # is a finding too. -timeout: any single input taking over 10 s is one.
  "$OUT/fuzz_$h" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="fuzz/crashes/$h/" "$work" >"$OUT/$h.log" 2>&1 &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
done
status=0
for i in "${!HARNESSES[@]}"; do
  wait "${pids[$i]}" || true
done
for h in "${HARNESSES[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$h.log" | grep -o '[0-9]*$' | tail -1)
  found=$(find "fuzz/crashes/$h" -type f | wc -l)
  echo "fuzz_$h: ${execs:-?} executions, $found crashing input(s) in fuzz/crashes/$h/ (log: $OUT/$h.log)"
  if [ "$found" -gt 0 ] || ! grep -q 'Done [0-9]* runs' "$OUT/$h.log"; then
    status=1
    grep -A25 -m1 'ERROR:\|runtime error' "$OUT/$h.log" >&2
  fi
done
exit $status
