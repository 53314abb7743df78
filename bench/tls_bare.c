/*
 * tls_bare: a tiny HTTPS server in plain C that proves native/uh_tls.c on
 * its own (no MicroPython), for tests/test_tls_layer.py and benchmarks.
 *
 *   tls_bare --cert FILE --key FILE [--port N] [--timeout-ms MS] [--bare]
 *
 * Prints "READY <port>" once listening on 127.0.0.1.  Default mode: one
 * non-blocking poll() loop over uh_tls (the shape of uhttpd's loop): sniff
 * the first byte (plain HTTP gets a plain 400), handshake, then HTTP/1.1
 * keep-alive:  GET /  -> "hello, tls\n";  GET /stream/N -> N bytes, byte i
 * being i % 251;  anything else -> 404.  HTTP/1.0 or "Connection: close"
 * closes after the reply.  A connection that makes no progress for the
 * timeout is closed.  Logs one line per failed handshake on stderr.
 *
 * --bare: the benchmark baseline, the plainest mbedTLS server: blocking,
 * one connection at a time, one reused mbedtls_ssl_context, the same
 * configuration (mbedTLS 2.x API only: it is a host tool).
 *
 * Built with -DUH_BARE_MEMSTATS and -Wl,--wrap=calloc,--wrap=malloc,
 * --wrap=realloc,--wrap=free against the static mbedTLS archives, it counts every byte
 * mbedTLS and uh_tls allocate and prints, per connection:
 *   MEM conn_new=<bytes> hs_peak=<bytes> established=<bytes>
 *   MEM closed total=<bytes held by the whole process's TLS state>
 * and "MEM server=<bytes>" once at start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "uh_tls.h"

#include "mbedtls/ssl.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/entropy.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/ssl_ticket.h"
#include "mbedtls/ssl_cache.h"

#define MAX_CONNS 64
#define RX_CAP 4096
#define TX_CAP 32768
#define TX_STEP 5000      /* body bytes added per top-up: odd sizes on purpose */

/* ---- allocation accounting (optional build) ---- */
#ifdef UH_BARE_MEMSTATS
static size_t mem_cur, mem_peak;
void *__real_calloc(size_t n, size_t m);
void *__real_malloc(size_t n);
void __real_free(void *p);
static void mem_add(void *p) {
    if (p != NULL) {
        mem_cur += malloc_usable_size(p);
        if (mem_cur > mem_peak) {
            mem_peak = mem_cur;
        }
    }
}
void *__wrap_calloc(size_t n, size_t m) {
    void *p = __real_calloc(n, m);
    mem_add(p);
    return p;
}
void *__wrap_malloc(size_t n) {
    void *p = __real_malloc(n);
    mem_add(p);
    return p;
}
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n) {
    size_t old = p != NULL ? malloc_usable_size(p) : 0;
    void *q = __real_realloc(p, n);
    if (q != NULL || n == 0) {
        mem_cur -= old;
        mem_add(q);
    }
    return q;
}
void __wrap_free(void *p) {
    if (p != NULL) {
        mem_cur -= malloc_usable_size(p);
    }
    __real_free(p);
}
#endif

enum { ST_FREE, ST_SNIFF, ST_HS, ST_HTTP, ST_LINGER };

typedef struct {
    int fd;
    int st;
    short want;
    int close_after;
    int64_t deadline;
    uh_tls_conn_t *tls;
    size_t rxn;
    size_t txoff, txlen;
    uint64_t body_left, body_pos;
    size_t mem_base;
    char rx[RX_CAP];
    uint8_t tx[TX_CAP];
} conn_t;

static conn_t conns[MAX_CONNS];
static int timeout_ms = 5000;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    while (b != NULL) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            break;
        }
        uint8_t *nb = realloc(b, cap * 2);
        if (nb == NULL) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return b;
}

static void conn_close(conn_t *c, int notify) {
    if (c->tls != NULL) {
        uh_tls_conn_free(c->tls, notify);
        c->tls = NULL;
    }
    close(c->fd);
    c->st = ST_FREE;
    #ifdef UH_BARE_MEMSTATS
    printf("MEM closed total=%zu\n", mem_cur);
    fflush(stdout);
    #endif
}

/* Queue the reply to the request head rx[0..head). */
static void http_reply(conn_t *c, size_t head) {
    char *r = c->rx;
    r[head - 1] = '\0';                 /* the head's last '\n': a C string */
    const char *body = NULL;
    uint64_t len = 0;
    int status = 404;
    if (strncmp(r, "GET / ", 6) == 0) {
        body = "hello, tls\n";
        len = strlen(body);
        status = 200;
    } else if (strncmp(r, "GET /stream/", 12) == 0) {
        len = strtoull(r + 12, NULL, 10);
        status = 200;
    }
    char *eol = strstr(r, "\r\n");
    int http10 = eol != NULL && eol - r >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
    c->close_after = http10 || strcasestr(r, "\nconnection: close") != NULL;
    int n = snprintf((char *)c->tx, TX_CAP,
        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %llu\r\n%s\r\n",
        status, status == 200 ? "OK" : "Not Found", (unsigned long long)len,
        c->close_after ? "Connection: close\r\n" : "");
    c->txoff = 0;
    c->txlen = (size_t)n;
    if (body != NULL) {
        memcpy(c->tx + n, body, len);
        c->txlen += len;
        c->body_left = 0;
    } else {
        c->body_left = len;
    }
    c->body_pos = 0;
}

/* Send what is queued; UH_TLS_OK when all is out, else WANT_* / ERR.
 * On purpose it tops the buffer up (appends body bytes) and compacts it
 * (moves the unsent bytes) between a WANT_WRITE and the retry: the
 * uh_tls_send rule allows both. */
static int http_flush(conn_t *c) {
    for (;;) {
        if (c->txoff > 0 && (c->txoff == c->txlen || c->txoff >= TX_CAP / 2)) {
            memmove(c->tx, c->tx + c->txoff, c->txlen - c->txoff);
            c->txlen -= c->txoff;
            c->txoff = 0;
        }
        if (c->body_left > 0 && c->txlen < TX_CAP) {
            size_t room = TX_CAP - c->txlen;
            size_t n = c->body_left < room ? (size_t)c->body_left : room;
            n = n < TX_STEP ? n : TX_STEP;
            for (size_t k = 0; k < n; k++) {
                c->tx[c->txlen + k] = (uint8_t)((c->body_pos + k) % 251);
            }
            c->body_pos += n;
            c->body_left -= n;
            c->txlen += n;
        }
        if (c->txoff == c->txlen) {
            return UH_TLS_OK;
        }
        ssize_t r = uh_tls_send(c->tls, c->tx + c->txoff, c->txlen - c->txoff);
        if (r <= 0) {
            return r == 0 ? UH_TLS_ERR : (int)r;
        }
        c->txoff += (size_t)r;
        c->deadline = now_ms() + timeout_ms;       /* progress */
    }
}

static void step_http(conn_t *c) {
    for (;;) {
        if (c->txoff < c->txlen || c->body_left > 0) {
            int r = http_flush(c);
            if (r == UH_TLS_WANT_WRITE || r == UH_TLS_WANT_READ) {
                c->want = r == UH_TLS_WANT_WRITE ? POLLOUT : POLLIN;
                return;
            }
            if (r != UH_TLS_OK) {
                conn_close(c, 0);
                return;
            }
            c->txoff = c->txlen = 0;
            if (c->close_after) {
                conn_close(c, 1);
                return;
            }
        }
        char *e = c->rxn >= 4 ? memmem(c->rx, c->rxn, "\r\n\r\n", 4) : NULL;
        if (e != NULL) {
            size_t head = (size_t)(e - c->rx) + 4;
            http_reply(c, head);
            memmove(c->rx, c->rx + head, c->rxn - head);
            c->rxn -= head;
            continue;
        }
        if (c->rxn == RX_CAP) {
            conn_close(c, 0);           /* head too large */
            return;
        }
        ssize_t r = uh_tls_recv(c->tls, c->rx + c->rxn, RX_CAP - c->rxn);
        if (r > 0) {
            c->rxn += (size_t)r;
            c->deadline = now_ms() + timeout_ms;
            continue;
        }
        if (r == UH_TLS_WANT_READ || r == UH_TLS_WANT_WRITE) {
            if (r == UH_TLS_WANT_READ && uh_tls_pending(c->tls) > 0) {
                fprintf(stderr, "BUG: WANT_READ with %zu bytes pending\n", uh_tls_pending(c->tls));
            }
            c->want = r == UH_TLS_WANT_READ ? POLLIN : POLLOUT;
            return;
        }
        conn_close(c, r == 0);
        return;
    }
}

static void step_hs(conn_t *c) {
    #ifdef UH_BARE_MEMSTATS
    if (mem_peak < mem_cur) {
        mem_peak = mem_cur;
    }
    #endif
    int r = uh_tls_handshake(c->tls);
    if (r == UH_TLS_OK) {
        #ifdef UH_BARE_MEMSTATS
        printf("MEM hs_peak=%zu established=%zu\n", mem_peak - c->mem_base, mem_cur - c->mem_base);
        fflush(stdout);
        #endif
        c->st = ST_HTTP;
        c->deadline = now_ms() + timeout_ms;
        step_http(c);
    } else if (r == UH_TLS_WANT_READ || r == UH_TLS_WANT_WRITE) {
        c->want = r == UH_TLS_WANT_READ ? POLLIN : POLLOUT;
    } else {
        fprintf(stderr, "HS-ERR -0x%04x\n", (unsigned)-uh_tls_last_error(c->tls));
        conn_close(c, 0);
    }
}

static void step_sniff(conn_t *c, uh_tls_server_t *srv) {
    uint8_t b[8];
    ssize_t n = recv(c->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        conn_close(c, 0);
        return;
    }
    switch (uh_tls_sniff(b, (size_t)n)) {
        case UH_TLS_SNIFF_TLS:
            #ifdef UH_BARE_MEMSTATS
            c->mem_base = mem_cur;
            mem_peak = mem_cur;
            #endif
            c->tls = uh_tls_conn_new(srv, c->fd);
            if (c->tls == NULL) {
                conn_close(c, 0);
                return;
            }
            #ifdef UH_BARE_MEMSTATS
            printf("MEM conn_new=%zu\n", mem_cur - c->mem_base);
            fflush(stdout);
            #endif
            c->st = ST_HS;
            step_hs(c);
            return;
        case UH_TLS_SNIFF_HTTP: {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                "Content-Length: 35\r\nConnection: close\r\n\r\nThis port speaks HTTPS, not HTTP.\r\n";
            char sink[RX_CAP];
            while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
            }
            (void)send(c->fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            shutdown(c->fd, SHUT_WR);
            c->st = ST_LINGER;
            c->want = POLLIN;
            c->deadline = now_ms() + 1000;
            return;
        }
        default:
            conn_close(c, 0);
            return;
    }
}

static void step_linger(conn_t *c) {
    char sink[RX_CAP];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        conn_close(c, 0);
        return;
    }
}

static int run_loop(int lfd, uh_tls_server_t *srv) {
    struct pollfd p[MAX_CONNS + 1];
    int idx[MAX_CONNS + 1];
    for (;;) {
        int64_t now = now_ms();
        int np = 0, wait = -1, used = 0;
        for (int i = 0; i < MAX_CONNS; i++) {
            conn_t *c = &conns[i];
            if (c->st == ST_FREE) {
                continue;
            }
            used++;
            int left = (int)(c->deadline - now);
            if (wait < 0 || left < wait) {
                wait = left < 0 ? 0 : left;
            }
            p[np].fd = c->fd;
            p[np].events = c->want;
            p[np].revents = 0;
            idx[np++] = i;
        }
        if (used < MAX_CONNS) {
            p[np].fd = lfd;
            p[np].events = POLLIN;
            p[np].revents = 0;
            idx[np++] = -1;
        }
        int r = poll(p, (nfds_t)np, wait);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("poll");
            return 1;
        }
        now = now_ms();
        for (int k = 0; k < np; k++) {
            if (idx[k] < 0) {
                if (!(p[k].revents & POLLIN)) {
                    continue;
                }
                for (int i = 0; i < MAX_CONNS; i++) {
                    if (conns[i].st != ST_FREE) {
                        continue;
                    }
                    int fd = accept(lfd, NULL, NULL);
                    if (fd < 0) {
                        break;
                    }
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                    conn_t *c = &conns[i];
                    c->fd = fd;
                    c->st = ST_SNIFF;
                    c->want = POLLIN;
                    c->deadline = now + timeout_ms;
                    c->tls = NULL;
                    c->rxn = c->txoff = c->txlen = 0;
                    c->body_left = 0;
                    c->close_after = 0;
                }
                continue;
            }
            conn_t *c = &conns[idx[k]];
            if (c->st == ST_FREE) {
                continue;
            }
            if (p[k].revents & POLLNVAL) {
                fprintf(stderr, "BUG: POLLNVAL\n");
                return 1;
            }
            if (p[k].revents == 0) {
                if (now >= c->deadline) {
                    conn_close(c, 0);   /* stalled: timeout */
                }
                continue;
            }
            switch (c->st) {
                case ST_SNIFF:
                    step_sniff(c, srv);
                    break;
                case ST_HS:
                    step_hs(c);
                    break;
                case ST_HTTP:
                    step_http(c);
                    break;
                case ST_LINGER:
                    step_linger(c);
                    break;
            }
        }
    }
}

/* ---- --bare: the plainest blocking mbedTLS server, for the baseline ---- */

#if MBEDTLS_VERSION_NUMBER < 0x03000000
static int run_bare(int lfd, const uint8_t *cert, size_t cl, const uint8_t *key, size_t kl) {
    static const mbedtls_ecp_group_id curves[] = {
        MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE
    };
    static const char *alpn[] = { "http/1.1", NULL };
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    mbedtls_ssl_ticket_context tick;
    mbedtls_ssl_cache_context cache;
    mbedtls_ssl_context ssl;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&pk);
    mbedtls_ssl_ticket_init(&tick);
    mbedtls_ssl_cache_init(&cache);
    mbedtls_ssl_init(&ssl);
    /* cert and key come NUL-terminated from main() */
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0
        || mbedtls_x509_crt_parse(&crt, cert, cl) != 0
        || mbedtls_pk_parse_key(&pk, key, kl, NULL, 0) != 0
        || mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
            MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        fprintf(stderr, "bare: setup failed\n");
        return 1;
    }
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&conf, curves);
    mbedtls_ssl_conf_alpn_protocols(&conf, alpn);
    mbedtls_ssl_conf_own_cert(&conf, &crt, &pk);
    mbedtls_ssl_ticket_setup(&tick, mbedtls_ctr_drbg_random, &drbg, MBEDTLS_CIPHER_AES_128_GCM, 86400);
    mbedtls_ssl_conf_session_tickets_cb(&conf, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &tick);
    mbedtls_ssl_conf_session_cache(&conf, &cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
    if (mbedtls_ssl_setup(&ssl, &conf) != 0) {
        return 1;
    }
    for (;;) {
        mbedtls_net_context nc;
        nc.fd = accept(lfd, NULL, NULL);
        if (nc.fd < 0) {
            continue;
        }
        int one = 1;
        setsockopt(nc.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        mbedtls_ssl_set_bio(&ssl, &nc, mbedtls_net_send, mbedtls_net_recv, NULL);
        int r = mbedtls_ssl_handshake(&ssl);
        char rx[RX_CAP];
        size_t rxn = 0;
        while (r == 0) {
            int n = mbedtls_ssl_read(&ssl, (unsigned char *)rx + rxn, sizeof(rx) - 1 - rxn);
            if (n <= 0) {
                break;
            }
            rxn += (size_t)n;
            rx[rxn] = '\0';
            char *e = strstr(rx, "\r\n\r\n");
            if (e == NULL) {
                if (rxn == sizeof(rx) - 1) {
                    break;
                }
                continue;
            }
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                "Content-Length: 11\r\nConnection: close\r\n\r\nhello, tls\n";
            mbedtls_ssl_write(&ssl, (const unsigned char *)ok, sizeof(ok) - 1);
            break;
        }
        if (r == 0) {
            mbedtls_ssl_close_notify(&ssl);
        }
        close(nc.fd);
        mbedtls_ssl_session_reset(&ssl);
    }
}
#endif

int main(int argc, char **argv) {
    const char *certf = NULL, *keyf = NULL;
    int port = 0, bare = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc) {
            certf = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            keyf = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            timeout_ms = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--bare") == 0) {
            bare = 1;
        } else {
            fprintf(stderr, "usage: %s --cert FILE --key FILE [--port N] [--timeout-ms MS] [--bare]\n", argv[0]);
            return 2;
        }
    }
    if (certf == NULL || keyf == NULL) {
        fprintf(stderr, "need --cert and --key\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    size_t cl, kl;
    uint8_t *cert = read_file(certf, &cl), *key = read_file(keyf, &kl);
    if (cert == NULL || key == NULL) {
        fprintf(stderr, "cannot read %s\n", cert == NULL ? certf : keyf);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    socklen_t al = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 128) != 0
        || getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        perror("listen");
        return 1;
    }
    if (bare) {
        #if MBEDTLS_VERSION_NUMBER < 0x03000000
        uint8_t *c0 = realloc(cert, cl + 1), *k0 = realloc(key, kl + 1);
        if (c0 == NULL || k0 == NULL) {
            return 1;
        }
        c0[cl] = k0[kl] = '\0';
        printf("READY %d\n", ntohs(a.sin_port));
        fflush(stdout);
        return run_bare(lfd, c0, cl + 1, k0, kl + 1);
        #else
        fprintf(stderr, "--bare needs mbedTLS 2.x\n");
        return 2;
        #endif
    }
    uh_tls_server_t *srv;
    char err[256];
    int bad = uh_tls_server_new(&srv, cert, cl, key, kl, err, sizeof(err));
    free(cert);
    free(key);
    if (bad != 0) {
        printf("ERROR %s\n", err);
        close(lfd);
        return 3;
    }
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    #ifdef UH_BARE_MEMSTATS
    printf("MEM server=%zu\n", mem_cur);
    #endif
    printf("READY %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int rc = run_loop(lfd, srv);
    uh_tls_server_free(srv);
    return rc;
}
