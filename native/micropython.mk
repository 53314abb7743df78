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

CFLAGS_USERMOD += -I$(UHTTPD_MOD_DIR)

# Stop every server before threads are deleted (exit; soft reset on boards):
# see uh_server.c, __wrap_mp_thread_deinit.
CFLAGS_USERMOD += -DUH_WRAP_DEINIT=1
LDFLAGS_USERMOD += -Wl,--wrap=mp_thread_deinit

# UHTTPD_STRICT=1: a host build that follows lwIP's rules (uh_port.h).
ifeq ($(UHTTPD_STRICT),1)
CFLAGS_USERMOD += -DUH_STRICT_LWIP=1
endif
