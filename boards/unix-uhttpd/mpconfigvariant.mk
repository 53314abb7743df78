# uhttpd unix host variant (see mpconfigvariant.h).
# Submodules absent from Debian's +ds source tree: btree, libffi.
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0

# TLS from the system mbedTLS (Debian's patch 0006 links -lmbedx509
# -lmbedtls -lmbedcrypto instead of the lib/mbedtls submodule): gives the
# `tls` module, hashlib.sha1/sha256 and cryptolib, and uhttpd's own HTTPS
# layer (native/uh_tls.c) uses the same library.  tools/setup-deps.sh
# installs libmbedtls-dev (and its :i386 twin for BITS=32).
MICROPY_PY_SSL = 1
MICROPY_SSL_AXTLS = 0
MICROPY_SSL_MBEDTLS = 1

FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py

# extmod/modwebrepl.c compares mp_uint_t with -2 (fatal under -Werror).
$(BUILD)/extmod/modwebrepl.o: CFLAGS += -Wno-error=sign-compare

# The REPL waits on stdin and uhttpd's WebREPL notification together
# (uhttpd_stdin.c in this folder).
LDFLAGS_EXTRA += -Wl,--wrap=mp_hal_stdin_rx_chr

# Optional sanitizer build: make SANITIZE=1 (see the project Makefile).
ifeq ($(UHTTPD_SANITIZE),1)
CFLAGS_EXTRA += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_EXTRA += -fsanitize=address,undefined
endif
