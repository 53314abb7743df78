// uhttpd unix host variant: the standard unix build plus threads WITH the
// GIL (as on ESP32), dupterm + WebREPL, and a poll hook that releases the GIL
// so time.sleep_ms() in the main program lets the server thread run.
// See ../../../shared/docs/micropython-notes.md section 1.

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#include "ports/unix/variants/mpconfigvariant_common.h"

// The unix Makefile passes -DMICROPY_PY_THREAD_GIL=0; a header may #undef it.
#undef MICROPY_PY_THREAD_GIL
#define MICROPY_PY_THREAD_GIL (1)
// ports/unix/mpthreadport.c always uses the recursive mutex API.
#define MICROPY_PY_THREAD_RECURSIVE_MUTEX (1)
// unix_mphal.c refuses async Ctrl-C together with the GIL.
#undef MICROPY_ASYNC_KBD_INTR
#define MICROPY_ASYNC_KBD_INTR (0)

// WebREPL over uhttpd's WebSocket.
#define MICROPY_PY_OS_DUPTERM (1)
#define MICROPY_PY_WEBREPL (1)

// time.sleep_ms() and friends wait in mp_event_wait_*: hand the GIL over
// there, the same shape as the ESP32 port's hook.
#include <unistd.h>
#define MICROPY_EVENT_POLL_HOOK \
    do { \
        extern void mp_handle_pending(bool); \
        mp_handle_pending(true); \
        MP_THREAD_GIL_EXIT(); \
        usleep(500); \
        MP_THREAD_GIL_ENTER(); \
    } while (0);
