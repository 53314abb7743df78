/*
 * uhttpd: the TLS building block (server side) over mbedTLS and BSD sockets.
 *
 * Pure C99: no MicroPython include, so it is unit-tested and benchmarked on
 * its own (bench/tls_bare.c, tests/test_tls_layer.py).  Written against
 * mbedTLS 2.28 (Debian 12, the host) and 3.6 (ESP-IDF v5.2.x) through one
 * small shim in uh_tls.c.  Everything here is off the MicroPython heap:
 * state comes from calloc() and mbedTLS's own allocator.
 *
 * Threads: a server and its connections are used by one thread at a time
 * (uh_tls_server_new may run in another thread before the loop starts).
 * Nothing blocks: every call returns at once with a result or a WANT_*.
 *
 * Use, per connection, on a non-blocking accepted socket:
 *   1. poll for POLLIN, peek the first bytes and ask uh_tls_sniff(): a
 *      plain-HTTP request on the TLS port gets a plain 400 and is closed;
 *      recv(fd, b, sizeof b, MSG_PEEK) leaves them in the socket for mbedTLS;
 *   2. c = uh_tls_conn_new(srv, fd); call uh_tls_handshake(c) whenever the
 *      socket is ready for what the last call wanted (WANT_READ: POLLIN,
 *      WANT_WRITE: POLLOUT) until it returns UH_TLS_OK; the caller bounds it
 *      with its own timeout;
 *   3. uh_tls_recv / uh_tls_send in place of recv / send;
 *   4. uh_tls_conn_free(c, 1), then close(fd) (the caller owns the fd).
 */
#ifndef UHTTPD_UH_TLS_H
#define UHTTPD_UH_TLS_H

#include "uh_config.h"

#if UH_TLS

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Results.  Every failure is negative; uh_tls_recv/uh_tls_send return a
 * byte count >= 0 on success. */
typedef enum {
    UH_TLS_OK = 0,
    UH_TLS_ERR = -1,          /* fatal for this connection: free it, close fd */
    UH_TLS_WANT_READ = -2,    /* call again when the socket is readable */
    UH_TLS_WANT_WRITE = -3    /* call again when the socket is writable */
} uh_tls_result_t;

/* What the first bytes of a connection on a TLS port are. */
typedef enum {
    UH_TLS_SNIFF_MORE = 0,    /* no byte yet */
    UH_TLS_SNIFF_TLS = 1,     /* a TLS handshake record (0x16 0x03 ...) */
    UH_TLS_SNIFF_HTTP = 2,    /* an ASCII request line: answer a plain 400 */
    UH_TLS_SNIFF_OTHER = 3    /* neither: close */
} uh_tls_sniff_t;

typedef struct uh_tls_server uh_tls_server_t;
typedef struct uh_tls_conn uh_tls_conn_t;

/* Build the shared server state: certificate (chain) and private key, each
 * PEM (with or without a trailing NUL) or DER; checks that the key belongs to
 * the (first) certificate; seeds its own entropy + CTR-DRBG; TLS 1.2 minimum
 * (1.3 where the library has it); ECDHE with AEAD ciphers only; curves X25519
 * then P-256; session tickets plus a small session-ID cache; ALPN http/1.1.
 * Returns 0 and sets *out, or < 0 with a one-line human message in err
 * (always NUL-terminated when err_cap > 0) naming what is wrong: the
 * certificate, the key, or their mismatch. */
int uh_tls_server_new(uh_tls_server_t **out,
    const uint8_t *cert, size_t cert_len,
    const uint8_t *key, size_t key_len,
    char *err, size_t err_cap);

/* Free a server (NULL is fine).  Free its connections first. */
void uh_tls_server_free(uh_tls_server_t *srv);

/* A connection on an accepted socket.  The fd stays the caller's; every
 * send/recv on it uses MSG_DONTWAIT (and MSG_NOSIGNAL where it exists), and
 * TCP_NODELAY is set here, without which each handshake stalls ~40 ms on
 * delayed ACKs.  NULL when out of memory.  The record buffers are allocated
 * here (~35 KB with mbedTLS's default 16 KB records, ~21 KB on ESP32 with
 * 16 KB in / 4 KB out; more during the handshake), so create it only once
 * uh_tls_sniff() said TLS.  All of it comes from calloc and mbedTLS's
 * allocator, never the MicroPython heap. */
uh_tls_conn_t *uh_tls_conn_new(uh_tls_server_t *srv, int fd);

/* Drive the handshake: UH_TLS_OK when done (then recv/send), WANT_READ or
 * WANT_WRITE, or UH_TLS_ERR (bad client, wrong protocol, peer gone). */
int uh_tls_handshake(uh_tls_conn_t *c);

/* Decrypted application bytes into buf: > 0 bytes, 0 when the peer closed
 * (close_notify or EOF), or UH_TLS_WANT_READ / WANT_WRITE / ERR.  After a
 * read, uh_tls_pending() may be non-zero: those bytes sit inside mbedTLS
 * and poll() will NOT report them; read again before waiting. */
ssize_t uh_tls_recv(uh_tls_conn_t *c, void *buf, size_t n);

/* Encrypt and send up to n bytes: > 0 bytes taken (at most one record, so
 * possibly fewer than n), or UH_TLS_WANT_WRITE / WANT_READ / ERR.
 *
 * mbedTLS's retry rule, kept here in a safer form: after UH_TLS_WANT_WRITE
 * the bytes are already encrypted inside mbedTLS (up to one record of them)
 * and waiting for the socket.  The NEXT uh_tls_send on this connection must
 * start with the same bytes (buf may point elsewhere and n may be larger:
 * you may append, never drop or change what was offered); its return value
 * then counts them as sent.  A smaller n than before returns UH_TLS_ERR.
 * A send buffer that drops bytes only once send() has counted them, as the
 * server's does, follows the rule by itself. */
ssize_t uh_tls_send(uh_tls_conn_t *c, const void *buf, size_t n);

/* Decrypted bytes waiting inside mbedTLS (read them before poll()ing). */
size_t uh_tls_pending(const uh_tls_conn_t *c);

/* The last mbedTLS error code of this connection (0 if none), for logs. */
int uh_tls_last_error(const uh_tls_conn_t *c);

/* Free a connection (NULL is fine).  With send_close_notify and a finished
 * handshake, one non-blocking try to send a close_notify alert first.  Does
 * not close the fd. */
void uh_tls_conn_free(uh_tls_conn_t *c, int send_close_notify);

/* Classify the first n bytes of a connection (1 byte suffices; peek them
 * with MSG_PEEK so they stay in the socket for the handshake). */
int uh_tls_sniff(const uint8_t *b, size_t n);

#endif /* UH_TLS */
#endif /* UHTTPD_UH_TLS_H */
