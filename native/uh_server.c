/*
 * uhttpd: the server thread: poll loop, accept, connection table, request
 * head reading, body reading, response writing, timeouts.
 *
 * Invariant: the loop in uh_thread_entry() runs WITHOUT the GIL.  It takes
 * the GIL in uh_serve() to run Python for one request, and every network
 * wait reachable from Python (uh_send_gil, uh_body_read) drops it again.
 * Buffers touched without the GIL belong to the server state, which is
 * reachable from the root pointer list, so the GC never frees them.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/mphal.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/objstr.h"

#include "uh_server.h"

#if !MICROPY_PY_THREAD
#error "uhttpd needs MICROPY_PY_THREAD"
#endif
#if !MICROPY_PY_THREAD_GIL
#error "uhttpd needs the GIL (MICROPY_PY_THREAD_GIL): handlers rely on its atomicity"
#endif

uint32_t uh_ticks_ms(void) {
    return (uint32_t)mp_hal_ticks_ms();
}

static inline int32_t uh_diff(uint32_t a, uint32_t b) {
    return (int32_t)(a - b);
}

/* ---- platform pieces (kept here, tiny) ---------------------------------- */

int uh_set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void uh_port_thread_init(void) {
    #if !defined(ESP_PLATFORM)
    /* Ctrl-C is for the main thread (MICROPY_ASYNC_KBD_INTR is off); the GC's
     * scan signal must stay unblocked. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    #endif
}

void uh_sock_tune(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

#if UH_WAKEUP_UDP
int uh_wakeup_open(uh_wakeup_t *w) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0
        || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    uh_set_nonblock(fd);
    w->rd = w->wr = fd;
    return 0;
}
#else
int uh_wakeup_open(uh_wakeup_t *w) {
    int p[2];
    if (pipe(p) < 0) {
        return -1;
    }
    uh_set_nonblock(p[0]);
    uh_set_nonblock(p[1]);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    w->rd = p[0];
    w->wr = p[1];
    return 0;
}
#endif

void uh_wakeup_signal(uh_wakeup_t *w) {
    char b = 1;
    if (w->wr >= 0) {
        #if UH_WAKEUP_UDP
        int r = send(w->wr, &b, 1, 0);
        #else
        int r = write(w->wr, &b, 1);
        #endif
        (void)r;
    }
}

void uh_wakeup_drain(uh_wakeup_t *w) {
    char b[16];
    for (int i = 0; i < 64; i++) {
        #if UH_WAKEUP_UDP
        int r = recv(w->rd, b, sizeof(b), 0);
        #else
        int r = read(w->rd, b, sizeof(b));
        #endif
        if (r <= 0) {
            break;
        }
    }
}

void uh_wakeup_close(uh_wakeup_t *w) {
    if (w->rd >= 0) {
        uh_close_fd(w->rd);
    }
    if (w->wr >= 0 && w->wr != w->rd) {
        uh_close_fd(w->wr);
    }
    w->rd = w->wr = -1;
}

/* poll() for the loop and for handler waits.  On ESP32 never wait inside
 * lwIP (see the soft-reset note at uh_thread_entry): zero-timeout polls
 * with FreeRTOS sleeps in between. */
int uh_poll(struct pollfd *fds, size_t n, int timeout_ms) {
    #if defined(ESP_PLATFORM)
    uint32_t start = uh_ticks_ms();
    for (;;) {
        int r = poll(fds, n, 0);
        if (r != 0 || timeout_ms == 0) {
            return r;
        }
        if (timeout_ms > 0 && (int32_t)(uh_ticks_ms() - start) >= timeout_ms) {
            return 0;
        }
        vTaskDelay(1);
    }
    #else
    return poll(fds, n, timeout_ms);
    #endif
}

void uh_sleep_ms(uint32_t ms) {
    #if defined(ESP_PLATFORM)
    vTaskDelay(ms / portTICK_PERIOD_MS ? ms / portTICK_PERIOD_MS : 1);
    #else
    usleep(ms * 1000);
    #endif
}

/* ---- fds owned by uhttpd, in static memory ------------------------------
 * On ESP32 a soft reset deletes the server task wherever it is, before any
 * finaliser runs, and wipes the heap.  The fds are recorded here (outside
 * the heap) so that the module's __init__, which runs on the first import
 * after every soft reset, can close whatever a deleted task left open and
 * the port is free for a new Server.  On unix __init__ runs once per process,
 * when nothing is recorded yet. */
#define UH_FDMAP_BITS (1024)
static uint32_t uh_fdmap[UH_FDMAP_BITS / 32];

int uh_fd_track(int fd) {
    if (fd >= 0 && fd < UH_FDMAP_BITS) {
        __atomic_fetch_or(&uh_fdmap[fd / 32], (uint32_t)1 << (fd % 32), __ATOMIC_SEQ_CST);
    }
    return fd;
}

void uh_fd_untrack(int fd) {
    if (fd >= 0 && fd < UH_FDMAP_BITS) {
        __atomic_fetch_and(&uh_fdmap[fd / 32], ~((uint32_t)1 << (fd % 32)), __ATOMIC_SEQ_CST);
    }
}

int uh_close_fd(int fd) {
    uh_fd_untrack(fd);
    return close(fd);
}

void uh_fd_close_all_tracked(void) {
    for (int i = 0; i < UH_FDMAP_BITS / 32; i++) {
        uint32_t m = __atomic_exchange_n(&uh_fdmap[i], 0, __ATOMIC_SEQ_CST);
        for (int b = 0; m && b < 32; b++) {
            if (m & ((uint32_t)1 << b)) {
                close(i * 32 + b);
                m &= ~((uint32_t)1 << b);
            }
        }
    }
}

/* ---- low-level network I/O (no GIL) ------------------------------------- */

/* Wait for events on fd up to timeout_ms.  1 ready, 0 timeout, -1 error. */
static int uh_wait(int fd, short events, uint32_t timeout_ms) {
    uint32_t start = uh_ticks_ms();
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
        int32_t left = (int32_t)timeout_ms - uh_diff(uh_ticks_ms(), start);
        if (left < 0) {
            left = 0;
        }
        int r = uh_poll(&p, 1, left);
        if (r > 0) {
            return 1;
        }
        if (r == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

/* Send everything or fail (-1).  Without the GIL. */
int uh_send_all_nogil(int fd, const char *p, size_t len, int more, uint32_t timeout_ms) {
    while (len > 0) {
        ssize_t r = send(fd, p, len, UH_SEND_FLAGS | (more ? UH_SEND_MORE : 0));
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (uh_wait(fd, POLLOUT, timeout_ms) == 1) {
                continue;
            }
        }
        return -1;
    }
    return 0;
}

/* recv with a timeout: >0 bytes, 0 EOF, -1 error, -2 timeout.  No GIL. */
ssize_t uh_recv_wait(int fd, char *dst, size_t n, uint32_t timeout_ms) {
    for (;;) {
        ssize_t r = recv(fd, dst, n, 0);
        if (r >= 0) {
            return r;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = uh_wait(fd, POLLIN, timeout_ms);
            if (w == 1) {
                continue;
            }
            return w == 0 ? -2 : -1;
        }
        return -1;
    }
}

/* ---- handler-facing I/O (GIL held on entry/exit) ----------------------- */

void uh_send_gil(uh_state_t *st, uh_conn_t *c, const void *data, size_t len, int more) {
    if (c->fd < 0 || c->io_error) {
        mp_raise_OSError(MP_ECONNRESET);
    }
    int r;
    MP_THREAD_GIL_EXIT();
    r = uh_send_all_nogil(c->fd, data, len, more, st->timeout_ms);
    MP_THREAD_GIL_ENTER();
    if (r < 0) {
        c->io_error = 1;
        c->keep_alive = 0;
        mp_raise_OSError(MP_ECONNRESET);
    }
}

static void uh_body_fail(uh_conn_t *c, int status, int err) {
    c->io_error = 1;
    c->keep_alive = 0;
    c->err_status = status;
    mp_raise_OSError(err);
}

/* Read up to n body bytes into dst.  Returns 0 at the end of the body. */
mp_int_t uh_body_read(uh_state_t *st, uh_conn_t *c, char *dst, size_t n) {
    if (n == 0 || c->body_kind == UH_BODY_NONE) {
        return 0;
    }
    for (;;) {
        if (c->ravail > 0) {
            size_t k = n < c->ravail ? n : c->ravail;
            memcpy(dst, c->buf + c->rpos, k);
            c->rpos += k;
            c->ravail -= k;
            if (c->body_kind == UH_BODY_LENGTH) {
                c->body_left -= k;
                if (c->body_left == 0) {
                    c->body_done = 1;
                }
            }
            return (mp_int_t)k;
        }
        if (c->body_done || c->io_error) {
            if (c->io_error) {
                mp_raise_OSError(MP_ECONNRESET);
            }
            return 0;
        }
        if (c->body_kind == UH_BODY_LENGTH) {
            /* Nothing buffered: receive straight into the caller's buffer. */
            size_t want = n;
            if ((uint64_t)want > c->body_left) {
                want = (size_t)c->body_left;
            }
            ssize_t r;
            MP_THREAD_GIL_EXIT();
            r = uh_recv_wait(c->fd, dst, want, st->timeout_ms);
            MP_THREAD_GIL_ENTER();
            if (r == -2) {
                uh_body_fail(c, 408, MP_ETIMEDOUT);
            }
            if (r <= 0) {
                uh_body_fail(c, 0, MP_ECONNRESET);
            }
            c->body_left -= (uint64_t)r;
            if (c->body_left == 0) {
                c->body_done = 1;
            }
            return (mp_int_t)r;
        }
        /* Chunked: receive into the connection buffer after the head and
         * decode in place (every raw byte is consumed by the decoder). */
        c->rpos = c->head_len;
        c->len = c->head_len;
        size_t room = c->cap - c->len;
        ssize_t r;
        MP_THREAD_GIL_EXIT();
        r = uh_recv_wait(c->fd, c->buf + c->len, room, st->timeout_ms);
        MP_THREAD_GIL_ENTER();
        if (r == -2) {
            uh_body_fail(c, 408, MP_ETIMEDOUT);
        }
        if (r <= 0) {
            uh_body_fail(c, 0, MP_ECONNRESET);
        }
        size_t dn = (size_t)r;
        int d = uh_decode_chunked(&c->chunk, c->buf + c->len, &dn);
        if (d < 0 && d != UH_PARTIAL) {
            uh_body_fail(c, (uint16_t)(-d), MP_EINVAL);
        }
        c->ravail = dn;
        c->body_total += dn;
        c->len += dn;
        if (d >= 0) {
            c->body_done = 1;
            c->len += (size_t)d;     /* a pipelined request follows */
        }
        if (c->body_total > st->max_body) {
            uh_body_fail(c, 413, MP_EFBIG);
        }
    }
}

/* ---- response heads ------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n;
    size_t cap;
} uh_out_t;

static void uh_out(uh_out_t *o, const char *s, size_t n) {
    if (o->n + n > o->cap) {
        mp_raise_ValueError(MP_ERROR_TEXT("response headers too large"));
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void uh_outs(uh_out_t *o, const char *s) {
    uh_out(o, s, strlen(s));
}

static void uh_out_checked(uh_out_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("CR, LF or NUL in a response header"));
        }
    }
    uh_out(o, s, n);
}

static void uh_out_obj(uh_out_t *o, mp_obj_t v) {
    size_t n;
    const char *s;
    if (mp_obj_is_str_or_bytes(v)) {
        s = mp_obj_str_get_data(v, &n);
    } else if (mp_obj_is_int(v)) {
        char num[24];
        n = snprintf(num, sizeof(num), "%ld", (long)mp_obj_get_int(v));
        uh_out(o, num, n);
        return;
    } else {
        mp_buffer_info_t bi;
        mp_get_buffer_raise(v, &bi, MP_BUFFER_READ);
        s = bi.buf;
        n = bi.len;
    }
    uh_out_checked(o, s, n);
}

size_t uh_build_head(uh_state_t *st, uh_conn_t *c, int status, const char *status_str, size_t status_len,
    const char *mime, size_t mime_len, mp_obj_t headers, int cors, int64_t body_len, const char *extra) {
    uh_out_t o = { st->tx, 0, UH_TX_BUF };
    char line[64];
    int v11 = c->req.minor_version == 1;
    uh_outs(&o, v11 ? "HTTP/1.1 " : "HTTP/1.0 ");
    if (status_str != NULL) {
        uh_out_checked(&o, status_str, status_len);
        uh_outs(&o, "\r\n");
    } else {
        size_t n = snprintf(line, sizeof(line), "%d %s\r\n", status, uh_status_reason(status));
        uh_out(&o, line, n);
    }
    if (mime != NULL) {
        uh_outs(&o, "Content-Type: ");
        uh_out_checked(&o, mime, mime_len);
        uh_outs(&o, "\r\n");
    }
    if (body_len == UH_LEN_NONE) {
        /* 1xx/204/304: no body, no framing */
    } else if (body_len >= 0) {
        size_t n = snprintf(line, sizeof(line), "Content-Length: %lu\r\n", (unsigned long)body_len);
        uh_out(&o, line, n);
    } else if (v11) {
        uh_outs(&o, "Transfer-Encoding: chunked\r\n");
    } else {
        c->keep_alive = 0;   /* close-delimited body for HTTP/1.0 */
        c->close_delim = 1;
    }
    if (cors) {
        uh_outs(&o, "Access-Control-Allow-Origin: *\r\n");
    }
    if (extra != NULL) {
        uh_outs(&o, extra);
    }
    if (headers != mp_const_none && headers != MP_OBJ_NULL) {
        mp_map_t *map = mp_obj_dict_get_map(headers);
        for (size_t i = 0; i < map->alloc; i++) {
            if (!mp_map_slot_is_filled(map, i)) {
                continue;
            }
            uh_out_obj(&o, map->table[i].key);
            uh_outs(&o, ": ");
            uh_out_obj(&o, map->table[i].value);
            uh_outs(&o, "\r\n");
        }
    }
    if (st->stop) {
        c->keep_alive = 0;
    }
    if (!c->keep_alive) {
        uh_outs(&o, "Connection: close\r\n");
    } else if (!v11) {
        uh_outs(&o, "Connection: keep-alive\r\n");
    }
    uh_outs(&o, "\r\n");
    return o.n;
}

void uh_reply_simple(uh_state_t *st, uh_conn_t *c, int status, const char *extra, const char *body) {
    char b[96];
    if (body == NULL) {
        snprintf(b, sizeof(b), "%d %s\n", status, uh_status_reason(status));
        body = b;
    }
    size_t blen = strlen(body);
    if (status == 204 || status == 304 || status < 200) {
        blen = 0;
    }
    size_t n = uh_build_head(st, c, status, NULL, 0, blen ? "text/plain" : NULL, 10, mp_const_none, st->cors,
        blen ? (int64_t)blen : UH_LEN_NONE, extra);
    if (!c->head_only && blen > 0 && n + blen <= UH_TX_BUF) {
        memcpy(st->tx + n, body, blen);
        n += blen;
    }
    uh_send_gil(st, c, st->tx, n, 0);
    c->resp = UH_RESP_WRITTEN;
}

/* ---- connection table ---------------------------------------------------- */

void uh_conn_close(uh_state_t *st, uh_conn_t *c) {
    (void)st;
    if (c->fd >= 0) {
        uh_close_fd(c->fd);
    }
    c->fd = -1;
    c->state = UH_CS_FREE;
    c->len = 0;
}

/* Half-close after an error reply and read until EOF (bounded in time), so
 * unread request bytes do not turn the close into a reset that destroys
 * the reply before the client reads it. */
void uh_conn_linger(uh_state_t *st, uh_conn_t *c) {
    (void)st;
    if (c->fd < 0) {
        c->state = UH_CS_FREE;
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = UH_CS_LINGER;
    c->len = 0;
    c->deadline = uh_ticks_ms() + UH_LINGER_MS;
}

/* Error reply from the loop (no GIL): complete, small, then close. */
static void uh_reply_error_nogil(uh_state_t *st, uh_conn_t *c, int status) {
    char b[256];
    const char *reason = uh_status_reason(status);
    int blen = snprintf(b + 128, 128, "%d %s\n", status, reason);
    int n = snprintf(b, 128, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n",
        status, reason, blen, st->cors ? "Access-Control-Allow-Origin: *\r\n" : "");
    if (n > 0 && n < 128) {
        memmove(b + n, b + 128, (size_t)blen);
        uh_send_all_nogil(c->fd, b, (size_t)(n + blen), 0, st->timeout_ms);
    }
    uh_conn_linger(st, c);
}

/* Set up the body reader from the parsed head. */
static int uh_body_setup(uh_state_t *st, uh_conn_t *c) {
    uh_request_t *rq = &c->req;
    size_t buffered = c->len - c->head_len;
    c->rpos = c->head_len;
    c->ravail = 0;
    c->body_done = 0;
    c->body_left = 0;
    c->body_total = 0;
    if (rq->chunked) {
        c->body_kind = UH_BODY_CHUNKED;
        memset(&c->chunk, 0, sizeof(c->chunk));
        size_t dn = buffered;
        int d = uh_decode_chunked(&c->chunk, c->buf + c->head_len, &dn);
        if (d < 0 && d != UH_PARTIAL) {
            return -d;
        }
        c->ravail = dn;
        c->body_total = dn;
        c->len = c->head_len + dn;
        if (d >= 0) {
            c->body_done = 1;
            c->len += (size_t)d;
        }
        if (c->body_total > st->max_body) {
            return 413;
        }
    } else if (rq->content_length > 0) {
        if ((uint64_t)rq->content_length > st->max_body) {
            return 413;
        }
        c->body_kind = UH_BODY_LENGTH;
        c->body_left = (uint64_t)rq->content_length;
        c->ravail = buffered < c->body_left ? buffered : (size_t)c->body_left;
    } else {
        c->body_kind = UH_BODY_NONE;
        c->body_done = 1;
    }
    return 0;
}

/* After the handler: consume what is left of the body so the next request
 * starts at the right byte, or decide to close.  GIL held. */
static void uh_body_finish(uh_state_t *st, uh_conn_t *c) {
    if (c->body_kind == UH_BODY_NONE || c->io_error) {
        return;
    }
    if (!c->body_done) {
        uint64_t pending = c->body_kind == UH_BODY_LENGTH ? c->body_left - c->ravail : 0;
        if (pending > UH_DRAIN_MAX || (c->req.expect_continue && !c->continue_sent)) {
            c->keep_alive = 0;
            return;
        }
        uint64_t drained = 0;
        char tmp[512];
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            while (!c->body_done && drained <= UH_DRAIN_MAX) {
                mp_int_t r = uh_body_read(st, c, tmp, sizeof(tmp));
                if (r == 0) {
                    break;
                }
                drained += (uint64_t)r;
            }
            nlr_pop();
        } else {
            c->keep_alive = 0;
            return;
        }
        if (!c->body_done) {
            c->keep_alive = 0;
        }
    }
}

/* Move a pipelined next request to the front of the buffer. */
static void uh_conn_compact(uh_conn_t *c) {
    size_t start;
    if (c->body_kind == UH_BODY_NONE) {
        start = c->head_len;
    } else {
        start = c->rpos + c->ravail;
    }
    if (start > c->len) {
        start = c->len;
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    c->head_len = 0;
    c->rpos = 0;
    c->ravail = 0;
}

/* Serve one parsed request: take the GIL, route and run Python, finish. */
static void uh_serve(uh_state_t *st, uh_conn_t *c) {
    c->state = UH_CS_BUSY;
    c->resp = UH_RESP_NONE;
    c->continue_sent = 0;
    c->io_error = 0;
    c->close_delim = 0;
    c->err_status = 0;
    c->keep_alive = c->req.keep_alive ? 1 : 0;
    c->head_only = c->req.method == UH_M_HEAD;

    MP_THREAD_GIL_ENTER();
    int status = uh_body_setup(st, c);
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        if (status != 0) {
            c->keep_alive = 0;
            uh_reply_simple(st, c, status, NULL, NULL);
        } else {
            uh_handle_request(st, c);
        }
        nlr_pop();
    } else {
        mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
        if (!c->io_error) {
            mp_printf(MICROPY_ERROR_PRINTER, "uhttpd: exception in handler\n");
            mp_obj_print_exception(MICROPY_ERROR_PRINTER, exc);
        }
        if (c->resp == UH_RESP_NONE && c->fd >= 0 && (!c->io_error || c->err_status)) {
            nlr_buf_t nlr2;
            if (nlr_push(&nlr2) == 0) {
                int s = c->err_status ? c->err_status : 500;
                c->keep_alive = 0;
                c->io_error = 0;
                uh_reply_simple(st, c, s, NULL, NULL);
                nlr_pop();
            }
        }
        c->keep_alive = 0;
        if (c->resp != UH_RESP_NONE && c->resp != UH_RESP_WRITTEN) {
            c->io_error = 1;   /* a started reply cannot be completed */
        }
    }
    if (c->resp == UH_RESP_CHUNKED && !c->io_error) {
        /* the handler forgot send_chunk(None): end the body for it */
        nlr_buf_t nlr3;
        if (nlr_push(&nlr3) == 0) {
            if (!c->close_delim) {
                uh_send_gil(st, c, "0\r\n\r\n", 5, 0);
            }
            nlr_pop();
        }
        c->resp = UH_RESP_CHUNK_END;
    }
    if (c->resp == UH_RESP_RAW || c->close_delim) {
        c->keep_alive = 0;
    }
    if (c->resp == UH_RESP_DEFERRED && c->fd >= 0 && !c->io_error) {
        /* a file stream takes over; the loop completes the reply */
        if (c->next_state == UH_CS_FILE_TX && c->keep_alive) {
            uh_body_finish(st, c);
        }
        st->reqobj->conn = NULL;
        MP_THREAD_GIL_EXIT();
        c->served = 1;
        if (c->next_state == UH_CS_FILE_TX) {
            uh_conn_compact(c);
        }
        c->state = c->next_state;
        c->stamp = uh_ticks_ms();
        c->deadline = c->stamp + st->timeout_ms;
        return;
    }
    if (c->keep_alive) {
        uh_body_finish(st, c);
    }
    st->reqobj->conn = NULL;   /* a Request kept past its handler is dead */
    MP_THREAD_GIL_EXIT();

    c->served = 1;
    if (c->fd < 0) {
        uh_conn_close(st, c);
    } else if (c->io_error) {
        uh_conn_close(st, c);
    } else if (!c->keep_alive) {
        uh_conn_linger(st, c);
    } else {
        uh_conn_compact(c);
        c->state = UH_CS_HEAD;
        c->stamp = uh_ticks_ms();
        c->deadline = c->stamp + st->timeout_ms;
    }
}

/* Parse and serve every complete request in the buffer (pipelining). */
static void uh_conn_process(uh_state_t *st, uh_conn_t *c) {
    while (c->state == UH_CS_HEAD && c->len > 0 && !st->stop) {
        c->req.headers = (uh_header_t *)(c->buf + c->cap);
        c->req.max_headers = UH_MAX_HEADERS;
        int r = uh_parse_request(c->buf, c->len, &c->req);
        if (r == UH_PARTIAL) {
            if (c->len >= st->max_header) {
                uh_reply_error_nogil(st, c, -uh_parse_overflow(c->buf, c->len));
            }
            return;
        }
        if (r < 0) {
            uh_reply_error_nogil(st, c, -r);
            return;
        }
        if ((size_t)r > st->max_header) {
            uh_reply_error_nogil(st, c, 431);
            return;
        }
        if (c->req.method == UH_M_UNKNOWN) {
            uh_reply_error_nogil(st, c, 501);
            return;
        }
        c->head_len = (size_t)r;
        uh_serve(st, c);
    }
}

/* A streamed reply is complete (no GIL): keep the connection or close. */
void uh_conn_finish_reply(uh_state_t *st, uh_conn_t *c) {
    if (c->fd < 0) {
        uh_conn_close(st, c);
    } else if (!c->keep_alive || st->stop) {
        uh_conn_linger(st, c);
    } else {
        c->state = UH_CS_HEAD;
        c->stamp = uh_ticks_ms();
        c->deadline = c->stamp + st->timeout_ms;
        uh_conn_process(st, c);
    }
}

static void uh_conn_readable(uh_state_t *st, uh_conn_t *c) {
    if (c->state == UH_CS_LINGER) {
        char tmp[256];
        ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            uh_conn_close(st, c);
        }
        return;
    }
    if (c->len >= c->cap) {
        uh_reply_error_nogil(st, c, 431);
        return;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r == 0) {
        uh_conn_close(st, c);
        return;
    }
    if (r < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            uh_conn_close(st, c);
        }
        return;
    }
    if (c->len == 0) {
        /* a new request starts: the head must arrive within the timeout */
        c->deadline = uh_ticks_ms() + st->timeout_ms;
    }
    c->len += (size_t)r;
    c->stamp = uh_ticks_ms();
    uh_conn_process(st, c);
}

static void uh_accept(uh_state_t *st) {
    for (int i = 0; i < 64; i++) {
        int fd = accept(st->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop polling the listener briefly
                 * instead of spinning on it */
                st->accept_pause_until = uh_ticks_ms() + 100;
            }
            return;
        }
        uh_fd_track(fd);
        uh_set_nonblock(fd);
        uh_sock_tune(fd);
        #ifdef FD_CLOEXEC
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        #endif
        uh_conn_t *slot = NULL, *oldest = NULL;
        for (size_t k = 0; k < st->max_conns; k++) {
            uh_conn_t *c = &st->conns[k];
            if (c->state == UH_CS_FREE) {
                slot = c;
                break;
            }
            if ((c->state == UH_CS_HEAD && c->len == 0 && c->served) || c->state == UH_CS_LINGER) {
                if (oldest == NULL || uh_diff(c->stamp, oldest->stamp) < 0) {
                    oldest = c;
                }
            }
        }
        if (slot == NULL && oldest != NULL) {
            /* full: the oldest idle keep-alive connection makes room */
            uh_conn_close(st, oldest);
            slot = oldest;
        }
        if (slot == NULL) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, UH_SEND_FLAGS);
            (void)w;
            shutdown(fd, SHUT_WR);
            uh_close_fd(fd);
            continue;
        }
        slot->fd = fd;
        slot->state = UH_CS_HEAD;
        slot->len = 0;
        slot->head_len = 0;
        slot->served = 0;
        slot->stamp = uh_ticks_ms();
        slot->deadline = slot->stamp + st->timeout_ms;
    }
}

static void uh_check_timeouts(uh_state_t *st, uint32_t now) {
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->state == UH_CS_FREE || c->state == UH_CS_BUSY || uh_diff(now, c->deadline) < 0) {
            continue;
        }
        if (c->state == UH_CS_FILE_TX || c->state == UH_CS_FILE_RX) {
            uh_stream_abort(st, c, 408);   /* stalled transfer */
            continue;
        }
        if (c->state == UH_CS_HEAD && c->len > 0) {
            uh_reply_error_nogil(st, c, 408);    /* slow head (slowloris) */
        } else {
            uh_conn_close(st, c);                /* idle keep-alive / linger over */
        }
    }
}

static void uh_loop(uh_state_t *st) {
    while (!st->stop) {
        uint32_t now = uh_ticks_ms();
        int32_t timeout = 1000;
        size_t n = 0;
        st->pfds[n].fd = st->wake.rd;
        st->pfds[n].events = POLLIN;
        st->pconn[n++] = NULL;
        if (uh_diff(now, st->accept_pause_until) >= 0) {
            st->pfds[n].fd = st->lfd;
            st->pfds[n].events = POLLIN;
            st->pconn[n++] = NULL;
        } else {
            timeout = 100;
        }
        for (size_t k = 0; k < st->max_conns; k++) {
            uh_conn_t *c = &st->conns[k];
            if (c->state != UH_CS_HEAD && c->state != UH_CS_LINGER
                && c->state != UH_CS_FILE_TX && c->state != UH_CS_FILE_RX) {
                continue;
            }
            st->pfds[n].fd = c->fd;
            st->pfds[n].events = c->state == UH_CS_FILE_TX ? POLLOUT : POLLIN;
            st->pconn[n++] = c;
            int32_t left = uh_diff(c->deadline, now);
            if (left < 0) {
                left = 0;
            }
            if (left < timeout) {
                timeout = left + 1;
            }
        }
        size_t sse_at = n;
        size_t sse_n = 0;
        if (st->n_sse) {
            sse_n = uh_sse_prepare(st, st->pfds + n);
            n += sse_n;
            int32_t ping = uh_sse_tick(st, now);
            if (ping < timeout) {
                timeout = ping;
            }
        }
        for (size_t i = 0; i < sse_at; i++) {
            st->pfds[i].revents = 0;
        }
        #if MICROPY_PY_OS_DUPTERM_NOTIFY
        /* a REPL session fed by os.dupterm_notify (ESP32): watch its socket */
        size_t ws_at = n;
        int ws_fd = uh_ws_notify_fd();
        if (ws_fd >= 0) {
            st->pfds[n].fd = ws_fd;
            st->pfds[n].events = POLLIN;
            st->pfds[n].revents = 0;
            n++;
        }
        #endif
        int r = uh_poll(st->pfds, n, timeout);
        #if MICROPY_PY_OS_DUPTERM_NOTIFY
        if (r > 0 && ws_fd >= 0 && st->pfds[ws_at].revents) {
            MP_THREAD_GIL_ENTER();
            uh_ws_notify();
            MP_THREAD_GIL_EXIT();
        }
        #endif
        if (r < 0 && errno != EINTR) {
            break;
        }
        if (st->stop) {
            break;
        }
        if (r > 0 && sse_n) {
            uh_sse_handle(st, st->pfds + sse_at, sse_n);
        }
        if (r > 0) {
            for (size_t i = 0; i < sse_at; i++) {
                short ev = st->pfds[i].revents;
                if (ev == 0) {
                    continue;
                }
                uh_conn_t *c = st->pconn[i];
                if (c == NULL) {
                    if (st->pfds[i].fd == st->wake.rd) {
                        uh_wakeup_drain(&st->wake);
                    } else {
                        uh_accept(st);
                    }
                } else if (c->fd == st->pfds[i].fd && (c->state == UH_CS_FILE_TX || c->state == UH_CS_FILE_RX)) {
                    uh_stream_pump(st, c, ev);
                } else if (c->fd == st->pfds[i].fd && (c->state == UH_CS_HEAD || c->state == UH_CS_LINGER)) {
                    if (ev & (POLLERR | POLLNVAL)) {
                        uh_conn_close(st, c);
                    } else {
                        uh_conn_readable(st, c);
                    }
                }
            }
        }
        uh_check_timeouts(st, uh_ticks_ms());
    }
}

static void uh_state_unlink(uh_state_t *st) {
    uh_state_t **pp = &MP_STATE_VM(uhttpd_servers);
    while (*pp != NULL) {
        if (*pp == st) {
            *pp = st->next;
            break;
        }
        pp = &(*pp)->next;
    }
    st->next = NULL;
}

/*
 * Soft reset on ESP32 (cannot be run here; the reasoning):
 *
 * ports/esp32/main.c calls mp_thread_deinit(), which vTaskDelete()s this
 * task wherever it is, then gc_sweep_all() runs finalisers, then mp_deinit()
 * and a fresh heap.  What a deleted task can leave behind, and why it is
 * harmless:
 *  - lwIP state: the only lwIP call that links caller-stack memory into a
 *    global list is select()/poll() with a timeout (lwip_select links a
 *    record on the caller's stack into select_cb_list until it returns); a
 *    task deleted inside it would leave that record dangling for every later
 *    select() in the system.  So on ESP32 the server never waits inside
 *    lwIP: uh_poll() polls with a zero timeout (which returns before linking
 *    anything) and sleeps between polls in FreeRTOS (vTaskDelay, one tick;
 *    the board sets CONFIG_FREERTOS_HZ=1000, so 1 ms), without the GIL.
 *    Every other socket call holds no caller memory once it returns.
 *  - sockets: every fd the server opens is recorded in uh_fdmap (static
 *    memory, not the heap).  The Core finaliser runs in gc_sweep_all and only
 *    sets a flag; but the module's __init__ runs on the first import after
 *    the reset and closes every recorded fd, so the port is free and
 *    `Server(80)` after Ctrl-D binds again.
 *  - root pointers: MP_STATE_VM(uhttpd_servers) is not cleared by mp_init;
 *    __init__ sets it to NULL before anything reads it, so no stale pointer
 *    into the old heap is ever followed.
 *  - the GIL: mp_init() re-initialises it (py/runtime.c), so a task
 *    deleted while holding it does not block the new interpreter.
 *  - heap memory (buffers, queues) disappears with the old heap; nothing in
 *    static memory points into it except the root pointer handled above.
 */
static void *uh_thread_entry(void *arg) {
    uh_state_t *st = arg;
    /* Take the GIL before touching thread state: the creator adjusts
     * st->stack_size after the thread already runs (micropython-notes 2). */
    MP_THREAD_GIL_ENTER();
    mp_state_thread_t ts;
    mp_thread_init_state(&ts, st->stack_size, NULL, NULL);
    /* Only a "ready" thread has its stack scanned by the GC. */
    mp_thread_start();
    st->thread_id = mp_thread_get_id();

    uh_port_thread_init();

    MP_THREAD_GIL_EXIT();
    uh_loop(st);
    MP_THREAD_GIL_ENTER();

    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->state == UH_CS_FILE_TX || c->state == UH_CS_FILE_RX) {
            MP_THREAD_GIL_EXIT();
            uh_stream_abort(st, c, 0);
            MP_THREAD_GIL_ENTER();
        }
        uh_conn_close(st, c);
    }
    uh_sse_close_all(st);
    if (st->lfd >= 0) {
        uh_close_fd(st->lfd);
        st->lfd = -1;
    }
    uh_wakeup_close(&st->wake);
    uh_state_unlink(st);
    st->running = 0;
    mp_thread_finish();
    MP_THREAD_GIL_EXIT();
    return NULL;
}

void uh_state_start(uh_state_t *st) {
    st->running = 1;
    st->stack_size = UH_THREAD_STACK;
    st->next = MP_STATE_VM(uhttpd_servers);
    MP_STATE_VM(uhttpd_servers) = st;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_thread_create(uh_thread_entry, st, &st->stack_size);
        nlr_pop();
    } else {
        uh_state_unlink(st);
        st->running = 0;
        nlr_jump(nlr.ret_val);
    }
}

/* Stop the thread and wait until it has closed its sockets (GIL held).
 * From inside the server thread (a handler calling close()) only ask. */
void uh_thread_stop_wait(uh_state_t *st) {
    if (!st->running) {
        return;
    }
    st->stop = 1;
    uh_wakeup_signal(&st->wake);
    if (st->thread_id != 0 && st->thread_id == mp_thread_get_id()) {
        return;
    }
    while (st->running) {
        MP_THREAD_GIL_EXIT();
        uh_sleep_ms(1);
        MP_THREAD_GIL_ENTER();
    }
}

MP_REGISTER_ROOT_POINTER(struct _uh_state_t *uhttpd_servers);
