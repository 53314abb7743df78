/*
 * ws_load: a small WebSocket load generator for bench/bench.py (the same
 * client for every server).  One thread, poll(), non-blocking sockets with
 * TCP_NODELAY, frames masked once up front (RFC 6455 requires client
 * masking; the mask is fixed, so every frame is the same bytes).
 *
 *   ws_load echo  PORT PATH CLIENTS SECONDS MSGLEN
 *       CLIENTS connections, each with one text message of MSGLEN bytes in
 *       flight: send, read the echo (checked byte for byte), send again.
 *       Prints: rt=<round trips> secs=<s> rps=<round trips/s>
 *               p50_us=<..> p99_us=<..> errors=<n> all=<round trips
 *               including the 0.5 s warm-up>
 *   ws_load bcast PORT PATH CLIENTS N MSGLEN FIRE_PATH COUNT_PATH
 *       CLIENTS connections; once GET COUNT_PATH answers CLIENTS (all are
 *       registered), GET FIRE_PATH on another (already open)
 *       connection and time until every client has N messages of MSGLEN
 *       bytes (frames are parsed, payload lengths checked).
 *       A client the server closes stops counting.
 *       Prints: ms=<..> got=<fewest messages a client got> max=<most>
 *               closed=<clients closed by the server> code=<a close code>
 *               errors=<n>
 *   ws_load bare PORT
 *       A trivial WebSocket echo server (fixed 101 reply, no key check, no
 *       UTF-8 check): the ceiling the client reaches on this machine.
 *       Prints READY <port>.
 *
 * Build: cc -std=c99 -O2 -Wall -Wextra -Werror -o ws_load ws_load.c
 */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256
#define HIST_US 200000   /* latency histogram: 1 µs buckets up to 200 ms */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "ws_load: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void nonblock(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        die("connect");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t r = send(fd, p, len, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd pf = { fd, POLLOUT, 0 };
                poll(&pf, 1, 1000);
                continue;
            }
            die("send");
        }
        p += r;
        len -= (size_t)r;
    }
}

/* Read an HTTP head (blocking); bytes after it go to extra. */
static size_t read_head(int fd, char *head, size_t cap, char *extra, size_t *extra_len) {
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, head + n, cap - 1 - n, 0);
        if (r <= 0) {
            fprintf(stderr, "ws_load: connection closed during the handshake\n");
            exit(2);
        }
        n += (size_t)r;
        head[n] = 0;
        char *e = strstr(head, "\r\n\r\n");
        if (e != NULL) {
            size_t hl = (size_t)(e + 4 - head);
            *extra_len = n - hl;
            memcpy(extra, head + hl, n - hl);
            return hl;
        }
        if (n + 1 >= cap) {
            fprintf(stderr, "ws_load: head too long\n");
            exit(2);
        }
    }
}

typedef struct {
    int fd;
    size_t have;          /* bytes of the reply read so far */
    double sent_at;
    long got;             /* messages (bcast) */
    int closed;           /* bcast: the close code the server sent, 0: open */
    unsigned char buf[70000];
} client_t;

static client_t *C;

static void ws_open(client_t *c, int port, const char *path) {
    c->fd = tcp_connect(port);
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n", path);
    send_all(c->fd, req, (size_t)n);
    char head[4096];
    read_head(c->fd, head, sizeof(head), (char *)c->buf, &c->have);
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "ws_load: no upgrade: %.60s\n", head);
        exit(2);
    }
    nonblock(c->fd);
}

/* A masked client frame with a text payload of len bytes. */
static size_t make_frame(unsigned char *f, size_t len, unsigned char *payload) {
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t h = 0;
    f[h++] = 0x81;
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    }
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) {
        payload[i] = (unsigned char)('a' + i % 26);
        f[h + i] = payload[i] ^ mask[i % 4];
    }
    return h + len;
}

static int run_echo(int port, const char *path, int n, double secs, size_t len) {
    unsigned char frame[70000], payload[66000], reply[70000];
    size_t flen = make_frame(frame, len, payload);
    size_t rh = 0;
    reply[rh++] = 0x81;
    if (len < 126) {
        reply[rh++] = (unsigned char)len;
    } else {
        reply[rh++] = 126;
        reply[rh++] = (unsigned char)(len >> 8);
        reply[rh++] = (unsigned char)len;
    }
    memcpy(reply + rh, payload, len);
    size_t rlen = rh + len;
    static uint32_t hist[HIST_US + 1];
    struct pollfd pf[MAXC];
    for (int i = 0; i < n; i++) {
        ws_open(&C[i], port, path);
        pf[i].fd = C[i].fd;
        pf[i].events = POLLIN;
    }
    double warm = 0.5;
    double t0 = now_s(), start = 0;
    long rt = 0, all = 0, errors = 0;
    int measuring = 0;
    for (int i = 0; i < n; i++) {
        C[i].sent_at = now_s();
        send_all(C[i].fd, frame, flen);
    }
    for (;;) {
        double t = now_s();
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            start = t;
            rt = 0;
            memset(hist, 0, sizeof(hist));
        }
        if (measuring && t - start >= secs) {
            break;
        }
        int r = poll(pf, (nfds_t)n, 1000);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        if (r == 0) {
            fprintf(stderr, "ws_load: no reply for 1 s\n");
            errors++;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP))) {
                continue;
            }
            client_t *c = &C[i];
            ssize_t got = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) {
                    continue;
                }
                fprintf(stderr, "ws_load: server closed client %d\n", i);
                return 2;
            }
            c->have += (size_t)got;
            if (c->have > rlen) {
                fprintf(stderr, "ws_load: more than one reply in flight\n");
                errors++;
                c->have = 0;
            }
            if (c->have == rlen) {
                double t1 = now_s();
                if (memcmp(c->buf, reply, rlen) != 0) {
                    errors++;
                }
                c->have = 0;
                rt++;
                all++;
                long us = (long)((t1 - c->sent_at) * 1e6);
                hist[us < 0 ? 0 : us > HIST_US ? HIST_US : us]++;
                c->sent_at = t1;
                send_all(c->fd, frame, flen);
            }
        }
    }
    double el = now_s() - start;
    long p50 = -1, p99 = -1, acc = 0;
    for (long u = 0; u <= HIST_US; u++) {
        acc += hist[u];
        if (p50 < 0 && acc * 2 >= rt) {
            p50 = u;
        }
        if (p99 < 0 && acc * 100 >= rt * 99) {
            p99 = u;
            break;
        }
    }
    printf("rt=%ld secs=%.3f rps=%.1f p50_us=%ld p99_us=%ld errors=%ld all=%ld\n", rt, el, rt / el, p50, p99,
        errors, all);
    return 0;
}

/* Count whole server frames in c->buf; keep a partial one. */
static int count_frames(client_t *c, size_t len, long *errors) {
    size_t off = 0;
    for (;;) {
        if (c->have - off < 2) {
            break;
        }
        unsigned char *h = c->buf + off;
        size_t pl = h[1] & 0x7f, hl = 2;
        if (pl == 126) {
            if (c->have - off < 4) {
                break;
            }
            pl = (size_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (pl == 127) {
            fprintf(stderr, "ws_load: unexpected 64-bit length\n");
            return -1;
        }
        if (c->have - off < hl + pl) {
            break;
        }
        if ((h[0] & 0x0f) == 8) {
            c->closed = (int)(pl >= 2 ? (h[hl] << 8 | h[hl + 1]) : 1005);
            return 1;   /* the server closed this client */
        }
        if (pl != len || (h[0] & 0x0f) != 1) {
            (*errors)++;
        }
        c->got++;
        off += hl + pl;
    }
    memmove(c->buf, c->buf + off, c->have - off);
    c->have -= off;
    return 0;
}

/* GET path on a new connection (Connection: close): the body as a number. */
static long http_get_num(int port, const char *path) {
    int fd = tcp_connect(port);
    char req[512], resp[4096];
    int rn = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    send_all(fd, req, (size_t)rn);
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + n, sizeof(resp) - 1 - n, 0);
        if (r <= 0 || n + (size_t)r >= sizeof(resp) - 1) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    resp[n] = 0;
    char *b = strstr(resp, "\r\n\r\n");
    return b != NULL ? atol(b + 4) : -1;
}

static int run_bcast(int port, const char *path, int n, long count, size_t len, const char *fire,
    const char *count_path) {
    struct pollfd pf[MAXC];
    for (int i = 0; i < n; i++) {
        ws_open(&C[i], port, path);
        C[i].got = 0;
        C[i].closed = 0;
        pf[i].fd = C[i].fd;
        pf[i].events = POLLIN;
    }
    /* every client registered with the server before the clock starts */
    double until = now_s() + 5;
    while (http_get_num(port, count_path) != n) {
        if (now_s() > until) {
            fprintf(stderr, "ws_load: %s never reported %d clients\n", count_path, n);
            return 2;
        }
        usleep(2000);
    }
    int hf = tcp_connect(port);
    char req[512];
    int rn = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", fire);
    long errors = 0;
    double t0 = now_s();
    send_all(hf, req, (size_t)rn);
    int done = 0;
    while (!done) {
        int r = poll(pf, (nfds_t)n, 30000);
        if (r <= 0) {
            fprintf(stderr, "ws_load: broadcast stalled\n");
            break;
        }
        done = 1;
        for (int i = 0; i < n; i++) {
            client_t *c = &C[i];
            if (!c->closed && (pf[i].revents & (POLLIN | POLLERR | POLLHUP))) {
                for (;;) {
                    ssize_t got = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
                    if (got == 0 || (got < 0 && errno != EAGAIN)) {
                        c->closed = 1006;
                        break;
                    }
                    if (got < 0) {
                        break;
                    }
                    c->have += (size_t)got;
                    int cf = count_frames(c, len, &errors);
                    if (cf < 0) {
                        return 2;
                    }
                    if (cf > 0) {
                        break;
                    }
                }
            }
            if (c->closed) {
                pf[i].fd = -1;
            } else if (c->got < count) {
                done = 0;
            }
        }
    }
    double ms = (now_s() - t0) * 1000;
    long low = count, high = 0;
    int closed = 0, code = 0;
    for (int i = 0; i < n; i++) {
        low = C[i].got < low ? C[i].got : low;
        high = C[i].got > high ? C[i].got : high;
        if (C[i].closed) {
            closed++;
            code = C[i].closed;
        }
    }
    printf("ms=%.3f got=%ld max=%ld closed=%d code=%d errors=%ld\n", ms, low, high, closed, code, errors);
    close(hf);
    return 0;
}

/* ---- the trivial echo server ---------------------------------------------- */

typedef struct {
    int fd;
    int upgraded;
    size_t have;
    unsigned char in[70000];
} peer_t;

static int run_bare(int port) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 64) < 0) {
        die("bind");
    }
    socklen_t al = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    printf("READY %d\n", ntohs(a.sin_port));
    fflush(stdout);
    static peer_t P[MAXC];
    struct pollfd pf[MAXC + 1];
    int np = 0;
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for (;;) {
        pf[0].fd = lfd;
        pf[0].events = POLLIN;
        for (int i = 0; i < np; i++) {
            pf[i + 1].fd = P[i].fd;
            pf[i + 1].events = POLLIN;
        }
        if (poll(pf, (nfds_t)np + 1, -1) < 0) {
            continue;
        }
        if ((pf[0].revents & POLLIN) && np < MAXC) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                nonblock(fd);
                P[np].fd = fd;
                P[np].upgraded = 0;
                P[np].have = 0;
                np++;
            }
        }
        for (int i = 0; i < np; i++) {
            if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) || pf[i + 1].fd != P[i].fd) {
                continue;
            }
            peer_t *p = &P[i];
            ssize_t r = recv(p->fd, p->in + p->have, sizeof(p->in) - 1 - p->have, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) {
                    continue;
                }
                close(p->fd);
                P[i] = P[np - 1];
                pf[i + 1].fd = -1;
                np--;
                continue;
            }
            p->have += (size_t)r;
            size_t off = 0;
            if (!p->upgraded) {
                p->in[p->have] = 0;
                char *e = strstr((char *)p->in, "\r\n\r\n");
                if (e == NULL) {
                    continue;
                }
                off = (size_t)((unsigned char *)e + 4 - p->in);
                send_all(p->fd, ok, sizeof(ok) - 1);
                p->upgraded = 1;
            }
            unsigned char out[70000];
            size_t on = 0;
            for (;;) {
                unsigned char *h = p->in + off;
                size_t av = p->have - off;
                if (av < 6) {
                    break;
                }
                size_t pl = h[1] & 0x7f, hl = 2;
                if (pl == 126) {
                    pl = (size_t)h[2] << 8 | h[3];
                    hl = 4;
                }
                if (av < hl + 4 + pl || on + 4 + pl > sizeof(out)) {
                    break;
                }
                const unsigned char *m = h + hl;
                out[on++] = h[0];
                if (pl < 126) {
                    out[on++] = (unsigned char)pl;
                } else {
                    out[on++] = 126;
                    out[on++] = (unsigned char)(pl >> 8);
                    out[on++] = (unsigned char)pl;
                }
                for (size_t k = 0; k < pl; k++) {
                    out[on++] = h[hl + 4 + k] ^ m[k % 4];
                }
                off += hl + 4 + pl;
            }
            if (on > 0) {
                send_all(p->fd, out, on);
            }
            memmove(p->in, p->in + off, p->have - off);
            p->have -= off;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    C = calloc(MAXC, sizeof(client_t));
    if (C == NULL) {
        die("calloc");
    }
    if (argc == 7 && strcmp(argv[1], "echo") == 0) {
        int n = atoi(argv[4]);
        if (n < 1 || n > MAXC) {
            return 2;
        }
        return run_echo(atoi(argv[2]), argv[3], n, atof(argv[5]), (size_t)atol(argv[6]));
    }
    if (argc == 9 && strcmp(argv[1], "bcast") == 0) {
        int n = atoi(argv[4]);
        size_t len = (size_t)atol(argv[6]);
        if (n < 1 || n > MAXC || len > 65535) {
            return 2;
        }
        return run_bcast(atoi(argv[2]), argv[3], n, atol(argv[5]), len, argv[7], argv[8]);
    }
    if (argc == 3 && strcmp(argv[1], "bare") == 0) {
        return run_bare(atoi(argv[2]));
    }
    fprintf(stderr, "usage: ws_load echo PORT PATH CLIENTS SECONDS MSGLEN | "
        "bcast PORT PATH CLIENTS N MSGLEN FIRE_PATH COUNT_PATH | bare PORT\n");
    return 2;
}
