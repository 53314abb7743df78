/*
 * uhttpd: the WebSocket REPL (WebREPL-compatible), a connection kind.
 *
 * A GET that asks for the upgrade on the ws() url is answered here with
 * "101 Switching Protocols" (RFC 6455 4.2.2; the accept key comes from
 * uh_ws_accept in uh_parse.c), then the connection leaves the HTTP table:
 * it is wrapped in a small C stream object (_uhttpd.WSock) and handed to
 * the Python glue (frozen/uhttpd_repl.py), which stacks MicroPython's own
 * websocket.websocket -> _webrepl._webrepl -> os.dupterm on it, so the wire
 * protocol is exactly WebREPL's (password prompt, text frames for the
 * terminal, binary frames for file get/put).
 *
 * One REPL session per process.  os.dupterm has one slot on esp32: while
 * it is taken, by our session or anybody else's (the built-in WebREPL),
 * the upgrade gets 503; the slot is never stolen.  The session ends when
 * the client closes (EOF: dupterm deactivates) or when dupterm lets go of
 * it (wrong password, an error).
 *
 * Login (design.md section 7): a client that has not logged in within the
 * server's `timeout` is cut off by the server thread (the REPL slot is
 * free again); after a wrong password the next upgrade is refused with 503
 * and Retry-After for a back-off that doubles from 1 s up to 30 s
 * (process-wide), so passwords cannot be guessed quickly.  Success and
 * failure are seen in what _webrepl writes ("WebREPL connected", "Access
 * denied"), since the password check itself is _webrepl's.
 *
 * The socket is polled by the server thread only on ports where the REPL
 * is fed by os.dupterm_notify (ESP32), and it is always closed by the
 * server thread (uh_close_deferred): lwIP's select fails for everyone when
 * a socket in its set is closed by another thread.
 *
 * Reads: on unix the REPL reads dupterm with blocking calls
 * (ports/unix/unix_mphal.c), so WSock reads block with the GIL released.
 * Where os.dupterm_notify exists (ESP32) reads are non-blocking and the
 * server loop, on readability of the session socket, calls the notify hook.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/stream.h"
#include "py/mperrno.h"

#include "uh_server.h"

typedef struct _uh_wsock_obj_t {
    mp_obj_base_t base;
    uh_io_t io;
    uh_state_t *owner;     /* the server whose thread closes the socket */
    uint8_t nonblock;
    uint8_t need_login;
    uint16_t pre_len;      /* bytes that arrived with the handshake */
    uint16_t pre_pos;
    char pre[256];
} uh_wsock_obj_t;

static const mp_obj_type_t uh_wsock_type;

/* The active session's socket object, or NULL, and the object our glue gave
 * to os.dupterm (to tell our session from someone else's).  GIL held to
 * touch them. */
MP_REGISTER_ROOT_POINTER(struct _uh_wsock_obj_t *uhttpd_repl_sock);
MP_REGISTER_ROOT_POINTER(mp_obj_t uhttpd_repl_top);

/* What the server thread needs without the GIL (plain C statics). */
static volatile int uh_repl_fd = -1;           /* session socket, or -1 */
static uh_state_t *volatile uh_repl_owner;     /* its server */
static volatile uint8_t uh_repl_logged_in;
static volatile uint8_t uh_repl_cut;           /* login timed out: shut down */
static volatile uint32_t uh_repl_login_deadline;
/* Password back-off (process-wide). */
static uint32_t uh_repl_backoff_ms;
static uint32_t uh_repl_next_try;

/* Wake-up pipe for the unix REPL's stdin wait (boards/unix-uhttpd). */
static int uh_repl_notify[2] = { -1, -1 };

int uhttpd_repl_notify_fd(void) {
    return uh_repl_notify[0];
}

static void uh_repl_failed(void) {
    uh_repl_backoff_ms = uh_repl_backoff_ms ? uh_repl_backoff_ms * 2 : 1000;
    if (uh_repl_backoff_ms > 30000) {
        uh_repl_backoff_ms = 30000;
    }
    uh_repl_next_try = uh_ticks_ms() + uh_repl_backoff_ms;
}

static void uh_wsock_shut(uh_wsock_obj_t *s) {
    if (s->io.fd >= 0) {
        int fd = s->io.fd;
        if (fd == uh_repl_fd) {
            uh_repl_fd = -1;
            if (s->need_login && !uh_repl_logged_in) {
                uh_repl_failed();   /* ended without logging in */
            }
        }
        /* the TLS state is this object's alone (the loop never reads it) */
        #if UH_TLS
        uh_io_t tmp = s->io;
        tmp.fd = -1;
        uh_io_close(&tmp);
        #endif
        s->io.fd = -1;
        s->io.tls = NULL;
        uh_close_deferred(s->owner, fd);
    }
    if (MP_STATE_VM(uhttpd_repl_sock) == s) {
        MP_STATE_VM(uhttpd_repl_sock) = NULL;
        MP_STATE_VM(uhttpd_repl_top) = MP_OBJ_NULL;
    }
}

/* The session is over once dupterm no longer holds our stream (e.g. wrong
 * password or EOF, or someone replaced it): close its socket.  GIL held. */
void uhttpd_repl_reap(void) {
    uh_wsock_obj_t *s = MP_STATE_VM(uhttpd_repl_sock);
    if (s == NULL) {
        return;
    }
    #if MICROPY_PY_OS_DUPTERM
    mp_obj_t top = MP_STATE_VM(uhttpd_repl_top);
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        if (top != MP_OBJ_NULL && MP_STATE_VM(dupterm_objs[i]) == top) {
            return;   /* still attached: our stack of streams */
        }
    }
    #endif
    uh_wsock_shut(s);
}

/* The server that owns the session stops: nobody polls the socket any
 * more, so its close may happen directly (GIL held). */
void uh_repl_server_gone(uh_state_t *st) {
    if (uh_repl_owner == st) {
        uh_repl_owner = NULL;
        uh_wsock_obj_t *s = MP_STATE_VM(uhttpd_repl_sock);
        if (s != NULL) {
            s->owner = NULL;
        }
    }
}

/* Output of the session: watch for the login result. */
static void uh_repl_watch(uh_wsock_obj_t *s, const char *buf, size_t size) {
    if (!s->need_login || uh_repl_logged_in) {
        return;
    }
    static const char ok[] = "WebREPL connected";
    static const char denied[] = "Access denied";
    for (size_t i = 0; i + sizeof(denied) - 1 <= size; i++) {
        if (i + sizeof(ok) - 1 <= size && memcmp(buf + i, ok, sizeof(ok) - 1) == 0) {
            uh_repl_logged_in = 1;
            uh_repl_backoff_ms = 0;
            return;
        }
        if (memcmp(buf + i, denied, sizeof(denied) - 1) == 0) {
            uh_repl_failed();
            s->need_login = 0;   /* counted once */
            return;
        }
    }
}

static mp_uint_t uh_wsock_read(mp_obj_t self_in, void *buf, mp_uint_t size, int *errcode) {
    uh_wsock_obj_t *s = MP_OBJ_TO_PTR(self_in);
    if (size == 0) {
        return 0;
    }
    if (s->pre_pos < s->pre_len) {
        mp_uint_t k = s->pre_len - s->pre_pos;
        if (k > size) {
            k = size;
        }
        memcpy(buf, s->pre + s->pre_pos, k);
        s->pre_pos += k;
        return k;
    }
    if (s->io.fd < 0) {
        return 0;   /* EOF */
    }
    ssize_t r;
    int again = 0;
    uh_io_t *io = &s->io;
    int nb = s->nonblock;
    MP_THREAD_GIL_EXIT();
    for (;;) {
        r = uh_io_recv(io, buf, size);
        if (r != UH_IO_AGAIN) {
            break;
        }
        if (nb) {
            again = 1;
            break;
        }
        struct pollfd p = { .fd = io->fd, .events = uh_io_events(io, POLLIN), .revents = 0 };
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            r = UH_IO_ERR;
            break;
        }
    }
    MP_THREAD_GIL_ENTER();
    if (again) {
        *errcode = MP_EAGAIN;
        return MP_STREAM_ERROR;
    }
    if (r <= 0) {
        /* EOF or a reset: the session is over */
        uh_wsock_shut(s);
        return 0;
    }
    return (mp_uint_t)r;
}

static mp_uint_t uh_wsock_write(mp_obj_t self_in, const void *buf, mp_uint_t size, int *errcode) {
    uh_wsock_obj_t *s = MP_OBJ_TO_PTR(self_in);
    (void)errcode;
    if (s->io.fd < 0) {
        return size;   /* the session is over: output goes nowhere, quietly */
    }
    uh_repl_watch(s, buf, size);
    int r;
    uh_io_t *io = &s->io;
    MP_THREAD_GIL_EXIT();
    r = uh_send_all_blocking(io, buf, size, 5000);
    MP_THREAD_GIL_ENTER();
    if (r < 0) {
        uh_wsock_shut(s);   /* the client went away; the next read says EOF */
    }
    return size;
}

static mp_uint_t uh_wsock_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
    uh_wsock_obj_t *s = MP_OBJ_TO_PTR(self_in);
    switch (request) {
        case MP_STREAM_CLOSE:
            uh_wsock_shut(s);
            return 0;
        case MP_STREAM_GET_FILENO:
            return (mp_uint_t)s->io.fd;
        case MP_STREAM_POLL: {
            mp_uint_t ret = 0;
            if (s->pre_pos < s->pre_len) {
                ret |= arg & MP_STREAM_POLL_RD;
            }
            if (s->io.fd < 0) {
                return arg & (MP_STREAM_POLL_RD | MP_STREAM_POLL_HUP);
            }
            if ((arg & MP_STREAM_POLL_RD) && uh_io_pending(&s->io)) {
                ret |= MP_STREAM_POLL_RD;
            }
            struct pollfd p = { .fd = s->io.fd, .events = 0, .revents = 0 };
            if (arg & MP_STREAM_POLL_RD) {
                p.events |= POLLIN;
            }
            if (arg & MP_STREAM_POLL_WR) {
                p.events |= POLLOUT;
            }
            if (poll(&p, 1, 0) > 0) {
                if (p.revents & POLLIN) {
                    ret |= MP_STREAM_POLL_RD;
                }
                if (p.revents & POLLOUT) {
                    ret |= MP_STREAM_POLL_WR;
                }
                if (p.revents & (UH_POLLHUP | POLLERR)) {
                    ret |= MP_STREAM_POLL_HUP;
                }
            }
            return ret;
        }
        default:
            *errcode = MP_EINVAL;
            return MP_STREAM_ERROR;
    }
}

static mp_obj_t uh_wsock_setblocking(mp_obj_t self_in, mp_obj_t flag) {
    uh_wsock_obj_t *s = MP_OBJ_TO_PTR(self_in);
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    s->nonblock = !mp_obj_is_true(flag);
    #else
    /* unix reads dupterm with blocking calls: a non-blocking stream would
     * make the REPL spin with the GIL held (micropython-notes 4) */
    (void)s;
    (void)flag;
    #endif
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(uh_wsock_setblocking_obj, uh_wsock_setblocking);

static mp_obj_t uh_wsock_fileno(mp_obj_t self_in) {
    uh_wsock_obj_t *s = MP_OBJ_TO_PTR(self_in);
    return MP_OBJ_NEW_SMALL_INT(s->io.fd);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uh_wsock_fileno_obj, uh_wsock_fileno);

static const mp_rom_map_elem_t uh_wsock_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&mp_stream_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&mp_stream_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_readline), MP_ROM_PTR(&mp_stream_unbuffered_readline_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&mp_stream_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&mp_stream_close_obj) },
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&mp_stream_close_obj) },
    { MP_ROM_QSTR(MP_QSTR_setblocking), MP_ROM_PTR(&uh_wsock_setblocking_obj) },
    { MP_ROM_QSTR(MP_QSTR_fileno), MP_ROM_PTR(&uh_wsock_fileno_obj) },
};
static MP_DEFINE_CONST_DICT(uh_wsock_locals_dict, uh_wsock_locals_table);

static const mp_stream_p_t uh_wsock_stream_p = {
    .read = uh_wsock_read,
    .write = uh_wsock_write,
    .ioctl = uh_wsock_ioctl,
};

static MP_DEFINE_CONST_OBJ_TYPE(
    uh_wsock_type,
    MP_QSTR_WSock,
    MP_TYPE_FLAG_ITER_IS_STREAM,
    protocol, &uh_wsock_stream_p,
    locals_dict, &uh_wsock_locals_dict
    );

/* Is the dupterm slot taken by something that is not our session? */
static int uh_dupterm_taken(void) {
    #if MICROPY_PY_OS_DUPTERM
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        if (MP_STATE_VM(dupterm_objs[i]) == MP_OBJ_NULL) {
            return 0;
        }
    }
    return 1;
    #else
    return 1;
    #endif
}

void uh_ws_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target) {
    c->keep_alive = 0;
    const uh_header_t *key = uh_find_header(c, "sec-websocket-key", 17);
    if (key == NULL || key->value.len == 0 || key->value.len > 128) {
        uh_reply_simple(st, c, 400, NULL, "Sec-WebSocket-Key required\n");
        return;
    }
    uhttpd_repl_reap();
    if (MP_STATE_VM(uhttpd_repl_sock) != NULL) {
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "another REPL session is active\n");
        return;
    }
    if (uh_dupterm_taken()) {
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "the REPL is in use (os.dupterm slot taken)\n");
        return;
    }
    int32_t wait = uh_diff(uh_repl_next_try, uh_ticks_ms());
    if (uh_repl_backoff_ms && wait > 0) {
        char extra[40];
        snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", (unsigned)((wait + 999) / 1000));
        uh_reply_simple(st, c, 503, extra, "wrong password: wait before the next try\n");
        return;
    }
    size_t pre = c->len - c->head_len;
    if (pre > sizeof(((uh_wsock_obj_t *)0)->pre)) {
        uh_reply_simple(st, c, 400, NULL, NULL);
        return;
    }
    char accept[29];
    uh_ws_accept(key->value.ptr, key->value.len, accept);
    char head[160];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    c->resp = UH_RESP_RAW;
    uh_send_gil(st, c, head, (size_t)n, 0);

    uh_wsock_obj_t *s = mp_obj_malloc_with_finaliser(uh_wsock_obj_t, &uh_wsock_type);
    uh_io_move(&s->io, &c->io);   /* detached: the socket belongs to the REPL now */
    s->owner = st;
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    s->nonblock = 1;   /* fed by notifications: never block the reader */
    #else
    s->nonblock = 0;
    #endif
    s->need_login = mp_obj_is_true(mp_load_attr(target, MP_QSTR_pwd));
    s->pre_len = (uint16_t)pre;
    s->pre_pos = 0;
    memcpy(s->pre, c->buf + c->head_len, pre);
    c->len = c->head_len;
    MP_STATE_VM(uhttpd_repl_sock) = s;
    uh_repl_logged_in = !s->need_login;
    uh_repl_cut = 0;
    uh_repl_login_deadline = uh_ticks_ms() + st->timeout_ms;
    uh_repl_owner = st;
    uh_repl_fd = s->io.fd;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t attach = mp_load_attr(target, MP_QSTR_attach);
        MP_STATE_VM(uhttpd_repl_top) = mp_call_function_1(attach, MP_OBJ_FROM_PTR(s));
        nlr_pop();
    } else {
        uh_wsock_shut(s);
        nlr_jump(nlr.ret_val);
    }
    uh_wakeup_signal(&st->wake);
    if (s->pre_len > 0) {
        /* bytes that came with the handshake: no socket event will say so */
        #if MICROPY_PY_OS_DUPTERM_NOTIFY
        mp_obj_t os = mp_import_name(MP_QSTR_os, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        mp_call_function_1(mp_load_attr(os, MP_QSTR_dupterm_notify), mp_const_none);
        #endif
    }
    if (uh_repl_notify[1] >= 0) {
        char b = 1;
        int w = write(uh_repl_notify[1], &b, 1);
        (void)w;
    }
}

/* ---- the kind's operations (server thread, no GIL) ---------------------- */

static size_t uh_repl_prepare(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout,
    uint32_t now) {
    int fd = uh_repl_fd;
    if (uh_repl_owner != st || fd < 0 || room == 0) {
        return 0;
    }
    if (!uh_repl_logged_in && !uh_repl_cut) {
        int32_t left = uh_diff(uh_repl_login_deadline, now);
        if (left < 0) {
            left = 0;
        }
        if (*timeout < 0 || left + 1 < *timeout) {
            *timeout = left + 1;
        }
    }
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    /* the REPL is fed by os.dupterm_notify: watch the session socket */
    p[0].fd = fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    e[0].kind = &uh_kind_repl;
    e[0].owner = NULL;
    e[0].io = NULL;
    return 1;
    #else
    (void)p;
    (void)e;
    return 0;
    #endif
}

static void uh_repl_ready(uh_state_t *st, void *owner, short ev) {
    (void)owner;
    (void)st;
    if (ev & (POLLERR | POLLNVAL)) {
        return;   /* the next read says EOF and ends the session */
    }
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    /* let dupterm pull what arrived into the REPL's input buffer */
    MP_THREAD_GIL_ENTER();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t os = mp_import_name(MP_QSTR_os, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        mp_call_function_1(mp_load_attr(os, MP_QSTR_dupterm_notify), mp_const_none);
        nlr_pop();
    }
    uhttpd_repl_reap();
    MP_THREAD_GIL_EXIT();
    #endif
}

static void uh_repl_tick(uh_state_t *st, uint32_t now) {
    int fd = uh_repl_fd;
    if (uh_repl_owner != st || fd < 0 || uh_repl_logged_in || uh_repl_cut) {
        return;
    }
    if (uh_diff(now, uh_repl_login_deadline) >= 0) {
        /* not logged in within `timeout`: cut it off; the reader sees EOF,
         * the session ends and the socket is closed through the queue */
        uh_repl_cut = 1;
        shutdown(fd, SHUT_RDWR);
    }
}

static void uh_repl_shutdown(uh_state_t *st) {
    (void)st;
}

const uh_kind_t uh_kind_repl = {
    .prepare = uh_repl_prepare,
    .ready = uh_repl_ready,
    .tick = uh_repl_tick,
    .shutdown = uh_repl_shutdown,
};

/* Module __init__ (start-up, soft reset): forget a session of the previous
 * cycle; on unix make the pipe the REPL's stdin wait also watches. */
void uh_ws_reset(void) {
    MP_STATE_VM(uhttpd_repl_sock) = NULL;
    MP_STATE_VM(uhttpd_repl_top) = MP_OBJ_NULL;
    uh_repl_fd = -1;
    uh_repl_owner = NULL;
    #if !UH_WAKEUP_UDP
    if (uh_repl_notify[0] < 0 && pipe(uh_repl_notify) == 0) {
        uh_set_nonblock(uh_repl_notify[0]);
        uh_set_nonblock(uh_repl_notify[1]);
        uh_set_cloexec(uh_repl_notify[0]);
        uh_set_cloexec(uh_repl_notify[1]);
    }
    #endif
}
