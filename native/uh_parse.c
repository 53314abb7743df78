/*
 * uhttpd: HTTP/1.1 request parser, chunked decoder and pure helpers.
 *
 * Pure C99, no MicroPython include, no allocation, no globals but const
 * tables: the same file is built into the firmware, the unix binary, the
 * cffi module of fuzz/ and the libFuzzer harness.  Strict by default
 * (RFC 9112): CRLF only, no obs-fold, no CTL in tokens or values, one Host,
 * one Content-Length of digits only, never Content-Length with
 * Transfer-Encoding, only "chunked" as a transfer coding.  fuzz/README.md
 * lists what is accepted and rejected and the differences from h11.
 */
#include <string.h>
#include "uh_parse.h"

static int is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return 1;
    }
    if ((c | 32) >= 'a' && (c | 32) <= 'z') {
        return 1;
    }
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
static int lower(int c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}
static int span_ieq(const char *p, size_t n, const char *l) {
    size_t i = 0;
    for (; i < n; i++) {
        if (!l[i] || lower((unsigned char)p[i]) != l[i]) {
            return 0;
        }
    }
    return l[i] == 0;
}
int uh_span_ieq(uh_span_t s, const char *lower_) {
    return span_ieq(s.ptr, s.len, lower_);
}

static int list_has(const char *p, size_t n, const char *tok) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < n && p[i] != ',') {
            i++;
        }
        size_t e = i;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t')) {
            e--;
        }
        if (e > s && span_ieq(p + s, e - s, tok)) {
            return 1;
        }
    }
    return 0;
}

int uh_parse_request(const char *buf, size_t len, uh_request_t *r) {
    /* find end of head */
    size_t end = 0;
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = i + 4;
            break;
        }
    }
    for (size_t i = 0; i < (end ? end : len); i++) {
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r')) {
            return UH_E400_BAD_REQUEST;
        }
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n') {
            return UH_E400_BAD_REQUEST;
        }
    }
    if (!end) {
        return UH_PARTIAL;
    }
    size_t i = 0;
    size_t ms = i;
    while (i < end && is_tchar((unsigned char)buf[i])) {
        i++;
    }
    if (i == ms || buf[i] != ' ') {
        return UH_E400_BAD_REQUEST;
    }
    r->method_token.ptr = buf;
    r->method_token.len = i;
    static const char *names[] = { "", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE" };
    r->method = UH_M_UNKNOWN;
    for (int k = 1; k < 10; k++) {if (strlen(names[k]) == i && memcmp(names[k], buf, i) == 0) {
                                      r->method = k;
                                  }
    }
    i++;
    size_t ts = i;
    while (i < end && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f) {
        i++;
    }
    if (i == ts || buf[i] != ' ') {
        return UH_E400_BAD_REQUEST;
    }
    r->target.ptr = buf + ts;
    r->target.len = i - ts;
    if (!(buf[ts] == '/' || (r->target.len == 1 && buf[ts] == '*' && r->method == UH_M_OPTIONS))) {
        return UH_E400_BAD_REQUEST;
    }
    size_t pe = ts;
    while (pe < i && buf[pe] != '?' && buf[pe] != '#') {
        pe++;
    }
    r->path.ptr = buf + ts;
    r->path.len = pe - ts;
    r->query.ptr = NULL;
    r->query.len = 0;
    if (pe < i && buf[pe] == '?') {
        size_t qe = pe + 1;
        while (qe < i && buf[qe] != '#') {
            qe++;
        }
        r->query.ptr = buf + pe + 1;
        r->query.len = qe - pe - 1;
    }
    i++;
    if (end - i < 10 || memcmp(buf + i, "HTTP/1.", 7) != 0) {
        if (end - i >= 8 && memcmp(buf + i, "HTTP/", 5) == 0) {
            return UH_E505_VERSION;
        }
        return UH_E400_BAD_REQUEST;
    }
    if (buf[i + 7] != '0' && buf[i + 7] != '1') {
        return UH_E505_VERSION;
    }
    r->minor_version = buf[i + 7] - '0';
    i += 8;
    if (buf[i] != '\r') {
        return UH_E400_BAD_REQUEST;
    }
    i += 2;
    r->num_headers = 0;
    r->content_length = -1;
    r->chunked = 0;
    r->expect_continue = 0;
    r->upgrade_websocket = 0;
    int hosts = 0, te = 0, conn_close = 0, conn_ka = 0, conn_up = 0, up_ws = 0;
    while (i < end - 2) {
        size_t ns = i;
        while (i < end && is_tchar((unsigned char)buf[i])) {
            i++;
        }
        if (i == ns || buf[i] != ':') {
            return UH_E400_BAD_REQUEST;
        }
        size_t nl = i - ns;
        i++;
        while (buf[i] == ' ' || buf[i] == '\t') {
            i++;
        }
        size_t vs = i;
        while (buf[i] != '\r') {
            unsigned char c = buf[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return UH_E400_BAD_REQUEST;
            }
            i++;
        }
        size_t ve = i;
        while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) {
            ve--;
        }
        i += 2;
        if (r->num_headers >= r->max_headers) {
            return UH_E431_HEADERS_TOO_LARGE;
        }
        uh_header_t *h = &r->headers[r->num_headers++];
        h->name.ptr = buf + ns;
        h->name.len = nl;
        h->value.ptr = buf + vs;
        h->value.len = ve - vs;
        if (span_ieq(buf + ns, nl, "host")) {
            hosts++;
        } else if (span_ieq(buf + ns, nl, "content-length")) {
            if (r->content_length >= 0 || ve == vs) {
                return UH_E400_BAD_REQUEST;
            }
            int64_t v = 0;
            if (ve - vs > 18) {
                for (size_t k = vs; k < ve; k++) {
                    if (buf[k] < '0' || buf[k] > '9') {
                        return UH_E400_BAD_REQUEST;
                    }
                }
                return UH_E413_TOO_LARGE;
            }
            for (size_t k = vs; k < ve; k++) {
                if (buf[k] < '0' || buf[k] > '9') {
                    return UH_E400_BAD_REQUEST;
                }
                v = v * 10 + (buf[k] - '0');
            }
            r->content_length = v;
        } else if (span_ieq(buf + ns, nl, "transfer-encoding")) {
            if (te++) {
                return UH_E400_BAD_REQUEST;
            }
            if (!span_ieq(buf + vs, ve - vs, "chunked")) {
                return UH_E501_NOT_IMPLEMENTED;
            }
            r->chunked = 1;
        } else if (span_ieq(buf + ns, nl, "connection")) {
            conn_close |= list_has(buf + vs, ve - vs, "close");
            conn_ka |= list_has(buf + vs, ve - vs, "keep-alive");
            conn_up |= list_has(buf + vs, ve - vs, "upgrade");
        } else if (span_ieq(buf + ns, nl, "expect")) {
            r->expect_continue = span_ieq(buf + vs, ve - vs, "100-continue");
        } else if (span_ieq(buf + ns, nl, "upgrade")) {
            up_ws = list_has(buf + vs, ve - vs, "websocket");
        }
    }
    if (r->chunked && r->content_length >= 0) {
        return UH_E400_BAD_REQUEST;
    }
    if (r->chunked && r->minor_version == 0) {
        return UH_E400_BAD_REQUEST;
    }
    if (r->minor_version == 1 && hosts != 1) {
        return UH_E400_BAD_REQUEST;
    }
    if (hosts > 1) {
        return UH_E400_BAD_REQUEST;
    }
    r->keep_alive = r->minor_version == 1 ? !conn_close : (conn_ka && !conn_close);
    r->upgrade_websocket = conn_up && up_ws;
    return (int)end;
}

int uh_parse_overflow(const char *buf, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {if (buf[i] == '\r' && buf[i + 1] == '\n') {
                                              return UH_E431_HEADERS_TOO_LARGE;
                                          }
    }
    return UH_E414_URI_TOO_LONG;
}

enum { CS_SIZE = 0, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TRAILER, CS_TRAILER_LF, CS_TRAILER_LINE, CS_DONE };

int uh_decode_chunked(uh_chunked_t *st, char *buf, size_t *len) {
    size_t in = 0, out = 0, n = *len;
    if (st->error) {
        *len = 0;
        return st->error;
    }
#define FAIL(e) do { st->error = (e); *len = out; return e; } while (0)
    while (in < n) {
        char c = buf[in];
        switch (st->state) {
            case CS_SIZE: {
                int v = -1;
                if (c >= '0' && c <= '9') {
                    v = c - '0';
                } else if ((c | 32) >= 'a' && (c | 32) <= 'f') {
                    v = (c | 32) - 'a' + 10;
                }
                if (v >= 0) {
                    if (st->digits >= 15) {
                        FAIL(UH_E413_TOO_LARGE);
                    }
                    st->remaining = st->remaining * 16 + (uint64_t)v;
                    st->digits++;
                    in++;
                    break;
                }
                if (!st->digits) {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                if (c == ';' || c == ' ' || c == '\t') {
                    st->state = CS_EXT;
                    st->line_len = 0;
                    in++;
                    break;
                }
                if (c == '\r') {
                    st->state = CS_SIZE_LF;
                    in++;
                    break;
                }
                FAIL(UH_E400_BAD_REQUEST);
            }
            case CS_EXT:
                if (c == '\r') {
                    st->state = CS_SIZE_LF;
                    in++;
                    break;
                }
                if (c == '\n' || c == 0 || ++st->line_len > 256) {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                break;
            case CS_SIZE_LF:
                if (c != '\n') {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                st->digits = 0;
                if (st->remaining == 0) {
                    st->state = CS_TRAILER;
                    st->line_len = 0;
                } else {
                    st->state = CS_DATA;
                }
                break;
            case CS_DATA: {
                size_t k = n - in;
                if ((uint64_t)k > st->remaining) {
                    k = (size_t)st->remaining;
                }
                memmove(buf + out, buf + in, k);
                out += k;
                in += k;
                st->remaining -= k;
                st->total += k;
                if (st->remaining == 0) {
                    st->state = CS_DATA_CR;
                }
                break;
            }
            case CS_DATA_CR:
                if (c != '\r') {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                st->state = CS_DATA_LF;
                break;
            case CS_DATA_LF:
                if (c != '\n') {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                st->state = CS_SIZE;
                break;
            case CS_TRAILER:
                /* RFC 9112 7.1.2: trailer section = *( field-line CRLF ) */
                if (c == '\r') {
                    st->state = CS_TRAILER_LF;
                    in++;
                    break;
                }
                if (!is_tchar((unsigned char)c)) {
                    FAIL(UH_E400_BAD_REQUEST);                                /* also obs-fold */
                }
                if (++st->remaining > 32) {
                    FAIL(UH_E431_HEADERS_TOO_LARGE);                         /* trailer count */
                }
                st->state = CS_TRAILER_LINE;
                st->line_len = 0;
                st->digits = 0;
                break;
            case CS_TRAILER_LINE:
                if (c == '\r') {
                    if (st->digits == 0) {
                        FAIL(UH_E400_BAD_REQUEST);                    /* no ':' */
                    }
                    st->state = CS_TRAILER_LF;
                    st->line_len = 1;
                    in++;
                    break;
                }
                if (++st->line_len > 1024) {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                if (st->digits == 0) {
                    /* field-name = token, then ':' */
                    if (c == ':') {
                        st->digits = 1;
                    } else if (!is_tchar((unsigned char)c)) {
                        FAIL(UH_E400_BAD_REQUEST);
                    }
                } else if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                break;
            case CS_TRAILER_LF:
                if (c != '\n') {
                    FAIL(UH_E400_BAD_REQUEST);
                }
                in++;
                if (st->line_len == 0) {
                    st->state = CS_DONE;
                    size_t rest = n - in;
                    memmove(buf + out, buf + in, rest);
                    *len = out;
                    return (int)rest;
                }
                st->state = CS_TRAILER;
                st->line_len = 0;
                break;
            default:
                FAIL(UH_E400_BAD_REQUEST);
        }
    }
    *len = out;
    return UH_PARTIAL;
}

/* One table for every status the server sends (RFC 9110 section 15). */
#define UH_STATUS_TABLE(X) \
    X(100, "Continue") X(101, "Switching Protocols") \
    X(200, "OK") X(201, "Created") X(204, "No Content") X(206, "Partial Content") \
    X(301, "Moved Permanently") X(302, "Found") X(303, "See Other") X(304, "Not Modified") \
    X(307, "Temporary Redirect") X(308, "Permanent Redirect") \
    X(400, "Bad Request") X(401, "Unauthorized") X(403, "Forbidden") X(404, "Not Found") \
    X(405, "Method Not Allowed") X(408, "Request Timeout") X(409, "Conflict") X(410, "Gone") \
    X(411, "Length Required") X(412, "Precondition Failed") X(413, "Content Too Large") \
    X(414, "URI Too Long") X(415, "Unsupported Media Type") X(416, "Range Not Satisfiable") \
    X(417, "Expectation Failed") X(418, "I'm a teapot") X(426, "Upgrade Required") \
    X(429, "Too Many Requests") X(431, "Request Header Fields Too Large") \
    X(500, "Internal Server Error") X(501, "Not Implemented") X(503, "Service Unavailable") \
    X(505, "HTTP Version Not Supported") X(507, "Insufficient Storage")

const char *uh_status_reason(int s) {
    switch (s) {
        #define UH_STATUS_CASE(code, text) case code: \
            return text;
        UH_STATUS_TABLE(UH_STATUS_CASE)
        #undef UH_STATUS_CASE
    }
    return "Unknown";
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 32;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}
int uh_url_decode(const char *src, size_t len, char *dst, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) {
                return -1;
            }
            int a = hexv(src[i + 1]), b = hexv(src[i + 2]);
            if (a < 0 || b < 0) {
                return -1;
            }
            c = (char)(a * 16 + b);
            if (c == 0) {
                return -1;
            }
            i += 2;
        }
        if (o >= cap) {
            return -1;
        }
        dst[o++] = c;
    }
    return (int)o;
}

int uh_path_normalize(char *p, size_t len) {
    if (len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] == 0) {
            return -1;
        }
        if (p[i] == '\\') {
            p[i] = '/';
        }
    }
    if (p[0] != '/') {
        return -1;
    }
    size_t o = 0, i = 0;
    while (i < len) {
        while (i < len && p[i] == '/') {
            i++;
        }
        size_t s = i;
        while (i < len && p[i] != '/') {
            i++;
        }
        size_t sl = i - s;
        if (sl == 0) {
            break;
        }
        if (sl == 1 && p[s] == '.') {
            continue;
        }
        if (sl == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (o == 0) {
                return -1;
            }
            while (o > 0 && p[o - 1] != '/') {
                o--;
            }
            if (o > 0) {
                o--;
            }
            continue;
        }
        p[o++] = '/';
        memmove(p + o, p + s, sl);
        o += sl;
    }
    int trail = len > 0 && p[len - 1] == '/';
    /* note: trailing '/' after processing */
    if (o == 0 || trail) {
        p[o++] = '/';
    }
    return (int)o;
}

int uh_query_find(const char *q, size_t qlen, const char *key, size_t keylen, uh_span_t *val) {
    size_t i = 0;
    while (i <= qlen && qlen) {
        size_t j = i;
        while (j < qlen && q[j] != '&') {
            j++;
        }
        size_t eq = i;
        while (eq < j && q[eq] != '=') {
            eq++;
        }
        if (eq - i == keylen && memcmp(q + i, key, keylen) == 0) {
            if (eq == j) {
                val->ptr = NULL;
                val->len = 0;
            } else {
                val->ptr = q + eq + 1;
                val->len = j - eq - 1;
            }
            return 1;
        }
        i = j + 1;
        if (j >= qlen) {
            break;
        }
    }
    return 0;
}

int uh_match(const char *pat, size_t plen, const char *s, size_t slen) {
    size_t p = 0, i = 0, star = (size_t)-1, mark = 0;
    while (i < slen) {
        if (p < plen && pat[p] == '*') {
            star = p++;
            mark = i;
        } else if (p < plen && pat[p] == s[i]) {
            p++;
            i++;
        } else if (star != (size_t)-1) {
            p = star + 1;
            i = ++mark;
        } else {
            return 0;
        }
    }
    while (p < plen && pat[p] == '*') {
        p++;
    }
    return p == plen;
}

#define ROL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
void uh_sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    uint64_t bits = (uint64_t)len * 8;
    size_t total = ((len + 8) / 64 + 1) * 64;
    for (size_t off = 0; off < total; off += 64) {
        uint8_t blk[64];
        for (int k = 0; k < 64; k++) {
            size_t idx = off + k;
            if (idx < len) {
                blk[k] = data[idx];
            } else if (idx == len) {
                blk[k] = 0x80;
            } else if (idx >= total - 8) {
                blk[k] = (uint8_t)(bits >> (8 * (total - 1 - idx)));
            } else {
                blk[k] = 0;
            }
        }
        uint32_t w[80];
        for (int t = 0; t < 16; t++) {w[t] = (uint32_t)blk[4 * t] << 24 | (uint32_t)blk[4 * t + 1] << 16 | (uint32_t)blk[4 * t + 2] << 8 | blk[4 * t + 3];
        }
        for (int t = 16; t < 80; t++) {w[t] = ROL(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int t = 0; t < 80; t++) {
            uint32_t f, k;
            if (t < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999;
            } else if (t < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1;
            } else if (t < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDC;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6;
            }
            uint32_t tmp = ROL(a, 5) + f + e + k + w[t];
            e = d;
            d = c;
            c = ROL(b, 30);
            b = a;
            a = tmp;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    }
    for (int k = 0; k < 5; k++) {
        out[4 * k] = h[k] >> 24;
        out[4 * k + 1] = h[k] >> 16;
        out[4 * k + 2] = h[k] >> 8;
        out[4 * k + 3] = h[k];
    }
}

void uh_ws_accept(const char *key, size_t keylen, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t tmp[128 + 36];
    if (keylen > 128) {
        keylen = 128;
    }
    memcpy(tmp, key, keylen);
    memcpy(tmp + keylen, guid, 36);
    uint8_t d[20];
    uh_sha1(tmp, keylen + 36, d);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 20; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < 20 ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < 20 ? d[i + 2] : 0);
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < 20 ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    out[28] = 0;
}

const uh_header_t *uh_request_header(const uh_request_t *req, const char *name, size_t nlen) {
    for (size_t i = 0; i < req->num_headers; i++) {
        const uh_header_t *h = &req->headers[i];
        if (h->name.len != nlen) {
            continue;
        }
        size_t k = 0;
        for (; k < nlen; k++) {
            char a = h->name.ptr[k], b = name[k];
            if (a >= 'A' && a <= 'Z') {
                a += 32;
            }
            if (b >= 'A' && b <= 'Z') {
                b += 32;
            }
            if (a != b) {
                break;
            }
        }
        if (k == nlen) {
            return h;
        }
    }
    return NULL;
}
