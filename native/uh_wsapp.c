/*
 * uhttpd: application WebSockets (design.md section 10), a connection kind.
 *
 * Server.websocket(url, callback, clients, max_msg, ...) allocates, when it
 * is called, `clients` slots for that url, each with its frame parser and
 * message buffer (max_msg bytes), a send queue (the server's ws_queue bytes)
 * and its Python WebSocket object: an open connection costs no more heap.
 *
 * A GET with Upgrade: websocket on the url is answered here (in a handler
 * context: auth, CORS and routing have run): 403 for an Origin not in
 * `origins`, 426 for a version other than 13, 400 without a key, 503 when
 * every slot is taken (before the upgrade), else 101; the connection (plain
 * or TLS) then leaves the HTTP table for a slot.
 *
 * Frames are parsed in C (uh_wsframe.c, RFC 6455 with masking required,
 * UTF-8 checked): callback(ws, msg) runs in the server thread with the GIL
 * for each complete message (str for text, bytes for binary); pings are
 * answered, a close is echoed, a protocol error closes with its code, and
 * on_close(ws, code) runs once per connection.
 *
 * ws.send() and Server.broadcast() may run in any thread and never wait on
 * the network: the frame goes into the client's queue (under a mutex) and
 * the loop sends it without the GIL; a client whose queue cannot take a
 * frame has fallen behind and is closed with 1008.  Only the loop closes
 * the sockets (lwIP's rule).
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/objstr.h"
#include "py/mperrno.h"

#include "uh_server.h"
#include "uh_wsframe.h"

enum {
    UH_WSC_FREE = 0,
    UH_WSC_OPEN,      /* messages flow */
    UH_WSC_CLOSING,   /* our close frame is queued: flush it, then linger */
    UH_WSC_LINGER,    /* close sent, write side shut: read what is left, then close */
};

typedef struct _uh_wsc_t {
    uh_io_t io;
    struct _uh_wsroute_t *route;
    mp_obj_t obj;              /* the Python WebSocket object (one per slot) */
    uint8_t state;
    uint8_t close_rcvd;        /* the peer's close frame came */
    uint8_t want_close;        /* another thread asked for a close: code in close_code */
    uint8_t notify;            /* on_close still to be called */
    uint8_t fail;              /* failing the connection: no need to wait for the peer's close */
    uint16_t close_code;       /* the code on_close reports */
    uint32_t id;
    uint32_t deadline;         /* CLOSING: the peer has until then */
    size_t qlen;               /* queued bytes */
    size_t head_rem;           /* bytes of the frame at the queue head still to send (0: at a boundary) */
    char *q;                   /* ws_queue bytes */
    uh_wsp_t p;                /* parser; p.msg is max_msg bytes */
} uh_wsc_t;

typedef struct _uh_wsroute_t {
    mp_obj_base_t base;        /* a small object: it sits in the route table */
    struct _uh_wsroute_t *next;
    uh_state_t *st;
    mp_obj_t url;
    mp_obj_t callback;
    mp_obj_t on_open;
    mp_obj_t on_close;
    mp_obj_t origins;          /* None, or a tuple of allowed Origin values (bytes) */
    size_t n;
    size_t max_msg;
    size_t qsize;              /* send queue per client: ws_queue, at least one max_msg frame */
    uh_wsc_t *c;
} uh_wsroute_t;

/* The object handed to callbacks, one per connection (16 B on 32-bit): an
 * object kept after its connection closed stays closed even when its slot
 * serves someone else (the id tells). */
typedef struct _uh_wsobj_t {
    mp_obj_base_t base;
    uh_wsc_t *c;
    uint32_t id;
} uh_wsobj_t;

static const mp_obj_type_t uh_ws_type;
static MP_DEFINE_CONST_OBJ_TYPE(
    uh_wsroute_type,
    MP_QSTR_WebSocketRoute,
    MP_TYPE_FLAG_NONE
    );

static uint32_t uh_ws_next_id;

/* ---- the send queue (st->ws_mutex held) ---------------------------------- */

/* Bytes of the frame that starts at q[off] (the queue holds whole frames). */
static size_t uh_wsq_frame_len(const char *q, size_t off) {
    const uint8_t *h = (const uint8_t *)q + off;
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        return 4 + ((size_t)h[2] << 8 | h[3]);
    }
    if (n == 127) {
        uint64_t v = 0;
        for (int i = 2; i < 10; i++) {
            v = v << 8 | h[i];
        }
        return 10 + (size_t)v;
    }
    return 2 + n;
}

/* Append one whole frame, or fail (the client fell behind). */
static int uh_wsq_push(uh_state_t *st, uh_wsc_t *w, int opcode, const void *data, size_t len) {
    uint8_t hdr[UH_WS_MAX_HEADER];
    size_t hn = uh_ws_header(hdr, opcode, 1, len);
    (void)st;
    if (hn == 0 || w->qlen + hn + len > w->route->qsize) {
        return 0;
    }
    memcpy(w->q + w->qlen, hdr, hn);
    memcpy(w->q + w->qlen + hn, data, len);
    w->qlen += hn + len;
    return 1;
}

/* Queue our close frame (once) and enter CLOSING.  When the queue cannot
 * take it, what is queued behind the frame being sent is dropped: a client
 * that fell behind gets the close sooner. */
static void uh_wsq_close(uh_state_t *st, uh_wsc_t *w, int code) {
    if (w->state != UH_WSC_OPEN) {
        return;
    }
    uint8_t frame[UH_WS_MAX_CLOSE_FRAME];
    size_t fn = uh_ws_close_frame(frame, code, NULL, 0);
    if (w->qlen + fn > w->route->qsize) {
        w->qlen = w->head_rem;   /* keep only the rest of the frame being sent */
    }
    if (w->qlen + fn <= w->route->qsize) {
        memcpy(w->q + w->qlen, frame, fn);
        w->qlen += fn;
    }
    w->state = UH_WSC_CLOSING;
    w->close_code = (uint16_t)code;
    w->deadline = uh_ticks_ms() + st->timeout_ms;
}

/* Send what is queued without waiting; -1 when the connection is gone. */
static int uh_wsq_flush(uh_wsc_t *w) {
    size_t off = 0;
    int ret = 0;
    while (off < w->qlen) {
        ssize_t r = uh_io_send(&w->io, w->q + off, w->qlen - off, 0);
        if (r <= 0) {
            if (r != UH_IO_AGAIN) {
                ret = -1;
            }
            break;
        }
        /* keep head_rem: the bytes of the head frame still unsent */
        size_t n = (size_t)r;
        size_t pos = off;
        while (n > 0) {
            if (w->head_rem == 0) {
                w->head_rem = uh_wsq_frame_len(w->q, pos);
            }
            size_t take = n < w->head_rem ? n : w->head_rem;
            w->head_rem -= take;
            n -= take;
            pos += take;
        }
        off += (size_t)r;
    }
    if (off > 0) {
        memmove(w->q, w->q + off, w->qlen - off);
        w->qlen -= off;
    }
    return ret;
}

/* ---- the slot's life ------------------------------------------------------ */

/* Close the socket (server thread only, no GIL); on_close is due. */
static void uh_wsc_drop(uh_wsc_t *w, int code) {
    if (w->state == UH_WSC_FREE) {
        return;
    }
    uh_io_close(&w->io);
    if (w->close_code == 0) {
        w->close_code = (uint16_t)code;
    }
    w->state = UH_WSC_FREE;
    w->qlen = 0;
    w->head_rem = 0;
    w->notify = 1;
}

/* Our close frame is out: shut the write side and read what the peer
 * still sends until it closes (bounded), so a reset does not destroy the
 * close frame before the peer reads it (RFC 6455 7.1.1: the server closes
 * the TCP connection first). */
static void uh_wsc_linger(uh_wsc_t *w) {
    #if UH_TLS
    if (w->io.tls != NULL) {
        uh_io_t tmp = w->io;
        tmp.fd = -1;
        uh_io_close(&tmp);   /* close_notify, free the TLS state */
        w->io.tls = NULL;
        w->io.want = 0;
    }
    #endif
    shutdown(w->io.fd, SHUT_WR);
    w->state = UH_WSC_LINGER;
    w->deadline = uh_ticks_ms() + UH_LINGER_MS;
}

/* Python callback with the GIL held; an exception is printed, the
 * connection goes on. */
static void uh_ws_call(mp_obj_t fn, size_t n, const mp_obj_t *args) {
    if (fn == mp_const_none || fn == MP_OBJ_NULL) {
        return;
    }
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_call_function_n_kw(fn, n, 0, args);
        nlr_pop();
    } else {
        mp_printf(MICROPY_ERROR_PRINTER, "uhttpd: exception in a WebSocket callback\n");
        mp_obj_print_exception(MICROPY_ERROR_PRINTER, MP_OBJ_FROM_PTR(nlr.ret_val));
    }
}

/* on_close for slots that ended (no GIL on entry). */
static void uh_ws_notify_closed(uh_state_t *st) {
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->n; i++) {
            uh_wsc_t *w = &r->c[i];
            if (!w->notify) {
                continue;
            }
            w->notify = 0;
            MP_THREAD_GIL_ENTER();
            if (r->on_close != mp_const_none) {
                mp_obj_t a[2] = { w->obj, MP_OBJ_NEW_SMALL_INT(w->close_code) };
                uh_ws_call(r->on_close, 2, a);
            }
            w->obj = mp_const_none;   /* the object may go; the slot is free */
            MP_THREAD_GIL_EXIT();
        }
    }
}

/* Feed received bytes to the parser and act on its events.  gil: the
 * caller holds the GIL already (the upgrade); else it is taken for the
 * callback only. */
static void uh_wsc_input(uh_state_t *st, uh_wsc_t *w, const uint8_t *data, size_t len, int gil) {
    size_t off = 0;
    while (off < len && w->state != UH_WSC_FREE) {
        size_t used;
        int ev = uh_wsp_feed(&w->p, data + off, len - off, &used);
        off += used;
        switch (ev) {
            case UH_WS_EV_MESSAGE: {
                if (w->state != UH_WSC_OPEN) {
                    break;   /* we are closing: late messages are not delivered */
                }
                if (!gil) {
                    MP_THREAD_GIL_ENTER();
                }
                nlr_buf_t nlr;
                if (nlr_push(&nlr) == 0) {
                    mp_obj_t msg = w->p.opcode == UH_WS_OP_TEXT
                        ? mp_obj_new_str((const char *)w->p.msg, w->p.msg_len)
                        : mp_obj_new_bytes(w->p.msg, w->p.msg_len);
                    mp_obj_t a[2] = { w->obj, msg };
                    uh_ws_call(w->route->callback, 2, a);
                    nlr_pop();
                } else {
                    /* out of memory for the message object */
                    mp_obj_print_exception(MICROPY_ERROR_PRINTER, MP_OBJ_FROM_PTR(nlr.ret_val));
                }
                if (!gil) {
                    MP_THREAD_GIL_EXIT();
                }
                break;
            }
            case UH_WS_EV_PING:
                mp_thread_mutex_lock(&st->ws_mutex, 1);
                if (w->state == UH_WSC_OPEN && !uh_wsq_push(st, w, UH_WS_OP_PONG, w->p.ctrl, w->p.ctrl_len)) {
                    w->fail = 1;   /* it does not read: fell behind */
                    uh_wsq_close(st, w, UH_WS_CLOSE_POLICY);
                }
                mp_thread_mutex_unlock(&st->ws_mutex);
                break;
            case UH_WS_EV_CLOSE: {
                w->close_rcvd = 1;
                int code = w->p.code == UH_WS_CLOSE_NO_STATUS ? UH_WS_CLOSE_NORMAL : w->p.code;
                mp_thread_mutex_lock(&st->ws_mutex, 1);
                if (w->state == UH_WSC_OPEN) {
                    /* echo the peer's code, then close (RFC 6455 5.5.1) */
                    uh_wsq_close(st, w, code);
                    w->close_code = (uint16_t)(w->p.code == UH_WS_CLOSE_NO_STATUS ? UH_WS_CLOSE_NO_STATUS : code);
                }
                mp_thread_mutex_unlock(&st->ws_mutex);
                return;
            }
            case UH_WS_EV_ERROR:
                mp_thread_mutex_lock(&st->ws_mutex, 1);
                w->fail = 1;   /* failing the connection (RFC 6455 7.1.7) */
                uh_wsq_close(st, w, w->p.code);
                mp_thread_mutex_unlock(&st->ws_mutex);
                return;
            default:
                break;   /* NEED_MORE, PONG */
        }
    }
}

/* ---- the upgrade (GIL held, in a handler) --------------------------------- */

static int uh_origin_ok(uh_conn_t *c, mp_obj_t origins) {
    if (origins == mp_const_none) {
        return 1;
    }
    const uh_header_t *h = uh_find_header(c, "origin", 6);
    if (h == NULL) {
        return 0;
    }
    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(origins, &n, &items);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *o = mp_obj_str_get_data(items[i], &len);
        if (len == h->value.len && memcmp(o, h->value.ptr, len) == 0) {
            return 1;
        }
    }
    return 0;
}

void uh_wsapp_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target) {
    uh_wsroute_t *r = MP_OBJ_TO_PTR(target);
    c->keep_alive = 0;
    if (!uh_origin_ok(c, r->origins)) {
        uh_reply_simple(st, c, 403, NULL, "Origin not allowed\n");
        return;
    }
    const uh_header_t *ver = uh_find_header(c, "sec-websocket-version", 21);
    if (ver == NULL || ver->value.len != 2 || memcmp(ver->value.ptr, "13", 2) != 0) {
        uh_reply_simple(st, c, 426, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n", NULL);
        return;
    }
    const uh_header_t *key = uh_find_header(c, "sec-websocket-key", 17);
    if (key == NULL || key->value.len != 24) {
        uh_reply_simple(st, c, 400, NULL, "Sec-WebSocket-Key required\n");
        return;
    }
    uh_wsc_t *w = NULL;
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    for (size_t i = 0; i < r->n; i++) {
        if (r->c[i].state == UH_WSC_FREE && !r->c[i].notify) {
            w = &r->c[i];
            break;
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    if (w == NULL) {
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "too many WebSocket clients\n");
        return;
    }
    char accept[29];
    uh_ws_accept(key->value.ptr, key->value.len, accept);
    char head[192];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", accept,
        st->cors ? "Access-Control-Allow-Origin: *\r\n" : "");
    c->resp = UH_RESP_RAW;
    uh_send_gil(st, c, head, (size_t)n, 0);

    /* the slot takes the connection (a nested handler may have taken this
     * slot while the 101 went out: look again) */
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    if (w->state != UH_WSC_FREE || w->notify) {
        w = NULL;
        for (size_t i = 0; i < r->n; i++) {
            if (r->c[i].state == UH_WSC_FREE && !r->c[i].notify) {
                w = &r->c[i];
                break;
            }
        }
    }
    if (w != NULL) {
        uint8_t *msg = w->p.msg;
        memset(&w->p, 0, sizeof(w->p));
        w->p.msg = msg;
        w->p.max_msg = r->max_msg;
        w->p.require_mask = 1;
        w->p.check_utf8 = 1;
        uh_io_move(&w->io, &c->io);
        w->state = UH_WSC_OPEN;
        w->close_rcvd = 0;
        w->fail = 0;
        w->want_close = 0;
        w->close_code = 0;
        w->qlen = 0;
        w->head_rem = 0;
        w->id = ++uh_ws_next_id;
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    if (w == NULL) {
        return;   /* no slot after all: the connection just closes */
    }
    uh_wsobj_t *o = mp_obj_malloc(uh_wsobj_t, &uh_ws_type);
    o->c = w;
    o->id = w->id;
    w->obj = MP_OBJ_FROM_PTR(o);
    uh_wakeup_signal(&st->wake);
    uh_ws_call(r->on_open, 1, &w->obj);
    /* frames that came with the handshake */
    size_t pre = c->len - c->head_len;
    if (pre > 0 && w->state == UH_WSC_OPEN) {
        uh_wsc_input(st, w, (const uint8_t *)c->buf + c->head_len, pre, 1);
    }
    c->len = c->head_len;
}

/* ---- the kind's operations (server thread, no GIL) ------------------------- */

static size_t uh_wsapp_prepare(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout,
    uint32_t now) {
    size_t n = 0;
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->n && n < room; i++) {
            uh_wsc_t *w = &r->c[i];
            if (w->state == UH_WSC_FREE) {
                continue;
            }
            p[n].fd = w->io.fd;
            p[n].events = w->state == UH_WSC_LINGER ? POLLIN
                : uh_io_events(&w->io, POLLIN | (w->qlen ? POLLOUT : 0));
            p[n].revents = 0;
            e[n].kind = &uh_kind_wsapp;
            e[n].owner = w;
            e[n].io = &w->io;
            n++;
            if (w->state == UH_WSC_CLOSING || w->state == UH_WSC_LINGER) {
                int32_t left = uh_diff(w->deadline, now);
                if (left < 0) {
                    left = 0;
                }
                if (*timeout < 0 || left + 1 < *timeout) {
                    *timeout = left + 1;
                }
            }
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    return n;
}

static void uh_wsapp_ready(uh_state_t *st, void *owner, short ev) {
    uh_wsc_t *w = owner;
    if (w->state == UH_WSC_FREE) {
        return;
    }
    if (ev & (POLLERR | POLLNVAL)) {
        mp_thread_mutex_lock(&st->ws_mutex, 1);
        uh_wsc_drop(w, UH_WS_CLOSE_ABNORMAL);
        mp_thread_mutex_unlock(&st->ws_mutex);
        uh_ws_notify_closed(st);
        return;
    }
    if (w->state == UH_WSC_LINGER) {
        char tmp[256];
        for (int i = 0; i < 16; i++) {
            ssize_t r = recv(w->io.fd, tmp, sizeof(tmp), 0);
            if (r > 0) {
                continue;
            }
            if (r == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
                mp_thread_mutex_lock(&st->ws_mutex, 1);
                uh_wsc_drop(w, w->close_code);
                mp_thread_mutex_unlock(&st->ws_mutex);
                uh_ws_notify_closed(st);
            }
            break;
        }
        return;
    }
    if (ev & POLLIN) {
        uint8_t buf[1024];
        for (int round = 0; round < 16 && w->state != UH_WSC_FREE; round++) {
            ssize_t rn = uh_io_recv(&w->io, buf, sizeof(buf));
            if (rn == UH_IO_AGAIN) {
                break;
            }
            if (rn <= 0) {
                mp_thread_mutex_lock(&st->ws_mutex, 1);
                uh_wsc_drop(w, w->close_rcvd || w->state == UH_WSC_CLOSING ? w->close_code : UH_WS_CLOSE_ABNORMAL);
                mp_thread_mutex_unlock(&st->ws_mutex);
                break;
            }
            if (w->state == UH_WSC_CLOSING && w->close_rcvd) {
                continue;   /* after the peer's close nothing more is parsed */
            }
            uh_wsc_input(st, w, buf, (size_t)rn, 0);
            if (w->close_rcvd && w->state == UH_WSC_CLOSING) {
                break;
            }
            if ((size_t)rn < sizeof(buf)) {
                /* drained for now: no recv just to hear EAGAIN (one message
                 * per poll is the common case); more bytes wake poll again,
                 * and bytes TLS already decrypted are seen by the loop
                 * (uh_io_pending) */
                break;
            }
        }
    }
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    if (w->state != UH_WSC_FREE) {
        if (uh_wsq_flush(w) < 0) {
            uh_wsc_drop(w, w->state == UH_WSC_CLOSING ? w->close_code : UH_WS_CLOSE_ABNORMAL);
        } else if (w->state == UH_WSC_CLOSING && w->qlen == 0 && (w->close_rcvd || w->fail)) {
            /* both close frames exchanged, or failing the connection: the
             * server closes the TCP connection first (RFC 6455 7.1.1) */
            uh_wsc_linger(w);
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    uh_ws_notify_closed(st);
}

static void uh_wsapp_tick(uh_state_t *st, uint32_t now) {
    if (st->wsroutes == NULL) {
        return;
    }
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->n; i++) {
            uh_wsc_t *w = &r->c[i];
            if (w->state == UH_WSC_OPEN && w->want_close) {
                /* ws.close() or a full queue in another thread */
                w->want_close = 0;
                w->fail = w->close_code == UH_WS_CLOSE_POLICY;   /* fell behind: no answer to wait for */
                uh_wsq_close(st, w, w->close_code ? w->close_code : UH_WS_CLOSE_NORMAL);
            }
            if ((w->state == UH_WSC_CLOSING || w->state == UH_WSC_LINGER) && uh_diff(now, w->deadline) >= 0) {
                uh_wsc_drop(w, w->close_code);   /* the peer did not answer our close, or did not go */
            }
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    uh_ws_notify_closed(st);
}

static void uh_wsapp_shutdown(uh_state_t *st) {
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->n; i++) {
            uh_wsc_t *w = &r->c[i];
            if (w->state == UH_WSC_OPEN) {
                uh_wsq_close(st, w, UH_WS_CLOSE_GOING_AWAY);
                uh_wsq_flush(w);
            }
            uh_wsc_drop(w, UH_WS_CLOSE_GOING_AWAY);
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    uh_ws_notify_closed(st);
}

const uh_kind_t uh_kind_wsapp = {
    .prepare = uh_wsapp_prepare,
    .ready = uh_wsapp_ready,
    .tick = uh_wsapp_tick,
    .shutdown = uh_wsapp_shutdown,
};

/* ---- Python: the WebSocket object ------------------------------------------ */

static uh_wsc_t *uh_wsobj_slot(mp_obj_t self_in) {
    uh_wsobj_t *self = MP_OBJ_TO_PTR(self_in);
    return self->c;
}

/* The object's connection is still the one in its slot. */
static int uh_wsobj_live(mp_obj_t self_in) {
    uh_wsobj_t *self = MP_OBJ_TO_PTR(self_in);
    return self->c->id == self->id && self->c->state != UH_WSC_FREE;
}

/* Queue one message for w (mutex held): 2 queued into an empty queue, 1
 * queued behind other frames, 0 not open, -1 the client fell behind
 * (closing with 1008). */
static int uh_ws_send_locked(uh_state_t *st, uh_wsc_t *w, int opcode, const void *data, size_t len) {
    if (w->state != UH_WSC_OPEN || w->want_close) {
        return 0;
    }
    size_t was = w->qlen;
    if (uh_wsq_push(st, w, opcode, data, len)) {
        return was == 0 ? 2 : 1;
    }
    w->want_close = 1;
    w->close_code = UH_WS_CLOSE_POLICY;
    return -1;
}

/* Does the loop need a wake-up after a send that returned r?  Only from
 * another thread (the loop itself polls every slot with bytes queued before
 * it sleeps again), and only when the queue was empty or a close is due: a
 * non-empty queue has POLLOUT set already, or its first frame woke the loop.
 * One write to the wake-up pipe per message, and the loop's extra pass to
 * drain it, made up half the syscalls of an echo. */
static int uh_ws_need_wake(uh_state_t *st, int r) {
    if (r == 0 || r == 1) {
        return 0;
    }
    return st->thread_id != mp_thread_get_id();
}

static int uh_ws_opcode_of(mp_obj_t data, mp_buffer_info_t *bi) {
    if (mp_obj_is_str(data)) {
        size_t n;
        bi->buf = (void *)mp_obj_str_get_data(data, &n);
        bi->len = n;
        return UH_WS_OP_TEXT;
    }
    mp_get_buffer_raise(data, bi, MP_BUFFER_READ);
    return UH_WS_OP_BINARY;
}

/* ws.send(data) -> True when queued, False when the connection is closed
 * or could not keep up (it is then closed with 1008). */
static mp_obj_t uh_wsobj_send(mp_obj_t self_in, mp_obj_t data) {
    uh_wsc_t *w = uh_wsobj_slot(self_in);
    uh_state_t *st = w->route->st;
    mp_buffer_info_t bi;
    int op = uh_ws_opcode_of(data, &bi);
    if (bi.len + UH_WS_MAX_HEADER > w->route->qsize) {
        mp_raise_ValueError(MP_ERROR_TEXT("message larger than the send queue (ws_queue)"));
    }
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    int r = uh_wsobj_live(self_in) ? uh_ws_send_locked(st, w, op, bi.buf, bi.len) : 0;
    mp_thread_mutex_unlock(&st->ws_mutex);
    if (uh_ws_need_wake(st, r)) {
        uh_wakeup_signal(&st->wake);
    }
    return mp_obj_new_bool(r > 0);
}
static MP_DEFINE_CONST_FUN_OBJ_2(uh_wsobj_send_obj, uh_wsobj_send);

/* ws.close(code=1000) */
static mp_obj_t uh_wsobj_close(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    static const mp_arg_t allowed[] = {
        { MP_QSTR_code, MP_ARG_INT, {.u_int = UH_WS_CLOSE_NORMAL} },
    };
    mp_arg_val_t a[1];
    mp_arg_parse_all(n_args - 1, args + 1, kw, 1, allowed, a);
    uh_wsc_t *w = uh_wsobj_slot(args[0]);
    uh_state_t *st = w->route->st;
    mp_int_t code = a[0].u_int;
    if (!uh_ws_close_code_ok(code)) {   /* the codes a peer may send (RFC 6455 7.4) */
        mp_raise_ValueError(MP_ERROR_TEXT("close code must be 1000-1003, 1007-1014 or 3000-4999"));
    }
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    if (uh_wsobj_live(args[0]) && w->state == UH_WSC_OPEN && !w->want_close) {
        w->want_close = 1;
        w->close_code = (uint16_t)code;
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    uh_wakeup_signal(&st->wake);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(uh_wsobj_close_obj, 1, uh_wsobj_close);

static void uh_wsobj_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    if (dest[0] != MP_OBJ_NULL) {
        return;   /* read-only */
    }
    uh_wsobj_t *self = MP_OBJ_TO_PTR(self_in);
    uh_wsc_t *w = self->c;
    if (attr == MP_QSTR_id) {
        dest[0] = mp_obj_new_int_from_uint(self->id);
    } else if (attr == MP_QSTR_open) {
        dest[0] = mp_obj_new_bool(uh_wsobj_live(self_in) && w->state == UH_WSC_OPEN && !w->want_close);
    } else if (attr == MP_QSTR_send) {
        dest[0] = MP_OBJ_FROM_PTR(&uh_wsobj_send_obj);
        dest[1] = self_in;
    } else if (attr == MP_QSTR_close) {
        dest[0] = MP_OBJ_FROM_PTR(&uh_wsobj_close_obj);
        dest[1] = self_in;
    }
}

static void uh_wsobj_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    (void)kind;
    uh_wsobj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_printf(print, "<WebSocket %u %s>", (unsigned)self->id,
        uh_wsobj_live(self_in) && self->c->state == UH_WSC_OPEN ? "open" : "closed");
}

static MP_DEFINE_CONST_OBJ_TYPE(
    uh_ws_type,
    MP_QSTR_WebSocket,
    MP_TYPE_FLAG_NONE,
    print, uh_wsobj_print,
    attr, uh_wsobj_attr
    );

/* ---- Core methods ----------------------------------------------------------- */

/* Core.websocket(url, callback, clients, max_msg, on_open, on_close, origins)
 * -> the route target (allocates every slot now). */
mp_obj_t uh_wsapp_add(uh_state_t *st, const mp_obj_t *a) {
    mp_int_t n = mp_obj_get_int(a[2]);
    mp_int_t max_msg = mp_obj_get_int(a[3]);
    if (n < 1 || n > UH_CEIL_MAX_CONNS) {
        mp_raise_ValueError(MP_ERROR_TEXT("clients must be 1..256"));
    }
    if (max_msg < 1 || max_msg > 16 * 1024 * 1024) {
        mp_raise_ValueError(MP_ERROR_TEXT("max_msg must be 1..16777216"));
    }
    uh_wsroute_t *r = mp_obj_malloc(uh_wsroute_t, &uh_wsroute_type);
    r->next = NULL;
    r->st = st;
    r->url = a[0];
    r->callback = a[1];
    r->on_open = a[4];
    r->on_close = a[5];
    r->origins = a[6];
    r->n = (size_t)n;
    r->max_msg = (size_t)max_msg;
    /* an echo of the largest message must fit the queue */
    r->qsize = st->ws_qsize > r->max_msg + UH_WS_MAX_HEADER ? st->ws_qsize : r->max_msg + UH_WS_MAX_HEADER;
    r->c = m_new0(uh_wsc_t, r->n);
    for (size_t i = 0; i < r->n; i++) {
        uh_wsc_t *w = &r->c[i];
        w->io.fd = -1;
        w->route = r;
        w->q = m_new(char, r->qsize);
        w->p.msg = m_new(uint8_t, r->max_msg);
        w->obj = mp_const_none;
    }
    /* more poll entries: grow the per-depth arrays (GIL held, the loop is
     * between passes only when it does not use them: it is told to rebuild) */
    size_t npoll = st->npoll + r->n;
    struct pollfd *pf = m_new0(struct pollfd, npoll * (st->nest_max + 1u));
    uh_pent_t *pe = m_new0(uh_pent_t, npoll * (st->nest_max + 1u));
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    r->next = st->wsroutes;
    st->wsroutes = r;
    mp_thread_mutex_unlock(&st->ws_mutex);
    st->pfds_next = pf;
    st->pents_next = pe;
    st->npoll_next = npoll;
    uh_wakeup_signal(&st->wake);
    return MP_OBJ_FROM_PTR(r);
}

/* broadcast(url, data) -> how many clients got it */
mp_obj_t uh_wsapp_broadcast(uh_state_t *st, mp_obj_t url, mp_obj_t data) {
    size_t ul;
    const char *u = mp_obj_str_get_data(url, &ul);
    mp_buffer_info_t bi;
    int op = uh_ws_opcode_of(data, &bi);
    mp_int_t got = 0;
    int any = 0;
    /* a message no queue can take is the caller's error (as for ws.send),
     * not every client falling behind: refuse it before anyone is touched
     * (the route list and qsize change only with the GIL, held here) */
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        size_t rl;
        const char *rs = mp_obj_str_get_data(r->url, &rl);
        if (rl == ul && memcmp(rs, u, ul) == 0 && bi.len + UH_WS_MAX_HEADER > r->qsize) {
            mp_raise_ValueError(MP_ERROR_TEXT("message larger than the send queue (ws_queue)"));
        }
    }
    mp_thread_mutex_lock(&st->ws_mutex, 1);
    for (uh_wsroute_t *r = st->wsroutes; r != NULL; r = r->next) {
        size_t rl;
        const char *rs = mp_obj_str_get_data(r->url, &rl);
        if (rl != ul || memcmp(rs, u, ul) != 0) {
            continue;
        }
        for (size_t i = 0; i < r->n; i++) {
            int s = uh_ws_send_locked(st, &r->c[i], op, bi.buf, bi.len);
            got += s > 0;
            any |= uh_ws_need_wake(st, s);
        }
    }
    mp_thread_mutex_unlock(&st->ws_mutex);
    if (any) {
        uh_wakeup_signal(&st->wake);
    }
    return MP_OBJ_NEW_SMALL_INT(got);
}
