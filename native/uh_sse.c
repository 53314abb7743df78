/*
 * uhttpd: Server-Sent Events.
 *
 * A GET on the event url hands its socket to one of `events` listener slots
 * (allocated when the server starts, each with a fixed queue), outside the
 * max_conns connections.  dispatch() may run in any thread: it formats the
 * message once and copies it into every listener's queue under a small
 * mutex, wakes the server thread and returns; it never waits on the
 * network.  The server thread drains the queues with non-blocking sends and
 * no GIL.  A listener whose queue cannot take a message has fallen behind
 * and is dropped (its EventSource reconnects).  A comment line is queued
 * to every listener periodically so that dead peers surface as send errors
 * or EOF and their slots are freed.
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
        st->sse[i].fd = -1;
        st->sse[i].q = m_new(char, qsize);
    }
}

/* Non-blocking send of what is queued (caller holds the mutex); -1 when
 * the listener is gone. */
static int uh_sse_flush(uh_sse_t *l) {
    while (l->len > 0) {
        ssize_t w = send(l->fd, l->q, l->len, UH_SEND_FLAGS);
        if (w > 0) {
            memmove(l->q, l->q + w, l->len - (size_t)w);
            l->len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        return -1;
    }
    return 0;
}

static void uh_sse_drop(uh_sse_t *l) {
    /* caller holds the mutex */
    if (l->fd >= 0) {
        uh_close_fd(l->fd);
    }
    l->fd = -1;
    l->len = 0;
}

/* GET on the event url (GIL held): answer the head, take a listener slot. */
void uh_sse_accept(uh_state_t *st, uh_conn_t *c) {
    uh_sse_t *slot = NULL;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        if (st->sse[i].fd < 0) {
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
        memcpy(st->tx + n, retry, strlen(retry));
        n += strlen(retry);
    }
    c->resp = UH_RESP_RAW;
    uh_send_gil(st, c, st->tx, n, 0);
    /* bound what the kernel buffers for a listener, so that one that stops
     * reading is noticed (and dropped) after a bounded backlog */
    int sndbuf = (int)(st->sse_qsize * 2);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    slot->fd = c->fd;
    slot->len = 0;
    mp_thread_mutex_unlock(&st->sse_mutex);
    c->fd = -1;   /* detached: the connection slot is free again */
    uh_wakeup_signal(&st->wake);
}

/* Queue one message for every listener (GIL held, any thread).  Returns the
 * number of listeners that got it. */
static size_t uh_sse_queue(uh_state_t *st, const char *msg, size_t len) {
    size_t got = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        if (l->fd < 0) {
            continue;
        }
        if (l->len + len > st->sse_qsize) {
            /* make room with a non-blocking send (a burst dispatched from a
             * handler runs while the loop cannot drain); if the socket
             * cannot take it either, the listener fell behind: drop it */
            if (uh_sse_flush(l) < 0 || l->len + len > st->sse_qsize) {
                uh_sse_drop(l);
                continue;
            }
        }
        memcpy(l->q + l->len, msg, len);
        l->len += len;
        got++;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    if (got) {
        uh_wakeup_signal(&st->wake);
    }
    return got;
}

/* dispatch(data, event=None) -> bool */
mp_obj_t uh_sse_dispatch(uh_state_t *st, mp_obj_t data, mp_obj_t event) {
    if (st->n_sse == 0) {
        return mp_const_false;
    }
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
                mp_raise_ValueError(MP_ERROR_TEXT("event name must be one line"));
            }
        }
    }
    /* format: [event: name\n] then data: line\n per line, then \n */
    size_t lines = 1;
    for (size_t i = 0; i < dlen; i++) {
        if (d[i] == '\n') {
            lines++;
        }
    }
    size_t total = (e ? 8 + elen : 0) + dlen + lines * 7 + 1;
    if (total > st->sse_qsize) {
        mp_raise_ValueError(MP_ERROR_TEXT("event larger than the listener queue"));
    }
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
        if (i == dlen || d[i] == '\n') {
            size_t ll = i - start;
            if (ll > 0 && d[start + ll - 1] == '\r') {
                ll--;
            }
            memcpy(m + n, "data: ", 6);
            n += 6;
            memcpy(m + n, d + start, ll);
            n += ll;
            m[n++] = '\n';
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

/* ---- the loop side (no GIL) ----------------------------------------------- */

size_t uh_sse_prepare(uh_state_t *st, struct pollfd *p) {
    size_t n = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        p[n].fd = l->fd;    /* a negative fd is ignored by poll() */
        p[n].events = l->fd >= 0 ? (POLLIN | (l->len ? POLLOUT : 0)) : 0;
        p[n].revents = 0;
        n++;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    return n;
}

void uh_sse_handle(uh_state_t *st, struct pollfd *p, size_t n) {
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < n && i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        short ev = p[i].revents;
        if (ev == 0 || l->fd < 0 || l->fd != p[i].fd) {
            continue;
        }
        if (ev & (POLLERR | POLLNVAL | POLLHUP)) {
            uh_sse_drop(l);
            continue;
        }
        if (ev & POLLIN) {
            char tmp[64];
            ssize_t r = recv(l->fd, tmp, sizeof(tmp), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                uh_sse_drop(l);   /* the listener went away */
                continue;
            }
        }
        if (uh_sse_flush(l) < 0) {
            uh_sse_drop(l);
        }
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
}

/* Periodic ping: returns ms until the next one is due. */
int32_t uh_sse_tick(uh_state_t *st, uint32_t now) {
    if (st->n_sse == 0 || st->sse_ping_ms == 0) {
        return 1000;
    }
    int32_t left = (int32_t)(st->sse_next_ping - now);
    if (left > 0) {
        return left;
    }
    st->sse_next_ping = now + st->sse_ping_ms;
    static const char ping[] = ": ping\n\n";
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_t *l = &st->sse[i];
        if (l->fd < 0) {
            continue;
        }
        if (l->len + sizeof(ping) - 1 > st->sse_qsize) {
            uh_sse_drop(l);
            continue;
        }
        memcpy(l->q + l->len, ping, sizeof(ping) - 1);
        l->len += sizeof(ping) - 1;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    return (int32_t)st->sse_ping_ms;
}

size_t uh_sse_count(uh_state_t *st) {
    size_t k = 0;
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        k += st->sse[i].fd >= 0;
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
    return k;
}

void uh_sse_close_all(uh_state_t *st) {
    if (st->n_sse == 0) {
        return;
    }
    mp_thread_mutex_lock(&st->sse_mutex, 1);
    for (size_t i = 0; i < st->n_sse; i++) {
        uh_sse_drop(&st->sse[i]);
    }
    mp_thread_mutex_unlock(&st->sse_mutex);
}
