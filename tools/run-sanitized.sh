#!/usr/bin/env bash
# `make test-sanitize`: builds the whole tree with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option MOONTORCH_SANITIZE) into build-sanitize/, then runs the same suite as `make test`
# through tools/run-tests.sh (CTest programs and the busted specs), which ends with the line
#     N passed, N failed
# Any sanitizer report fails the run: ASan and UBSan stop the process at the first finding
# (halt_on_error), LeakSanitizer makes it exit with status 23 after the leak report.
#
# lua5.4 itself is not instrumented, so the sanitizer runtime that moontorch/core.so needs is
# preloaded into it: a `lua5.4` shim, first in PATH, starts the real interpreter through the
# dynamic loader's --preload option. Unlike LD_PRELOAD that is not inherited, so the processes
# the specs start (python3 with PyTorch, sh, ls) run as usual, while child lua5.4 processes go
# through the shim again and are checked too, as are the ranks mpirun starts (it finds lua5.4
# through PATH and passes the environment, ASAN_OPTIONS included, on to them).
#
# Leak suppressions (tools/sanitize.supp) cover lua5.4 and system libraries only, never
# moontorch code. MOONTORCH_SANITIZE=1 is exported for the specs: the few that measure RSS or
# time skip those checks under it (ASan's shadow memory and quarantine inflate both).
#
# Environment: BUILD_DIR (default build-sanitize), JOBS (default 2), CC (compiler for a fresh
# build directory: gcc or clang), plus run-tests.sh's (BUSTED_ARGS, MT_TEST_TIMEOUT, ...).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

BUILD_DIR=${BUILD_DIR:-build-sanitize}
case "$BUILD_DIR" in /*) BUILD_ABS=$BUILD_DIR ;; *) BUILD_ABS=$ROOT/$BUILD_DIR ;; esac
JOBS=${JOBS:-2}
export BUILD_DIR

build_failed() {
  echo "error: $*" >&2
  exec "$ROOT/tools/run-tests.sh" --build-failed
}

echo "==> Building with -fsanitize=address,undefined ($BUILD_DIR)"
# RelWithDebInfo: optimised like Release (-O2), with line numbers in the reports.
cmake -S . -B "$BUILD_ABS" -DMOONTORCH_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo ||
  build_failed "cmake could not configure $BUILD_DIR"
cmake --build "$BUILD_ABS" -j"$JOBS" || build_failed "the sanitizer build failed"

# The runtime libraries the module was linked against, ASan first (it must initialise first).
module=$BUILD_ABS/moontorch/core.so
[ -f "$module" ] || build_failed "$module was not built"
preload=$(ldd "$module" | awk '$1 ~ /^lib(asan|ubsan|clang_rt\.asan)/ && $3 ~ /^\// { print $1 " " $3 }' |
  sort | awk '{ print $2 }' | paste -sd: -)
[ -n "$preload" ] || build_failed "$module needs no sanitizer runtime, or ldd cannot find it"

real_lua=$(command -v lua5.4) || build_failed "lua5.4 not found (install lua5.4)"
real_lua=$(readlink -f "$real_lua")
loader=$(readelf -l "$real_lua" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ -x "$loader" ] || build_failed "cannot find the dynamic loader of $real_lua"

shim_dir=$BUILD_ABS/sanitize-bin
mkdir -p "$shim_dir"
cat >"$shim_dir/lua5.4" <<EOF
#!/bin/sh
# Written by tools/run-sanitized.sh: lua5.4 with the sanitizer runtime preloaded. argv[0] stays
# this shim, so that a script that starts its own interpreter again (arg[-1]) comes back here.
# In a rank started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE), allocation stacks are
# unwound in full: Open MPI has no frame pointers and unloads its plugins before the leak
# check, so the fast unwinder's one-frame stacks ("<unknown module>") would name no library
# that tools/sanitize.supp could match. Only there: the full unwinder slows every malloc.
if [ -n "\${OMPI_COMM_WORLD_SIZE:-}" ]; then
  ASAN_OPTIONS="\${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0"
  export ASAN_OPTIONS
fi
exec $loader --preload $preload --argv0 "\$0" $real_lua "\$@"
EOF
chmod +x "$shim_dir/lua5.4"
export PATH=$shim_dir:$PATH

# abort_on_error=0: a finding ends the process with a plain failure status, which run-tests.sh
# reports (busted without a summary, or a failed CTest). allocator_may_return_null=1: an
# impossible allocation (torch.zeros(2^62)) returns NULL as with glibc, and moontorch must turn
# that into its "out of memory" error; by default ASan would abort the process instead.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$ROOT/tools/sanitize.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export MOONTORCH_SANITIZE=1

echo "==> sanitizer runtime: $preload"
exec "$ROOT/tools/run-tests.sh"
