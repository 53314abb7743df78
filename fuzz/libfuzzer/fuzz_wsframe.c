/*
 * libFuzzer harness over native/uh_wsframe.c, built with ASan + UBSan
 * (fuzz/run_libfuzzer.sh).  Input: byte 0 picks the configuration
 * (require_mask, check_utf8, max_msg), byte 1 seeds the splits, the rest is
 * the client's byte stream.  Checks, beyond "no crash, no out-of-bounds":
 * the stream gives the same events whole, byte by byte and at seed-derived
 * multi-splits; consumed <= len and NEED_MORE consumes everything; CLOSE and
 * ERROR are sticky; every field stays in range; every text message and close
 * reason passes an independent (code point based) UTF-8 check; what the
 * builders write parses back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "uh_wsframe.h"

#define CHECK(x) do { if (!(x)) { __builtin_trap(); } } while (0)

typedef struct {
    int ev, opcode, code;
    size_t len;
    uint64_t hash;
} rec_t;

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* Independent UTF-8 check: decode each code point, then reject overlongs,
 * surrogates and values above U+10FFFF. */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i];
        size_t len;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            c &= 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            c &= 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            c &= 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

typedef struct {
    size_t max_msg;
    int require_mask, check_utf8;
} cfg_t;

/* Feed data in pieces whose sizes come from step(); record the events. */
static size_t run(const cfg_t *cfg, const uint8_t *data, size_t len, uint32_t seed, int mode, rec_t *out) {
    uh_wsp_t p;
    memset(&p, 0, sizeof(p));
    uint8_t *msg = malloc(cfg->max_msg ? cfg->max_msg : 1);
    p.msg = cfg->max_msg ? msg : NULL;
    p.max_msg = cfg->max_msg;
    p.require_mask = cfg->require_mask;
    p.check_utf8 = cfg->check_utf8;
    size_t nrec = 0, off = 0;
    int final = 0;
    while (off < len && !final) {
        size_t n = len - off;                         /* mode 0: whole */
        if (mode == 1) {
            n = 1;                                    /* byte by byte */
        } else if (mode == 2) {
            seed = seed * 1103515245u + 12345u;       /* random pieces of 1..64 */
            n = 1 + (seed >> 16) % 64;
            if (n > len - off) {
                n = len - off;
            }
        }
        uint8_t *slice = malloc(n);                   /* exact size: ASan traps over-reads */
        memcpy(slice, data + off, n);
        size_t pos = 0;
        while (!final) {
            size_t used = 12345;
            int ev = uh_wsp_feed(&p, slice + pos, n - pos, &used);
            CHECK(used <= n - pos);
            pos += used;
            if (ev == UH_WS_EV_NEED_MORE) {
                CHECK(pos == n);
                break;
            }
            rec_t r;
            memset(&r, 0, sizeof(r));               /* padding too: records are memcmp'd */
            r.ev = ev;
            r.opcode = p.opcode;
            switch (ev) {
                case UH_WS_EV_MESSAGE:
                    CHECK(p.opcode == UH_WS_OP_TEXT || p.opcode == UH_WS_OP_BINARY);
                    CHECK(p.msg_len <= cfg->max_msg);
                    if (p.opcode == UH_WS_OP_TEXT && cfg->check_utf8) {
                        CHECK(utf8_ok(p.msg, p.msg_len));
                    }
                    r.len = p.msg_len;
                    r.hash = p.msg_len ? fnv(p.msg, p.msg_len) : 0;
                    break;
                case UH_WS_EV_PING:
                case UH_WS_EV_PONG:
                    CHECK(p.ctrl_len <= UH_WS_MAX_CTRL);
                    r.len = p.ctrl_len;
                    r.hash = fnv(p.ctrl, p.ctrl_len);
                    break;
                case UH_WS_EV_CLOSE:
                    CHECK(p.ctrl_len <= UH_WS_MAX_REASON);
                    CHECK(p.code == UH_WS_CLOSE_NO_STATUS ? p.ctrl_len == 0 : uh_ws_close_code_ok(p.code));
                    if (cfg->check_utf8) {
                        CHECK(utf8_ok(p.ctrl, p.ctrl_len));
                    }
                    r.code = p.code;
                    r.len = p.ctrl_len;
                    r.hash = fnv(p.ctrl, p.ctrl_len);
                    final = 1;
                    break;
                case UH_WS_EV_ERROR:
                    CHECK(p.code == 1002 || p.code == 1007 || p.code == 1009);
                    CHECK(p.why != NULL && p.why[0] != 0);
                    r.code = p.code;
                    final = 1;
                    break;
                default:
                    CHECK(0);
            }
            out[nrec++] = r;
            if (final) {
                /* sticky: the same event again, nothing consumed */
                size_t used2 = 1;
                CHECK(uh_wsp_feed(&p, slice, n, &used2) == ev && used2 == 0);
                CHECK(p.code == r.code);
            }
            if (pos == n) {
                break;
            }
        }
        free(slice);
        off += n;
    }
    free(msg);
    return nrec;
}

static void builders(const uint8_t *data, size_t len) {
    if (len < 10) {
        return;
    }
    static const int ops[] = { 0, 1, 2, 8, 9, 10, 3, 15 };
    int op = ops[data[0] & 7];
    int fin = data[0] >> 7;
    uint64_t n = 0;
    for (int i = 1; i < 9; i++) {
        n = n << 8 | data[i];
    }
    n >>= data[9] & 63;                               /* every length class */
    uint8_t h[UH_WS_MAX_HEADER];
    size_t k = uh_ws_header(h, op, fin, n);
    int valid_op = op <= 2 || (op >= 8 && op <= 10);
    int ok = valid_op && !(n >> 63) && !((op & 8) && (!fin || n > 125));
    CHECK(ok ? (k == 2 || k == 4 || k == 10) : k == 0);
    if (k) {
        CHECK((h[0] & 0x0F) == op && (h[0] >> 7) == fin && !(h[1] & 0x80));
        CHECK(k == (n < 126 ? 2u : n < 65536 ? 4u : 10u));
    }
    /* a close frame from the input parses back to its code and reason */
    int code = 1000 + data[1] % 12;
    if (!uh_ws_close_code_ok(code)) {
        code = 1000;
    }
    uint8_t cf[UH_WS_MAX_CLOSE_FRAME];
    size_t cl = uh_ws_close_frame(cf, code, data + 10, len - 10);
    CHECK(cl >= 4 && cl <= UH_WS_MAX_CLOSE_FRAME && cf[1] == cl - 2);
    CHECK(memcmp(cf + 4, data + 10, cl - 4) == 0);
    uh_wsp_t p;
    memset(&p, 0, sizeof(p));
    size_t used;
    int ev = uh_wsp_feed(&p, cf, cl, &used);
    CHECK(used == cl);
    CHECK(ev == UH_WS_EV_CLOSE && p.code == code && p.ctrl_len == cl - 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    if (len < 2 || len > 8192) {
        return 0;
    }
    static const size_t limits[] = { 0, 125, 4096, 70000 };
    cfg_t cfg = { limits[(data[0] >> 2) & 3], data[0] & 1, (data[0] >> 1) & 1 };
    uint32_t seed = data[1];
    const uint8_t *s = data + 2;
    size_t n = len - 2;
    size_t cap = n + 1;
    rec_t *a = malloc(cap * sizeof(rec_t)), *b = malloc(cap * sizeof(rec_t)), *c = malloc(cap * sizeof(rec_t));
    size_t na = run(&cfg, s, n, seed, 0, a);
    size_t nb = run(&cfg, s, n, seed, 1, b);
    size_t nc = run(&cfg, s, n, seed, 2, c);
    CHECK(na <= cap && na == nb && na == nc);
    CHECK(memcmp(a, b, na * sizeof(rec_t)) == 0 && memcmp(a, c, na * sizeof(rec_t)) == 0);
    free(a);
    free(b);
    free(c);
    /* the UTF-8 validator against the independent check */
    uh_utf8_t u;
    memset(&u, 0, sizeof(u));
    size_t k = uh_utf8_feed(&u, s, n);
    CHECK(k <= n);
    CHECK((k == n && uh_utf8_done(&u)) == utf8_ok(s, n));
    if (k < n) {
        CHECK(!utf8_ok(s, k + 1));
    }
    builders(s, n);
    return 0;
}
