// uhttpd unix variant: let the REPL notice a WebREPL client that connects
// while it waits for a key on the terminal, as ESP32's REPL does (it polls
// dupterm).  ports/unix/unix_mphal.c reads dupterm only when a key comes in
// on stdin, and after a session ends it blocks on stdin again, so the
// variant links with --wrap=mp_hal_stdin_rx_chr (see mpconfigvariant.mk):
// the REPL reads the dupterm stream while one is attached and otherwise
// waits on stdin AND uhttpd's REPL notification pipe, with the GIL
// released.  MicroPython itself is not patched.
#include <poll.h>
#include <errno.h>
#include <unistd.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/mphal.h"

int __real_mp_hal_stdin_rx_chr(void);
int uhttpd_repl_notify_fd(void);
void uhttpd_repl_reap(void);

#if MICROPY_PY_OS_DUPTERM
// One character from dupterm slot 0: >= 0, or -1 when it ended (EOF, an
// error: the slot is released, as ports/unix/unix_mphal.c does on EOF).
static int uh_dupterm_getc(void) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t read_m[3];
        mp_load_method(MP_STATE_VM(dupterm_objs[0]), MP_QSTR_read, read_m);
        read_m[2] = MP_OBJ_NEW_SMALL_INT(1);
        mp_obj_t res = mp_call_method_n_kw(1, 0, read_m);
        int c = -1;
        if (res != mp_const_none) {
            mp_buffer_info_t bi;
            mp_get_buffer_raise(res, &bi, MP_BUFFER_READ);
            if (bi.len > 0) {
                c = *(byte *)bi.buf;
            }
        }
        nlr_pop();
        if (c < 0) {
            MP_STATE_VM(dupterm_objs[0]) = MP_OBJ_NULL;
            mp_printf(&mp_plat_print, "dupterm: EOF received, deactivating\n");
        }
        return c;
    } else {
        MP_STATE_VM(dupterm_objs[0]) = MP_OBJ_NULL;
        mp_printf(&mp_plat_print, "dupterm: ");
        mp_obj_print_exception(&mp_plat_print, MP_OBJ_FROM_PTR(nlr.ret_val));
        return -1;
    }
}
#endif

int __wrap_mp_hal_stdin_rx_chr(void) {
    for (;;) {
        #if MICROPY_PY_OS_DUPTERM
        // a session that dupterm let go of (EOF, wrong password) is closed
        uhttpd_repl_reap();
        if (MP_STATE_VM(dupterm_objs[0]) != MP_OBJ_NULL) {
            int c = uh_dupterm_getc();
            if (c < 0) {
                continue;   // the session ended: back to the terminal
            }
            return c == '\n' ? '\r' : c;
        }
        #endif
        int nfd = uhttpd_repl_notify_fd();
        if (nfd < 0) {
            return __real_mp_hal_stdin_rx_chr();
        }
        struct pollfd p[2] = {
            { .fd = STDIN_FILENO, .events = POLLIN, .revents = 0 },
            { .fd = nfd, .events = POLLIN, .revents = 0 },
        };
        int r;
        MP_THREAD_GIL_EXIT();
        r = poll(p, 2, -1);
        MP_THREAD_GIL_ENTER();
        if (r < 0) {
            if (errno == EINTR) {
                mp_handle_pending(true);   // Ctrl-C raises KeyboardInterrupt here
            }
            continue;
        }
        if (p[1].revents) {
            char buf[16];
            while (read(nfd, buf, sizeof(buf)) > 0) {
            }
            continue;   // a client attached: the loop above reads it
        }
        if (p[0].revents) {
            return __real_mp_hal_stdin_rx_chr();
        }
    }
}
