/*
 * uhttpd: the WebSocket REPL (WebREPL-compatible).
 *
 * A GET that asks for the upgrade on the ws() url is answered here with
 * "101 Switching Protocols" (RFC 6455 4.2.2; the accept key comes from
 * uh_ws_accept in uh_parse.c), then the socket leaves the server: it is
 * wrapped in a small C stream object (_uhttpd.WSock) and handed to the
 * Python glue (frozen/uhttpd_repl.py), which stacks MicroPython's own
 * websocket.websocket -> _webrepl._webrepl -> os.dupterm on it, so the wire
 * protocol is exactly WebREPL's (password prompt, text frames for the
 * terminal, binary frames for file get/put).
 *
 * One REPL session per process (os.dupterm has one slot the REPL reads on
 * unix): a second upgrade while one is active gets 503.  The session ends
 * when the client closes (EOF: dupterm deactivates and the socket is closed)
 * or when dupterm lets go of it (wrong password, an error).
 *
 * Reads: on unix the REPL reads dupterm with blocking calls
 * (ports/unix/unix_mphal.c), so WSock reads block with the GIL released.
 * Where os.dupterm_notify exists (ESP32) the REPL is fed by notifications
 * instead: reads are non-blocking and the server loop, on readability of
 * the session socket, calls the notify hook (uh_ws_poll_prepare/_ready).
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
    int fd;
    uint8_t nonblock;
    uint16_t pre_len;      /* bytes that arrived with the handshake */
    uint16_t pre_pos;
    char pre[256];
} uh_wsock_obj_t;

static const mp_obj_type_t uh_wsock_type;

/* The active session's socket object, or NULL (GIL held to touch it). */
MP_REGISTER_ROOT_POINTER(struct _uh_wsock_obj_t *uhttpd_repl_sock);

/* Wake-up pipe for the unix REPL's stdin wait (boards/unix-uhttpd). */
static int uh_repl_notify[2] = { -1, -1 };

/* The session socket for the server loop to watch where the REPL is fed
 * by os.dupterm_notify (ESP32); -1 otherwise.  Plain int: the loop reads it
 * without the GIL. */
static volatile int uh_ws_loop_fd = -1;

int uh_ws_notify_fd(void) {
    return uh_ws_loop_fd;
}

/* The session socket is readable: let dupterm pull what arrived into the
 * REPL's input buffer (GIL held). */
void uh_ws_notify(void) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t os = mp_import_name(MP_QSTR_os, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        mp_call_function_1(mp_load_attr(os, MP_QSTR_dupterm_notify), mp_const_none);
        nlr_pop();
    } else {
        uh_ws_loop_fd = -1;
    }
}

int uhttpd_repl_notify_fd(void) {
    return uh_repl_notify[0];
}

static void uh_wsock_shut(uh_wsock_obj_t *s) {
    if (s->fd >= 0 && s->fd == uh_ws_loop_fd) {
        uh_ws_loop_fd = -1;
    }
    if (s->fd >= 0) {
        uh_close_fd(s->fd);
        s->fd = -1;
    }
    if (MP_STATE_VM(uhttpd_repl_sock) == s) {
        MP_STATE_VM(uhttpd_repl_sock) = NULL;
    }
}

/* The session is over once dupterm no longer holds it (e.g. wrong password
 * or EOF): close its socket.  GIL held. */
void uhttpd_repl_reap(void) {
    uh_wsock_obj_t *s = MP_STATE_VM(uhttpd_repl_sock);
    if (s == NULL) {
        return;
    }
    #if MICROPY_PY_OS_DUPTERM
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        if (MP_STATE_VM(dupterm_objs[i]) != MP_OBJ_NULL) {
            return;   /* still attached (to our stack of streams) */
        }
    }
    #endif
    uh_wsock_shut(s);
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
    if (s->fd < 0) {
        return 0;   /* EOF */
    }
    ssize_t r;
    int err = 0;
    int fd = s->fd;
    int nb = s->nonblock;
    MP_THREAD_GIL_EXIT();
    for (;;) {
        r = recv(fd, buf, size, nb ? MSG_DONTWAIT : 0);
        if (r >= 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (nb) {
                err = MP_EAGAIN;
                break;
            }
            struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
            uh_poll(&p, 1, -1);
            continue;
        }
        err = errno;
        break;
    }
    MP_THREAD_GIL_ENTER();
    if (err == MP_EAGAIN) {
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
    if (s->fd < 0) {
        return size;   /* the session is over: output goes nowhere, quietly */
    }
    int r;
    int fd = s->fd;
    MP_THREAD_GIL_EXIT();
    r = uh_send_all_nogil(fd, buf, size, 0, 5000);
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
            return (mp_uint_t)s->fd;
        case MP_STREAM_POLL: {
            mp_uint_t ret = 0;
            if (s->pre_pos < s->pre_len) {
                ret |= arg & MP_STREAM_POLL_RD;
            }
            if (s->fd < 0) {
                return arg & (MP_STREAM_POLL_RD | MP_STREAM_POLL_HUP);
            }
            struct pollfd p = { .fd = s->fd, .events = 0, .revents = 0 };
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
                if (p.revents & (POLLHUP | POLLERR)) {
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
    return MP_OBJ_NEW_SMALL_INT(s->fd);
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
    s->fd = c->fd;
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    s->nonblock = 1;   /* fed by notifications: never block the reader */
    #else
    s->nonblock = 0;
    #endif
    s->pre_len = (uint16_t)pre;
    s->pre_pos = 0;
    memcpy(s->pre, c->buf + c->head_len, pre);
    c->fd = -1;   /* detached: the socket belongs to the REPL now */
    c->len = c->head_len;
    MP_STATE_VM(uhttpd_repl_sock) = s;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t attach = mp_load_attr(target, MP_QSTR_attach);
        mp_call_function_1(attach, MP_OBJ_FROM_PTR(s));
        nlr_pop();
    } else {
        uh_wsock_shut(s);
        nlr_jump(nlr.ret_val);
    }
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    uh_ws_loop_fd = s->fd;
    uh_wakeup_signal(&st->wake);
    #endif
    if (uh_repl_notify[1] >= 0) {
        char b = 1;
        int w = write(uh_repl_notify[1], &b, 1);
        (void)w;
    }
}

/* Module __init__ (start-up, soft reset): forget a session of the previous
 * cycle; on unix make the pipe the REPL's stdin wait also watches. */
void uh_ws_reset(void) {
    MP_STATE_VM(uhttpd_repl_sock) = NULL;
    uh_ws_loop_fd = -1;
    #if !UH_WAKEUP_UDP
    if (uh_repl_notify[0] < 0 && pipe(uh_repl_notify) == 0) {
        uh_set_nonblock(uh_repl_notify[0]);
        uh_set_nonblock(uh_repl_notify[1]);
        fcntl(uh_repl_notify[0], F_SETFD, FD_CLOEXEC);
        fcntl(uh_repl_notify[1], F_SETFD, FD_CLOEXEC);
    }
    #endif
}
