#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses (fuzz/fuzz_*.c) with clang and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, then runs each on a copy of its seed
# corpus (fuzz/corpus/<harness>/ plus the kept hostile inputs of fuzz/regressions/<harness>/)
# for FUZZ_SECONDS (default 60). Inputs found crashing in this run are copied to
# fuzz/crashes/<harness>/ (which `make test` replays: tests/c/test_fuzz_regressions.c); any new
# finding fails the run. Ends with one line, "N passed, N failed": a harness that ran clean
# counts as passed, one with a finding, or that could not be built or run, as failed. Needs
# clang and Debian's libclang-rt-14-dev (the fuzzer runtime).
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
       -fno-sanitize-recover=undefined -Isrc $(pkg-config --cflags openblas libzip libcjson zlib libdeflate 2>/dev/null))
LIBS=(-lopenblas -lzip -lz -lcjson -ldeflate -lm -lpthread)

# Any failure before the harnesses ran still ends with the summary line.
all_failed() {
  echo "fuzz: $*" >&2
  echo "0 passed, ${#HARNESSES[@]} failed"
  exit 2
}

mkdir -p "$OUT/obj" || all_failed "cannot create $OUT/obj"
echo "==> Building the library with $CC ${FLAGS[*]}"
objs=()
for src in src/*.c; do
  obj="$OUT/obj/$(basename "${src%.c}").o"
  objs+=("$obj")
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src -name '*.h' -newer "$obj")" ]; then
    echo "$CC -c $src"
    rm -f "$obj" # a failed compile must not leave an old object to link
    "$CC" "${FLAGS[@]}" -c "$src" -o "$obj" & 
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  fi
done
wait
for obj in "${objs[@]}"; do [ -e "$obj" ] || all_failed "building $obj failed"; done
for h in "${HARNESSES[@]}"; do
  "$CC" "${FLAGS[@]/fuzzer-no-link/fuzzer}" "fuzz/fuzz_$h.c" "${objs[@]}" "${LIBS[@]}" -o "$OUT/fuzz_$h" ||
    all_failed "building fuzz_$h failed"
done

# One thread for OpenBLAS and the library: the fuzzer's process stays small and repeatable.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "==> Fuzzing ${HARNESSES[*]} for ${SECONDS_EACH}s each"
pids=()
for h in "${HARNESSES[@]}"; do
  work="$OUT/corpus/$h"
  # This run's findings go to a fresh directory first, so that the inputs already kept in
  # fuzz/crashes/ (replayed by make test) do not count as new findings.
  artifacts="$OUT/artifacts/$h"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  for seeds in "fuzz/corpus/$h" "fuzz/regressions/$h"; do
    [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null
  done
  # -rss_limit_mb / -malloc_limit_mb: a file that makes a loader allocate far beyond its size
  # is a finding too. -timeout: any single input taking over 10 s is one.
  "$OUT/fuzz_$h" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" >"$OUT/$h.log" 2>&1 &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
done
for i in "${!HARNESSES[@]}"; do
  wait "${pids[$i]}" || true
done
passed=0
failed=0
for h in "${HARNESSES[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$h.log" | grep -o '[0-9]*$' | tail -1)
  found=$(find "$OUT/artifacts/$h" -type f | wc -l)
  if [ "$found" -gt 0 ]; then
    mkdir -p "fuzz/crashes/$h"
    cp "$OUT/artifacts/$h"/* "fuzz/crashes/$h"/
  fi
  if [ "$found" -gt 0 ] || ! grep -q 'Done [0-9]* runs' "$OUT/$h.log"; then
    failed=$((failed + 1))
    echo "fuzz_$h: FAILED after ${execs:-?} executions: $found new crashing input(s), copied to fuzz/crashes/$h/ (log: $OUT/$h.log)"
    grep -A25 -m1 'ERROR:\|runtime error' "$OUT/$h.log" >&2
  else
    passed=$((passed + 1))
    echo "fuzz_$h: ok, ${execs:-?} executions in ${SECONDS_EACH}s, no finding (log: $OUT/$h.log)"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
