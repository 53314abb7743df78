/*
 * uhttpd: the TLS building block over mbedTLS (see uh_tls.h for the API).
 *
 * One shim covers mbedTLS 2.28 (Debian 12, the host) and 3.6 (ESP-IDF
 * v5.2.x): key parsing and the key/cert check take an RNG in 3.x, curves
 * became IANA "groups", and versions are set by one enum.  No private
 * mbedTLS field is touched, so MBEDTLS_PRIVATE() is never needed.
 */
#include "uh_tls.h"

#if UH_TLS

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(ESP_PLATFORM)
#include "lwip/sockets.h"
#else
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif

#include "mbedtls/version.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"
#include "mbedtls/entropy.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/x509_crt.h"
#include "mbedtls/pk.h"
#include "mbedtls/net_sockets.h"      /* MBEDTLS_ERR_NET_* codes only */
#include "mbedtls/platform_util.h"    /* mbedtls_platform_zeroize */
#if defined(MBEDTLS_ERROR_C)
#include "mbedtls/error.h"
#endif
#if defined(MBEDTLS_SSL_TICKET_C) && defined(MBEDTLS_SSL_SESSION_TICKETS)
#include "mbedtls/ssl_ticket.h"
#define UH_TLS_TICKETS (1)
#else
#define UH_TLS_TICKETS (0)
#endif
#if defined(MBEDTLS_SSL_CACHE_C) && UH_TLS_CACHE_ENTRIES > 0
#include "mbedtls/ssl_cache.h"
#define UH_TLS_CACHE (1)
#else
#define UH_TLS_CACHE (0)
#endif

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define UH_TLS_V3 (1)
#if defined(MBEDTLS_USE_PSA_CRYPTO) || defined(MBEDTLS_SSL_PROTO_TLS1_3)
#include "psa/crypto.h"
#define UH_TLS_PSA (1)
#endif
#else
#define UH_TLS_V3 (0)
#endif

#if !defined(MBEDTLS_SSL_SRV_C) || !defined(MBEDTLS_X509_CRT_PARSE_C) || \
    !defined(MBEDTLS_CTR_DRBG_C) || !defined(MBEDTLS_ENTROPY_C)
#error "uh_tls.c needs mbedTLS with SSL_SRV_C, X509_CRT_PARSE_C, CTR_DRBG_C, ENTROPY_C (or build with -DUH_TLS=0)"
#endif

/* Socket flags: never block, never raise SIGPIPE. */
#ifdef MSG_DONTWAIT
#define UH_TLS_DONTWAIT MSG_DONTWAIT
#else
#define UH_TLS_DONTWAIT 0
#endif
#ifdef MSG_NOSIGNAL
#define UH_TLS_NOSIGNAL MSG_NOSIGNAL
#else
#define UH_TLS_NOSIGNAL 0
#endif

/* TLS 1.3 (where compiled in), then ECDHE with AEAD ciphers only: forward
 * secrecy, no CBC.  AES-128-GCM first (hardware AES on ESP32).  Suites the
 * library lacks are filtered out at start: mbedTLS 2.28 fails a handshake
 * whose client offers a configured suite it cannot find. */
static const int uh_tls_suite_wish[] = {
    #if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    #endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};
#define UH_TLS_N_SUITES (sizeof(uh_tls_suite_wish) / sizeof(uh_tls_suite_wish[0]))

/* Key exchange: X25519, then P-256, nothing else.  mbedTLS 2.28's default
 * list would pick secp521r1 when a client offers it (several times slower);
 * a client with neither of these two gets a handshake failure alert. */
#if UH_TLS_V3
static const uint16_t uh_tls_groups[] = {
    #if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED) || defined(PSA_WANT_ECC_MONTGOMERY_255)
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    #endif
    #if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED) || defined(PSA_WANT_ECC_SECP_R1_256)
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    #endif
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};
#else
static const mbedtls_ecp_group_id uh_tls_curves[] = {
    #if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
    MBEDTLS_ECP_DP_CURVE25519,
    #endif
    #if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
    MBEDTLS_ECP_DP_SECP256R1,
    #endif
    MBEDTLS_ECP_DP_NONE
};
#endif

#if defined(MBEDTLS_SSL_ALPN)
static const char *uh_tls_alpn[] = { "http/1.1", NULL };
#endif

struct uh_tls_server {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    #if UH_TLS_TICKETS
    mbedtls_ssl_ticket_context ticket;
    #endif
    #if UH_TLS_CACHE
    mbedtls_ssl_cache_context cache;
    #endif
    int suites[UH_TLS_N_SUITES + 1];    /* 0-terminated, what the library has */
};

struct uh_tls_conn {
    mbedtls_ssl_context ssl;
    int fd;
    int last_err;                       /* last mbedTLS error, 0 if none */
    size_t wlen;                        /* bytes a WANT_* write holds, else 0 */
    uint8_t done;                       /* handshake finished */
};

/* ---- the mbedTLS 2.28 / 3.x shim ---- */

static int uh_tls_parse_key(uh_tls_server_t *s, const uint8_t *b, size_t n) {
    #if UH_TLS_V3
    return mbedtls_pk_parse_key(&s->key, b, n, NULL, 0, mbedtls_ctr_drbg_random, &s->drbg);
    #else
    return mbedtls_pk_parse_key(&s->key, b, n, NULL, 0);
    #endif
}

static int uh_tls_check_pair(uh_tls_server_t *s) {
    #if UH_TLS_V3
    return mbedtls_pk_check_pair(&s->crt.pk, &s->key, mbedtls_ctr_drbg_random, &s->drbg);
    #else
    return mbedtls_pk_check_pair(&s->crt.pk, &s->key);
    #endif
}

static void uh_tls_conf_versions_and_curves(mbedtls_ssl_config *conf) {
    #if UH_TLS_V3
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    #if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
    #else
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    #endif
    mbedtls_ssl_conf_groups(conf, uh_tls_groups);
    #else
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(conf, uh_tls_curves);
    #endif
}

/* ---- error messages ---- */

static void uh_tls_msg(char *err, size_t cap, const char *what, int code) {
    if (err == NULL || cap == 0) {
        return;
    }
    if (code == 0) {
        snprintf(err, cap, "%s", what);
        return;
    }
    char detail[112];
    #if defined(MBEDTLS_ERROR_C)
    mbedtls_strerror(code, detail, sizeof(detail));
    #else
    detail[0] = '\0';
    #endif
    snprintf(err, cap, "%s (mbedTLS -0x%04x%s%s)", what, (unsigned)-code,
        detail[0] ? ": " : "", detail);
}

/* Bounded search for a NUL-free ASCII marker in possibly binary data. */
static int uh_tls_has(const uint8_t *b, size_t n, const char *s) {
    size_t m = strlen(s);
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        if (b[i] == (uint8_t)s[0] && memcmp(b + i, s, m) == 0) {
            return 1;
        }
    }
    return 0;
}

/* mbedTLS reads PEM only with the terminating NUL counted in the length,
 * DER as it is.  PEM without the NUL is copied (into *tmp) with one. */
static const uint8_t *uh_tls_pem_z(const uint8_t *b, size_t n, size_t *out_n, uint8_t **tmp) {
    *tmp = NULL;
    *out_n = n;
    if (n == 0 || b[n - 1] == '\0' || !uh_tls_has(b, n, "-----BEGIN ") || n == SIZE_MAX) {
        return b;
    }
    *tmp = malloc(n + 1);
    if (*tmp == NULL) {
        return NULL;
    }
    memcpy(*tmp, b, n);
    (*tmp)[n] = '\0';
    *out_n = n + 1;
    return *tmp;
}

static void uh_tls_wipe_free(uint8_t *tmp, size_t n) {
    if (tmp != NULL) {
        mbedtls_platform_zeroize(tmp, n);
        free(tmp);
    }
}

/* ---- server ---- */

void uh_tls_server_free(uh_tls_server_t *s) {
    if (s == NULL) {
        return;
    }
    #if UH_TLS_CACHE
    mbedtls_ssl_cache_free(&s->cache);
    #endif
    #if UH_TLS_TICKETS
    mbedtls_ssl_ticket_free(&s->ticket);
    #endif
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->crt);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    free(s);
}

static int uh_tls_load_cert(uh_tls_server_t *s, const uint8_t *cert, size_t cert_len,
    char *err, size_t cap) {
    if (cert == NULL || cert_len == 0) {
        uh_tls_msg(err, cap, "TLS certificate is empty", 0);
        return -1;
    }
    uint8_t *tmp;
    size_t n;
    const uint8_t *p = uh_tls_pem_z(cert, cert_len, &n, &tmp);
    if (p == NULL) {
        uh_tls_msg(err, cap, "TLS: out of memory", 0);
        return -1;
    }
    int r = mbedtls_x509_crt_parse(&s->crt, p, n);
    uh_tls_wipe_free(tmp, n);
    if (r == 0) {
        return 0;
    }
    if (r > 0) {
        char what[96];
        snprintf(what, sizeof(what), "TLS certificate: %d certificate(s) of the chain cannot be parsed", r);
        uh_tls_msg(err, cap, what, 0);
    } else if (uh_tls_has(cert, cert_len, "PRIVATE KEY-----")) {
        uh_tls_msg(err, cap, "TLS certificate: this is a private key, not a certificate (cert and key swapped?)", 0);
    } else {
        uh_tls_msg(err, cap, "TLS certificate: not a valid PEM or DER X.509 certificate", r);
    }
    return -1;
}

static int uh_tls_load_key(uh_tls_server_t *s, const uint8_t *key, size_t key_len,
    char *err, size_t cap) {
    if (key == NULL || key_len == 0) {
        uh_tls_msg(err, cap, "TLS key is empty", 0);
        return -1;
    }
    uint8_t *tmp;
    size_t n;
    const uint8_t *p = uh_tls_pem_z(key, key_len, &n, &tmp);
    if (p == NULL) {
        uh_tls_msg(err, cap, "TLS: out of memory", 0);
        return -1;
    }
    int r = uh_tls_parse_key(s, p, n);
    uh_tls_wipe_free(tmp, n);
    if (r == 0) {
        return 0;
    }
    if (r == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || r == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        uh_tls_msg(err, cap, "TLS key: it is encrypted with a password; store it unencrypted", 0);
    } else if (uh_tls_has(key, key_len, "-----BEGIN CERTIFICATE")) {
        uh_tls_msg(err, cap, "TLS key: this is a certificate, not a private key (cert and key swapped?)", 0);
    } else {
        uh_tls_msg(err, cap, "TLS key: not a valid PEM or DER private key (RSA or EC)", r);
    }
    return -1;
}

int uh_tls_server_new(uh_tls_server_t **out,
    const uint8_t *cert, size_t cert_len,
    const uint8_t *key, size_t key_len,
    char *err, size_t err_cap) {
    if (err != NULL && err_cap > 0) {
        err[0] = '\0';
    }
    if (out == NULL) {
        uh_tls_msg(err, err_cap, "TLS: no result pointer", 0);
        return -1;
    }
    *out = NULL;
    uh_tls_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        uh_tls_msg(err, err_cap, "TLS: out of memory", 0);
        return -1;
    }
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->crt);
    mbedtls_pk_init(&s->key);
    #if UH_TLS_TICKETS
    mbedtls_ssl_ticket_init(&s->ticket);
    #endif
    #if UH_TLS_CACHE
    mbedtls_ssl_cache_init(&s->cache);
    #endif

    int r;
    #if defined(UH_TLS_PSA)
    if ((r = (int)psa_crypto_init()) != 0) {
        uh_tls_msg(err, err_cap, "TLS: PSA crypto init failed", r);
        goto fail;
    }
    #endif
    static const char pers[] = "uhttpd-tls";
    r = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
        (const unsigned char *)pers, sizeof(pers) - 1);
    if (r != 0) {
        uh_tls_msg(err, err_cap, "TLS: cannot seed the random generator", r);
        goto fail;
    }
    if (uh_tls_load_cert(s, cert, cert_len, err, err_cap) != 0
        || uh_tls_load_key(s, key, key_len, err, err_cap) != 0) {
        goto fail;
    }
    if ((r = uh_tls_check_pair(s)) != 0) {
        uh_tls_msg(err, err_cap, "TLS key does not match the certificate", 0);
        goto fail;
    }

    r = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (r != 0) {
        uh_tls_msg(err, err_cap, "TLS: configuration defaults failed", r);
        goto fail;
    }
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    uh_tls_conf_versions_and_curves(&s->conf);
    size_t ns = 0;
    for (size_t i = 0; i < UH_TLS_N_SUITES; i++) {
        if (mbedtls_ssl_ciphersuite_from_id(uh_tls_suite_wish[i]) != NULL) {
            s->suites[ns++] = uh_tls_suite_wish[i];
        }
    }
    s->suites[ns] = 0;
    if (ns == 0) {
        uh_tls_msg(err, err_cap, "TLS: this mbedTLS has no ECDHE AEAD cipher suite", 0);
        goto fail;
    }
    mbedtls_ssl_conf_ciphersuites(&s->conf, s->suites);
    if ((r = mbedtls_ssl_conf_own_cert(&s->conf, &s->crt, &s->key)) != 0) {
        uh_tls_msg(err, err_cap, "TLS: cannot use this certificate and key", r);
        goto fail;
    }
    #if defined(MBEDTLS_SSL_ALPN)
    if ((r = mbedtls_ssl_conf_alpn_protocols(&s->conf, uh_tls_alpn)) != 0) {
        uh_tls_msg(err, err_cap, "TLS: ALPN setup failed", r);
        goto fail;
    }
    #endif
    #if UH_TLS_TICKETS
    r = mbedtls_ssl_ticket_setup(&s->ticket, mbedtls_ctr_drbg_random, &s->drbg,
        MBEDTLS_CIPHER_AES_128_GCM, UH_TLS_SESSION_LIFETIME);
    if (r != 0) {
        uh_tls_msg(err, err_cap, "TLS: session ticket setup failed", r);
        goto fail;
    }
    mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
        mbedtls_ssl_ticket_parse, &s->ticket);
    #endif
    #if UH_TLS_CACHE
    mbedtls_ssl_cache_set_max_entries(&s->cache, UH_TLS_CACHE_ENTRIES);
    #if defined(MBEDTLS_HAVE_TIME)
    mbedtls_ssl_cache_set_timeout(&s->cache, UH_TLS_SESSION_LIFETIME);
    #endif
    mbedtls_ssl_conf_session_cache(&s->conf, &s->cache,
        mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
    #endif
    *out = s;
    return 0;

fail:
    uh_tls_server_free(s);
    return -1;
}

/* ---- the non-blocking BIO on a plain fd ---- */

static int uh_tls_bio_send(void *ctx, const unsigned char *buf, size_t len) {
    uh_tls_conn_t *c = ctx;
    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, len, UH_TLS_DONTWAIT | UH_TLS_NOSIGNAL);
        if (r >= 0) {
            return (int)r;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        return (errno == EPIPE || errno == ECONNRESET)
            ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int uh_tls_bio_recv(void *ctx, unsigned char *buf, size_t len) {
    uh_tls_conn_t *c = ctx;
    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, UH_TLS_DONTWAIT);
        if (r >= 0) {
            return (int)r;              /* 0: EOF, mbedTLS says CONN_EOF */
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* ---- connections ---- */

uh_tls_conn_t *uh_tls_conn_new(uh_tls_server_t *s, int fd) {
    if (s == NULL || fd < 0) {
        return NULL;
    }
    uh_tls_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    mbedtls_ssl_init(&c->ssl);
    if (mbedtls_ssl_setup(&c->ssl, &s->conf) != 0) {
        mbedtls_ssl_free(&c->ssl);
        free(c);
        return NULL;
    }
    c->fd = fd;
    mbedtls_ssl_set_bio(&c->ssl, c, uh_tls_bio_send, uh_tls_bio_recv, NULL);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

/* mbedTLS result (< 0) -> UH_TLS_*; remembers real errors. */
static int uh_tls_map(uh_tls_conn_t *c, int r) {
    switch (r) {
        case MBEDTLS_ERR_SSL_WANT_READ:
            return UH_TLS_WANT_READ;
        case MBEDTLS_ERR_SSL_WANT_WRITE:
            #if defined(MBEDTLS_ERR_SSL_ASYNC_IN_PROGRESS)
        case MBEDTLS_ERR_SSL_ASYNC_IN_PROGRESS:
            #endif
            #if defined(MBEDTLS_ERR_SSL_CRYPTO_IN_PROGRESS)
        case MBEDTLS_ERR_SSL_CRYPTO_IN_PROGRESS:
            #endif
            /* "call again": POLLOUT is ready at once on a healthy socket */
            return UH_TLS_WANT_WRITE;
        default:
            c->last_err = r;
            return UH_TLS_ERR;
    }
}

int uh_tls_handshake(uh_tls_conn_t *c) {
    if (c == NULL) {
        return UH_TLS_ERR;
    }
    if (c->done) {
        return UH_TLS_OK;
    }
    int r = mbedtls_ssl_handshake(&c->ssl);
    if (r == 0) {
        c->done = 1;
        return UH_TLS_OK;
    }
    #if defined(MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN)      /* 2.x; 3.x alerts itself */
    if (r == MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN) {
        /* mbedTLS 2.28 fails without an alert when no curve matches (an
         * RSA certificate, a client with only secp521r1): say so to the
         * client instead of just closing.  One try; a second alert after
         * one mbedTLS sent itself is harmless. */
        (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
            MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
    }
    #endif
    return uh_tls_map(c, r);
}

ssize_t uh_tls_recv(uh_tls_conn_t *c, void *buf, size_t n) {
    if (c == NULL || !c->done || buf == NULL || n == 0) {
        return UH_TLS_ERR;
    }
    if (n > INT_MAX) {
        n = INT_MAX;
    }
    for (;;) {
        int r = mbedtls_ssl_read(&c->ssl, buf, n);
        if (r > 0) {
            return r;
        }
        switch (r) {
            case 0:
            case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
            case MBEDTLS_ERR_SSL_CONN_EOF:
                return 0;
                #if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            case MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET:
                continue;               /* client side only; harmless */
                #endif
            default:
                return uh_tls_map(c, r);
        }
    }
}

ssize_t uh_tls_send(uh_tls_conn_t *c, const void *buf, size_t n) {
    if (c == NULL || !c->done || (buf == NULL && n > 0)) {
        return UH_TLS_ERR;
    }
    size_t len;
    if (c->wlen > 0) {
        /* mbedTLS holds these bytes already: offer exactly the same count,
         * or it would report more than it encrypted. */
        if (n < c->wlen) {
            c->last_err = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            return UH_TLS_ERR;
        }
        len = c->wlen;
    } else {
        if (n == 0) {
            return 0;
        }
        int max = mbedtls_ssl_get_max_out_record_payload(&c->ssl);
        if (max <= 0) {
            c->last_err = max;
            return UH_TLS_ERR;
        }
        len = n < (size_t)max ? n : (size_t)max;
    }
    int r = mbedtls_ssl_write(&c->ssl, buf, len);
    if (r >= 0) {
        c->wlen = 0;
        return r;
    }
    int m = uh_tls_map(c, r);
    if (m == UH_TLS_WANT_READ || m == UH_TLS_WANT_WRITE) {
        c->wlen = len;
    }
    return m;
}

size_t uh_tls_pending(const uh_tls_conn_t *c) {
    return c == NULL ? 0 : mbedtls_ssl_get_bytes_avail(&c->ssl);
}

int uh_tls_last_error(const uh_tls_conn_t *c) {
    return c == NULL ? 0 : c->last_err;
}

void uh_tls_conn_free(uh_tls_conn_t *c, int send_close_notify) {
    if (c == NULL) {
        return;
    }
    if (send_close_notify && c->done) {
        (void)mbedtls_ssl_close_notify(&c->ssl);    /* one try, no wait */
    }
    mbedtls_ssl_free(&c->ssl);
    free(c);
}

/* ---- what is knocking on the TLS port ---- */

int uh_tls_sniff(const uint8_t *b, size_t n) {
    if (b == NULL || n == 0) {
        return UH_TLS_SNIFF_MORE;
    }
    if (b[0] == 0x16) {                 /* handshake record */
        return n < 2 || b[1] == 0x03 ? UH_TLS_SNIFF_TLS : UH_TLS_SNIFF_OTHER;
    }
    if ((b[0] >= 'A' && b[0] <= 'Z') || (b[0] >= 'a' && b[0] <= 'z')) {
        return UH_TLS_SNIFF_HTTP;       /* a method token: GET, POST, ... */
    }
    return UH_TLS_SNIFF_OTHER;
}

#endif /* UH_TLS */
