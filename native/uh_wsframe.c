/*
 * uhttpd: RFC 6455 WebSocket frame layer (server side).
 *
 * Pure C99, no MicroPython include, no allocation, no globals: the same file
 * is built into the firmware, the unix binary, the cffi module of fuzz/ and
 * the libFuzzer harness.  uh_wsframe.h documents the API and every rule;
 * section numbers below are RFC 6455's.
 *
 * The parser is a byte-driven state machine: the frame header (2 to 14
 * bytes) is collected in the state and checked byte by byte as it arrives,
 * so a bad first byte fails before the second is read; the payload is
 * unmasked straight into the message buffer (data frames) or the control
 * buffer, and text is validated as it lands.  No check looks ahead, which
 * is why any split of the input gives the same events.
 */
#include <string.h>
#include "uh_wsframe.h"

enum {
    S_HEADER = 0,                     /* zero-initialised state starts here */
    S_PAYLOAD,
    S_CLOSED,
    S_ERROR
};

/* ---- UTF-8 (RFC 3629 section 4, the "well-formed" table of Unicode 3.9) */

size_t uh_utf8_feed(uh_utf8_t *st, const uint8_t *s, size_t n) {
    if (st->bad) {
        return 0;
    }
    uint8_t need = st->need, lo = st->lo, hi = st->hi;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (need) {
            if (c < lo || c > hi) {
                st->bad = 1;
                return i;
            }
            need--;
            lo = 0x80;
            hi = 0xBF;
        } else if (c < 0x80) {
            continue;
        } else if (c >= 0xC2 && c < 0xE0) {     /* C0, C1: overlong */
            need = 1;
            lo = 0x80;
            hi = 0xBF;
        } else if (c >= 0xE0 && c < 0xF0) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;         /* E0: no overlongs */
            hi = c == 0xED ? 0x9F : 0xBF;         /* ED: no surrogates */
        } else if (c >= 0xF0 && c < 0xF5) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;         /* F0: no overlongs */
            hi = c == 0xF4 ? 0x8F : 0xBF;         /* F4: nothing above U+10FFFF */
        } else {                                  /* stray continuation, F5-FF */
            st->bad = 1;
            return i;
        }
    }
    st->need = need;
    st->lo = lo;
    st->hi = hi;
    return n;
}

int uh_utf8_done(const uh_utf8_t *st) {
    return !st->bad && st->need == 0;
}

/* ---- close codes (section 7.4) */

int uh_ws_close_code_ok(int code) {
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)       /* 1012-1014: IANA registry */
           || (code >= 3000 && code <= 4999);
}

/* ---- parser */

static int fail(uh_wsp_t *p, int code, const char *why) {
    p->state = S_ERROR;
    p->code = code;
    p->why = why;
    return UH_WS_EV_ERROR;
}

static int is_control(int op) {
    return op & 8;
}

/* The first header byte (section 5.2). */
static int check_byte0(uh_wsp_t *p, uint8_t b) {
    int op = b & 0x0F;
    p->frame_fin = b >> 7;
    p->frame_op = op;
    if (b & 0x70) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "reserved bits set");
    }
    if (is_control(op)) {
        if (op > UH_WS_OP_PONG) {
            return fail(p, UH_WS_CLOSE_PROTOCOL, "reserved opcode");
        }
        if (!p->frame_fin) {
            return fail(p, UH_WS_CLOSE_PROTOCOL, "fragmented control frame");
        }
    } else if (op > UH_WS_OP_BINARY) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "reserved opcode");
    } else if (op == UH_WS_OP_CONT && !p->frag_op) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "continuation without a message");
    } else if (op != UH_WS_OP_CONT && p->frag_op) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
    }
    return UH_WS_EV_NEED_MORE;
}

/* The second header byte: mask bit and length code. */
static int check_byte1(uh_wsp_t *p, uint8_t b) {
    int len7 = b & 0x7F;
    p->masked = b >> 7;
    if (!p->masked && p->require_mask) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "unmasked client frame");
    }
    if (is_control(p->frame_op)) {
        if (len7 > UH_WS_MAX_CTRL) {
            return fail(p, UH_WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
        }
        if (p->frame_op == UH_WS_OP_CLOSE && len7 == 1) {
            return fail(p, UH_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
        }
    }
    p->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (p->masked ? 4 : 0);
    return UH_WS_EV_NEED_MORE;
}

/* The length bytes are complete (hdr[0..2+ext)): the payload length and
 * the size limit, checked before the mask key and the payload arrive. */
static int length_done(uh_wsp_t *p) {
    const uint8_t *h = p->hdr;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = len << 8 | h[2 + i];
        }
    }
    p->remaining = len;
    if (!is_control(p->frame_op)) {
        size_t cap = p->msg ? p->max_msg : 0;
        if (len > (uint64_t)(cap - p->fill)) {
            return fail(p, UH_WS_CLOSE_TOO_BIG, "message too big");
        }
    }
    return UH_WS_EV_NEED_MORE;
}

/* One more header byte, b, is in p->hdr[p->hdr_len - 1]. */
static int header_byte(uh_wsp_t *p, uint8_t b) {
    size_t n = p->hdr_len;
    if (n == 1) {
        return check_byte0(p, b);
    }
    if (n == 2) {
        int ev = check_byte1(p, b);
        if (ev != UH_WS_EV_NEED_MORE) {
            return ev;
        }
    } else if (n == 3 && (p->hdr[1] & 0x7F) == 127 && (b & 0x80)) {
        return fail(p, UH_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
    }
    if (n == (size_t)(p->hdr_need - (p->masked ? 4 : 0))) {
        return length_done(p);
    }
    return UH_WS_EV_NEED_MORE;
}

/* The whole header is in p->hdr: start the payload. */
static void header_done(uh_wsp_t *p) {
    if (p->masked) {
        memcpy(p->mask, p->hdr + p->hdr_need - 4, 4);
    }
    p->mask_pos = 0;
    if (is_control(p->frame_op)) {
        p->ctrl_len = 0;
    } else if (p->frame_op != UH_WS_OP_CONT) {
        p->frag_op = p->frame_op;
    }
    p->state = S_PAYLOAD;
}

/* A control frame is complete (section 5.5). */
static int control_done(uh_wsp_t *p) {
    p->opcode = p->frame_op;
    if (p->frame_op == UH_WS_OP_PING) {
        return UH_WS_EV_PING;
    }
    if (p->frame_op == UH_WS_OP_PONG) {
        return UH_WS_EV_PONG;
    }
    /* close (section 5.5.1): empty, or a 2-byte code and a UTF-8 reason */
    if (p->ctrl_len == 0) {
        p->code = UH_WS_CLOSE_NO_STATUS;
    } else {
        p->code = p->ctrl[0] << 8 | p->ctrl[1];
        if (!uh_ws_close_code_ok(p->code)) {
            return fail(p, UH_WS_CLOSE_PROTOCOL, "invalid close code");
        }
        p->ctrl_len -= 2;
        memmove(p->ctrl, p->ctrl + 2, p->ctrl_len);
        if (p->check_utf8) {
            uh_utf8_t u = { 0, 0, 0, 0 };
            uh_utf8_feed(&u, p->ctrl, p->ctrl_len);
            if (!uh_utf8_done(&u)) {
                return fail(p, UH_WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
            }
        }
    }
    p->state = S_CLOSED;
    return UH_WS_EV_CLOSE;
}

int uh_wsp_feed(uh_wsp_t *p, const uint8_t *data, size_t len, size_t *used) {
    size_t i = 0;
    int ev = UH_WS_EV_NEED_MORE;
    *used = 0;
    if (p->state == S_ERROR) {
        return UH_WS_EV_ERROR;
    }
    if (p->state == S_CLOSED) {
        return UH_WS_EV_CLOSE;
    }
    if (p->msg_ready) {
        p->msg_ready = 0;
        p->msg_len = 0;
    }
    for (;;) {
        if (p->state == S_HEADER) {
            if (i == len) {
                break;
            }
            if (p->hdr_len == 0) {
                p->hdr_need = 2;
            }
            while (i < len && p->hdr_len < p->hdr_need) {
                uint8_t b = data[i++];
                p->hdr[p->hdr_len++] = b;
                ev = header_byte(p, b);
                if (ev != UH_WS_EV_NEED_MORE) {
                    *used = i;
                    return ev;
                }
            }
            if (p->hdr_len < p->hdr_need) {
                break;
            }
            p->hdr_len = 0;
            header_done(p);
        }
        /* S_PAYLOAD (entered even with no input left: an empty frame is
         * complete as soon as its header is) */
        size_t n = len - i;
        if ((uint64_t)n > p->remaining) {
            n = (size_t)p->remaining;
        }
        int control = is_control(p->frame_op);
        /* msg is NULL when max_msg is 0, and then n is 0 (NULL + 0 is UB) */
        uint8_t *dst = control ? p->ctrl + p->ctrl_len : n ? p->msg + p->fill : NULL;
        if (n) {
            if (p->masked) {
                for (size_t k = 0; k < n; k++) {
                    dst[k] = data[i + k] ^ p->mask[(p->mask_pos + k) & 3];
                }
                p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
            } else {
                memcpy(dst, data + i, n);
            }
        }
        p->remaining -= n;
        if (control) {
            p->ctrl_len += n;
        } else {
            p->fill += n;
            if (n && p->frag_op == UH_WS_OP_TEXT && p->check_utf8) {
                size_t ok = uh_utf8_feed(&p->utf8, dst, n);
                if (ok < n) {
                    *used = i + ok + 1;
                    return fail(p, UH_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
                }
            }
        }
        i += n;
        if (p->remaining) {
            break;                    /* i == len: wait for the rest */
        }
        /* the frame is complete */
        p->state = S_HEADER;
        if (control) {
            *used = i;
            return control_done(p);
        }
        if (p->frame_fin) {
            if (p->frag_op == UH_WS_OP_TEXT && p->check_utf8 && !uh_utf8_done(&p->utf8)) {
                *used = i;
                return fail(p, UH_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
            }
            p->opcode = p->frag_op;
            p->msg_len = p->fill;
            p->msg_ready = 1;
            p->frag_op = 0;
            p->fill = 0;
            memset(&p->utf8, 0, sizeof(p->utf8));
            *used = i;
            return UH_WS_EV_MESSAGE;
        }
    }
    *used = i;
    return UH_WS_EV_NEED_MORE;
}

/* ---- builders (section 5.2; a server never masks, section 5.1) */

size_t uh_ws_header(uint8_t out[10], int opcode, int fin, uint64_t len) {
    int ok = opcode == UH_WS_OP_CONT || opcode == UH_WS_OP_TEXT || opcode == UH_WS_OP_BINARY
        || opcode == UH_WS_OP_CLOSE || opcode == UH_WS_OP_PING || opcode == UH_WS_OP_PONG;
    if (!ok || (len >> 63) || (is_control(opcode) && (!fin || len > UH_WS_MAX_CTRL))) {
        return 0;
    }
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 10;
}

size_t uh_ws_close_frame(uint8_t out[127], int code, const uint8_t *reason, size_t reason_len) {
    out[0] = 0x80 | UH_WS_OP_CLOSE;
    if (code == 0) {
        out[1] = 0;
        return 2;
    }
    if (reason_len > UH_WS_MAX_REASON) {
        /* cut before the character that straddles the limit */
        reason_len = UH_WS_MAX_REASON;
        while (reason_len > 0 && (reason[reason_len] & 0xC0) == 0x80) {
            reason_len--;
        }
    }
    out[1] = (uint8_t)(2 + reason_len);
    out[2] = (uint8_t)((unsigned)code >> 8);
    out[3] = (uint8_t)code;
    if (reason_len) {
        memcpy(out + 4, reason, reason_len);
    }
    return 4 + reason_len;
}
