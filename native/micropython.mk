# make-based ports (unix): USER_C_MODULES=<project root> includes this file.
UHTTPD_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/moduhttpd.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_server.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_io.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_http.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_parse.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_ws.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_files.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_sse.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_tls.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_wsframe.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_wsapp.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_multipart.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_form.c

CFLAGS_USERMOD += -I$(UHTTPD_MOD_DIR)

# Stop every server before threads are deleted (exit; soft reset on boards):
# see uh_server.c, __wrap_mp_thread_deinit.
CFLAGS_USERMOD += -DUH_WRAP_DEINIT=1
LDFLAGS_USERMOD += -Wl,--wrap=mp_thread_deinit

# UHTTPD_STRICT=1: a host build that follows lwIP's rules (uh_port.h).
ifeq ($(UHTTPD_STRICT),1)
CFLAGS_USERMOD += -DUH_STRICT_LWIP=1
endif

# HTTPS (uh_tls.c) uses the port's mbedTLS.  With MICROPY_SSL_MBEDTLS=1,
# extmod/extmod.mk already links it: Debian's patch 0006 adds
# -lmbedx509 -lmbedtls -lmbedcrypto (the system library), upstream builds
# lib/mbedtls from source.  Without it, uhttpd is built without TLS.
ifeq ($(MICROPY_PY_SSL)$(MICROPY_SSL_MBEDTLS),11)
CFLAGS_USERMOD += -DUH_TLS=1
else
CFLAGS_USERMOD += -DUH_TLS=0
endif
