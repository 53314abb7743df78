/*
 * uhttpd: streaming multipart/form-data parser.
 *
 * Pure C99, no MicroPython include, no allocation, no globals but const
 * tables.  See uh_multipart.h for the contract; fuzz/README.md lists what is
 * accepted and rejected and the differences from python-multipart.
 *
 * How data is scanned: the delimiter is "\r\n--" boundary (or "\n--"
 * boundary in an LF-only body) followed by "--" (close), transport padding
 * or the line end.  Its first byte (CR, or LF) occurs nowhere else in it,
 * since a boundary holds no CR or LF.  So when a partial match fails, none
 * of the held-back bytes can start another match: they are part data as a
 * whole, and they always equal a prefix of the delimiter (plus one tail
 * byte), which is why the state can hand them out from its own copy of the
 * delimiter without keeping a copy of the input.
 */
#include <string.h>
#include "uh_multipart.h"

enum {
    S_PRE = 0,        /* preamble, at a line start: matching "--" boundary (m bytes) */
    S_PRE_SKIP,       /* preamble: skipping the rest of a line */
    S_PAD,            /* transport padding after a delimiter */
    S_PAD_CR,         /* padding, then CR */
    S_HEADERS,        /* a part's header block */
    S_DATA,           /* a part's data; m bytes of the delimiter held back */
    S_EPILOGUE,       /* after the closing delimiter */
    S_ERROR
};

enum { MODE_UNKNOWN = 0, MODE_CRLF = 1, MODE_LF = 2 };

/* Outcomes of one byte fed to the delimiter matcher. */
enum { M_MORE, M_MISS, M_LINE_LF, M_LINE_CRLF, M_PAD, M_CLOSE };

/* p[0..n) equals the lowercase literal l, ASCII case-insensitively (the
 * HTTP parser's comparison). */
static int ieq(const char *p, size_t n, const char *l) {
    uh_span_t sp = { p, n };
    return uh_span_ieq(sp, l);
}

static int is_ows(int c) {
    return c == ' ' || c == '\t';
}

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z')) {
        return 1;
    }
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 32;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Feed byte c to the matcher for delim[o..dlen) + tail, with *m bytes
 * matched so far and *t the tail byte held ('-' or CR).  Pure: touches only
 * *m and *t, so it also serves for look-ahead. */
static int mstep(const uh_mp_t *mp, size_t o, size_t *m, char *t, unsigned char c) {
    size_t plen = mp->dlen - o;
    if (*m < plen) {
        if (c == (unsigned char)mp->delim[o + *m]) {
            (*m)++;
            return M_MORE;
        }
        return M_MISS;
    }
    if (*m == plen) {
        if (c == '-' || c == '\r') {
            *t = (char)c;
            (*m)++;
            return M_MORE;
        }
        if (c == '\n' && mp->mode != MODE_CRLF) {
            return M_LINE_LF;
        }
        if (is_ows(c)) {
            return M_PAD;
        }
        return M_MISS;
    }
    if (*t == '-' && c == '-') {
        return M_CLOSE;
    }
    if (*t == '\r' && c == '\n') {
        return M_LINE_CRLF;
    }
    return M_MISS;
}

static void set_mode(uh_mp_t *mp, int mode) {
    if (mp->mode != MODE_UNKNOWN) {
        return;
    }
    mp->mode = mode;
    if (mode == MODE_LF) {
        /* "\r\n--B" -> "\n--B" */
        memmove(mp->delim, mp->delim + 1, mp->dlen - 1);
        mp->dlen--;
    }
}

/* ---- parameters: ; name=value / name="quoted \" value" ---------------- */

typedef struct {
    uh_span_t name;
    uh_span_t value;                  /* between the quotes when quoted */
    int quoted;
    int escapes;                      /* quoted value holds \" or \\ */
} param_t;

/* The next parameter of s[0..n) at *pos (just after the type or the
 * previous parameter).  Returns 1, 0 at the end, -1 on bad syntax. */
static int next_param(const char *s, size_t n, size_t *pos, param_t *p) {
    size_t i = *pos;
    memset(p, 0, sizeof(*p));
    for (;;) {
        while (i < n && is_ows((unsigned char)s[i])) {
            i++;
        }
        if (i == n) {
            *pos = i;
            return 0;
        }
        if (s[i] != ';') {
            return -1;
        }
        i++;
        while (i < n && is_ows((unsigned char)s[i])) {
            i++;
        }
        if (i < n && s[i] != ';') {
            break;
        }
        /* empty parameter (";;" or a trailing ';'): skip */
    }
    size_t ns = i;
    while (i < n && is_tchar((unsigned char)s[i])) {
        i++;
    }
    if (i == ns) {
        return -1;
    }
    p->name.ptr = s + ns;
    p->name.len = i - ns;
    while (i < n && is_ows((unsigned char)s[i])) {
        i++;
    }
    if (i == n || s[i] != '=') {
        return -1;
    }
    i++;
    while (i < n && is_ows((unsigned char)s[i])) {
        i++;
    }
    if (i < n && s[i] == '"') {
        size_t vs = ++i;
        for (;;) {
            if (i == n) {
                return -1;                /* no closing quote */
            }
            if (s[i] == '"') {
                break;
            }
            if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
                p->escapes = 1;
                i += 2;
            } else {
                i++;
            }
        }
        p->quoted = 1;
        p->value.ptr = s + vs;
        p->value.len = i - vs;
        i++;
    } else {
        size_t vs = i;
        while (i < n && s[i] != ';') {
            if (s[i] == '"') {
                return -1;                /* not a token: parsers would differ */
            }
            i++;
        }
        size_t ve = i;
        while (ve > vs && is_ows((unsigned char)s[ve - 1])) {
            ve--;
        }
        p->value.ptr = s + vs;
        p->value.len = ve - vs;
    }
    *pos = i;
    return 1;
}

/* Undo \" and \\ of a quoted value into dst (capacity cap); -1 if it does
 * not fit. */
static int unescape(const char *s, size_t n, char *dst, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
            c = s[++i];
        }
        if (o == cap) {
            return -1;
        }
        dst[o++] = c;
    }
    return (int)o;
}

/* Media type and parameters: returns the offset after the type token
 * ("type/subtype"), the type checked against lower-case want. */
static int type_is(const char *s, size_t n, const char *want, size_t *after) {
    size_t i = 0;
    while (i < n && is_ows((unsigned char)s[i])) {
        i++;
    }
    size_t ts = i;
    while (i < n && s[i] != ';' && !is_ows((unsigned char)s[i])) {
        i++;
    }
    *after = i;
    return ieq(s + ts, i - ts, want);
}

int uh_mp_is_form(const char *ctype, size_t len) {
    size_t after;
    return ctype != NULL && type_is(ctype, len, "multipart/form-data", &after);
}

int uh_mp_init(uh_mp_t *mp, const char *ctype, size_t len, char *hbuf, size_t hcap) {
    memset(mp, 0, sizeof(*mp));
    mp->state = S_ERROR;
    size_t pos;
    if (ctype == NULL || !type_is(ctype, len, "multipart/form-data", &pos)) {
        return UH_E400_BAD_REQUEST;
    }
    param_t p;
    int r, found = 0;
    memcpy(mp->delim, "\r\n--", 4);
    while ((r = next_param(ctype, len, &pos, &p)) == 1) {
        if (!ieq(p.name.ptr, p.name.len, "boundary")) {
            continue;
        }
        if (found) {
            return UH_E400_BAD_REQUEST;
        }
        found = 1;
        int blen = -1;
        if (p.quoted) {
            blen = unescape(p.value.ptr, p.value.len, mp->delim + 4, UH_MP_MAX_BOUNDARY);
        } else if (p.value.len <= UH_MP_MAX_BOUNDARY) {
            memcpy(mp->delim + 4, p.value.ptr, p.value.len);
            blen = (int)p.value.len;
        }
        if (blen < 1) {
            return UH_E400_BAD_REQUEST;
        }
        for (int i = 0; i < blen; i++) {
            unsigned char c = (unsigned char)mp->delim[4 + i];
            if (c < 0x20 || c > 0x7e) {
                return UH_E400_BAD_REQUEST;
            }
        }
        if (mp->delim[4 + blen - 1] == ' ') {
            return UH_E400_BAD_REQUEST;
        }
        mp->dlen = 4 + (size_t)blen;
    }
    if (r < 0 || !found) {
        return UH_E400_BAD_REQUEST;
    }
    mp->hbuf = hbuf;
    mp->hcap = hbuf ? hcap : 0;
    mp->state = S_PRE;
    return 0;
}

/* ---- headers ------------------------------------------------------------ */

int uh_mp_header_next(uh_span_t *block, uh_span_t *name, uh_span_t *value) {
    const char *s = block->ptr;
    size_t n = block->len;
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t ll = nl ? (size_t)(nl - s) : n;
        const char *line = s;
        s += nl ? ll + 1 : ll;
        n -= nl ? ll + 1 : ll;
        if (ll > 0 && line[ll - 1] == '\r') {
            ll--;
        }
        if (ll == 0) {
            continue;
        }
        const char *colon = memchr(line, ':', ll);
        size_t nlen = colon ? (size_t)(colon - line) : ll;
        size_t vs = colon ? nlen + 1 : ll, ve = ll;
        while (vs < ve && is_ows((unsigned char)line[vs])) {
            vs++;
        }
        while (ve > vs && is_ows((unsigned char)line[ve - 1])) {
            ve--;
        }
        name->ptr = line;
        name->len = nlen;
        value->ptr = line + vs;
        value->len = ve - vs;
        block->ptr = s;
        block->len = n;
        return 1;
    }
    block->ptr = s;
    block->len = 0;
    return 0;
}

/* A complete header line (without its line end): name ":" value, the
 * name a token, no control bytes but HTAB, no obs-fold. */
static int line_ok(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) {
        i++;
    }
    if (i == 0 || i == n || s[i] != ':') {
        return 0;
    }
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* filename*=charset'lang'%xx: decoded as UTF-8 into dst.  Returns the
 * length, -1 on bad syntax or overflow, -2 for a charset we ignore. */
static int ext_value(const char *s, size_t n, char *dst, size_t cap) {
    const char *q1 = memchr(s, '\'', n);
    if (!q1) {
        return -1;
    }
    size_t cl = (size_t)(q1 - s);
    const char *q2 = memchr(q1 + 1, '\'', n - cl - 1);
    if (!q2) {
        return -1;
    }
    int latin1;
    if (ieq(s, cl, "utf-8")) {
        latin1 = 0;
    } else if (ieq(s, cl, "iso-8859-1")) {
        latin1 = 1;
    } else {
        return -2;
    }
    size_t o = 0;
    for (size_t i = (size_t)(q2 - s) + 1; i < n; i++) {
        unsigned int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (unsigned int)(hi * 16 + lo);
            i += 2;
        }
        if (latin1 && c >= 0x80) {
            if (cap - o < 2) {
                return -1;
            }
            dst[o++] = (char)(0xc0 | (c >> 6));
            dst[o++] = (char)(0x80 | (c & 0x3f));
            continue;
        }
        if (o == cap) {
            return -1;
        }
        dst[o++] = (char)c;
    }
    return (int)o;
}

/* The header block hbuf[0..line) is complete: fill ev.  Unescaped values
 * go to the spare room hbuf[hlen..hcap). */
static int part_headers(uh_mp_t *mp, uh_mp_event_t *ev) {
    uh_span_t block = { mp->hbuf, mp->line }, hn, hv, cd = { NULL, 0 };
    int ncd = 0, nct = 0;
    ev->headers = block;
    while (uh_mp_header_next(&block, &hn, &hv)) {
        if (ieq(hn.ptr, hn.len, "content-disposition")) {
            cd = hv;
            ncd++;
        } else if (ieq(hn.ptr, hn.len, "content-type")) {
            ev->content_type = hv;
            nct++;
        }
    }
    size_t pos;
    if (ncd != 1 || nct > 1 || !type_is(cd.ptr, cd.len, "form-data", &pos)) {
        return UH_E400_BAD_REQUEST;
    }
    /* ncd == 1: the block is not empty, so hbuf is not NULL */
    char *spare = mp->hbuf + mp->hlen;
    size_t room = mp->hcap - mp->hlen;
    param_t p;
    int r, have_name = 0, have_fn = 0, have_ext = 0;
    while ((r = next_param(cd.ptr, cd.len, &pos, &p)) == 1) {
        uh_span_t *dst;
        if (ieq(p.name.ptr, p.name.len, "name")) {
            if (have_name++) {
                return UH_E400_BAD_REQUEST;
            }
            dst = &ev->name;
        } else if (ieq(p.name.ptr, p.name.len, "filename")) {
            if (have_fn++) {
                return UH_E400_BAD_REQUEST;
            }
            if (have_ext == 1) {
                continue;                 /* filename* wins */
            }
            dst = &ev->filename;
        } else if (ieq(p.name.ptr, p.name.len, "filename*")) {
            if (have_ext) {
                return UH_E400_BAD_REQUEST;
            }
            int n = ext_value(p.value.ptr, p.value.len, spare, room);
            if (n == -2) {
                have_ext = -1;            /* unknown charset: ignored, but only once */
                continue;
            }
            if (n < 0) {
                return UH_E400_BAD_REQUEST;
            }
            have_ext = 1;
            ev->filename.ptr = spare;
            ev->filename.len = (size_t)n;
            spare += n;
            room -= (size_t)n;
            continue;
        } else {
            continue;
        }
        if (p.escapes) {
            int n = unescape(p.value.ptr, p.value.len, spare, room);
            if (n < 0) {
                return UH_E400_BAD_REQUEST;
            }
            dst->ptr = spare;
            dst->len = (size_t)n;
            spare += n;
            room -= (size_t)n;
        } else {
            *dst = p.value;
        }
    }
    if (r < 0 || !have_name) {
        return UH_E400_BAD_REQUEST;
    }
    ev->has_filename = have_fn || have_ext == 1;
    if (ev->has_filename && ev->filename.ptr == NULL) {
        ev->filename.ptr = spare;         /* present but empty: non-NULL */
    }
    if (ev->name.ptr == NULL) {
        ev->name.ptr = spare;
    }
    return 0;
}

/* ---- the state machine --------------------------------------------------- */

static int fail(uh_mp_t *mp, size_t *used, size_t i) {
    mp->state = S_ERROR;
    *used = i;
    return UH_E400_BAD_REQUEST;
}

/* A delimiter line is complete: the part (if any) ends, headers follow. */
static int line_done(uh_mp_t *mp) {
    mp->state = S_HEADERS;
    mp->hlen = 0;
    mp->line = 0;
    mp->m = 0;
    if (mp->in_part) {
        mp->in_part = 0;
        return UH_MP_PART_END;
    }
    return UH_MP_NEED_MORE;               /* nothing to report: go on */
}

/* The outcome of a matched delimiter: UH_MP_NEED_MORE to go on parsing. */
static int delimiter(uh_mp_t *mp, int r) {
    switch (r) {
        case M_LINE_LF:
            set_mode(mp, MODE_LF);
            return line_done(mp);
        case M_LINE_CRLF:
            set_mode(mp, MODE_CRLF);
            return line_done(mp);
        case M_PAD:
            mp->state = S_PAD;
            mp->m = 0;
            return UH_MP_NEED_MORE;
        default: /* M_CLOSE */
            mp->state = S_EPILOGUE;
            mp->m = 0;
            if (mp->in_part) {
                mp->in_part = 0;
                return UH_MP_PART_END;
            }
            return UH_MP_DONE;
    }
}

int uh_mp_feed(uh_mp_t *mp, const char *buf, size_t len, size_t *used, uh_mp_event_t *ev) {
    size_t i = 0;
    memset(ev, 0, sizeof(*ev));
    *used = 0;
    if (mp->state == S_ERROR) {
        return UH_E400_BAD_REQUEST;
    }
    if (mp->state == S_EPILOGUE) {
        *used = len;
        return UH_MP_DONE;
    }
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        int r;
        switch (mp->state) {
            case S_PRE: {
                char t = mp->delim[mp->dlen];
                r = mstep(mp, 2, &mp->m, &t, c);
                mp->delim[mp->dlen] = t;
                i++;
                if (r == M_MORE) {
                    break;
                }
                if (r == M_MISS) {
                    mp->m = 0;
                    mp->state = c == '\n' ? S_PRE : S_PRE_SKIP;
                    break;
                }
                r = delimiter(mp, r);
                if (r != UH_MP_NEED_MORE) {
                    *used = i;
                    return r;
                }
                break;
            }
            case S_PRE_SKIP: {
                const char *nl = memchr(buf + i, '\n', len - i);
                i = nl ? (size_t)(nl - buf) + 1 : len;
                if (nl) {
                    mp->state = S_PRE;
                    mp->m = 0;
                }
                break;
            }
            case S_PAD:
                i++;
                if (is_ows(c)) {
                    break;
                }
                if (c == '\r') {
                    mp->state = S_PAD_CR;
                    break;
                }
                if (c != '\n' || mp->mode == MODE_CRLF) {
                    return fail(mp, used, i - 1);
                }
                r = delimiter(mp, M_LINE_LF);
                if (r != UH_MP_NEED_MORE) {
                    *used = i;
                    return r;
                }
                break;
            case S_PAD_CR:
                i++;
                if (c != '\n') {
                    return fail(mp, used, i - 1);
                }
                r = delimiter(mp, M_LINE_CRLF);
                if (r != UH_MP_NEED_MORE) {
                    *used = i;
                    return r;
                }
                break;
            case S_HEADERS:
                /* lines are kept with LF endings: a CR is only noted (m) */
                if (mp->m) {
                    if (c != '\n') {
                        return fail(mp, used, i);     /* bare CR */
                    }
                    mp->m = 0;
                } else if (c == '\r') {
                    mp->m = 1;
                    i++;
                    break;
                } else if (c == '\n' && mp->mode == MODE_CRLF) {
                    return fail(mp, used, i);         /* bare LF in a CRLF body */
                } else if (c != '\n') {
                    if (mp->hlen >= mp->hcap) {
                        return fail(mp, used, i);
                    }
                    mp->hbuf[mp->hlen++] = (char)c;
                    i++;
                    break;
                }
                i++;
                if (mp->hlen == mp->line) {
                    /* the empty line: the block is hbuf[0..line) */
                    if (part_headers(mp, ev) < 0) {
                        return fail(mp, used, i);
                    }
                    mp->state = S_DATA;
                    mp->m = 0;
                    mp->in_part = 1;
                    *used = i;
                    return UH_MP_PART_BEGIN;
                }
                if (!line_ok(mp->hbuf + mp->line, mp->hlen - mp->line) || mp->hlen >= mp->hcap) {
                    return fail(mp, used, i);
                }
                mp->hbuf[mp->hlen++] = '\n';
                mp->line = mp->hlen;
                break;
            case S_DATA:
                if (mp->m > 0) {
                    /* resume a match held back from an earlier call */
                    size_t m = mp->m;
                    char t = mp->delim[mp->dlen];
                    r = mstep(mp, 0, &m, &t, c);
                    if (r == M_MISS) {
                        /* the held bytes were data; c is looked at again */
                        ev->data.ptr = mp->delim;
                        ev->data.len = mp->m;
                        mp->m = 0;
                        *used = i;
                        return UH_MP_DATA;
                    }
                    mp->m = m;
                    mp->delim[mp->dlen] = t;
                    i++;
                    if (r != M_MORE) {
                        r = delimiter(mp, r);
                        if (r != UH_MP_NEED_MORE) {
                            *used = i;
                            return r;
                        }
                    }
                    break;
                }
                {
                    size_t start = i;
                    for (;;) {
                        const char *q = memchr(buf + i, mp->delim[0], len - i);
                        if (!q) {
                            ev->data.ptr = buf + start;
                            ev->data.len = len - start;
                            *used = len;
                            return UH_MP_DATA;
                        }
                        size_t qi = (size_t)(q - buf), j = qi, m = 0;
                        char t = 0;
                        r = M_MORE;
                        while (j < len && (r = mstep(mp, 0, &m, &t, (unsigned char)buf[j])) == M_MORE) {
                            j++;
                        }
                        if (r == M_MISS) {
                            i = qi + 1;
                            continue;
                        }
                        if (qi > start) {
                            /* data up to a (possible) delimiter first */
                            ev->data.ptr = buf + start;
                            ev->data.len = qi - start;
                            *used = qi;
                            return UH_MP_DATA;
                        }
                        if (j == len) {
                            /* a partial delimiter at the end: hold it */
                            mp->m = m;
                            mp->delim[mp->dlen] = t;
                            *used = len;
                            return UH_MP_NEED_MORE;
                        }
                        i = j + 1;
                        break;
                    }
                    r = delimiter(mp, r);
                    if (r != UH_MP_NEED_MORE) {
                        *used = i;
                        return r;
                    }
                }
                break;
            case S_EPILOGUE:
                *used = len;
                return UH_MP_DONE;
            default:
                return fail(mp, used, i);
        }
    }
    *used = len;
    return UH_MP_NEED_MORE;
}

int uh_mp_finish(uh_mp_t *mp) {
    if (mp->state == S_EPILOGUE) {
        return UH_MP_DONE;
    }
    mp->state = S_ERROR;
    return UH_E400_BAD_REQUEST;
}
