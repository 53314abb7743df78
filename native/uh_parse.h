/*
 * uhttpd: HTTP/1.1 request parser, chunked decoder and small pure helpers.
 *
 * Pure C99: no MicroPython include, no allocation, no globals, no callbacks.
 * The same file is compiled into the firmware, the unix binary, the cffi
 * module of fuzz/ and the libFuzzer harness.
 *
 * Spans returned by the parser point into the caller's buffer and stay valid
 * only while that buffer is not modified (the server compacts its receive
 * buffer between requests).
 *
 * Keep this header cffi-friendly: plain structs, enums for codes, no #if in
 * the API block, fixed-width or size_t types.
 */
#ifndef UHTTPD_UH_PARSE_H
#define UHTTPD_UH_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Results.  >= 0 means success (for uh_parse_request: bytes of the request
 * head consumed).  Errors are negative and their absolute value is the HTTP
 * status the server answers with. */
typedef enum {
    UH_PARTIAL = -1,                  /* need more bytes */
    UH_E400_BAD_REQUEST = -400,
    UH_E411_LENGTH_REQUIRED = -411,
    UH_E413_TOO_LARGE = -413,
    UH_E414_URI_TOO_LONG = -414,
    UH_E431_HEADERS_TOO_LARGE = -431,
    UH_E501_NOT_IMPLEMENTED = -501,
    UH_E505_VERSION = -505
} uh_result_t;

typedef enum {
    UH_M_UNKNOWN = 0,                 /* a valid token we do not implement: 501 */
    UH_M_GET = 1,
    UH_M_HEAD = 2,
    UH_M_POST = 3,
    UH_M_PUT = 4,
    UH_M_DELETE = 5,
    UH_M_OPTIONS = 6,
    UH_M_PATCH = 7,
    UH_M_CONNECT = 8,
    UH_M_TRACE = 9
} uh_method_t;

typedef struct {
    const char *ptr;                  /* NULL with len 0 when absent */
    size_t len;
} uh_span_t;

typedef struct {
    uh_span_t name;
    uh_span_t value;                  /* OWS trimmed on both sides */
} uh_header_t;

typedef struct {
    /* in: caller-owned header array and its capacity */
    uh_header_t *headers;
    size_t max_headers;
    /* out */
    size_t num_headers;
    int method;                       /* uh_method_t */
    uh_span_t method_token;
    uh_span_t target;                 /* whole request-target as sent */
    uh_span_t path;                   /* target up to '?' or '#', not decoded */
    uh_span_t query;                  /* after '?' up to '#', len 0 if none */
    int minor_version;                /* 0 or 1 (HTTP/1.x) */
    int64_t content_length;           /* -1 when absent */
    int chunked;                      /* Transfer-Encoding: chunked */
    int keep_alive;                   /* per version + Connection header */
    int expect_continue;              /* Expect: 100-continue */
    int upgrade_websocket;            /* Connection: upgrade + Upgrade: websocket */
} uh_request_t;

/* Parse one request head (request line + headers + empty line) from
 * buf[0..len).  Returns the number of bytes of the head (> 0), UH_PARTIAL, or
 * a negative uh_result_t error.  Stateless: call again with more bytes.
 * Strict: rejects bare LF/CR, obs-fold, NUL/CTL, whitespace before ':',
 * duplicate or invalid Content-Length, Content-Length with
 * Transfer-Encoding, transfer codings other than a single "chunked" (501),
 * HTTP/1.1 without exactly one Host, versions other than HTTP/1.0 and 1.1
 * (505).  More than max_headers headers is UH_E431_HEADERS_TOO_LARGE. */
int uh_parse_request(const char *buf, size_t len, uh_request_t *req);

/* When the receive buffer is full (len bytes) and uh_parse_request still
 * says UH_PARTIAL: UH_E414_URI_TOO_LONG if the request line is not complete,
 * else UH_E431_HEADERS_TOO_LARGE. */
int uh_parse_overflow(const char *buf, size_t len);

/* Chunked transfer coding decoder (RFC 9112 section 7.1), resumable, in
 * place.  Zero-initialise the state before the first call.  Decodes
 * buf[0..*len): on return the payload bytes decoded by this call are at
 * buf[0..*len_out) where *len is updated to their count.  Every input byte is
 * either payload (moved down) or absorbed into the state (chunk sizes,
 * extensions, CRLFs, trailers), so the next call gets only new bytes.
 * Returns UH_PARTIAL while the body is incomplete; when the last chunk and
 * trailer section are complete, the number of bytes following the message
 * (the start of a pipelined request), which have been moved to directly
 * follow the payload at buf[*len]; or a negative error (sticky: further
 * calls return it again).  Chunk sizes over 2^62 are UH_E413_TOO_LARGE;
 * bad syntax, bare LF, NUL is UH_E400_BAD_REQUEST. */
typedef struct {
    uint64_t remaining;               /* payload bytes left in current chunk */
    uint64_t total;                   /* payload bytes decoded so far */
    int state;                        /* private */
    int error;                        /* sticky error, 0 if none */
    int digits;                       /* private */
    size_t line_len;                  /* private: bytes in current ext/trailer line */
} uh_chunked_t;

int uh_decode_chunked(uh_chunked_t *st, char *buf, size_t *len);

/* HTTP reason phrase for a status code ("Not Found"); "Unknown" if none. */
const char *uh_status_reason(int status);

/* Percent-decode src[0..len) into dst (capacity cap).  '+' is left as is.
 * Returns the decoded length, or -1 on a bad escape, %00, or overflow. */
int uh_url_decode(const char *src, size_t len, char *dst, size_t cap);

/* Normalise a decoded absolute path in place: '\\' becomes '/', runs of '/'
 * collapse, "." segments vanish, ".." removes the previous segment; a
 * trailing '/' is kept.  Returns the new length, or -1 when the path does not
 * start with '/', contains NUL, or ".." would climb above the root. */
int uh_path_normalize(char *path, size_t len);

/* Query string lookup: find the first key (exact bytes, not decoded) in
 * q[0..qlen) ("a=1&b&c=3").  Returns 1 and sets *val (len 0 and ptr NULL
 * when the key has no '=') if found, else 0. */
int uh_query_find(const char *q, size_t qlen, const char *key, size_t keylen, uh_span_t *val);

/* Wildcard match: '*' matches any run of characters ('/' included). */
int uh_match(const char *pat, size_t plen, const char *s, size_t slen);

/* SHA-1 (FIPS 180-4) and the WebSocket accept key (RFC 6455 section 4.2.2):
 * base64(SHA1(key + GUID)), 28 chars, NUL-terminated in out[29].  Only the
 * first 128 bytes of a key are used (a real key has 24): callers reject
 * longer keys. */
void uh_sha1(const uint8_t *data, size_t len, uint8_t out[20]);
void uh_ws_accept(const char *key, size_t keylen, char out[29]);

/* Case-insensitive comparison of a span with a NUL-terminated lowercase
 * literal. */
int uh_span_ieq(uh_span_t s, const char *lower);

/* The first header of a parsed request whose name equals name[0..nlen)
 * (ASCII case-insensitive), or NULL. */
const uh_header_t *uh_request_header(const uh_request_t *req, const char *name, size_t nlen);

#endif
