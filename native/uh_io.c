/*
 * uhttpd: the I/O layer and the platform pieces.
 *
 * Every byte a connection moves goes through uh_io_recv/uh_io_send, plain
 * or TLS per connection (nginx's per-connection recv/send, ESP-IDF's
 * send/recv/pending overrides): the HTTP, file, SSE and REPL code above
 * never asks whether a connection is encrypted.  Only the poll events
 * differ: a TLS record layer may need to write while the caller wants to
 * read, and decrypted bytes may wait inside it while the socket is idle
 * (uh_io_events, uh_io_pending).
 *
 * The rest is the platform seam (uh_port.h): non-blocking sockets, the
 * wake-up channel, poll(), and the bookkeeping of every fd uhttpd opens.
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/mphal.h"

#include "uh_server.h"
#if UH_TLS
#include "uh_tls.h"
#endif

uint32_t uh_ticks_ms(void) {
    return (uint32_t)mp_hal_ticks_ms();
}

/* ---- strict lwIP emulation (host test build) ---------------------------- */

#if UH_STRICT_LWIP
#define UH_FDMAP_BITS (1024)
static uint32_t uh_polled[UH_FDMAP_BITS / 32];
static __thread int uh_in_server_thread;

void uh_strict_poll_fds(const struct pollfd *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int fd = p[i].fd;
        if (fd >= 0 && fd < UH_FDMAP_BITS) {
            __atomic_fetch_or(&uh_polled[fd / 32], (uint32_t)1 << (fd % 32), __ATOMIC_SEQ_CST);
        }
    }
}

static void uh_strict_close_check(int fd) {
    if (fd < 0 || fd >= UH_FDMAP_BITS) {
        return;
    }
    uint32_t bit = (uint32_t)1 << (fd % 32);
    uint32_t was = __atomic_fetch_and(&uh_polled[fd / 32], ~bit, __ATOMIC_SEQ_CST);
    if ((was & bit) && !uh_in_server_thread) {
        fprintf(stderr, "uhttpd: lwIP rule broken: fd %d, polled by the server thread, closed by another thread\n", fd);
        abort();
    }
}

static void uh_strict_poll_result(const struct pollfd *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i].fd >= 0 && (p[i].revents & POLLNVAL)) {
            fprintf(stderr, "uhttpd: lwIP rule broken: POLLNVAL on fd %d (closed while polled; lwIP's select fails with EBADF)\n", p[i].fd);
            abort();
        }
    }
}
#else
void uh_strict_poll_fds(const struct pollfd *p, size_t n) {
    (void)p;
    (void)n;
}
#endif

/* ---- platform pieces (kept here, tiny) ---------------------------------- */

int uh_set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void uh_set_cloexec(int fd) {
    #if UH_HAVE_CLOEXEC
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    #else
    (void)fd;
    #endif
}

void uh_port_thread_init(void) {
    #if UH_STRICT_LWIP
    uh_in_server_thread = 1;
    #endif
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
    #if UH_STRICT_LWIP
    /* emulate the board: lwIP buffers CONFIG_LWIP_TCP_SND_BUF_DEFAULT
     * (5760 B in the board's sdkconfig) per socket, the application cannot
     * change it; a socket here gets the same bound */
    int snd = 5760 / 2;   /* Linux doubles it */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
    #endif
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
    uh_set_cloexec(p[0]);
    uh_set_cloexec(p[1]);
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

/* poll() for the loop.  On ESP32 it is lwIP's select() under the IDF VFS;
 * waiting inside it is safe because servers are stopped before a soft reset
 * deletes tasks (__wrap_mp_thread_deinit in uh_server.c). */
int uh_poll(struct pollfd *fds, size_t n, int timeout_ms) {
    uh_strict_poll_fds(fds, n);
    int r = poll(fds, n, timeout_ms);
    #if UH_STRICT_LWIP
    if (r > 0) {
        uh_strict_poll_result(fds, n);
    }
    #endif
    return r;
}

void uh_sleep_ms(uint32_t ms) {
    #if defined(ESP_PLATFORM)
    vTaskDelay(ms / portTICK_PERIOD_MS ? ms / portTICK_PERIOD_MS : 1);
    #else
    usleep(ms * 1000);
    #endif
}

/* ---- fds owned by uhttpd, in static memory ------------------------------
 * On ESP32 a soft reset wipes the heap.  The fds are recorded here (outside
 * the heap) so that the module's __init__ on the first import of the next
 * cycle can close whatever the previous cycle left open and the port is free
 * for a new Server (the mp_thread_deinit hook normally closed them all). */
#define UH_TRACK_BITS (1024)
static uint32_t uh_fdmap[UH_TRACK_BITS / 32];

int uh_fd_track(int fd) {
    if (fd >= 0 && fd < UH_TRACK_BITS) {
        __atomic_fetch_or(&uh_fdmap[fd / 32], (uint32_t)1 << (fd % 32), __ATOMIC_SEQ_CST);
    }
    return fd;
}

void uh_fd_untrack(int fd) {
    if (fd >= 0 && fd < UH_TRACK_BITS) {
        __atomic_fetch_and(&uh_fdmap[fd / 32], ~((uint32_t)1 << (fd % 32)), __ATOMIC_SEQ_CST);
    }
}

int uh_close_fd(int fd) {
    #if UH_STRICT_LWIP
    uh_strict_close_check(fd);
    #endif
    uh_fd_untrack(fd);
    return close(fd);
}

void uh_fd_close_all_tracked(void) {
    for (int i = 0; i < UH_TRACK_BITS / 32; i++) {
        uint32_t m = __atomic_exchange_n(&uh_fdmap[i], 0, __ATOMIC_SEQ_CST);
        for (int b = 0; m && b < 32; b++) {
            if (m & ((uint32_t)1 << b)) {
                close(i * 32 + b);
                m &= ~((uint32_t)1 << b);
            }
        }
    }
}

void uh_close_deferred(uh_state_t *st, int fd) {
    if (fd < 0) {
        return;
    }
    /* at once: a reader blocked on it (the REPL on unix) sees EOF, and a
     * peer sees the end; the descriptor itself stays valid for select() */
    shutdown(fd, SHUT_RDWR);
    if (st != NULL && st->running && !st->stop) {
        int queued = 0;
        mp_thread_mutex_lock(&st->close_mutex, 1);
        if (st->n_close < UH_CLOSE_QUEUE) {
            st->close_q[st->n_close++] = fd;
            queued = 1;
        }
        mp_thread_mutex_unlock(&st->close_mutex);
        if (queued) {
            uh_wakeup_signal(&st->wake);
            return;
        }
        /* queue full: wait for the loop to drain it (it is running) */
        for (int i = 0; i < 1000 && st->running && !st->stop; i++) {
            uh_wakeup_signal(&st->wake);
            uh_sleep_ms(1);
            mp_thread_mutex_lock(&st->close_mutex, 1);
            if (st->n_close < UH_CLOSE_QUEUE) {
                st->close_q[st->n_close++] = fd;
                queued = 1;
            }
            mp_thread_mutex_unlock(&st->close_mutex);
            if (queued) {
                uh_wakeup_signal(&st->wake);
                return;
            }
        }
    }
    /* no loop polls it any more */
    #if UH_STRICT_LWIP
    if (fd < UH_FDMAP_BITS) {
        __atomic_fetch_and(&uh_polled[fd / 32], ~((uint32_t)1 << (fd % 32)), __ATOMIC_SEQ_CST);
    }
    #endif
    uh_close_fd(fd);
}

void uh_close_run_queue(uh_state_t *st) {
    if (st->n_close == 0) {
        return;
    }
    mp_thread_mutex_lock(&st->close_mutex, 1);
    for (size_t i = 0; i < st->n_close; i++) {
        uh_close_fd(st->close_q[i]);
    }
    st->n_close = 0;
    mp_thread_mutex_unlock(&st->close_mutex);
}

/* ---- plain / TLS I/O -------------------------------------------------------- */

#if UH_TLS
/* A TLS result as an I/O result; WANT_* say which way to wait. */
static ssize_t uh_io_tls_result(uh_io_t *io, ssize_t r) {
    io->want = 0;
    if (r > 0) {
        return r;
    }
    if (r == 0) {
        return UH_IO_EOF;
    }
    if (r == UH_TLS_WANT_READ || r == UH_TLS_WANT_WRITE) {
        io->want = r == UH_TLS_WANT_READ ? POLLIN : POLLOUT;
        return UH_IO_AGAIN;
    }
    return UH_IO_ERR;
}
#endif

ssize_t uh_io_recv(uh_io_t *io, void *buf, size_t n) {
    if (io->fd < 0) {
        return UH_IO_ERR;
    }
    #if UH_TLS
    if (io->tls != NULL) {
        return uh_io_tls_result(io, uh_tls_recv(io->tls, buf, n));
    }
    #endif
    for (;;) {
        ssize_t r = recv(io->fd, buf, n, 0);
        if (r > 0) {
            return r;
        }
        if (r == 0) {
            return UH_IO_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return UH_IO_AGAIN;
        }
        return UH_IO_ERR;
    }
}

ssize_t uh_io_send(uh_io_t *io, const void *buf, size_t n, int more) {
    if (io->fd < 0) {
        return UH_IO_ERR;
    }
    if (n == 0) {
        return 0;
    }
    #if UH_TLS
    if (io->tls != NULL) {
        (void)more;
        return uh_io_tls_result(io, uh_tls_send(io->tls, buf, n));   /* never 0 */
    }
    #endif
    for (;;) {
        ssize_t r = send(io->fd, buf, n, UH_SEND_FLAGS | (more ? UH_SEND_MORE : 0));
        if (r > 0) {
            return r;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return UH_IO_AGAIN;
        }
        return UH_IO_ERR;
    }
}

size_t uh_io_pending(uh_io_t *io) {
    #if UH_TLS
    if (io->tls != NULL) {
        return uh_tls_pending(io->tls);
    }
    #else
    (void)io;
    #endif
    return 0;
}

short uh_io_events(uh_io_t *io, short want) {
    if (io->tls != NULL && io->want != 0) {
        return io->want;
    }
    return want;
}

void uh_io_close(uh_io_t *io) {
    #if UH_TLS
    if (io->tls != NULL) {
        uh_tls_conn_free(io->tls, io->fd >= 0);
        io->tls = NULL;
    }
    #endif
    if (io->fd >= 0) {
        uh_close_fd(io->fd);
    }
    io->fd = -1;
    io->want = 0;
}

/* Blocking send with a timeout, for threads other than the server thread
 * (the REPL's output on unix).  0 when all was sent, -1 on error/timeout. */
int uh_send_all_blocking(uh_io_t *io, const char *p, size_t len, uint32_t timeout_ms) {
    uint32_t start = uh_ticks_ms();
    while (len > 0) {
        ssize_t r = uh_io_send(io, p, len, 0);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            start = uh_ticks_ms();
            continue;
        }
        if (r != UH_IO_AGAIN) {
            return -1;
        }
        int32_t left = (int32_t)timeout_ms - uh_diff(uh_ticks_ms(), start);
        if (left <= 0) {
            return -1;
        }
        struct pollfd pf = { .fd = io->fd, .events = uh_io_events(io, POLLOUT), .revents = 0 };
        if (poll(&pf, 1, left) < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}
