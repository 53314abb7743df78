/*
 * uhttpd: RFC 6455 WebSocket frame layer (server side).
 *
 * Pure C99: no MicroPython include, no allocation, no globals, no callbacks.
 * The same file is compiled into the firmware, the unix binary, the cffi
 * module of fuzz/ and the libFuzzer harness.  The opening handshake lives
 * elsewhere (uh_ws_accept in uh_parse.h); this file only frames.
 *
 * Receiving: a resumable, streaming parser.  The caller owns a zeroed
 * uh_wsp_t, sets its config fields (msg, max_msg, require_mask, check_utf8)
 * and feeds it any slices of the byte stream; frames may be split at any
 * byte and several frames may come in one slice.  Each call returns ONE
 * event and how many bytes it consumed:
 *
 *     size_t off = 0;
 *     while (off < len) {
 *         size_t used;
 *         int ev = uh_wsp_feed(&p, buf + off, len - off, &used);
 *         off += used;
 *         switch (ev) {
 *             case UH_WS_EV_NEED_MORE: break;              // off == len now
 *             case UH_WS_EV_MESSAGE: ... p.msg[0..p.msg_len), p.opcode
 *             case UH_WS_EV_PING:    ... send a pong with p.ctrl[0..p.ctrl_len)
 *             case UH_WS_EV_PONG:    ... ignore
 *             case UH_WS_EV_CLOSE:   ... echo p.code (1000 if 1005), close
 *             case UH_WS_EV_ERROR:   ... send a close with p.code, close
 *         }
 *         if (ev == UH_WS_EV_CLOSE || ev == UH_WS_EV_ERROR) break;
 *     }
 *
 * NEED_MORE always consumes the whole slice (every byte is absorbed into the
 * state or the message buffer), so the caller never keeps unparsed bytes.
 * The other events consume up to the end of the frame that completed them
 * (ERROR: up to the byte that revealed the violation).  The results (msg_len,
 * opcode, code, ctrl) are valid until the next call.  CLOSE and ERROR are
 * final ("sticky"): later calls return the same event again and consume
 * nothing.  Bytes after a close frame are never parsed.  To reuse a state
 * for a new connection, zero it and set the config again.
 *
 * What is checked (RFC 6455 section 5; the close code sent is in brackets):
 * RSV bits (no extension is negotiated) [1002]; opcodes other than 0, 1, 2,
 * 8, 9, 10 [1002]; an unmasked client frame when require_mask [1002]; a
 * control frame with FIN=0 or a payload over 125 bytes (a 126/127 length
 * code on a control frame is refused at once) [1002]; a 64-bit length with
 * the top bit set [1002]; a continuation frame with no message started, a
 * text/binary frame while a fragmented message is open [1002]; a message
 * longer than max_msg in total, found from the frame header before any of
 * its payload arrives [1009]; invalid UTF-8 in a text message, checked as
 * the bytes arrive, across frame and slice boundaries, failing on the first
 * byte that cannot be part of valid UTF-8 [1007]; a close payload of 1 byte
 * or a close code that may not be sent (below 1000, 1004-1006, 1015-2999,
 * 5000 and up) [1002]; invalid UTF-8 in the close reason [1007].
 * Non-minimal length encodings of data frames are accepted.  With
 * require_mask = 0 (WebREPL: webrepl_cli.py sends unmasked frames) masked
 * and unmasked frames are both accepted; check_utf8 = 0 skips the UTF-8
 * checks (the WebREPL terminal sends raw bytes in text frames).
 *
 * Sending: servers send unmasked frames; uh_ws_header and uh_ws_close_frame
 * build them.
 *
 * Keep this header cffi-friendly: plain structs, enums for codes, no #if in
 * the API block, fixed-width or size_t types.
 */
#ifndef UHTTPD_UH_WSFRAME_H
#define UHTTPD_UH_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    UH_WS_OP_CONT = 0,
    UH_WS_OP_TEXT = 1,
    UH_WS_OP_BINARY = 2,
    UH_WS_OP_CLOSE = 8,
    UH_WS_OP_PING = 9,
    UH_WS_OP_PONG = 10
} uh_ws_opcode_t;

/* Close codes (RFC 6455 section 7.4.1) the server uses or reports. */
typedef enum {
    UH_WS_CLOSE_NORMAL = 1000,
    UH_WS_CLOSE_GOING_AWAY = 1001,
    UH_WS_CLOSE_PROTOCOL = 1002,
    UH_WS_CLOSE_UNSUPPORTED = 1003,
    UH_WS_CLOSE_NO_STATUS = 1005,     /* reported for an empty close frame; never sent */
    UH_WS_CLOSE_ABNORMAL = 1006,      /* never sent */
    UH_WS_CLOSE_INVALID_DATA = 1007,
    UH_WS_CLOSE_POLICY = 1008,
    UH_WS_CLOSE_TOO_BIG = 1009,
    UH_WS_CLOSE_INTERNAL = 1011
} uh_ws_close_t;

typedef enum {
    UH_WS_EV_NEED_MORE = 0,           /* slice absorbed; feed more */
    UH_WS_EV_MESSAGE = 1,             /* msg[0..msg_len) complete; opcode TEXT or BINARY */
    UH_WS_EV_PING = 2,                /* ctrl[0..ctrl_len): answer with a pong */
    UH_WS_EV_PONG = 3,                /* ctrl[0..ctrl_len) */
    UH_WS_EV_CLOSE = 4,               /* code (1005 if none), reason ctrl[0..ctrl_len) */
    UH_WS_EV_ERROR = 5                /* code: the close code to send; why: text */
} uh_ws_event_t;

typedef enum {
    UH_WS_MAX_HEADER = 10,            /* a server frame header (no mask) */
    UH_WS_MAX_CTRL = 125,             /* control frame payload */
    UH_WS_MAX_REASON = 123,           /* close reason */
    UH_WS_MAX_CLOSE_FRAME = 127       /* header + code + reason */
} uh_ws_limits_t;

/* Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).  Zero-initialise. */
typedef struct {
    uint8_t need;                     /* continuation bytes still expected */
    uint8_t lo;                       /* range of the next continuation byte */
    uint8_t hi;
    uint8_t bad;                      /* sticky: an invalid byte was seen */
} uh_utf8_t;

/* Check s[0..n) as the continuation of what st has seen.  Returns n when
 * every byte can still be part of valid UTF-8 (the text may end inside a
 * sequence: see uh_utf8_done), else the index of the first byte that
 * cannot (st is then bad and later calls return 0). */
size_t uh_utf8_feed(uh_utf8_t *st, const uint8_t *s, size_t n);

/* 1 when everything fed so far is complete, valid UTF-8. */
int uh_utf8_done(const uh_utf8_t *st);

typedef struct {
    /* config: set before the first call, do not change afterwards */
    uint8_t *msg;                     /* message buffer of max_msg bytes (NULL if 0) */
    size_t max_msg;                   /* longest message (sum of its fragments) */
    int require_mask;                 /* 1: RFC, unmasked frames fail (1002); 0: lenient */
    int check_utf8;                   /* 1: text messages and close reasons must be UTF-8 */

    /* results: valid after an event until the next call */
    int opcode;                       /* MESSAGE: TEXT/BINARY; control events: their opcode */
    size_t msg_len;                   /* MESSAGE: its length in msg */
    int code;                         /* CLOSE: the peer's code; ERROR: the code to send */
    const char *why;                  /* ERROR: static text naming the violation */
    uint8_t ctrl[125];                /* PING/PONG payload; CLOSE reason (code removed) */
    size_t ctrl_len;

    /* private */
    int state;
    int frame_op;                     /* opcode of the frame being read */
    int frame_fin;
    int frag_op;                      /* TEXT/BINARY while a message is open, else 0 */
    int masked;
    uint8_t mask[4];
    uint8_t mask_pos;
    uint8_t hdr_len;
    uint8_t hdr_need;
    uint8_t hdr[14];
    uint64_t remaining;               /* payload bytes left in the current frame */
    size_t fill;                      /* bytes of the message received so far */
    int msg_ready;                    /* a MESSAGE was returned: reset on the next call */
    uh_utf8_t utf8;                   /* text message validation */
} uh_wsp_t;

/* Parse data[0..len) (any slice of the stream).  Returns one uh_ws_event_t
 * and sets *used to the bytes consumed (<= len; == len for NEED_MORE; 0
 * once CLOSE or ERROR was returned before). */
int uh_wsp_feed(uh_wsp_t *p, const uint8_t *data, size_t len, size_t *used);

/* Server frame header (unmasked): FIN bit as given, opcode, length in the
 * 7-, 16- or 64-bit form.  Writes 2, 4 or 10 bytes to out and returns the
 * count; 0 for an opcode not in uh_ws_opcode_t, a length of 2^63 or more, or
 * a control frame that is fragmented or longer than 125 bytes. */
size_t uh_ws_header(uint8_t out[10], int opcode, int fin, uint64_t len);

/* A whole close frame: code (0: no code and no reason) and the reason, cut
 * to 123 bytes at a UTF-8 character boundary.  out holds up to 127 bytes
 * (UH_WS_MAX_CLOSE_FRAME); returns the frame length. */
size_t uh_ws_close_frame(uint8_t out[127], int code, const uint8_t *reason, size_t reason_len);

/* 1 if a peer may send this close code (1000-1003, 1007-1014, 3000-4999). */
int uh_ws_close_code_ok(int code);

#endif
