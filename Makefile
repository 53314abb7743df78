# uhttpd — top-level entry point.
#
#   make run      build the unix micropython with uhttpd and serve the demo
#                 on http://127.0.0.1:8080
#   make test     build, then run every test (pytest tests/ and fuzz/)
#   make bench    benchmarks side by side with Microdot and nginx
#   make build    just the binary: build/unix/micropython
#
# Variables: MICROPY_DIR (a MicroPython 1.25 tree; fetched from Debian's
# source package into build/micropython-src/ when unset), BITS=32 for an
# i386 build, SANITIZE=1 for ASan+UBSan, STRICT=1 for the lwIP rules,
# PORT for `make run`.

PROJECT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PORT ?= 8080

ifeq ($(BITS),32)
  FLAVOUR := unix32
  MPFLAGS := MICROPY_FORCE_32BIT=1
else
  FLAVOUR := unix
  MPFLAGS :=
endif
ifeq ($(SANITIZE),1)
  FLAVOUR := $(FLAVOUR)-asan
  MPFLAGS += UHTTPD_SANITIZE=1
endif
# STRICT=1: follow lwIP's rules on the host (native/uh_port.h): a POLLNVAL,
# or a polled socket closed by another thread, aborts loudly.
ifeq ($(STRICT),1)
  FLAVOUR := $(FLAVOUR)-strict
  MPFLAGS += UHTTPD_STRICT=1
endif
BUILD_DIR := $(PROJECT)/build/$(FLAVOUR)
BINARY := $(BUILD_DIR)/micropython

.PHONY: build run test test-32 test-asan bench deps fuzz clean
build:
	@$(PROJECT)/tools/setup-deps.sh build
	@if [ "$(BITS)" = 32 ]; then $(PROJECT)/tools/setup-deps.sh build32; fi
	@set -e; mpy=$$($(PROJECT)/tools/fetch-micropython.sh); \
	$(MAKE) -s -C "$$mpy/mpy-cross" -j$(JOBS) BUILD="$(PROJECT)/build/mpy-cross" >/dev/null; \
	$(MAKE) -s -C "$$mpy/ports/unix" -j$(JOBS) \
	    VARIANT_DIR="$(PROJECT)/boards/unix-uhttpd" \
	    BUILD="$(BUILD_DIR)" \
	    MICROPY_MPYCROSS="$(PROJECT)/build/mpy-cross/mpy-cross" \
	    MICROPY_MPYCROSS_DEPENDENCY="$(PROJECT)/build/mpy-cross/mpy-cross" \
	    USER_C_MODULES="$(PROJECT)" $(MPFLAGS)
	@echo "built $(BINARY)"

run: build
	$(BINARY) -i $(PROJECT)/examples/demo.py --port $(PORT)

deps:
	@$(PROJECT)/tools/setup-deps.sh test
	@$(PYTHON) -m pip install -q -r $(PROJECT)/tests/requirements.txt

test: build deps
	UHTTPD_BINARY=$(BINARY) $(PYTHON) -m pytest -q $(PROJECT)/tests $(wildcard $(PROJECT)/fuzz)

# The same suite on a board-like build (i386 as ESP32 is 32-bit, with the
# strict lwIP rules) and under ASan+UBSan.
test-32: deps
	$(MAKE) build BITS=32 STRICT=1
	UHTTPD_BINARY=$(PROJECT)/build/unix32-strict/micropython $(PYTHON) -m pytest -q $(PROJECT)/tests

test-asan: deps
	$(MAKE) build SANITIZE=1
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	UHTTPD_BINARY=$(PROJECT)/build/unix-asan/micropython $(PYTHON) -m pytest -q $(PROJECT)/tests

bench: build
	@$(PROJECT)/tools/setup-deps.sh bench
	$(PYTHON) $(PROJECT)/bench/bench.py --binary $(BINARY)

fuzz:
	$(PROJECT)/fuzz/run_libfuzzer.sh $(SECONDS)

# Soak and chaos run (tools/soak.py): mixed load on one server for
# SOAK_SECONDS (60 in CI), files checked by hash, heap/fds/threads compared;
# the report goes to bench/soak.md.  Fails only on correctness targets.
SOAK_SECONDS ?= 600
.PHONY: soak
soak: build deps
	$(PYTHON) $(PROJECT)/tools/soak.py --binary $(BINARY) --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(PROJECT)/build/unix* $(PROJECT)/build/mpy-cross
