/*
 * libFuzzer harness over native/uh_multipart.c, built with ASan + UBSan
 * (fuzz/run_libfuzzer.sh).  Input: byte 0 picks the header buffer size,
 * byte 1 the read sizes, then the Content-Type value up to the first LF,
 * then the body.  Every read and the header buffer are exact-size heap
 * blocks, so ASan traps any access outside them.  Checks, beyond "no crash":
 * used <= len; NEED_MORE consumes everything; progress; every span lies in
 * the read, the header buffer or the state; and the body parsed whole, in
 * data-chosen reads and byte by byte gives the same transcript (parts, their
 * names, filenames, content types and data, the final result).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "uh_multipart.h"

#define CHECK(x) do { if (!(x)) { __builtin_trap(); } } while (0)

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211u;
    }
    return h;
}

static int within(uh_span_t s, const void *lo, size_t n) {
    const char *a = lo;
    return s.len == 0 || (s.ptr >= a && s.ptr + s.len <= a + n);
}

/* Parse ct/body in reads of the sizes step() gives; returns a hash of the
 * transcript. */
static uint64_t run(const char *ct, size_t ctlen, const uint8_t *body, size_t len, size_t hcap,
    unsigned seed, int mode) {
    uh_mp_t mp;
    char *hbuf = malloc(hcap ? hcap : 1);
    uint64_t h = 14695981039346656037u;
    int rc = uh_mp_init(&mp, ct, ctlen, hbuf, hcap);
    if (rc != 0) {
        CHECK(rc == UH_E400_BAD_REQUEST);
        free(hbuf);
        return fnv(h, &rc, sizeof(rc));
    }
    int in_part = 0, done = 0;
    size_t off = 0;
    unsigned r = seed * 2654435761u + 1;
    while (off < len && !done) {
        size_t n = len - off;
        if (mode == 1) {
            n = 1;
        } else if (mode == 2) {
            r = r * 1103515245u + 12345u;
            size_t want = 1 + (r >> 16) % (seed % 97 + 1);
            n = want < n ? want : n;
        }
        char *piece = malloc(n);
        memcpy(piece, body + off, n);
        size_t p = 0, calls = 0;
        for (;;) {
            uh_mp_event_t ev;
            size_t used = 0;
            CHECK(++calls <= 2 * n + 8);
            int e = uh_mp_feed(&mp, piece + p, n - p, &used, &ev);
            CHECK(used <= n - p);
            CHECK(mp.hlen <= hcap && mp.line <= mp.hlen && mp.m <= mp.dlen + 1 && mp.dlen <= 74);
            p += used;
            if (e == UH_MP_NEED_MORE) {
                CHECK(p == n);
                break;
            }
            if (e < 0) {
                CHECK(e == UH_E400_BAD_REQUEST);
                h = fnv(h, &e, sizeof(e));
                free(piece);
                free(hbuf);
                return h;
            }
            if (e == UH_MP_PART_BEGIN) {
                CHECK(!in_part);
                in_part = 1;
                CHECK(within(ev.name, hbuf, hcap) && within(ev.headers, hbuf, hcap));
                CHECK(within(ev.filename, hbuf, hcap) && within(ev.content_type, hbuf, hcap));
                CHECK(ev.has_filename || (ev.filename.ptr == NULL && ev.filename.len == 0));
                uh_span_t blk = ev.headers, hn, hv;
                size_t nh = 0;
                while (uh_mp_header_next(&blk, &hn, &hv)) {
                    CHECK(within(hn, ev.headers.ptr, ev.headers.len) && within(hv, ev.headers.ptr, ev.headers.len));
                    CHECK(++nh <= hcap);
                }
                h = fnv(h, "B", 1);
                h = fnv(h, &ev.name.len, sizeof(size_t));
                h = fnv(h, ev.name.ptr, ev.name.len);
                h = fnv(h, &ev.has_filename, sizeof(int));
                h = fnv(h, &ev.filename.len, sizeof(size_t));
                h = fnv(h, ev.filename.ptr, ev.filename.len);
                h = fnv(h, &ev.content_type.len, sizeof(size_t));
                h = fnv(h, ev.content_type.ptr, ev.content_type.len);
            } else if (e == UH_MP_DATA) {
                CHECK(in_part && ev.data.len > 0);
                CHECK(within(ev.data, piece, n) || within(ev.data, &mp, sizeof(mp)));
                h = fnv(h, ev.data.ptr, ev.data.len);   /* a stream: any granularity */
            } else if (e == UH_MP_PART_END) {
                CHECK(in_part);
                in_part = 0;
                h = fnv(h, "E", 1);
            } else {
                CHECK(e == UH_MP_DONE && !in_part);
                done = 1;
                break;
            }
        }
        free(piece);
        off += n;
    }
    rc = uh_mp_finish(&mp);
    CHECK(done ? rc == UH_MP_DONE : (rc == UH_MP_DONE || rc == UH_E400_BAD_REQUEST));
    CHECK(!done || rc == UH_MP_DONE);
    if (rc == UH_MP_DONE) {
        CHECK(!in_part);
    }
    h = fnv(h, &rc, sizeof(rc));
    free(hbuf);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len < 2 || len > 16384) {
        return 0;
    }
    size_t hcap = (size_t)data[0] * 5;           /* 0 .. 1275 */
    unsigned seed = data[1];
    data += 2;
    len -= 2;
    const uint8_t *nl = memchr(data, '\n', len < 300 ? len : 300);
    static const char dflt[] = "multipart/form-data; boundary=XyZ";
    char *ct;
    size_t ctlen;
    if (nl) {
        ctlen = (size_t)(nl - data);
        ct = malloc(ctlen ? ctlen : 1);
        memcpy(ct, data, ctlen);
        data = nl + 1;
        len -= ctlen + 1;
    } else {
        ctlen = sizeof(dflt) - 1;
        ct = malloc(ctlen);
        memcpy(ct, dflt, ctlen);
    }
    CHECK(uh_mp_is_form(ct, ctlen) == 0 || uh_mp_is_form(ct, ctlen) == 1);
    uint64_t whole = run(ct, ctlen, data, len, hcap, seed, 0);
    CHECK(run(ct, ctlen, data, len, hcap, seed, 2) == whole);
    if (len <= 2048) {
        CHECK(run(ct, ctlen, data, len, hcap, seed, 1) == whole);
    }
    free(ct);
    return 0;
}
