# make-based ports (unix): USER_C_MODULES=<project root> includes this file.
UHTTPD_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/moduhttpd.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_server.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_parse.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_ws.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_files.c
SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/uh_sse.c

CFLAGS_USERMOD += -I$(UHTTPD_MOD_DIR)
