/*
 * uhttpd: Server-Sent Events, a connection kind.
 *
 * A GET on the event url hands its connection (plain or TLS) to one of
 * `events` listener slots (allocated when the server starts, each with a
 * fixed queue), outside the max_conns connections.  dispatch() may run in
 * any thread: it formats the message once and copies it into every
 * listener's queue under a small mutex, wakes the server thread and
 * returns; it never waits on the network.  The server thread drains the
 * queues with non-blocking sends and no GIL.
 *
 * A listener that cannot take a message (its queue, then its socket,
 * without waiting) has fallen behind and is dropped: marked dead, and the
 * server thread closes it (only the thread that polls a socket closes it:
 * lwIP's select fails for everyone when a polled socket is closed under
 * it).  A comment line is queued periodically so that dead peers surface as
 * send errors or EOF and their slots are freed.
 *
 * Framing (design.md section 7): data lines are split on CRLF, LF and a
 * lone CR, each becoming its own `data:` line, so a CR in the data cannot
 * forge a field; an event name with CR or LF is a ValueError.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/objstr.h"

#include "uh_server.h"

void uh_sse_alloc(uh_state_t *st, size_t n, size_t qsize) {
    st->n_sse = n;
    st->sse_qsize = qsize;
    mp_thread_mutex_init(&st->sse_mutex);
    if (n == 0) {
        return;
    }
    st->sse = m_new0(uh_sse_t, n);
    for (size_t i = 0; i < n; i++) {
        st->sse[i].io.fd = -1;
        st->sse[i].q = m_new(char, qsize);
    }
}

/* Non-blocking send of what is queued (caller holds the mutex); -1 when
 * the listener is gone. */
static int uh_sse_flush(uh_sse_t *l) {
    size_t off = 0;
    int ret = 0;
    while (off < l->len) {
        ssize_t w = uh_io_send(&l->io, l->q + off, l->len - off, 0);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w != UH_IO_AGAIN) {
            ret = -1;
        }
        break;
    }
    if (off > 0) {
        memmove(l->q, l->q + off, l->len - off);
        l->len -= off;
    }
    return ret;
}

/* Give up on a listener (caller holds the mutex).  From the server thread
 * it is closed at once; from any other thread it is only marked, and the
 * loop closes it on its next pass. */
static void uh_sse_drop(uh_state_t *st, uh_sse_t *l, int in_loop) {
    l->len = 0;
    if (l->io.fd < 0) {
        return;
    }
    if (in_loop) {
        uh_io_close(&l->io);
        l->dead = 0;
    } else if (!l->dead) {
        l->dead = 1;
        uh_wakeup_signal(&st->wake);
    }
}

/* GET on the event url (GIL held, in a handler): answer the head, take a
 * listener slot. */
void uh_sse_accept(uh_state_t *st, uh_conn_t *c) {
    uh_sse_t *slot = NULL;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        if (st->sse[i].io.fd < 0) {
            slot = &st->sse[i];
            break;
        }
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    if (slot == NULL) {
        c->keep_alive = 0;
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "too many event listeners\n");
        return;
    }
    /* no length, no chunking: the stream ends when the connection does */
    c->keep_alive = 1;
    size_t n = uh_build_head(st, c, 200, NULL, 0, "text/event-stream", 17, mp_const_none, st->cors, UH_LEN_NONE,
        c->req.minor_version ? "Cache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n"
        : "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    c->keep_alive = 0;
    const char *retry = "retry: 3000\n\n";
    if (n + strlen(retry) <= UH_TX_BUF) {
        memcpy(c->tx + n, retry, strlen(retry));
        n += strlen(retry);
    }
    c->resp = UH_RESP_RAW;
    uh_send_gil(st, c, c->tx, n, 0);
    #if UH_HAVE_SNDBUF
    /* bound what the kernel buffers for a listener, so that one that stops
     * reading is noticed (and dropped) after a bounded backlog; lwIP has no
     * SO_SNDBUF: there TCP_SND_BUF bounds it */
    int sndbuf = (int)(st->sse_qsize * 2);
    setsockopt(c->io.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    #endif
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    if (slot->io.fd >= 0) {
        /* taken meanwhile (a nested handler): look again */
        slot = NULL;
        for (size_t i = 0; i < st->n_sse; i++) {
            if (st->sse[i].io.fd < 0) {
                slot = &st->sse[i];
                break;
            }
        }
    }
    if (slot != NULL) {
        uh_io_move(&slot->io, &c->io);   /* detached: the connection slot is free */
        slot->len = 0;
        slot->dead = 0;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    if (slot == NULL) {
        c->keep_alive = 0;   /* the head went out; the stream just ends */
    }
    uh_wakeup_signal(&st->wake);
}

/* Offer one message to a listener (mutex held, GIL held, any thread): into
 * the queue when it fits; else flush the queue and send directly without
 * waiting, queueing what the socket did not take; else drop it. */
static int uh_sse_offer(uh_state_t *st, uh_sse_t *l, const char *msg, size_t len) {
    if (l->len + len <= st->sse_qsize) {
        memcpy(l->q + l->len, msg, len);
        l->len += len;
        return 1;
    }
    if (uh_sse_flush(l) < 0) {
        uh_sse_drop(st, l, 0);
        return 0;
    }
    if (l->len + len <= st->sse_qsize) {
        memcpy(l->q + l->len, msg, len);
        l->len += len;
        return 1;
    }
    if (l->len == 0) {
        /* larger than the queue: straight to the socket */
        size_t off = 0;
        while (off < len) {
            ssize_t w = uh_io_send(&l->io, msg + off, len - off, 0);
            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
        if (len - off <= st->sse_qsize) {
            memcpy(l->q, msg + off, len - off);
            l->len = len - off;
            return 1;
        }
    }
    uh_sse_drop(st, l, 0);   /* fell behind */
    return 0;
}

/* Queue one message for every listener (GIL held, any thread).  Returns the
 * number of listeners that got it. */
static size_t uh_sse_queue(uh_state_t *st, const char *msg, size_t len) {
    size_t got = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        if (l->io.fd < 0 || l->dead) {
            continue;
        }
        got += uh_sse_offer(st, l, msg, len);
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    if (got) {
        uh_wakeup_signal(&st->wake);
    }
    return got;
}

/* dispatch(data, event=None) -> bool */
mp_obj_t uh_sse_dispatch(uh_state_t *st, mp_obj_t data, mp_obj_t event) {
    size_t dlen, elen = 0;
    const char *d, *e = NULL;
    if (mp_obj_is_str_or_bytes(data)) {
        d = mp_obj_str_get_data(data, &dlen);
    } else {
        mp_buffer_info_t bi;
        mp_get_buffer_raise(data, &bi, MP_BUFFER_READ);
        d = bi.buf;
        dlen = bi.len;
    }
    if (event != mp_const_none) {
        e = mp_obj_str_get_data(event, &elen);
        for (size_t i = 0; i < elen; i++) {
            if (e[i] == '\r' || e[i] == '\n') {
                mp_raise_ValueError(MP_ERROR_TEXT("event name must be one line (no CR or LF)"));
            }
        }
    }
    if (st->n_sse == 0) {
        return mp_const_false;
    }
    /* format: [event: name\n] then data: line\n per line, then \n; lines
     * end at CRLF, LF or a lone CR */
    size_t lines = 1;
    for (size_t i = 0; i < dlen; i++) {
        if (d[i] == '\n' || (d[i] == '\r' && (i + 1 == dlen || d[i + 1] != '\n'))) {
            lines++;
        }
    }
    size_t total = (e ? 8 + elen : 0) + dlen + lines * 7 + 1;
    char stackbuf[256];
    char *m = total <= sizeof(stackbuf) ? stackbuf : m_new(char, total);
    size_t n = 0;
    if (e) {
        memcpy(m + n, "event: ", 7);
        n += 7;
        memcpy(m + n, e, elen);
        n += elen;
        m[n++] = '\n';
    }
    size_t start = 0;
    for (size_t i = 0; i <= dlen; i++) {
        if (i == dlen || d[i] == '\n' || d[i] == '\r') {
            memcpy(m + n, "data: ", 6);
            n += 6;
            memcpy(m + n, d + start, i - start);
            n += i - start;
            m[n++] = '\n';
            if (i < dlen && d[i] == '\r' && i + 1 < dlen && d[i + 1] == '\n') {
                i++;   /* CRLF is one line end */
            }
            start = i + 1;
        }
    }
    m[n++] = '\n';
    size_t got = uh_sse_queue(st, m, n);
    if (m != stackbuf) {
        m_del(char, m, total);
    }
    return mp_obj_new_bool(got > 0);
}

/* ---- the kind's operations (server thread, no GIL) ---------------------- */

static size_t uh_sse_prepare(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout,
    uint32_t now) {
    if (st->n_sse == 0) {
        return 0;
    }
    size_t n = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse && n < room; i++) {
        uh_sse_t *l = &st->sse[i];
        if (l->io.fd >= 0 && l->dead) {
            uh_sse_drop(st, l, 1);
        }
        if (l->io.fd < 0) {
            continue;
        }
        p[n].fd = l->io.fd;
        p[n].events = uh_io_events(&l->io, POLLIN | (l->len ? POLLOUT : 0));
        p[n].revents = 0;
        e[n].kind = &uh_kind_sse;
        e[n].owner = l;
        e[n].io = &l->io;
        n++;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    if (st->sse_ping_ms && n) {
        int32_t left = uh_diff(st->sse_next_ping, now);
        if (left < 0) {
            left = 0;
        }
        if (*timeout < 0 || left < *timeout) {
            *timeout = left;
        }
    }
    return n;
}

static void uh_sse_ready(uh_state_t *st, void *owner, short ev) {
    uh_sse_t *l = owner;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    if (l->io.fd >= 0) {
        if (ev & (POLLERR | POLLNVAL | UH_POLLHUP)) {
            uh_sse_drop(st, l, 1);
        } else {
            if (ev & POLLIN) {
                char tmp[64];
                ssize_t r = uh_io_recv(&l->io, tmp, sizeof(tmp));
                if (r == UH_IO_EOF || r == UH_IO_ERR) {
                    uh_sse_drop(st, l, 1);   /* the listener went away */
                }
            }
            if (l->io.fd >= 0 && uh_sse_flush(l) < 0) {
                uh_sse_drop(st, l, 1);
            }
        }
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
}

/* Periodic ping; dead listeners closed. */
static void uh_sse_tick(uh_state_t *st, uint32_t now) {
    if (st->n_sse == 0 || st->sse_ping_ms == 0 || uh_diff(now, st->sse_next_ping) < 0) {
        return;
    }
    st->sse_next_ping = now + st->sse_ping_ms;
    static const char ping[] = ": ping\n\n";
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        if (l->io.fd < 0) {
            continue;
        }
        if (l->dead || l->len + sizeof(ping) - 1 > st->sse_qsize) {
            uh_sse_drop(st, l, 1);
            continue;
        }
        memcpy(l->q + l->len, ping, sizeof(ping) - 1);
        l->len += sizeof(ping) - 1;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
}

static void uh_sse_shutdown(uh_state_t *st) {
    if (st->n_sse == 0) {
        return;
    }
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_drop(st, &st->sse[i], 1);
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
}

size_t uh_sse_count(uh_state_t *st) {
    size_t k = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        k += st->sse[i].io.fd >= 0 && !st->sse[i].dead;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    return k;
}

const uh_kind_t uh_kind_sse = {
    .prepare = uh_sse_prepare,
    .ready = uh_sse_ready,
    .tick = uh_sse_tick,
    .shutdown = uh_sse_shutdown,
};
