/*
 * libFuzzer harness over the pure-C entry points of native/uh_parse.c,
 * built with ASan + UBSan (fuzz/run_libfuzzer.sh).  Checks, beyond "no
 * crash, no out-of-bounds": parsing at any split gives the same result as
 * parsing whole; the chunked decoder gives the same payload whole and byte
 * by byte; every span lies inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "uh_parse.h"

#define CHECK(x) do { if (!(x)) { __builtin_trap(); } } while (0)

static int parse_copy(const uint8_t *data, size_t len, uh_request_t *r, uh_header_t *h) {
    /* exact-size heap copy: ASan catches any over-read */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data, len);
    memset(r, 0, sizeof(*r));
    r->headers = h;
    r->max_headers = 24;
    int rc = uh_parse_request(buf, len, r);
    if (rc > 0) {
        CHECK((size_t)rc <= len);
        CHECK(r->num_headers <= 24);
        for (size_t i = 0; i < r->num_headers; i++) {
            CHECK(h[i].name.ptr >= buf && h[i].name.ptr + h[i].name.len <= buf + rc);
            CHECK(h[i].value.ptr >= buf && h[i].value.ptr + h[i].value.len <= buf + rc);
        }
        CHECK(r->target.ptr >= buf && r->target.ptr + r->target.len <= buf + rc);
    } else {
        CHECK(rc == UH_PARTIAL || rc == UH_E400_BAD_REQUEST || rc == UH_E411_LENGTH_REQUIRED
            || rc == UH_E413_TOO_LARGE || rc == UH_E414_URI_TOO_LONG || rc == UH_E431_HEADERS_TOO_LARGE
            || rc == UH_E501_NOT_IMPLEMENTED || rc == UH_E505_VERSION);
    }
    free(buf);
    return rc;
}

static int chunked(const uint8_t *data, size_t len, size_t step, uint8_t *out, size_t *outlen) {
    uh_chunked_t st;
    memset(&st, 0, sizeof(st));
    *outlen = 0;
    int rc = UH_PARTIAL;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        char *buf = malloc(n);
        memcpy(buf, data + off, n);
        size_t dn = n;
        rc = uh_decode_chunked(&st, buf, &dn);
        CHECK(dn <= n);
        memcpy(out + *outlen, buf, dn);
        *outlen += dn;
        free(buf);
        if (rc != UH_PARTIAL) {
            break;
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len > 8192) {
        return 0;
    }
    uh_header_t h1[24], h2[24];
    uh_request_t r1, r2;
    int whole = parse_copy(data, len, &r1, h1);
    if (len > 1) {
        /* a prefix is incomplete, the same error, or (once the head is
         * complete) the same result */
        size_t cut = data[0] % len;
        int part = parse_copy(data, cut, &r2, h2);
        CHECK(part == UH_PARTIAL || part == whole || part < 0);
        if (whole > 0 && (size_t)whole <= cut) {
            CHECK(part == whole);
        }
    }
    if (whole > 0) {
        CHECK(uh_parse_overflow((const char *)data, len) < 0);
    }
    /* chunked decoder: whole vs byte by byte vs a data-derived step */
    uint8_t *o1 = malloc(len + 1), *o2 = malloc(len + 1), *o3 = malloc(len + 1);
    size_t n1, n2, n3;
    int c1 = chunked(data, len, len ? len : 1, o1, &n1);
    int c2 = chunked(data, len, 1, o2, &n2);
    int c3 = chunked(data, len, len ? (data[len - 1] % 7) + 1 : 1, o3, &n3);
    CHECK((c1 >= 0) == (c2 >= 0) && (c1 >= 0) == (c3 >= 0));
    if (c1 >= 0 || c1 == UH_PARTIAL) {
        CHECK(n1 == n2 && memcmp(o1, o2, n1) == 0);
        CHECK(n1 == n3 && memcmp(o1, o3, n1) == 0);
    }
    free(o1);
    free(o2);
    free(o3);
    /* helpers on the same bytes */
    char *tmp = malloc(len ? len : 1);
    int d = uh_url_decode((const char *)data, len, tmp, len);
    CHECK(d <= (int)len);
    memcpy(tmp, data, len);
    int p = uh_path_normalize(tmp, len);
    CHECK(p <= (int)len);
    if (p > 0) {
        CHECK(tmp[0] == '/');
        int p2 = uh_path_normalize(tmp, (size_t)p);
        CHECK(p2 == p);
    }
    free(tmp);
    uh_span_t v;
    size_t kl = len ? data[0] % (len < 8 ? len : 8) : 0;
    uh_query_find((const char *)data, len, (const char *)data, kl, &v);
    size_t pl = len / 2;
    uh_match((const char *)data, pl, (const char *)data + pl, len - pl);
    char acc[29];
    uh_ws_accept((const char *)data, len, acc);
    CHECK(acc[28] == 0);
    return 0;
}
