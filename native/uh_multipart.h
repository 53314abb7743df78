/*
 * uhttpd: streaming multipart/form-data parser (RFC 7578, RFC 2046 5.1).
 *
 * Pure C99: no MicroPython include, no allocation, no globals, no callbacks.
 * The same file is compiled into the firmware, the unix binary, the cffi
 * module of fuzz/ and the libFuzzer harness.
 *
 * Streaming: the body may arrive in reads of any size, boundaries split
 * anywhere, parts of any size.  Memory is bounded: the caller owns a
 * uh_mp_t (about 150 bytes, holding the delimiter and up to its length + 1
 * held-back bytes) and one header buffer (e.g. 1 KiB) for a part's header
 * block.  Part data is returned as spans into the caller's input (zero
 * copy); only bytes that were held back because they might have started a
 * delimiter come from the state.
 *
 * Accepted: CRLF bodies, and LF-only bodies from odd clients (the line end
 * of the first delimiter line decides; from then on only that form ends a
 * part's data).  A preamble and an epilogue are ignored.  Transport padding
 * (spaces, tabs) after a delimiter.  "\r\n--boundary" followed by anything
 * but "--", padding or the line end is part data, as RFC 2046 does not make
 * it a delimiter (python-multipart does the same).
 *
 * Every error is UH_E400_BAD_REQUEST (a part header block over the buffer
 * is 400 too: 431 is for the request head) and sticky.
 *
 * Keep this header cffi-friendly: plain structs, enums for codes, no #if in
 * the API block, fixed-width or size_t types.
 */
#ifndef UHTTPD_UH_MULTIPART_H
#define UHTTPD_UH_MULTIPART_H

#include <stddef.h>
#include <stdint.h>
#include "uh_parse.h"

/* Events returned by uh_mp_feed (errors are negative uh_result_t values:
 * always UH_E400_BAD_REQUEST). */
typedef enum {
    UH_MP_NEED_MORE = 0,              /* every input byte was absorbed: feed more */
    UH_MP_PART_BEGIN = 1,             /* a part's headers are complete (name, filename, ...) */
    UH_MP_DATA = 2,                   /* ev->data holds part data */
    UH_MP_PART_END = 3,               /* the part's data is complete */
    UH_MP_DONE = 4                    /* the closing delimiter was seen; the rest is epilogue */
} uh_mp_event_type_t;

enum {
    UH_MP_MAX_BOUNDARY = 70,          /* RFC 2046: 1..70 characters */
    UH_MP_DELIM_CAP = 80              /* "\r\n--" + boundary + one tail byte */
};

typedef struct {
    uh_span_t data;                   /* UH_MP_DATA: in the caller's input or in the state */
    /* UH_MP_PART_BEGIN: spans into the header buffer, valid until this
     * part's UH_MP_PART_END (the next part's headers overwrite them) */
    uh_span_t name;                   /* Content-Disposition name, unescaped */
    uh_span_t filename;               /* filename* (RFC 5987, as UTF-8) if present, else filename */
    int has_filename;                 /* 0: no filename parameter (a text field) */
    uh_span_t content_type;           /* the part's Content-Type value, len 0 if absent */
    uh_span_t headers;                /* the header block, lines "Name: value\n"; see uh_mp_header_next */
} uh_mp_event_t;

typedef struct {
    char *hbuf;                       /* caller's header buffer ... */
    size_t hcap;                      /* ... and its size */
    /* private */
    size_t hlen;
    size_t line;
    size_t m;
    size_t dlen;
    int state;
    int mode;
    int in_part;
    char delim[UH_MP_DELIM_CAP];
} uh_mp_t;

/* 1 if the Content-Type value ctype[0..len) is multipart/form-data
 * (parameters not checked), else 0. */
int uh_mp_is_form(const char *ctype, size_t len);

/* Start a parser for a body of Content-Type ctype[0..len): takes the
 * boundary from its quoted or unquoted boundary= parameter; hbuf[0..hcap) is
 * the header buffer (it must hold a part's header block, lines stored with
 * LF endings, plus the name and filename when they need unescaping).
 * Returns 0, or UH_E400_BAD_REQUEST when the type is not
 * multipart/form-data, the boundary is missing, given twice, empty, over 70
 * characters, ends in a space or holds bytes outside 0x20..0x7E. */
int uh_mp_init(uh_mp_t *mp, const char *ctype, size_t len, char *hbuf, size_t hcap);

/* Parse buf[0..len) up to the next event.  *used is set to the input bytes
 * consumed (<= len; it may be 0 when the event comes from held-back bytes);
 * call again with the rest.  Returns a uh_mp_event_type_t or
 * UH_E400_BAD_REQUEST.  UH_MP_NEED_MORE always means *used == len.  A call
 * with len 0 returns pending events (after the closing delimiter:
 * UH_MP_DONE).  After UH_MP_DONE every call consumes all input (the
 * epilogue) and returns UH_MP_DONE again.  Part header rules: each part
 * needs one Content-Disposition "form-data" with a name parameter; values
 * are quoted (backslash escapes \" and \\ undone; other backslashes kept)
 * or unquoted; filename*=charset'lang'%xx (UTF-8 or ISO-8859-1, returned
 * as UTF-8; another charset is ignored) wins over filename; a parameter
 * given twice, obs-fold, control bytes, a bare CR (or, in a CRLF body, a
 * bare LF), a line without ':', or a header block over hcap:
 * UH_E400_BAD_REQUEST. */
int uh_mp_feed(uh_mp_t *mp, const char *buf, size_t len, size_t *used, uh_mp_event_t *ev);

/* At the end of the body: UH_MP_DONE if the closing delimiter was seen,
 * else UH_E400_BAD_REQUEST (a truncated body; the state becomes the error). */
int uh_mp_finish(uh_mp_t *mp);

/* Iterate over a header block (ev->headers): returns 1 and the next
 * header's name and value (OWS trimmed), advancing *block; 0 at the end. */
int uh_mp_header_next(uh_span_t *block, uh_span_t *name, uh_span_t *value);

#endif
