#!/usr/bin/env bash
# Runs every test: the C tests through CTest (build/, see CMakeLists.txt) and the busted specs
# (spec/*_spec.lua under Lua 5.4), going on when one of them fails, then prints one last line
#     N passed, N failed
# covering both. Busted errors count as failed, pending specs as neither. Exits non-zero on any
# failure, or when a runner could not run, crashed, or ran no tests (each counts as one failure).
#
# Assumes the tree is built (`make build`); `make test` does deps + build + this.
# Environment: BUILD_DIR (default build), BUSTED (default busted), MT_TEST_TIMEOUT (seconds for
# the whole busted run, default 3600; MT_TEST_FILE_TIMEOUT, default 600, per file when a crashed
# run is repeated file by file), BUSTED_ARGS (extra busted arguments, e.g. "--filter=gc").
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) BUILD_ABS=$BUILD_DIR ;; *) BUILD_ABS=$ROOT/$BUILD_DIR ;; esac
BUSTED=${BUSTED:-busted}
MT_TEST_TIMEOUT=${MT_TEST_TIMEOUT:-3600}
MT_TEST_FILE_TIMEOUT=${MT_TEST_FILE_TIMEOUT:-600}

# `make test` calls this with --build-failed when the build did not succeed: nothing is run
# against stale binaries, but the run still ends with its summary line.
if [ "${1:-}" = "--build-failed" ]; then
  echo
  echo "==> Summary"
  echo "note: the build failed; no tests were run"
  echo "0 passed, 1 failed"
  exit 1
fi

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moontorch-tests.XXXXXX") || exit 2
trap 'rm -rf "$LOG_DIR"' EXIT

passed=0
failed=0
notes=()

strip_ansi() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# ------------------------------------------------------------------------------------------
# CTest

ctest_passed=0
ctest_failed=0
echo "==> CTest ($BUILD_DIR)"
if ! command -v ctest >/dev/null 2>&1; then
  notes+=("ctest: not found (install cmake)")
  ctest_failed=1
elif [ ! -f "$BUILD_ABS/CTestTestfile.cmake" ]; then
  notes+=("ctest: $BUILD_DIR is not configured with tests (run make build)")
  ctest_failed=1
else
  (cd "$BUILD_ABS" && ctest --output-on-failure) 2>&1 | tee "$LOG_DIR/ctest.log"
  ctest_rc=${PIPESTATUS[0]}
  summary=$(strip_ansi <"$LOG_DIR/ctest.log" | grep -E '[0-9]+ tests failed out of [0-9]+' | tail -n 1)
  if [ -n "$summary" ]; then
    n_failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$summary")
    n_total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$summary")
    ctest_failed=$n_failed
    ctest_passed=$((n_total - n_failed))
    if [ "$n_total" -eq 0 ]; then
      notes+=("ctest: ran no tests")
      ctest_failed=1
    elif [ "$ctest_rc" -ne 0 ] && [ "$n_failed" -eq 0 ]; then
      notes+=("ctest: exited with status $ctest_rc")
      ctest_failed=1
    fi
  else
    if grep -q "No tests were found" "$LOG_DIR/ctest.log"; then
      notes+=("ctest: no tests were found")
    else
      notes+=("ctest: no summary (exit status $ctest_rc)")
    fi
    ctest_failed=1
  fi
fi
passed=$((passed + ctest_passed))
failed=$((failed + ctest_failed))

# ------------------------------------------------------------------------------------------
# busted

export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;$ROOT/?.lua;;"
export LUA_CPATH="$BUILD_ABS/?.so;;"
export LUA_PATH_5_4=$LUA_PATH      # Lua 5.4 prefers these when they are set
export LUA_CPATH_5_4=$LUA_CPATH
export MT_SOURCE_DIR=$ROOT MT_BINARY_DIR=$BUILD_ABS

if [ -t 1 ]; then output=utfTerminal; else output=plainTerminal; fi
# shellcheck disable=SC2206
extra_args=(${BUSTED_ARGS:-})

# run_busted LOG TARGET...: runs busted on the targets; sets b_ok (1 if it printed a summary),
# b_pass, b_fail, b_err, b_pend, b_rc.
run_busted() {
  local log=$1
  shift
  timeout -k 30 "$b_timeout" "$BUSTED" --lua=lua5.4 -o "$output" "${extra_args[@]}" "$@" \
    </dev/null 2>&1 | tee "$log"
  b_rc=${PIPESTATUS[0]}
  local line
  line=$(strip_ansi <"$log" |
    grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
  if [ -z "$line" ]; then
    b_ok=0 b_pass=0 b_fail=0 b_err=0 b_pend=0
    return
  fi
  read -r b_pass b_fail b_err b_pend < <(sed -E \
    's#^([0-9]+) success(es)? / ([0-9]+) failures? / ([0-9]+) errors? / ([0-9]+) pending.*#\1 \3 \4 \5#' \
    <<<"$line")
  b_ok=1
}

busted_passed=0
busted_failed=0
busted_pending=0
echo
echo "==> busted (spec/, Lua 5.4)"
if ! command -v "$BUSTED" >/dev/null 2>&1; then
  notes+=("busted: not found (install lua-busted)")
  busted_failed=1
elif ! command -v lua5.4 >/dev/null 2>&1; then
  notes+=("busted: lua5.4 not found (install lua5.4)")
  busted_failed=1
elif [ ! -d spec ]; then
  notes+=("busted: no spec/ directory")
  busted_failed=1
else
  b_timeout=$MT_TEST_TIMEOUT
  run_busted "$LOG_DIR/busted.log" spec
  if [ "$b_ok" -eq 1 ]; then
    busted_passed=$b_pass
    busted_failed=$((b_fail + b_err))
    busted_pending=$b_pend
    if [ $((b_pass + b_fail + b_err + b_pend)) -eq 0 ]; then
      notes+=("busted: ran no tests")
      busted_failed=1
    elif [ "$b_rc" -ne 0 ] && [ "$busted_failed" -eq 0 ]; then
      notes+=("busted: exited with status $b_rc")
      busted_failed=1
    fi
  else
    # No summary: busted crashed (a segfault in the C core, a timeout, ...) and its results
    # are lost. Run each spec file on its own to keep the others' results and name the culprit.
    if [ "$b_rc" -eq 124 ] || [ "$b_rc" -eq 137 ]; then
      notes+=("busted: timed out after ${MT_TEST_TIMEOUT}s")
    else
      notes+=("busted: crashed (exit status $b_rc) before reporting")
    fi
    echo
    echo "==> busted crashed; running each spec file on its own"
    b_timeout=$MT_TEST_FILE_TIMEOUT
    mapfile -t spec_files < <(find spec -type f -name '*_spec.lua' | sort)
    i=0
    for f in "${spec_files[@]}"; do
      i=$((i + 1))
      echo "--> $f"
      run_busted "$LOG_DIR/busted.$i.log" "$f"
      if [ "$b_ok" -eq 1 ]; then
        busted_passed=$((busted_passed + b_pass))
        busted_failed=$((busted_failed + b_fail + b_err))
        busted_pending=$((busted_pending + b_pend))
        if [ "$b_rc" -ne 0 ] && [ $((b_fail + b_err)) -eq 0 ]; then
          notes+=("busted: $f exited with status $b_rc")
          busted_failed=$((busted_failed + 1))
        fi
      elif [ "$b_rc" -eq 124 ] || [ "$b_rc" -eq 137 ]; then
        notes+=("busted: $f timed out after ${b_timeout}s")
        busted_failed=$((busted_failed + 1))
      else
        notes+=("busted: $f crashed (exit status $b_rc)")
        busted_failed=$((busted_failed + 1))
      fi
    done
    if [ "$busted_failed" -eq 0 ]; then
      busted_failed=1 # the crash itself did not recur file by file, but it happened
    fi
  fi
fi
passed=$((passed + busted_passed))
failed=$((failed + busted_failed))

# ------------------------------------------------------------------------------------------
# Summary

echo
echo "==> Summary"
echo "ctest:  $ctest_passed ok, $ctest_failed not ok"
echo "busted: $busted_passed ok, $busted_failed not ok (failures and errors), $busted_pending pending"
for n in "${notes[@]+"${notes[@]}"}"; do
  echo "note: $n"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
