# moontorch entry points. `make demo` and `make test` install missing Debian packages first
# (apt-get when root; otherwise they print the command to run and stop).

BUILD_DIR ?= build
JOBS      ?= 2
LUA       ?= lua5.4
LUAROCKS  ?= luarocks --lua-version=5.4

MAKEFLAGS += --no-print-directory

ROOT := $(CURDIR)
LUA_ENV := LUA_PATH="$(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;;" \
           LUA_PATH_5_4="$(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;;" \
           LUA_CPATH="$(abspath $(BUILD_DIR))/?.so;;" \
           LUA_CPATH_5_4="$(abspath $(BUILD_DIR))/?.so;;"

.PHONY: all deps build test test-sanitize fuzz fuzz-regression demo rock bench bench-ddp clean

all: build

deps:
	tools/install-deps.sh

build:
	cmake -S . -B $(BUILD_DIR)
	cmake --build $(BUILD_DIR) -j$(JOBS)

# A failed build still ends with the "N passed, N failed" line (run-tests.sh --build-failed).
test:
	tools/install-deps.sh
	@if $(MAKE) build; then BUILD_DIR=$(BUILD_DIR) tools/run-tests.sh; \
	 else tools/run-tests.sh --build-failed; fi

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer into build-sanitize/.
test-sanitize:
	tools/install-deps.sh
	@JOBS=$(JOBS) tools/run-sanitized.sh

# libFuzzer harnesses (fuzz/fuzz_*.c) built with clang into build-fuzz/ and run FUZZ_SECONDS
# (default 60) each on fuzz/corpus/ + fuzz/regressions/; new crashing inputs are copied to
# fuzz/crashes/ and fail the target. Ends with "N passed, N failed" (one per harness).
fuzz:
	MOONTORCH_EXTRA_PACKAGES="clang libclang-rt-14-dev $(MOONTORCH_EXTRA_PACKAGES)" tools/install-deps.sh
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} FUZZ_JOBS=$(JOBS) fuzz/run.sh

# Replays every kept fuzz input (fuzz/regressions/, fuzz/crashes/) through its harness: the
# CTest test_fuzz_regressions, which `make test` runs too; this runs it alone.
fuzz-regression: build
	cd $(BUILD_DIR) && ctest --output-on-failure -R '^test_fuzz_regressions$$'

# Fashion-MNIST end to end (examples/fashion_mnist.lua; its options go in DEMO_ARGS, e.g.
# DEMO_ARGS="--epochs 3"). Installs Debian's dataset-fashion-mnist along with the rest; writes
# checkpoints, model files and curves.svg to runs/fashion-mnist/. Step 8 runs the traced model
# with the moontorch-run just built.
demo:
	MOONTORCH_EXTRA_PACKAGES="dataset-fashion-mnist $(MOONTORCH_EXTRA_PACKAGES)" tools/install-deps.sh
	$(MAKE) build
	MOONTORCH_RUN="$(abspath $(BUILD_DIR))/bin/moontorch-run" $(LUA_ENV) $(LUA) examples/fashion_mnist.lua $(DEMO_ARGS)

# Speed against PyTorch, side by side (issue 8; docs/performance.md): builds, then runs
# bench/run.sh. BENCH_ARGS="--quick" skips the Fashion-MNIST epoch; "--markdown" prints the
# table as Markdown. A measurement, not part of `make test`.
bench:
	MOONTORCH_EXTRA_PACKAGES="lua-socket $(MOONTORCH_EXTRA_PACKAGES)" tools/install-deps.sh
	BUILD_DIR=$(BUILD_DIR) bench/run.sh $(BENCH_ARGS)

# Data-parallel step time (issue 10; docs/performance.md): the conv net of `make bench` in one
# process and on 2 MPI ranks with DistributedDataParallel, and the communication share.
bench-ddp:
	MOONTORCH_EXTRA_PACKAGES="lua-socket $(MOONTORCH_EXTRA_PACKAGES)" tools/install-deps.sh
	$(MAKE) build
	$(LUA_ENV) $(LUA) bench/ddp_bench.lua $(BENCH_ARGS)

# As root this installs into the system tree (/usr/local): `lua5.4 -l moontorch` then works in
# any directory. LuaRocks' cmake backend builds serially unless told otherwise.
rock:
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(LUAROCKS) make moontorch-scm-1.rockspec

clean:
	rm -rf $(BUILD_DIR) build.luarocks
