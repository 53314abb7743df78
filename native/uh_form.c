/*
 * uhttpd: req.form() and req.parts() (design.md section 11).
 *
 * form(): the body whole (it must fit body_buffer, else 413), as a dict
 * str -> str: application/x-www-form-urlencoded pairs (%XX and '+'
 * decoded by the query decoder), or the text fields of a
 * multipart/form-data body (file parts are skipped).  Another Content-Type
 * (or none) gives {} and leaves the body unread.
 *
 * parts(): an iterator over the parts of a multipart/form-data body in
 * arrival order, streaming: the parser (uh_multipart.c) runs over the
 * connection buffer in place (uh_body_fill/uh_body_consume), part data goes
 * from there (or from the parser's few held-back bytes) straight into the
 * bytes or buffer the handler reads into; a part is never held whole.
 * Waiting for the network runs nested loop passes like any body read, under
 * min_rate.  Moving the iterator on skips what is left of the current part;
 * a Part is dead after that, and after its request.
 *
 * Errors: a malformed body raises ValueError with c->err_status 400 (415
 * for parts() of a body that is not multipart/form-data), a body over
 * body_buffer in form() OSError(EFBIG) with 413; if the handler does not
 * catch them the client gets that status (and the console no traceback).
 */
#include <string.h>

#include "py/runtime.h"
#include "py/objstr.h"
#include "py/unicode.h"
#include "py/mperrno.h"

#include "uh_server.h"
#include "uh_form.h"

/* ---- state and helpers (GIL held) ---------------------------------------- */

uh_form_t *uh_form_state(uh_state_t *st, uh_conn_t *c) {
    if (c->form == NULL) {
        for (size_t k = 0; k < st->max_conns; k++) {
            if (st->conns[k].form == NULL) {
                st->conns[k].form = m_new0(uh_form_t, 1);
            }
        }
    }
    return c->form;
}

void uh_form_end(uh_conn_t *c) {
    if (c->form != NULL) {
        c->form->serial = 0;
        c->form->pend_len = 0;
    }
}

uh_span_t uh_form_ctype(uh_conn_t *c) {
    const uh_header_t *h = uh_find_header(c, "content-type", 12);
    uh_span_t s = { NULL, 0 };
    if (h != NULL) {
        s = h->value;
    }
    return s;
}

/* The media type of a Content-Type value is `type` (lowercase);
 * parameters are not looked at. */
static int uh_ctype_is(uh_span_t ct, const char *type) {
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t') {
        n++;
    }
    uh_span_t t = { ct.ptr, n };
    return n > 0 && uh_span_ieq(t, type);
}

static NORETURN void uh_form_fail(uh_conn_t *c, int status) {
    c->err_status = (uint16_t)status;
    c->keep_alive = 0;
    if (status == 413) {
        mp_raise_OSError(MP_EFBIG);
    }
    if (status == 415) {
        mp_raise_msg(&mp_type_ValueError, MP_ERROR_TEXT("uhttpd: the body is not multipart/form-data (415)"));
    }
    mp_raise_msg(&mp_type_ValueError, MP_ERROR_TEXT("uhttpd: malformed form body (400)"));
}

/* A str of UTF-8 bytes; anything else is a malformed form (400). */
static mp_obj_t uh_form_str(uh_conn_t *c, const char *p, size_t n) {
    if (!utf8_check((const byte *)p, n)) {
        uh_form_fail(c, 400);
    }
    return mp_obj_new_str(p, n);
}

static uh_conn_t *uh_form_conn(uhttpd_request_obj_t *ro) {
    if (ro->conn == NULL || ro->conn->state != UH_CS_BUSY) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    return ro->conn;
}

/* ---- form() ---------------------------------------------------------------- */

/* The whole body for form(), consumed: a pointer into the connection buffer
 * when the loop received it whole (the usual case), else read into v
 * (v->buf set).  More than body_buffer bytes: 413. */
static const char *uh_form_body(uh_state_t *st, uh_conn_t *c, vstr_t *v, size_t *len) {
    *len = 0;
    if (c->body_kind == UH_BODY_NONE) {
        return "";
    }
    if (c->body_kind == UH_BODY_LENGTH && c->body_left > st->body_buffer) {
        uh_form_fail(c, 413);
    }
    int whole = c->body_kind == UH_BODY_LENGTH ? c->ravail == c->body_left : c->body_done;
    if (whole) {
        if (c->ravail > st->body_buffer) {
            uh_form_fail(c, 413);
        }
        const char *p = c->buf + c->rpos;
        *len = c->ravail;
        uh_body_consume(c, c->ravail);
        return p;
    }
    /* not all in yet (Expect: 100-continue, a chunked body that did not fit
     * the buffer with its framing): read it, at most body_buffer + 1 */
    size_t cap = c->body_kind == UH_BODY_LENGTH ? (size_t)c->body_left : st->body_buffer + 1;
    vstr_init(v, cap + 1);
    for (;;) {
        mp_int_t r = uh_body_read(st, c, v->buf + v->len, v->alloc - v->len);
        if (r == 0) {
            break;
        }
        v->len += (size_t)r;
        if (v->len > st->body_buffer) {
            uh_form_fail(c, 413);
        }
    }
    *len = v->len;
    return v->buf;
}

static mp_obj_t uh_form_urlencoded(uh_conn_t *c, const char *s, size_t n) {
    mp_obj_t d = mp_obj_new_dict(0);
    vstr_t v;
    vstr_init(&v, 32);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '&') {
            j++;
        }
        if (j > i) {
            size_t eq = i;
            while (eq < j && s[eq] != '=') {
                eq++;
            }
            v.len = 0;
            uh_form_decode_into(&v, s + i, eq - i);
            mp_obj_t k = uh_form_str(c, v.buf, v.len);
            v.len = 0;
            if (eq < j) {
                uh_form_decode_into(&v, s + eq + 1, j - eq - 1);
            }
            mp_obj_dict_store(d, k, uh_form_str(c, v.buf, v.len));   /* the last wins */
        }
        i = j + 1;
    }
    vstr_clear(&v);
    return d;
}

/* The text fields of a whole multipart body (the parser is set up). */
static mp_obj_t uh_form_multipart(uh_conn_t *c, uh_form_t *f, const char *s, size_t n) {
    mp_obj_t d = mp_obj_new_dict(0);
    vstr_t v;
    vstr_init(&v, 64);
    mp_obj_t key = MP_OBJ_NULL;   /* the text field being collected */
    size_t pos = 0;
    for (;;) {
        size_t used;
        uh_mp_event_t ev;
        int r = uh_mp_feed(&f->mp, s + pos, n - pos, &used, &ev);
        pos += used;
        switch (r) {
            case UH_MP_PART_BEGIN:
                key = MP_OBJ_NULL;
                if (!ev.has_filename) {
                    key = uh_form_str(c, ev.name.ptr, ev.name.len);
                    v.len = 0;
                }
                break;
            case UH_MP_DATA:
                if (key != MP_OBJ_NULL) {
                    vstr_add_strn(&v, ev.data.ptr, ev.data.len);
                }
                break;
            case UH_MP_PART_END:
                if (key != MP_OBJ_NULL) {
                    mp_obj_dict_store(d, key, uh_form_str(c, v.buf, v.len));
                    key = MP_OBJ_NULL;
                }
                break;
            case UH_MP_DONE:
                vstr_clear(&v);
                return d;
            default:
                /* an error, or the body ended before the closing delimiter */
                uh_form_fail(c, 400);
        }
    }
}

static mp_obj_t uh_form(mp_obj_t self_in) {
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(self_in);
    uh_conn_t *c = uh_form_conn(ro);
    uh_state_t *st = ro->st;
    uh_span_t ct = uh_form_ctype(c);
    int urlenc = uh_ctype_is(ct, "application/x-www-form-urlencoded");
    if (!urlenc && !uh_mp_is_form(ct.ptr, ct.len)) {
        return mp_obj_new_dict(0);   /* not a form: the body stays for read() */
    }
    uh_form_t *f = NULL;
    if (!urlenc) {
        /* the boundary is checked before anything is read */
        f = uh_form_state(st, c);
        f->serial = 0;
        if (uh_mp_init(&f->mp, ct.ptr, ct.len, f->hbuf, UH_PART_HEADER) < 0) {
            uh_form_fail(c, 400);
        }
    }
    vstr_t v;
    v.buf = NULL;
    size_t n;
    const char *body = uh_form_body(st, c, &v, &n);
    mp_obj_t d = urlenc ? uh_form_urlencoded(c, body, n) : uh_form_multipart(c, f, body, n);
    if (v.buf != NULL) {
        vstr_clear(&v);
    }
    return d;
}
MP_DEFINE_CONST_FUN_OBJ_1(uh_form_obj, uh_form);

/* ---- parts() --------------------------------------------------------------- */

typedef struct {
    mp_obj_base_t base;
    uhttpd_request_obj_t *ro;
    uint32_t serial;
} uh_parts_obj_t;

typedef struct {
    mp_obj_base_t base;
    uhttpd_request_obj_t *ro;
    uint32_t serial;
    uint32_t part_no;
    mp_obj_t name;
    mp_obj_t filename;
    mp_obj_t headers;
} uh_part_obj_t;

static const mp_obj_type_t uh_parts_type;
static const mp_obj_type_t uh_part_type;

/* The form state of the iteration `serial` of the request, or raise. */
static uh_form_t *uh_parts_live(uhttpd_request_obj_t *ro, uint32_t serial) {
    uh_conn_t *c = ro->conn;
    if (c == NULL || c->state != UH_CS_BUSY || c->form == NULL || c->form->serial != serial) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("uhttpd: these parts are over"));
    }
    return c->form;
}

/* The next parser event of the iteration.  wait=0: UH_MP_NEED_MORE
 * instead of waiting on the network.  Raises on I/O errors (uh_body_fill). */
static int uh_parts_event(uh_state_t *st, uh_conn_t *c, uh_form_t *f, uh_mp_event_t *ev, int wait) {
    for (;;) {
        size_t used;
        if (c->ravail == 0 && !f->body_end) {
            if (!wait && c->body_kind != UH_BODY_NONE && !c->body_done) {
                return UH_MP_NEED_MORE;
            }
            if (uh_body_fill(st, c) == 0) {
                f->body_end = 1;
            }
        }
        if (c->ravail == 0) {
            /* the body is over: pending events, then the closing check */
            int r = uh_mp_feed(&f->mp, "", 0, &used, ev);
            return r == UH_MP_NEED_MORE ? uh_mp_finish(&f->mp) : r;
        }
        int r = uh_mp_feed(&f->mp, c->buf + c->rpos, c->ravail, &used, ev);
        uh_body_consume(c, used);
        if (r != UH_MP_NEED_MORE) {
            return r;
        }
    }
}

static mp_obj_t uh_parts(mp_obj_t self_in) {
    static uint32_t serials;
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(self_in);
    uh_conn_t *c = uh_form_conn(ro);
    uh_span_t ct = uh_form_ctype(c);
    if (!uh_mp_is_form(ct.ptr, ct.len)) {
        uh_form_fail(c, 415);
    }
    uh_form_t *f = uh_form_state(ro->st, c);
    f->serial = 0;
    if (uh_mp_init(&f->mp, ct.ptr, ct.len, f->hbuf, UH_PART_HEADER) < 0) {
        uh_form_fail(c, 400);
    }
    if (++serials == 0) {
        serials = 1;
    }
    uh_parts_obj_t *it = mp_obj_malloc(uh_parts_obj_t, &uh_parts_type);
    it->ro = ro;
    it->serial = serials;
    f->serial = serials;
    f->part_no = 0;
    f->in_part = 0;
    f->mp_done = 0;
    f->body_end = 0;
    f->pend_len = 0;
    return MP_OBJ_FROM_PTR(it);
}
MP_DEFINE_CONST_FUN_OBJ_1(uh_parts_obj, uh_parts);

static mp_obj_t uh_part_new(uh_conn_t *c, uh_form_t *f, uh_parts_obj_t *it, const uh_mp_event_t *ev) {
    f->part_no++;
    f->in_part = 1;
    f->pend_len = 0;
    uh_part_obj_t *p = mp_obj_malloc(uh_part_obj_t, &uh_part_type);
    p->ro = it->ro;
    p->serial = it->serial;
    p->part_no = f->part_no;
    p->name = uh_form_str(c, ev->name.ptr, ev->name.len);
    p->filename = ev->has_filename ? uh_form_str(c, ev->filename.ptr, ev->filename.len) : mp_const_none;
    p->headers = mp_obj_new_dict(0);
    /* the part's headers: lower-case names; the first of a name wins (as
     * req.header()) */
    uh_span_t block = ev->headers, hn, hv;
    vstr_t v;
    vstr_init(&v, 32);
    while (uh_mp_header_next(&block, &hn, &hv)) {
        v.len = 0;
        for (size_t i = 0; i < hn.len; i++) {
            char ch = hn.ptr[i];
            vstr_add_byte(&v, (byte)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch));
        }
        mp_obj_t k = uh_form_str(c, v.buf, v.len);
        mp_map_t *map = mp_obj_dict_get_map(p->headers);
        if (mp_map_lookup(map, k, MP_MAP_LOOKUP) == NULL) {
            mp_obj_dict_store(p->headers, k, uh_form_str(c, hv.ptr, hv.len));
        }
    }
    vstr_clear(&v);
    return MP_OBJ_FROM_PTR(p);
}

static mp_obj_t uh_parts_iternext(mp_obj_t self_in) {
    uh_parts_obj_t *it = MP_OBJ_TO_PTR(self_in);
    uh_form_t *f = uh_parts_live(it->ro, it->serial);
    uh_conn_t *c = it->ro->conn;
    uh_state_t *st = it->ro->st;
    f->pend_len = 0;
    while (!f->mp_done) {
        uh_mp_event_t ev;
        int r = uh_parts_event(st, c, f, &ev, 1);
        switch (r) {
            case UH_MP_DATA:
                break;             /* the rest of a part nobody read */
            case UH_MP_PART_END:
                f->in_part = 0;
                break;
            case UH_MP_PART_BEGIN:
                return uh_part_new(c, f, it, &ev);
            case UH_MP_DONE:
                f->mp_done = 1;
                f->in_part = 0;
                break;
            default:
                uh_form_fail(c, 400);
        }
    }
    return MP_OBJ_STOP_ITERATION;
}

static MP_DEFINE_CONST_OBJ_TYPE(
    uh_parts_type,
    MP_QSTR_Parts,
    MP_TYPE_FLAG_ITER_IS_ITERNEXT,
    iter, uh_parts_iternext
    );

/* ---- Part ------------------------------------------------------------------ */

static uh_form_t *uh_part_live(uh_part_obj_t *p) {
    uh_form_t *f = uh_parts_live(p->ro, p->serial);
    if (f->part_no != p->part_no) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("uhttpd: this part is over (the iterator moved on)"));
    }
    return f;
}

/* Up to n (> 0) bytes of the current part's data into dst.  Returns the
 * bytes copied, 0 at the part's end, -1 when none are there without
 * waiting on the network (wait=0). */
static mp_int_t uh_part_take(uh_state_t *st, uh_conn_t *c, uh_form_t *f, char *dst, size_t n, int wait) {
    for (;;) {
        if (f->pend_len > 0) {
            size_t k = n < f->pend_len ? n : f->pend_len;
            memcpy(dst, f->pend, k);
            f->pend += k;
            f->pend_len -= k;
            return (mp_int_t)k;
        }
        if (!f->in_part) {
            return 0;
        }
        uh_mp_event_t ev;
        int r = uh_parts_event(st, c, f, &ev, wait);
        switch (r) {
            case UH_MP_DATA:
                /* in the connection buffer or the parser state: both stay
                 * put until the next event is asked for */
                f->pend = ev.data.ptr;
                f->pend_len = ev.data.len;
                break;
            case UH_MP_PART_END:
                f->in_part = 0;
                return 0;
            case UH_MP_NEED_MORE:
                return -1;
            default:
                uh_form_fail(c, 400);
        }
    }
}

/* read(n=-1): up to n bytes of the part (all of it when n < 0); b'' at
 * its end. */
static mp_obj_t uh_part_read(size_t n_args, const mp_obj_t *args) {
    uh_part_obj_t *p = MP_OBJ_TO_PTR(args[0]);
    uh_form_t *f = uh_part_live(p);
    uh_conn_t *c = p->ro->conn;
    uh_state_t *st = p->ro->st;
    mp_int_t want = n_args > 1 && args[1] != mp_const_none ? mp_obj_get_int(args[1]) : -1;
    vstr_t v;
    if (want >= 0) {
        vstr_init(&v, want ? (size_t)want : 1);
        while ((mp_int_t)v.len < want) {
            mp_int_t r = uh_part_take(st, c, f, v.buf + v.len, (size_t)want - v.len, 1);
            if (r <= 0) {
                break;
            }
            v.len += (size_t)r;
        }
    } else {
        vstr_init(&v, 256);
        for (;;) {
            if (v.alloc - v.len < 64) {
                vstr_hint_size(&v, v.alloc);
            }
            mp_int_t r = uh_part_take(st, c, f, v.buf + v.len, v.alloc - v.len, 1);
            if (r <= 0) {
                break;
            }
            v.len += (size_t)r;
        }
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_part_read_obj, 1, 2, uh_part_read);

/* readinto(buf): waits for at least one byte, then takes what is there
 * without waiting, up to len(buf).  0 at the part's end. */
static mp_obj_t uh_part_readinto(mp_obj_t self_in, mp_obj_t buf_in) {
    uh_part_obj_t *p = MP_OBJ_TO_PTR(self_in);
    uh_form_t *f = uh_part_live(p);
    uh_conn_t *c = p->ro->conn;
    uh_state_t *st = p->ro->st;
    mp_buffer_info_t bi;
    mp_get_buffer_raise(buf_in, &bi, MP_BUFFER_WRITE);
    size_t got = 0;
    if (bi.len > 0) {
        mp_int_t r = uh_part_take(st, c, f, bi.buf, bi.len, 1);
        while (r > 0) {
            got += (size_t)r;
            if (got == bi.len) {
                break;
            }
            r = uh_part_take(st, c, f, (char *)bi.buf + got, bi.len - got, 0);
        }
    }
    return mp_obj_new_int_from_uint(got);
}
static MP_DEFINE_CONST_FUN_OBJ_2(uh_part_readinto_obj, uh_part_readinto);

static void uh_part_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    uh_part_obj_t *p = MP_OBJ_TO_PTR(self_in);
    if (dest[0] != MP_OBJ_NULL) {
        return;   /* read-only */
    }
    if (attr == MP_QSTR_name) {
        dest[0] = p->name;
    } else if (attr == MP_QSTR_filename) {
        dest[0] = p->filename;
    } else if (attr == MP_QSTR_headers) {
        dest[0] = p->headers;
    } else {
        dest[1] = MP_OBJ_SENTINEL;   /* methods: the locals dict */
    }
}

static const mp_rom_map_elem_t uh_part_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&uh_part_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&uh_part_readinto_obj) },
};
static MP_DEFINE_CONST_DICT(uh_part_locals_dict, uh_part_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    uh_part_type,
    MP_QSTR_Part,
    MP_TYPE_FLAG_NONE,
    attr, uh_part_attr,
    locals_dict, &uh_part_locals_dict
    );
