/*
 * uhttpd: the HTTP connection kind: request heads, bodies, replies.
 *
 * States (uh_server.h): TLS handshake -> HEAD -> [BODY] -> BUSY (handler)
 * -> HEAD again (keep-alive), LINGER (closing), or a file stream
 * (FILE_TX / FILE_RX, uh_files.c).
 *
 * Rules (design.md section 7):
 *  - a body that fits the connection's buffer (body_buffer) is received by
 *    the loop before the handler runs (state BODY), so read() never waits
 *    on the network for it;
 *  - a reply that did not read the body never waits for it: the reply goes
 *    out and the connection lingers (the loop discards what still comes)
 *    unless the whole body is already in;
 *  - a handler that must wait on the network (a body larger than the
 *    buffer, a reader slower than its reply) waits in uh_wait_io, which
 *    runs nested loop passes: other clients are served meanwhile, and the
 *    waiting client must keep up min_rate;
 *  - error replies from the loop are sent without waiting.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/mperrno.h"
#include "py/objstr.h"

#include "uh_server.h"
#include "uh_form.h"
#if UH_TLS
#include "uh_tls.h"
#endif

/* ---- connection table ---------------------------------------------------- */

void uh_conn_close(uh_state_t *st, uh_conn_t *c) {
    (void)st;
    uh_io_close(&c->io);
    c->state = UH_CS_FREE;
    c->len = 0;
    c->pending = 0;
}

/* Half-close after a final reply and read until EOF (bounded in time), so
 * unread request bytes do not turn the close into a reset that destroys
 * the reply before the client reads it. */
void uh_conn_linger(uh_state_t *st, uh_conn_t *c) {
    (void)st;
    if (c->io.fd < 0) {
        uh_conn_close(st, c);
        return;
    }
    #if UH_TLS
    if (c->io.tls != NULL) {
        /* close_notify now; what still comes is discarded unread */
        uh_tls_conn_free(c->io.tls, 1);
        c->io.tls = NULL;
        c->io.want = 0;
    }
    #endif
    shutdown(c->io.fd, SHUT_WR);
    c->state = UH_CS_LINGER;
    c->len = 0;
    c->pending = 0;
    c->deadline = uh_ticks_ms() + UH_LINGER_MS;
}

/* Error reply from the loop (no GIL): complete, small, sent without
 * waiting (a client that does not read gets no reply), then linger. */
static void uh_reply_error_nogil(uh_state_t *st, uh_conn_t *c, int status) {
    char b[256];
    const char *reason = uh_status_reason(status);
    int blen = snprintf(b + 128, 128, "%d %s\n", status, reason);
    int n = snprintf(b, 128, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n",
        status, reason, blen, st->cors ? "Access-Control-Allow-Origin: *\r\n" : "");
    if (n > 0 && n < 128 && blen > 0 && blen < 128) {
        memmove(b + n, b + 128, (size_t)blen);
        size_t len = (size_t)(n + blen), off = 0;
        for (int tries = 0; off < len && tries < 4; tries++) {
            ssize_t w = uh_io_send(&c->io, b + off, len - off, 0);
            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
    }
    uh_conn_linger(st, c);
}

static int uh_body_complete(uh_conn_t *c);

/* ---- handler-facing I/O (GIL held on entry/exit) ----------------------- */

void uh_send_gil(uh_state_t *st, uh_conn_t *c, const void *data, size_t len, int more) {
    if (c->io.fd < 0 || c->io_error) {
        mp_raise_OSError(MP_ECONNRESET);
    }
    const char *p = data;
    int ok = 1;
    MP_THREAD_GIL_EXIT();
    while (len > 0) {
        ssize_t r = uh_io_send(&c->io, p, len, more);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            uh_rate_progress(c, (size_t)r);
            continue;
        }
        if (r == UH_IO_AGAIN && uh_wait_io(st, c, POLLOUT) == 1) {
            continue;
        }
        ok = 0;
        break;
    }
    MP_THREAD_GIL_ENTER();
    if (!ok) {
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

/* Receive body bytes for a handler into dst (GIL held; released while
 * waiting).  >0 bytes, raises on EOF/error/too slow. */
static size_t uh_body_recv(uh_state_t *st, uh_conn_t *c, char *dst, size_t n) {
    ssize_t r;
    int w = 1;
    MP_THREAD_GIL_EXIT();
    for (;;) {
        r = uh_io_recv(&c->io, dst, n);
        if (r != UH_IO_AGAIN) {
            break;
        }
        w = uh_wait_io(st, c, POLLIN);
        if (w != 1) {
            break;
        }
    }
    MP_THREAD_GIL_ENTER();
    if (w == 0) {
        uh_body_fail(c, 408, MP_ETIMEDOUT);
    }
    if (w < 0 || r <= 0) {
        uh_body_fail(c, 0, MP_ECONNRESET);
    }
    uh_rate_progress(c, (size_t)r);
    return (size_t)r;
}

/* Chunked: receive into the connection buffer after the head and decode in
 * place (every raw byte is consumed by the decoder); the decoded bytes are
 * then at buf[rpos..rpos+ravail). */
static void uh_body_recv_chunked(uh_state_t *st, uh_conn_t *c) {
    c->rpos = c->head_len;
    c->len = c->head_len;
    if (c->cap <= c->len) {
        uh_body_fail(c, 413, MP_EFBIG);   /* no room after a maximal head (body_buffer=0) */
    }
    size_t dn = uh_body_recv(st, c, c->buf + c->len, c->cap - c->len);
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

void uh_body_consume(uh_conn_t *c, size_t k) {
    c->rpos += k;
    c->ravail -= k;
    if (c->body_kind == UH_BODY_LENGTH) {
        c->body_left -= k;
        if (c->body_left == 0) {
            c->body_done = 1;
        }
    }
}

size_t uh_body_fill(uh_state_t *st, uh_conn_t *c) {
    if (c->body_kind == UH_BODY_NONE) {
        return 0;
    }
    while (c->ravail == 0) {
        if (c->io_error) {
            mp_raise_OSError(MP_ECONNRESET);
        }
        if (c->body_done) {
            return 0;
        }
        uh_send_continue(st, c);
        if (c->body_kind == UH_BODY_CHUNKED) {
            uh_body_recv_chunked(st, c);
            continue;
        }
        /* nothing of the body is buffered, so nothing after it either:
         * the buffer after the head is free */
        size_t room = c->cap > c->head_len ? c->cap - c->head_len : 0;
        if ((uint64_t)room > c->body_left) {
            room = (size_t)c->body_left;
        }
        if (room == 0) {
            uh_body_fail(c, 413, MP_EFBIG);
        }
        size_t r = uh_body_recv(st, c, c->buf + c->head_len, room);
        c->rpos = c->head_len;
        c->ravail = r;
        c->len = c->head_len + r;
    }
    return c->ravail;
}

/* Read up to n body bytes into dst.  Returns 0 at the end of the body. */
mp_int_t uh_body_read(uh_state_t *st, uh_conn_t *c, char *dst, size_t n) {
    if (n == 0 || c->body_kind == UH_BODY_NONE) {
        return 0;
    }
    if (c->ravail == 0 && c->body_kind == UH_BODY_LENGTH && !c->body_done && !c->io_error) {
        /* nothing buffered: receive straight into the caller's buffer */
        uh_send_continue(st, c);
        size_t want = n;
        if ((uint64_t)want > c->body_left) {
            want = (size_t)c->body_left;
        }
        size_t r = uh_body_recv(st, c, dst, want);
        c->body_left -= (uint64_t)r;
        if (c->body_left == 0) {
            c->body_done = 1;
        }
        return (mp_int_t)r;
    }
    size_t avail = uh_body_fill(st, c);
    size_t k = n < avail ? n : avail;
    memcpy(dst, c->buf + c->rpos, k);
    uh_body_consume(c, k);
    return (mp_int_t)k;
}

void uh_send_continue(uh_state_t *st, uh_conn_t *c) {
    if (c->req.expect_continue && !c->continue_sent && !c->body_done && c->req.minor_version == 1) {
        c->continue_sent = 1;
        uh_send_gil(st, c, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0);
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
    uh_out_t o = { c->tx, 0, UH_TX_BUF };
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
    if (st->stop || !uh_body_complete(c)) {
        /* a body that is not all in by now is never waited for */
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
        memcpy(c->tx + n, body, blen);
        n += blen;
    }
    uh_send_gil(st, c, c->tx, n, 0);
    c->resp = UH_RESP_WRITTEN;
}

/* ---- bodies -------------------------------------------------------------- */

/* Set up the body reader from the parsed head (no GIL).  0, or a status. */
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

/* The whole body is in the buffer. */
static int uh_body_complete(uh_conn_t *c) {
    switch (c->body_kind) {
        case UH_BODY_LENGTH:
            return c->ravail == c->body_left;
        case UH_BODY_CHUNKED:
            return c->body_done;
        default:
            return 1;
    }
}

/* The body is (so far) within body_buffer: the loop receives it. */
static int uh_body_fits(uh_state_t *st, uh_conn_t *c) {
    if (c->body_kind == UH_BODY_LENGTH) {
        return c->body_left <= st->body_buffer;
    }
    return c->body_total <= st->body_buffer;
}

/* Bytes of body still expected from the network (UINT64_MAX: unknown). */
static uint64_t uh_body_expect(uh_conn_t *c) {
    if (c->body_kind == UH_BODY_LENGTH) {
        return c->body_left - c->ravail;
    }
    return c->body_kind == UH_BODY_CHUNKED && !c->body_done ? UINT64_MAX : 0;
}

/* After the handler (GIL held): skip a body that is wholly buffered, so the
 * next request starts at the right byte; otherwise the connection closes
 * (never wait here for a body nobody reads). */
static void uh_body_finish(uh_conn_t *c) {
    if (c->body_kind == UH_BODY_NONE || c->io_error) {
        return;
    }
    if (c->body_kind == UH_BODY_LENGTH && c->body_done) {
        return;
    }
    if (uh_body_complete(c)) {
        c->rpos += c->ravail;
        c->ravail = 0;
        c->body_left = 0;
        c->body_done = 1;
    } else {
        c->keep_alive = 0;
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
    c->body_kind = UH_BODY_NONE;
}

static void uh_conn_process(uh_state_t *st, uh_conn_t *c);

/* Serve one parsed request whose body is set up: take the GIL, route and
 * run Python, finish.  No GIL on entry and exit. */
static void uh_serve(uh_state_t *st, uh_conn_t *c) {
    c->state = UH_CS_BUSY;
    c->resp = UH_RESP_NONE;
    c->continue_sent = 0;
    c->io_error = 0;
    c->close_delim = 0;
    c->err_status = 0;
    c->keep_alive = c->req.keep_alive ? 1 : 0;
    c->head_only = c->req.method == UH_M_HEAD;
    uh_rate_start(st, c, uh_body_expect(c));

    uh_conn_scratch(st, c);
    st->depth++;
    MP_THREAD_GIL_ENTER();
    uhttpd_request_obj_t *ro = c->reqobj;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        uh_handle_request(st, c);
        nlr_pop();
    } else {
        mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
        if (!c->io_error && !c->err_status) {
            /* (err_status: a bad request body, e.g. a malformed form; the
             * client's fault, not the handler's: no traceback) */
            mp_printf(MICROPY_ERROR_PRINTER, "uhttpd: exception in handler\n");
            mp_obj_print_exception(MICROPY_ERROR_PRINTER, exc);
        }
        if (c->resp == UH_RESP_NONE && c->io.fd >= 0 && (!c->io_error || c->err_status)) {
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
    ro->conn = NULL;   /* a Request kept past its handler is dead */
    uh_form_end(c);    /* and so are its parts() */
    if (c->resp == UH_RESP_DEFERRED && c->io.fd >= 0 && !c->io_error) {
        /* a file stream takes over; the loop completes the reply */
        if (c->next_state == UH_CS_FILE_TX) {
            uh_body_finish(c);
        }
        MP_THREAD_GIL_EXIT();
        st->depth--;
        c->served = 1;
        if (c->next_state == UH_CS_FILE_TX) {
            uh_conn_compact(c);
        }
        c->state = c->next_state;
        c->stamp = uh_ticks_ms();
        uh_rate_start(st, c, c->next_state == UH_CS_FILE_TX ? c->file_left : uh_body_expect(c));
        return;
    }
    uh_body_finish(c);
    MP_THREAD_GIL_EXIT();
    st->depth--;

    c->served = 1;
    if (c->io.fd < 0) {
        uh_conn_close(st, c);
    } else if (c->io_error) {
        uh_conn_close(st, c);
    } else if (!c->keep_alive || st->stop) {
        uh_conn_linger(st, c);
    } else {
        uh_conn_compact(c);
        c->state = UH_CS_HEAD;
        c->stamp = uh_ticks_ms();
        c->deadline = c->stamp + st->timeout_ms;
        /* a pipelined request behind it: the caller's uh_conn_process loop */
    }
}

/* Run the handler now if a handler level is free, else leave the request
 * pending (a nested pass is at its depth limit); the loop comes back. */
static void uh_dispatch(uh_state_t *st, uh_conn_t *c) {
    if (st->depth >= st->nest_max) {
        c->state = UH_CS_HEAD;
        c->pending = 1;
        st->pending_any = 1;
        return;
    }
    c->pending = 0;
    uh_serve(st, c);
}

void uh_http_process_pending(uh_state_t *st) {
    st->pending_any = 0;
    for (size_t k = 0; k < st->max_conns && !st->stop; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->pending) {
            if (st->depth >= st->nest_max) {
                st->pending_any = 1;
                return;
            }
            c->pending = 0;
            uh_serve(st, c);
            uh_conn_process(st, c);
        }
    }
}

/* Body bytes arrived in state BODY; dispatch once it is all in (or the
 * buffer is full: the handler streams the rest). */
static void uh_body_progress(uh_state_t *st, uh_conn_t *c, size_t old_len) {
    if (c->body_kind == UH_BODY_CHUNKED) {
        size_t dn = c->len - old_len;
        int d = uh_decode_chunked(&c->chunk, c->buf + old_len, &dn);
        if (d < 0 && d != UH_PARTIAL) {
            uh_reply_error_nogil(st, c, -d);
            return;
        }
        c->ravail += dn;
        c->body_total += dn;
        c->len = old_len + dn;
        if (d >= 0) {
            c->body_done = 1;
            c->len += (size_t)d;
        }
        if (c->body_total > st->max_body) {
            uh_reply_error_nogil(st, c, 413);
            return;
        }
    } else {
        size_t buffered = c->len - c->head_len;
        c->ravail = buffered < c->body_left ? buffered : (size_t)c->body_left;
    }
    if (uh_body_complete(c) || c->len >= c->cap || !uh_body_fits(st, c)) {
        uh_dispatch(st, c);
        uh_conn_process(st, c);
    }
}

/* Parse and serve every complete request in the buffer (pipelining). */
static void uh_conn_process(uh_state_t *st, uh_conn_t *c) {
    while (c->state == UH_CS_HEAD && c->len > 0 && !st->stop && !c->pending) {
        c->req.headers = (uh_header_t *)(c->buf + c->cap);
        c->req.max_headers = UH_MAX_HEADERS;
        /* a head longer than max_header is an error wherever it ends:
         * parse no further than that */
        size_t plen = c->len < st->max_header ? c->len : st->max_header;
        int r = uh_parse_request(c->buf, plen, &c->req);
        if (r == UH_PARTIAL) {
            if (c->len >= st->max_header) {
                uh_reply_error_nogil(st, c, -uh_parse_overflow(c->buf, st->max_header));
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
        int status = uh_body_setup(st, c);
        if (status != 0) {
            uh_reply_error_nogil(st, c, status);
            return;
        }
        if (!uh_body_complete(c) && !c->req.expect_continue && c->len < c->cap && uh_body_fits(st, c)) {
            /* the loop receives the body before the handler runs */
            c->state = UH_CS_BODY;
            uh_rate_start(st, c, uh_body_expect(c));
            return;
        }
        uh_dispatch(st, c);
    }
}

/* A streamed reply is complete (no GIL): keep the connection or close. */
void uh_conn_finish_reply(uh_state_t *st, uh_conn_t *c) {
    if (c->io.fd < 0) {
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
        for (int i = 0; i < 16; i++) {
            ssize_t r = recv(c->io.fd, tmp, sizeof(tmp), 0);
            if (r > 0) {
                continue;
            }
            if (r == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
                uh_conn_close(st, c);
            }
            return;
        }
        return;
    }
    if (c->len >= c->cap) {
        uh_reply_error_nogil(st, c, 431);
        return;
    }
    size_t old = c->len;
    ssize_t r = uh_io_recv(&c->io, c->buf + c->len, c->cap - c->len);
    if (r == UH_IO_AGAIN) {
        return;
    }
    if (r <= 0) {
        uh_conn_close(st, c);
        return;
    }
    uint32_t now = uh_ticks_ms();
    if (c->state == UH_CS_HEAD && c->len == 0) {
        /* a new request starts: the head must arrive within the timeout */
        c->deadline = now + st->timeout_ms;
    }
    c->len += (size_t)r;
    c->stamp = now;
    if (c->state == UH_CS_BODY) {
        uh_rate_progress(c, (size_t)r);
        uh_body_progress(st, c, old);
    } else {
        uh_conn_process(st, c);
    }
}

#if UH_TLS
/* TLS handshake step (no GIL).  Plain HTTP on the TLS port gets a plain
 * 400; a failed handshake closes. */
static void uh_conn_tls_step(uh_state_t *st, uh_conn_t *c) {
    if (c->io.tls == NULL) {
        uint8_t b[8];
        ssize_t r = recv(c->io.fd, b, sizeof(b), MSG_PEEK);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        if (r <= 0) {
            uh_conn_close(st, c);
            return;
        }
        int s = uh_tls_sniff(b, (size_t)r);
        if (s == UH_TLS_SNIFF_HTTP) {
            /* plain HTTP on the TLS port: a plain answer, then close */
            uh_reply_error_nogil(st, c, 400);
            return;
        }
        if (s == UH_TLS_SNIFF_MORE) {
            return;   /* too few bytes to tell yet */
        }
        if (s != UH_TLS_SNIFF_TLS) {
            uh_conn_close(st, c);   /* neither TLS nor HTTP */
            return;
        }
        c->io.tls = uh_tls_conn_new((uh_tls_server_t *)st->tls, c->io.fd);
        if (c->io.tls == NULL) {
            uh_conn_close(st, c);   /* out of memory: nothing else to do */
            return;
        }
    }
    int h = uh_tls_handshake(c->io.tls);
    if (h == UH_TLS_OK) {
        c->io.want = 0;
        c->state = UH_CS_HEAD;
        c->len = 0;
        c->stamp = uh_ticks_ms();
        c->deadline = c->stamp + st->timeout_ms;
        return;
    }
    if (h == UH_TLS_WANT_READ) {
        c->io.want = POLLIN;
    } else if (h == UH_TLS_WANT_WRITE) {
        c->io.want = POLLOUT;
    } else {
        uh_conn_close(st, c);
    }
}
#endif

/* ---- accept ---------------------------------------------------------------- */

void uh_http_accept(uh_state_t *st, int fd) {
    uh_conn_t *slot = NULL, *oldest = NULL;
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->state == UH_CS_FREE) {
            slot = c;
            break;
        }
        if ((c->state == UH_CS_HEAD && c->len == 0 && c->served && !c->pending) || c->state == UH_CS_LINGER) {
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
        if (st->tls == NULL) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, UH_SEND_FLAGS);
            (void)w;
            shutdown(fd, SHUT_WR);
            /* linger a moment so the request's bytes do not turn the close
             * into a reset that the client sees before the 503 */
            for (size_t k = 0; k < UH_REJECT_SLOTS; k++) {
                if (st->rejects[k].fd < 0) {
                    st->rejects[k].fd = fd;
                    st->rejects[k].deadline = uh_ticks_ms() + UH_LINGER_MS;
                    return;
                }
            }
        }
        uh_close_fd(fd);
        return;
    }
    slot->io.fd = fd;
    slot->io.tls = NULL;
    slot->io.want = 0;
    slot->state = st->tls != NULL ? UH_CS_TLS : UH_CS_HEAD;
    slot->len = 0;
    slot->head_len = 0;
    slot->served = 0;
    slot->pending = 0;
    slot->body_kind = UH_BODY_NONE;
    slot->stamp = uh_ticks_ms();
    slot->deadline = slot->stamp + st->timeout_ms;
}

/* ---- the kind's operations ------------------------------------------------ */

static size_t uh_http_prepare(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout,
    uint32_t now) {
    size_t n = 0;
    for (size_t k = 0; k < UH_REJECT_SLOTS && n < room; k++) {
        uh_reject_t *rj = &st->rejects[k];
        if (rj->fd < 0) {
            continue;
        }
        p[n].fd = rj->fd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        e[n].kind = &uh_kind_http;
        e[n].owner = rj;
        e[n].io = NULL;
        n++;
        int32_t left = uh_diff(rj->deadline, now);
        if (left < 0) {
            left = 0;
        }
        if (left < *timeout || *timeout < 0) {
            *timeout = left + 1;
        }
    }
    for (size_t k = 0; k < st->max_conns && n < room; k++) {
        uh_conn_t *c = &st->conns[k];
        short ev;
        switch (c->state) {
            case UH_CS_TLS:
                ev = c->io.want ? c->io.want : POLLIN;
                break;
            case UH_CS_HEAD:
            case UH_CS_BODY:
            case UH_CS_LINGER:
                ev = uh_io_events(&c->io, POLLIN);
                break;
            case UH_CS_FILE_TX:
            case UH_CS_FILE_RX:
                ev = uh_stream_events(c);
                break;
            default:
                continue;   /* free, or busy: its handler waits on it */
        }
        if (c->pending) {
            continue;
        }
        p[n].fd = c->io.fd;
        p[n].events = ev;
        p[n].revents = 0;
        e[n].kind = &uh_kind_http;
        e[n].owner = c;
        e[n].io = &c->io;
        n++;
        int32_t left = uh_diff(c->deadline, now);
        if (left < 0) {
            left = 0;
        }
        if (left < *timeout || *timeout < 0) {
            *timeout = left + 1;
        }
    }
    return n;
}

static int uh_is_reject(uh_state_t *st, void *owner) {
    return (char *)owner >= (char *)st->rejects && (char *)owner < (char *)(st->rejects + UH_REJECT_SLOTS);
}

static void uh_reject_close(uh_reject_t *rj) {
    uh_close_fd(rj->fd);
    rj->fd = -1;
}

static void uh_http_ready(uh_state_t *st, void *owner, short ev) {
    if (uh_is_reject(st, owner)) {
        uh_reject_t *rj = owner;
        char tmp[256];
        for (int i = 0; rj->fd >= 0 && i < 16; i++) {
            ssize_t r = recv(rj->fd, tmp, sizeof(tmp), 0);
            if (r > 0) {
                continue;
            }
            if (r == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) || (ev & (POLLERR | POLLNVAL))) {
                uh_reject_close(rj);
            }
            break;
        }
        return;
    }
    uh_conn_t *c = owner;
    if (c->pending) {
        return;
    }
    switch (c->state) {
        case UH_CS_FILE_TX:
        case UH_CS_FILE_RX:
            uh_stream_pump(st, c, ev);
            return;
        case UH_CS_TLS:
        case UH_CS_HEAD:
        case UH_CS_BODY:
        case UH_CS_LINGER:
            break;
        default:
            return;   /* stale event: the connection moved on in a nested pass */
    }
    if (ev & (POLLERR | POLLNVAL)) {
        uh_conn_close(st, c);
        return;
    }
    #if UH_TLS
    if (c->state == UH_CS_TLS) {
        uh_conn_tls_step(st, c);
        return;
    }
    #endif
    uh_conn_readable(st, c);
}

static void uh_http_tick(uh_state_t *st, uint32_t now) {
    for (size_t k = 0; k < UH_REJECT_SLOTS; k++) {
        if (st->rejects[k].fd >= 0 && uh_diff(now, st->rejects[k].deadline) >= 0) {
            uh_reject_close(&st->rejects[k]);
        }
    }
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->state == UH_CS_FREE || c->state == UH_CS_BUSY || c->pending || uh_diff(now, c->deadline) < 0) {
            continue;
        }
        switch (c->state) {
            case UH_CS_FILE_TX:
                if (uh_rate_check(st, c, now, c->file_left + (c->fend - c->fpos))) {
                    uh_stream_abort(st, c, 408);   /* stalled or too slow */
                }
                break;
            case UH_CS_FILE_RX:
            case UH_CS_BODY:
                if (uh_rate_check(st, c, now, uh_body_expect(c))) {
                    if (c->state == UH_CS_FILE_RX) {
                        uh_stream_abort(st, c, 408);
                    } else {
                        uh_reply_error_nogil(st, c, 408);
                    }
                }
                break;
            case UH_CS_HEAD:
                if (c->len > 0) {
                    uh_reply_error_nogil(st, c, 408);    /* slow head (slowloris) */
                } else {
                    uh_conn_close(st, c);                /* idle keep-alive */
                }
                break;
            default:
                uh_conn_close(st, c);                    /* handshake or linger over */
                break;
        }
    }
}

static void uh_http_shutdown(uh_state_t *st) {
    for (size_t k = 0; k < UH_REJECT_SLOTS; k++) {
        if (st->rejects[k].fd >= 0) {
            uh_reject_close(&st->rejects[k]);
        }
    }
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->state == UH_CS_FILE_TX || c->state == UH_CS_FILE_RX) {
            uh_stream_abort(st, c, 0);
        }
        uh_conn_close(st, c);
    }
}

const uh_kind_t uh_kind_http = {
    .prepare = uh_http_prepare,
    .ready = uh_http_ready,
    .tick = uh_http_tick,
    .shutdown = uh_http_shutdown,
};
