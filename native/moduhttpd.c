/*
 * uhttpd: the MicroPython binding, module `_uhttpd`.
 *
 *   _uhttpd.Core(facade, host, port, max_conns, max_header, timeout_ms,
 *                max_body)   starts a server thread (see uh_server.c)
 *   _uhttpd.Request        what handlers get
 *
 * The Python facade (frozen/uhttpd.py) validates arguments and keeps the
 * route list; per request everything runs here, in the server thread, with
 * the GIL held: auth, OPTIONS, route matching (in C for speed) and the
 * handler call.  The Core object has a finaliser: when the facade Server is
 * garbage-collected the Core goes with it and its __del__ stops the thread.
 * Nothing reachable from the root pointer refers back to the facade (it is
 * kept as a hidden, weak pointer), so an unreferenced Server can be
 * collected while its thread runs.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/objstr.h"
#include "py/stream.h"
#include "py/unicode.h"
#include "py/mperrno.h"

#include "uh_server.h"
#include "uh_form.h"
#if UH_TLS
#include "uh_tls.h"
#endif

typedef struct _uhttpd_core_obj_t {
    mp_obj_base_t base;
    uh_state_t *st;
} uhttpd_core_obj_t;

static const mp_obj_type_t uhttpd_core_type;

/* ---- helpers ------------------------------------------------------------ */

static int uh_method_flag(int m) {
    switch (m) {
        case UH_M_GET:
            return UH_GET;
        case UH_M_HEAD:
            return UH_HEAD;
        case UH_M_POST:
            return UH_POST;
        case UH_M_PUT:
            return UH_PUT;
        case UH_M_DELETE:
            return UH_DELETE;
        case UH_M_OPTIONS:
            return UH_OPTIONS;
        case UH_M_PATCH:
            return UH_PATCH;
        default:
            return UH_OTHER;
    }
}

/* Constant-time comparison (length leaks, content does not). */
static int uh_ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char d = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        d |= (unsigned char)(a[i] ^ b[i]);
    }
    return d == 0;
}

static void uh_allow_str(int mask, char *out, size_t cap) {
    static const struct {
        int flag;
        const char *name;
    } names[] = {
        { UH_GET, "GET" }, { UH_HEAD, "HEAD" }, { UH_POST, "POST" }, { UH_PUT, "PUT" },
        { UH_PATCH, "PATCH" }, { UH_DELETE, "DELETE" }, { UH_OPTIONS, "OPTIONS" },
    };
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (mask & names[i].flag) {
            n += snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
            if (n >= cap) {
                n = cap - 1;
            }
        }
    }
}

/* ---- routing ------------------------------------------------------------ */

typedef struct {
    mp_obj_t target;
    int kind;
    int allow;          /* union of methods of every url match */
} uh_route_hit_t;

static mp_obj_t uh_route_find(uh_state_t *st, uh_conn_t *c, const char *path, size_t plen, int mflag, uh_route_hit_t *hit) {
    size_t n;
    mp_obj_t *items;
    hit->allow = 0;
    hit->target = MP_OBJ_NULL;
    mp_obj_list_get(st->routes, &n, &items);
    mp_obj_t found = MP_OBJ_NULL;
    for (size_t i = 0; i < n; i++) {
        mp_obj_t *r;
        size_t rn;
        mp_obj_tuple_get(items[i], &rn, &r);
        size_t patlen;
        const char *pat = mp_obj_str_get_data(r[0], &patlen);
        if (!uh_match(pat, patlen, path, plen)) {
            continue;
        }
        mp_int_t kind = MP_OBJ_SMALL_INT_VALUE(r[2]);
        if ((kind == UH_ROUTE_WS || kind == UH_ROUTE_WSAPP) && !c->req.upgrade_websocket) {
            continue;   /* a plain GET to the REPL url falls through */
        }
        int mask = mp_obj_get_int(r[1]);
        if (mask & UH_GET) {
            mask |= UH_HEAD;
        }
        hit->allow |= mask;
        if (mask & mflag) {
            /* first match wins; `allow` is only needed when none does */
            found = items[i];
            hit->target = r[3];
            hit->kind = mp_obj_get_int(r[2]);
            break;
        }
    }
    return found;
}

static void uh_reply_options(uh_state_t *st, uh_conn_t *c, int allow) {
    char methods[80];
    char extra[320];
    allow |= UH_OPTIONS;
    uh_allow_str(allow, methods, sizeof(methods));
    size_t n = snprintf(extra, sizeof(extra), "Allow: %s\r\n", methods);
    if (st->cors) {
        n += snprintf(extra + n, sizeof(extra) - n, "Access-Control-Allow-Methods: %s\r\n", methods);
        const uh_header_t *h = uh_find_header(c, "access-control-request-headers", 30);
        if (h != NULL && h->value.len > 0 && h->value.len < 160 && n < sizeof(extra)) {
            n += snprintf(extra + n, sizeof(extra) - n, "Access-Control-Allow-Headers: %.*s\r\n",
                (int)h->value.len, h->value.ptr);
        }
        if (n < sizeof(extra)) {
            n += snprintf(extra + n, sizeof(extra) - n, "Access-Control-Max-Age: 86400\r\n");
        }
    }
    if (n >= sizeof(extra)) {
        extra[sizeof(extra) - 1] = 0;
    }
    uh_reply_simple(st, c, 204, extra, NULL);
}

void uh_handle_request(uh_state_t *st, uh_conn_t *c) {
    uhttpd_request_obj_t *ro = c->reqobj;
    int mflag = uh_method_flag(c->req.method);

    /* decoded, normalised path (routing, Request.path, the file server) */
    int pl;
    if (c->req.path.len == 1 && c->req.path.ptr[0] == '*') {
        c->path[0] = '*';
        pl = 1;
    } else {
        pl = uh_url_decode(c->req.path.ptr, c->req.path.len, c->path, st->max_header);
        if (pl > 0) {
            pl = uh_path_normalize(c->path, (size_t)pl);
        }
    }
    if (pl <= 0 || !utf8_check((const byte *)c->path, (size_t)pl)) {
        c->keep_alive = 0;
        uh_reply_simple(st, c, 400, NULL, NULL);
        return;
    }
    c->path[pl] = 0;
    c->path_len = (size_t)pl;

    ro->conn = c;
    ro->mflag = (uint8_t)mflag;

    uh_route_hit_t hit;
    if (mflag == UH_OPTIONS) {
        /* preflight: answered without auth (browsers send none) */
        int allow;
        if (pl == 1 && c->path[0] == '*') {
            allow = UH_GET | UH_HEAD | UH_POST | UH_DELETE;
        } else {
            uh_route_find(st, c, c->path, (size_t)pl, 0, &hit);
            allow = hit.allow;
        }
        if (allow == 0) {
            uh_reply_simple(st, c, 404, NULL, NULL);
        } else {
            uh_reply_options(st, c, allow);
        }
        return;
    }

    if (st->auth_mode == UH_AUTH_BASIC) {
        const uh_header_t *h = uh_find_header(c, "authorization", 13);
        size_t alen;
        const char *a = mp_obj_str_get_data(st->auth, &alen);
        if (h == NULL || !uh_ct_equal(h->value.ptr, h->value.len, a, alen)) {
            uh_reply_simple(st, c, 401, "WWW-Authenticate: Basic realm=\"uhttpd\"\r\n", NULL);
            return;
        }
    } else if (st->auth_mode == UH_AUTH_CUSTOM) {
        mp_obj_t r = mp_call_function_1(st->auth, MP_OBJ_FROM_PTR(ro));
        if (c->resp != UH_RESP_NONE) {
            return;   /* the auth callback answered itself */
        }
        if (mp_obj_is_int(r) && !mp_obj_is_bool(r) && mp_obj_get_int(r) >= 400) {
            mp_int_t s = mp_obj_get_int(r);
            uh_reply_simple(st, c, s > 599 ? 500 : (int)s, NULL, NULL);
            return;
        }
        if (!mp_obj_is_true(r)) {
            uh_reply_simple(st, c, 401, NULL, NULL);
            return;
        }
    }

    mp_obj_t route = uh_route_find(st, c, c->path, (size_t)pl, mflag, &hit);
    if (route == MP_OBJ_NULL) {
        if (hit.allow) {
            char methods[80], extra[100];
            uh_allow_str(hit.allow | UH_OPTIONS, methods, sizeof(methods));
            snprintf(extra, sizeof(extra), "Allow: %s\r\n", methods);
            uh_reply_simple(st, c, 405, extra, NULL);
        } else {
            uh_reply_simple(st, c, 404, NULL, NULL);
        }
        return;
    }
    switch (hit.kind) {
        case UH_ROUTE_WS:
            uh_ws_upgrade(st, c, hit.target);
            return;
        case UH_ROUTE_WSAPP:
            uh_wsapp_upgrade(st, c, hit.target);
            return;
        case UH_ROUTE_FILES:
            uh_files_serve(st, c, hit.target);
            break;
        case UH_ROUTE_EVENTS:
            uh_sse_accept(st, c);
            return;
        case UH_ROUTE_RECV: {
            /* target: (function, config); Python decides, C streams */
            size_t tn;
            mp_obj_t *t;
            mp_obj_tuple_get(hit.target, &tn, &t);
            mp_call_function_2(t[0], MP_OBJ_FROM_PTR(ro), t[1]);
            break;
        }
        default:
            uh_send_continue(st, c);
            mp_call_function_1(hit.target, MP_OBJ_FROM_PTR(ro));
            break;
    }
    if (c->resp == UH_RESP_NONE && c->io.fd >= 0) {
        uh_reply_simple(st, c, 204, NULL, NULL);
    }
}

/* ---- Request ------------------------------------------------------------ */

static uh_conn_t *uh_req_conn(mp_obj_t self_in) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->conn == NULL || self->conn->state != UH_CS_BUSY) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    return self->conn;
}

static mp_obj_t uhttpd_request_server(mp_obj_t self_in) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->st->facade_hidden == 0) {
        return mp_const_none;
    }
    return MP_OBJ_FROM_PTR((void *)~self->st->facade_hidden);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_server_obj, uhttpd_request_server);

static mp_obj_t uhttpd_request_method(mp_obj_t self_in) {
    uh_req_conn(self_in);
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return MP_OBJ_NEW_SMALL_INT(self->mflag);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_method_obj, uhttpd_request_method);

static mp_obj_t uhttpd_request_uri(mp_obj_t self_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    return mp_obj_new_str(c->req.target.ptr, c->req.target.len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_uri_obj, uhttpd_request_uri);

static mp_obj_t uhttpd_request_path(mp_obj_t self_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    return mp_obj_new_str(c->path, c->path_len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_path_obj, uhttpd_request_path);

static mp_obj_t uhttpd_request_length(mp_obj_t self_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    if (c->req.chunked) {
        return mp_const_none;
    }
    return mp_obj_new_int_from_ll(c->req.content_length < 0 ? 0 : c->req.content_length);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_length_obj, uhttpd_request_length);

static mp_obj_t uhttpd_request_header(mp_obj_t self_in, mp_obj_t name_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    size_t nlen;
    const char *name = mp_obj_str_get_data(name_in, &nlen);
    const uh_header_t *h = uh_find_header(c, name, nlen);
    if (h == NULL) {
        return mp_const_none;
    }
    return mp_obj_new_bytes((const byte *)h->value.ptr, h->value.len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(uhttpd_request_header_obj, uhttpd_request_header);

/* application/x-www-form-urlencoded component: %XX and '+' decoded
 * (appended to v; also used by req.form(), uh_form.c). */
void uh_form_decode_into(vstr_t *v, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < n && unichar_isxdigit(s[i + 1]) && unichar_isxdigit(s[i + 2])) {
            ch = (char)(unichar_xdigit_value(s[i + 1]) * 16 + unichar_xdigit_value(s[i + 2]));
            i += 2;
        }
        vstr_add_byte(v, (byte)ch);
    }
}

static mp_obj_t uh_form_decode(const char *s, size_t n) {
    vstr_t v;
    vstr_init(&v, n ? n : 1);
    uh_form_decode_into(&v, s, n);
    return mp_obj_new_bytes_from_vstr(&v);
}

static mp_obj_t uhttpd_request_query(mp_obj_t self_in, mp_obj_t key_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    size_t klen;
    const char *key = mp_obj_str_get_data(key_in, &klen);
    const char *q = c->req.query.ptr;
    size_t qlen = c->req.query.len;
    size_t i = 0;
    while (i < qlen) {
        size_t j = i;
        while (j < qlen && q[j] != '&') {
            j++;
        }
        size_t eq = i;
        while (eq < j && q[eq] != '=') {
            eq++;
        }
        mp_obj_t k = uh_form_decode(q + i, eq - i);
        size_t dkl;
        const char *dk = mp_obj_str_get_data(k, &dkl);
        if (dkl == klen && memcmp(dk, key, klen) == 0) {
            if (eq == j) {
                return mp_const_true;
            }
            return uh_form_decode(q + eq + 1, j - eq - 1);
        }
        i = j + 1;
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(uhttpd_request_query_obj, uhttpd_request_query);

static mp_obj_t uhttpd_request_parse_qs(mp_obj_t self_in) {
    uh_conn_t *c = uh_req_conn(self_in);
    mp_obj_t d = mp_obj_new_dict(0);
    const char *q = c->req.query.ptr;
    size_t qlen = c->req.query.len;
    size_t i = 0;
    while (i < qlen) {
        size_t j = i;
        while (j < qlen && q[j] != '&') {
            j++;
        }
        if (j > i) {
            size_t eq = i;
            while (eq < j && q[eq] != '=') {
                eq++;
            }
            mp_obj_t k = uh_form_decode(q + i, eq - i);
            mp_obj_t v = eq == j ? mp_const_true : uh_form_decode(q + eq + 1, j - eq - 1);
            mp_obj_dict_store(d, k, v);
        }
        i = j + 1;
    }
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_request_parse_qs_obj, uhttpd_request_parse_qs);

static mp_obj_t uhttpd_request_read(size_t n_args, const mp_obj_t *args) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uh_conn_t *c = uh_req_conn(args[0]);
    mp_int_t want = n_args > 1 && args[1] != mp_const_none ? mp_obj_get_int(args[1]) : -1;
    uh_send_continue(self->st, c);
    vstr_t v;
    if (want >= 0) {
        vstr_init(&v, want ? (size_t)want : 1);
        while ((mp_int_t)v.len < want) {
            mp_int_t r = uh_body_read(self->st, c, v.buf + v.len, (size_t)want - v.len);
            if (r == 0) {
                break;
            }
            v.len += (size_t)r;
        }
    } else {
        size_t hint = 256;
        if (c->body_kind == UH_BODY_LENGTH && c->body_left < 65536) {
            hint = (size_t)c->body_left + 1;
        }
        vstr_init(&v, hint);
        for (;;) {
            if (v.alloc - v.len < 64) {
                vstr_hint_size(&v, v.alloc);
            }
            mp_int_t r = uh_body_read(self->st, c, v.buf + v.len, v.alloc - v.len);
            if (r == 0) {
                break;
            }
            v.len += (size_t)r;
        }
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uhttpd_request_read_obj, 1, 2, uhttpd_request_read);

static mp_obj_t uhttpd_request_readinto(mp_obj_t self_in, mp_obj_t buf_in) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uh_conn_t *c = uh_req_conn(self_in);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(buf_in, &bi, MP_BUFFER_WRITE);
    uh_send_continue(self->st, c);
    return MP_OBJ_NEW_SMALL_INT(uh_body_read(self->st, c, bi.buf, bi.len));
}
static MP_DEFINE_CONST_FUN_OBJ_2(uhttpd_request_readinto_obj, uhttpd_request_readinto);

enum { ARG_data, ARG_status, ARG_mime, ARG_headers, ARG_allow_cors };
static const mp_arg_t uh_write_args[] = {
    { MP_QSTR_data, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    { MP_QSTR_status, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    { MP_QSTR_mime, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    { MP_QSTR_headers, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    { MP_QSTR_allow_cors, MP_ARG_BOOL, {.u_bool = false} },
};

/* Build the response head from write()/send_chunk() arguments. */
static size_t uh_head_from_args(uh_state_t *st, uh_conn_t *c, mp_arg_val_t *a, int64_t body_len) {
    int status = 200;
    const char *sstr = NULL;
    size_t slen = 0;
    mp_obj_t so = a[ARG_status].u_obj;
    if (so != mp_const_none) {
        if (mp_obj_is_int(so)) {
            status = mp_obj_get_int(so);
            if (status < 100 || status > 999) {
                mp_raise_ValueError(MP_ERROR_TEXT("bad status"));
            }
        } else {
            mp_buffer_info_t bi;
            mp_get_buffer_raise(so, &bi, MP_BUFFER_READ);
            sstr = bi.buf;
            slen = bi.len;
            if (slen < 3) {
                mp_raise_ValueError(MP_ERROR_TEXT("bad status"));
            }
        }
    }
    const char *mime = "text/html";
    size_t mlen = 9;
    if (a[ARG_mime].u_obj != mp_const_none) {
        mp_buffer_info_t bi;
        mp_get_buffer_raise(a[ARG_mime].u_obj, &bi, MP_BUFFER_READ);
        mime = bi.buf;
        mlen = bi.len;
    }
    mp_obj_t hd = a[ARG_headers].u_obj;
    if (hd != mp_const_none && !mp_obj_is_type(hd, &mp_type_dict)) {
        mp_raise_TypeError(MP_ERROR_TEXT("headers must be a dict"));
    }
    return uh_build_head(st, c, status, sstr, slen, mime, mlen, hd, st->cors || a[ARG_allow_cors].u_bool, body_len, NULL);
}

static void uh_get_data(mp_obj_t d, mp_buffer_info_t *bi) {
    if (d == mp_const_none) {
        bi->buf = NULL;
        bi->len = 0;
    } else if (mp_obj_is_str(d)) {
        size_t n;
        bi->buf = (void *)mp_obj_str_get_data(d, &n);
        bi->len = n;
    } else {
        mp_get_buffer_raise(d, bi, MP_BUFFER_READ);
    }
}

static mp_obj_t uhttpd_request_write(size_t n_args, const mp_obj_t *pos, mp_map_t *kw) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(pos[0]);
    uh_conn_t *c = uh_req_conn(pos[0]);
    mp_arg_val_t a[MP_ARRAY_SIZE(uh_write_args)];
    mp_arg_parse_all(n_args - 1, pos + 1, kw, MP_ARRAY_SIZE(uh_write_args), uh_write_args, a);
    if (c->resp != UH_RESP_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("response already sent"));
    }
    mp_buffer_info_t bi;
    uh_get_data(a[ARG_data].u_obj, &bi);
    uh_state_t *st = self->st;
    size_t n = uh_head_from_args(st, c, a, (int64_t)bi.len);
    c->resp = UH_RESP_WRITTEN;
    if (c->head_only || bi.len == 0) {
        uh_send_gil(st, c, c->tx, n, 0);
    } else if (n + bi.len <= UH_TX_BUF) {
        memcpy(c->tx + n, bi.buf, bi.len);
        uh_send_gil(st, c, c->tx, n + bi.len, 0);
    } else {
        uh_send_gil(st, c, c->tx, n, 1);
        uh_send_gil(st, c, bi.buf, bi.len, 0);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(uhttpd_request_write_obj, 2, uhttpd_request_write);

static mp_obj_t uhttpd_request_send_chunk(size_t n_args, const mp_obj_t *pos, mp_map_t *kw) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(pos[0]);
    uh_conn_t *c = uh_req_conn(pos[0]);
    uh_state_t *st = self->st;
    mp_arg_val_t a[MP_ARRAY_SIZE(uh_write_args)];
    mp_arg_parse_all(n_args - 1, pos + 1, kw, MP_ARRAY_SIZE(uh_write_args), uh_write_args, a);
    if (c->resp == UH_RESP_WRITTEN || c->resp == UH_RESP_RAW) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("response already sent"));
    }
    if (c->resp == UH_RESP_CHUNK_END) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("chunked response already ended"));
    }
    mp_buffer_info_t bi;
    uh_get_data(a[ARG_data].u_obj, &bi);
    int end = a[ARG_data].u_obj == mp_const_none;
    size_t n = 0;
    if (c->resp == UH_RESP_NONE) {
        n = uh_head_from_args(st, c, a, UH_LEN_CHUNKED);
        c->resp = UH_RESP_CHUNKED;
    }
    if (c->head_only) {
        if (n) {
            uh_send_gil(st, c, c->tx, n, 0);
        }
        if (end) {
            c->resp = UH_RESP_CHUNK_END;
        }
        return mp_const_none;
    }
    if (n + 24 > UH_TX_BUF) {
        /* a head this large: send it alone, framing follows */
        uh_send_gil(st, c, c->tx, n, 1);
        n = 0;
    }
    if (end) {
        if (!c->close_delim) {
            memcpy(c->tx + n, "0\r\n\r\n", 5);
            n += 5;
        }
        if (n) {
            uh_send_gil(st, c, c->tx, n, 0);
        }
        c->resp = UH_RESP_CHUNK_END;
        return mp_const_none;
    }
    if (bi.len == 0) {
        /* an empty chunk would end the body: send only a pending head */
        if (n) {
            uh_send_gil(st, c, c->tx, n, 0);
        }
        return mp_const_none;
    }
    if (!c->close_delim) {
        n += snprintf(c->tx + n, UH_TX_BUF - n, "%lx\r\n", (unsigned long)bi.len);
    }
    if (n + bi.len + 2 <= UH_TX_BUF) {
        memcpy(c->tx + n, bi.buf, bi.len);
        n += bi.len;
        if (!c->close_delim) {
            memcpy(c->tx + n, "\r\n", 2);
            n += 2;
        }
        uh_send_gil(st, c, c->tx, n, 0);
    } else {
        uh_send_gil(st, c, c->tx, n, 1);
        uh_send_gil(st, c, bi.buf, bi.len, !c->close_delim);
        if (!c->close_delim) {
            uh_send_gil(st, c, "\r\n", 2, 0);
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(uhttpd_request_send_chunk_obj, 2, uhttpd_request_send_chunk);

static mp_obj_t uhttpd_request_send(mp_obj_t self_in, mp_obj_t data) {
    uhttpd_request_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uh_conn_t *c = uh_req_conn(self_in);
    if (c->resp == UH_RESP_WRITTEN || c->resp == UH_RESP_CHUNKED || c->resp == UH_RESP_CHUNK_END) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("response already sent"));
    }
    mp_buffer_info_t bi;
    uh_get_data(data, &bi);
    c->resp = UH_RESP_RAW;
    c->keep_alive = 0;
    if (bi.len) {
        uh_send_gil(self->st, c, bi.buf, bi.len, 0);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(uhttpd_request_send_obj, uhttpd_request_send);

static const mp_rom_map_elem_t uhttpd_request_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_server), MP_ROM_PTR(&uhttpd_request_server_obj) },
    { MP_ROM_QSTR(MP_QSTR_method), MP_ROM_PTR(&uhttpd_request_method_obj) },
    { MP_ROM_QSTR(MP_QSTR_uri), MP_ROM_PTR(&uhttpd_request_uri_obj) },
    { MP_ROM_QSTR(MP_QSTR_path), MP_ROM_PTR(&uhttpd_request_path_obj) },
    { MP_ROM_QSTR(MP_QSTR_length), MP_ROM_PTR(&uhttpd_request_length_obj) },
    { MP_ROM_QSTR(MP_QSTR_header), MP_ROM_PTR(&uhttpd_request_header_obj) },
    { MP_ROM_QSTR(MP_QSTR_query), MP_ROM_PTR(&uhttpd_request_query_obj) },
    { MP_ROM_QSTR(MP_QSTR_parse_qs), MP_ROM_PTR(&uhttpd_request_parse_qs_obj) },
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&uhttpd_request_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&uhttpd_request_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&uhttpd_request_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_send_chunk), MP_ROM_PTR(&uhttpd_request_send_chunk_obj) },
    { MP_ROM_QSTR(MP_QSTR_send), MP_ROM_PTR(&uhttpd_request_send_obj) },
    { MP_ROM_QSTR(MP_QSTR__recv_to), MP_ROM_PTR(&uh_recv_to_obj) },
    { MP_ROM_QSTR(MP_QSTR__file_reply), MP_ROM_PTR(&uh_file_reply_obj) },
    { MP_ROM_QSTR(MP_QSTR_form), MP_ROM_PTR(&uh_form_obj) },
    { MP_ROM_QSTR(MP_QSTR_parts), MP_ROM_PTR(&uh_parts_obj) },
    { MP_ROM_QSTR(MP_QSTR__recv_mp), MP_ROM_PTR(&uh_recv_mp_obj) },
};
static MP_DEFINE_CONST_DICT(uhttpd_request_locals_dict, uhttpd_request_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    uhttpd_request_type,
    MP_QSTR_Request,
    MP_TYPE_FLAG_NONE,
    locals_dict, &uhttpd_request_locals_dict
    );

/* ---- Core --------------------------------------------------------------- */

/* Wait for servers that are stopping (e.g. after a finaliser asked them
 * to) so their port is free again.  GIL held. */
static void uh_wait_stopping(void) {
    for (int guard = 0; guard < 5000; guard++) {
        int any = 0;
        for (uh_state_t *s = MP_STATE_VM(uhttpd_servers); s != NULL; s = s->next) {
            if (s->stop && s->running) {
                any = 1;
            }
        }
        if (!any) {
            return;
        }
        MP_THREAD_GIL_EXIT();
        uh_sleep_ms(1);
        MP_THREAD_GIL_ENTER();
    }
}

/* tls=(cert, key), both bytes (the facade reads files): the shared TLS
 * state (mbedTLS config, certificate, DRBG, ticket keys), outside the
 * MicroPython heap.  A bad cert or key raises ValueError naming it. */
static void *uh_core_tls_setup(mp_obj_t tls) {
    #if UH_TLS
    size_t n;
    mp_obj_t *it;
    mp_obj_get_array(tls, &n, &it);
    if (n != 2) {
        mp_raise_ValueError(MP_ERROR_TEXT("tls must be (cert, key)"));
    }
    mp_buffer_info_t cert, key;
    mp_get_buffer_raise(it[0], &cert, MP_BUFFER_READ);
    mp_get_buffer_raise(it[1], &key, MP_BUFFER_READ);
    char err[160];
    uh_tls_server_t *srv = NULL;
    int r;
    MP_THREAD_GIL_EXIT();
    r = uh_tls_server_new(&srv, cert.buf, cert.len, key.buf, key.len, err, sizeof(err));
    MP_THREAD_GIL_ENTER();
    if (r < 0 || srv == NULL) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("tls: %s"), err);
    }
    return srv;
    #else
    (void)tls;
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("uhttpd: this firmware was built without TLS"));
    #endif
}

static void uh_core_tls_free(uh_state_t *st) {
    #if UH_TLS
    if (st->tls != NULL) {
        uh_tls_server_free((uh_tls_server_t *)st->tls);
    }
    #endif
    st->tls = NULL;
}

static mp_obj_t uhttpd_core_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 14, 14, false);
    mp_obj_t facade = args[0];
    const char *host = mp_obj_str_get_str(args[1]);
    mp_int_t port = mp_obj_get_int(args[2]);
    mp_int_t max_conns = mp_obj_get_int(args[3]);
    mp_int_t max_header = mp_obj_get_int(args[4]);
    mp_int_t timeout_ms = mp_obj_get_int(args[5]);
    mp_int_t max_body = mp_obj_get_int(args[6]);
    mp_int_t events = mp_obj_get_int(args[7]);
    mp_int_t event_queue = mp_obj_get_int(args[8]);
    mp_int_t ping_ms = mp_obj_get_int(args[9]);
    mp_int_t body_buffer = mp_obj_get_int(args[10]);
    mp_int_t min_rate = mp_obj_get_int(args[11]);
    mp_obj_t tls = args[12];
    mp_int_t ws_queue = mp_obj_get_int(args[13]);
    if (ws_queue < 64 || ws_queue > 16 * 1024 * 1024) {
        mp_raise_ValueError(MP_ERROR_TEXT("ws_queue must be 64..16777216"));
    }
    if (events < 0 || events > UH_CEIL_MAX_CONNS) {
        mp_raise_ValueError(MP_ERROR_TEXT("events out of range"));
    }
    if (event_queue < 64 || event_queue > 1024 * 1024) {
        mp_raise_ValueError(MP_ERROR_TEXT("event_queue must be 64..1048576"));
    }
    if (ping_ms < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("event ping must be >= 0"));
    }
    if (port < 0 || port > 65535) {
        mp_raise_ValueError(MP_ERROR_TEXT("port must be 0..65535"));
    }
    if (max_conns < 1 || max_conns > UH_CEIL_MAX_CONNS) {
        mp_raise_ValueError(MP_ERROR_TEXT("max_conns out of range"));
    }
    if (max_header < UH_MIN_MAX_HEADER || max_header > UH_CEIL_MAX_HEADER) {
        mp_raise_ValueError(MP_ERROR_TEXT("max_header out of range"));
    }
    if (timeout_ms < 10) {
        mp_raise_ValueError(MP_ERROR_TEXT("timeout too small"));
    }
    if (max_body < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("max_body must be >= 0"));
    }
    if (body_buffer < 0 || body_buffer > 1024 * 1024) {
        mp_raise_ValueError(MP_ERROR_TEXT("body_buffer must be 0..1048576"));
    }
    if (min_rate < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("min_rate must be >= 0"));
    }
    void *tls_srv = NULL;
    if (tls != mp_const_none) {
        tls_srv = uh_core_tls_setup(tls);   /* raises ValueError naming the problem */
    }

    uh_wait_stopping();

    /* allocate everything up front */
    uh_state_t *st = m_new0(uh_state_t, 1);
    st->lfd = -1;
    st->wake.rd = st->wake.wr = -1;
    st->tls = tls_srv;
    st->max_conns = (size_t)max_conns;
    st->max_header = (size_t)max_header;
    st->body_buffer = (size_t)body_buffer;
    st->min_rate = (uint32_t)min_rate;
    st->timeout_ms = (uint32_t)timeout_ms;
    st->max_body = (uint64_t)max_body;
    st->nest_max = UH_NEST_MAX;
    st->routes = mp_obj_new_list(0, NULL);
    st->auth = mp_const_none;
    st->file_acl = mp_const_none;
    st->ext_path = MP_OBJ_NEW_QSTR(MP_QSTR_);
    st->file_block = UH_DEFAULT_FILE_BLOCK;
    mp_thread_mutex_init(&st->close_mutex);
    mp_thread_mutex_init(&st->ws_mutex);
    st->ws_qsize = (size_t)ws_queue;
    st->conns = m_new0(uh_conn_t, st->max_conns);
    /* per connection: head + body, then the header slots */
    size_t cap = (st->max_header + st->body_buffer + 7) & ~(size_t)7;
    /* per handler level (nest_max + 1): decoded path, reply-head scratch */
    st->scratch_size = ((st->max_header + 1 + 7) & ~(size_t)7) + UH_TX_BUF;
    st->scratch = m_new(char, st->scratch_size * (st->nest_max + 1u));
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        c->io.fd = -1;
        c->file_fd = -1;
        c->index = (uint8_t)k;
        c->cap = cap;
        c->buf = m_new(char, cap + UH_MAX_HEADERS * sizeof(uh_header_t));
        uh_conn_scratch(st, c);
        uhttpd_request_obj_t *ro = mp_obj_malloc(uhttpd_request_obj_t, &uhttpd_request_type);
        ro->st = st;
        ro->conn = NULL;
        c->reqobj = ro;
    }
    uh_sse_alloc(st, (size_t)events, (size_t)event_queue);
    st->sse_ping_ms = (uint32_t)ping_ms;
    st->sse_next_ping = uh_ticks_ms() + st->sse_ping_ms;
    /* wake-up, listener, a waiting connection, the REPL socket, members */
    for (size_t k = 0; k < UH_REJECT_SLOTS; k++) {
        st->rejects[k].fd = -1;
    }
    st->npoll = st->max_conns + st->n_sse + UH_REJECT_SLOTS + 4;
    st->pfds = m_new0(struct pollfd, st->npoll * (st->nest_max + 1u));
    st->pents = m_new0(uh_pent_t, st->npoll * (st->nest_max + 1u));

    /* listening socket (on failure the TLS state goes too) */
    nlr_buf_t nlr_tls;
    if (nlr_push(&nlr_tls) != 0) {
        uh_core_tls_free(st);
        nlr_jump(nlr_tls.ret_val);
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", (int)port);
    int gai;
    MP_THREAD_GIL_EXIT();
    gai = getaddrinfo(host, portstr, &hints, &ai);
    MP_THREAD_GIL_ENTER();
    if (gai != 0 || ai == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("host must be an IPv4 address"));
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(ai);
        mp_raise_OSError(e);
    }
    uh_fd_track(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    uh_set_cloexec(fd);
    int r = bind(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (r < 0 || listen(fd, UH_LISTEN_BACKLOG) < 0) {
        int e = errno;
        uh_close_fd(fd);
        mp_raise_OSError(e);
    }
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    st->port = ntohs(sa.sin_port);
    uh_set_nonblock(fd);
    st->lfd = fd;
    if (uh_wakeup_open(&st->wake) < 0) {
        int e = errno;
        uh_close_fd(fd);
        st->lfd = -1;
        mp_raise_OSError(e);
    }
    uh_fd_track(st->wake.rd);
    uh_fd_track(st->wake.wr);
    nlr_pop();

    uhttpd_core_obj_t *self = mp_obj_malloc_with_finaliser(uhttpd_core_obj_t, type);
    self->st = st;
    st->facade_hidden = facade == mp_const_none ? 0 : ~(uintptr_t)MP_OBJ_TO_PTR(facade);

    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        uh_state_start(st);
        nlr_pop();
    } else {
        uh_wakeup_close(&st->wake);
        uh_close_fd(st->lfd);
        st->lfd = -1;
        uh_core_tls_free(st);
        nlr_jump(nlr.ret_val);
    }
    return MP_OBJ_FROM_PTR(self);
}

static mp_obj_t uhttpd_core_port(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return MP_OBJ_NEW_SMALL_INT(self->st->port);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_port_obj, uhttpd_core_port);

/* configure(routes_list, auth_mode, auth, cors) */
static mp_obj_t uhttpd_core_configure(size_t n_args, const mp_obj_t *args) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uh_state_t *st = self->st;
    if (!mp_obj_is_type(args[1], &mp_type_list)) {
        mp_raise_TypeError(MP_ERROR_TEXT("routes must be a list"));
    }
    st->routes = args[1];
    st->auth_mode = (uint8_t)mp_obj_get_int(args[2]);
    st->auth = args[3];
    st->cors = mp_obj_is_true(args[4]);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uhttpd_core_configure_obj, 5, 5, uhttpd_core_configure);

/* set_files(ext_path, file_acl, file_block): file server/receiver options */
static mp_obj_t uhttpd_core_set_files(size_t n_args, const mp_obj_t *args) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uh_state_t *st = self->st;
    mp_obj_str_get_str(args[1]);
    st->ext_path = args[1];
    st->file_acl = args[2];
    mp_int_t blk = mp_obj_get_int(args[3]);
    if (st->conns[0].fbuf == NULL) {
        if (blk < 512 || blk > 1024 * 1024) {
            mp_raise_ValueError(MP_ERROR_TEXT("file_block must be 512..1048576"));
        }
        st->file_block = (size_t)blk;
        uh_files_alloc(st);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uhttpd_core_set_files_obj, 4, 4, uhttpd_core_set_files);

static mp_obj_t uhttpd_core_dispatch(mp_obj_t self_in, mp_obj_t data, mp_obj_t event) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (!self->st->running) {
        return mp_const_false;
    }
    return uh_sse_dispatch(self->st, data, event);
}
static MP_DEFINE_CONST_FUN_OBJ_3(uhttpd_core_dispatch_obj, uhttpd_core_dispatch);

static mp_obj_t uhttpd_core_listeners(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return MP_OBJ_NEW_SMALL_INT(uh_sse_count(self->st));
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_listeners_obj, uhttpd_core_listeners);

static mp_obj_t uhttpd_core_close(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->st != NULL) {
        self->st->facade_hidden = 0;
        uh_thread_stop_wait(self->st);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_close_obj, uhttpd_core_close);

/* Finaliser: runs inside a GC sweep (maybe in the server thread itself), so
 * it must not wait or release the GIL: it only asks the thread to stop.  A
 * new Core on the same port waits for the stop (uh_wait_stopping). */
static mp_obj_t uhttpd_core_del(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uh_state_t *st = self->st;
    if (st != NULL && st->running) {
        st->facade_hidden = 0;
        st->stop = 1;
        uh_wakeup_signal(&st->wake);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_del_obj, uhttpd_core_del);

/* websocket(url, callback, clients, max_msg, on_open, on_close, origins)
 * -> the route target; every client slot is allocated now. */
static mp_obj_t uhttpd_core_websocket(size_t n_args, const mp_obj_t *args) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    return uh_wsapp_add(self->st, args + 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uhttpd_core_websocket_obj, 8, 8, uhttpd_core_websocket);

static mp_obj_t uhttpd_core_broadcast(mp_obj_t self_in, mp_obj_t url, mp_obj_t data) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return uh_wsapp_broadcast(self->st, url, data);
}
static MP_DEFINE_CONST_FUN_OBJ_3(uhttpd_core_broadcast_obj, uhttpd_core_broadcast);

/* stats() -> (loop passes so far, handler depth limit): the idle cost
 * measurement counts passes per second. */
static mp_obj_t uhttpd_core_stats(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_obj_t t[2] = { mp_obj_new_int_from_uint(self->st->wakeups), MP_OBJ_NEW_SMALL_INT(self->st->nest_max) };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_stats_obj, uhttpd_core_stats);

static mp_obj_t uhttpd_core_running(mp_obj_t self_in) {
    uhttpd_core_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_bool(self->st->running && !self->st->stop);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_core_running_obj, uhttpd_core_running);

static const mp_rom_map_elem_t uhttpd_core_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_port), MP_ROM_PTR(&uhttpd_core_port_obj) },
    { MP_ROM_QSTR(MP_QSTR_configure), MP_ROM_PTR(&uhttpd_core_configure_obj) },
    { MP_ROM_QSTR(MP_QSTR_set_files), MP_ROM_PTR(&uhttpd_core_set_files_obj) },
    { MP_ROM_QSTR(MP_QSTR_dispatch), MP_ROM_PTR(&uhttpd_core_dispatch_obj) },
    { MP_ROM_QSTR(MP_QSTR_listeners), MP_ROM_PTR(&uhttpd_core_listeners_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&uhttpd_core_close_obj) },
    { MP_ROM_QSTR(MP_QSTR_running), MP_ROM_PTR(&uhttpd_core_running_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&uhttpd_core_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_websocket), MP_ROM_PTR(&uhttpd_core_websocket_obj) },
    { MP_ROM_QSTR(MP_QSTR_broadcast), MP_ROM_PTR(&uhttpd_core_broadcast_obj) },
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&uhttpd_core_del_obj) },
};
static MP_DEFINE_CONST_DICT(uhttpd_core_locals_dict, uhttpd_core_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    uhttpd_core_type,
    MP_QSTR_Core,
    MP_TYPE_FLAG_NONE,
    make_new, uhttpd_core_make_new,
    locals_dict, &uhttpd_core_locals_dict
    );

/* ---- module ------------------------------------------------------------- */

/* Called on the first import after start-up and after every soft reset,
 * and again whenever the module is imported anew (del sys.modules[...]):
 * only the first call of a reset cycle may clean up, later ones must not
 * touch running servers.  The cycle flag lives in static memory (it
 * survives a soft reset); the mp_thread_deinit hook (uh_server.c) clears it
 * after stopping every server.  Without that hook (a build that does not
 * wrap mp_thread_deinit) a new cycle cannot be told from a re-import, so
 * the flag is not used and __init__ cleans up every time, as before. */
static uint8_t uh_cycle_live;

void uh_module_cycle_end(void) {
    uh_cycle_live = 0;
}

static mp_obj_t uhttpd_module_init(void) {
    #if UH_WRAP_DEINIT
    if (uh_cycle_live) {
        return mp_const_none;
    }
    uh_cycle_live = 1;
    #endif
    uh_fd_close_all_tracked();
    MP_STATE_VM(uhttpd_servers) = NULL;
    uh_ws_reset();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(uhttpd_module_init_obj, uhttpd_module_init);

/* normpath(path) -> normalised absolute path, or None when it is not
 * absolute, has a NUL, or climbs above the root (uh_path_normalize). */
static mp_obj_t uhttpd_normpath(mp_obj_t path_in) {
    size_t n;
    const char *p = mp_obj_str_get_data(path_in, &n);
    vstr_t v;
    vstr_init_len(&v, n);
    memcpy(v.buf, p, n);
    int r = uh_path_normalize(v.buf, n);
    if (r < 0) {
        vstr_clear(&v);
        return mp_const_none;
    }
    v.len = (size_t)r;
    return mp_obj_new_str_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_1(uhttpd_normpath_obj, uhttpd_normpath);

/* stop every server of this process (atexit / tests) */
int uh_stop_all(void);
static mp_obj_t uhttpd_stop_all(void) {
    uh_stop_all();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(uhttpd_stop_all_obj, uhttpd_stop_all);

extern const mp_obj_fun_builtin_var_t uh_realname_obj;   /* uh_files.c */

static const mp_rom_map_elem_t uhttpd_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__uhttpd) },
    { MP_ROM_QSTR(MP_QSTR___init__), MP_ROM_PTR(&uhttpd_module_init_obj) },
    { MP_ROM_QSTR(MP_QSTR_Core), MP_ROM_PTR(&uhttpd_core_type) },
    { MP_ROM_QSTR(MP_QSTR_Request), MP_ROM_PTR(&uhttpd_request_type) },
    { MP_ROM_QSTR(MP_QSTR_stop_all), MP_ROM_PTR(&uhttpd_stop_all_obj) },
    { MP_ROM_QSTR(MP_QSTR_normpath), MP_ROM_PTR(&uhttpd_normpath_obj) },
    { MP_ROM_QSTR(MP_QSTR_realname), MP_ROM_PTR(&uh_realname_obj) },
    { MP_ROM_QSTR(MP_QSTR_GET), MP_ROM_INT(UH_GET) },
    { MP_ROM_QSTR(MP_QSTR_POST), MP_ROM_INT(UH_POST) },
    { MP_ROM_QSTR(MP_QSTR_DELETE), MP_ROM_INT(UH_DELETE) },
    { MP_ROM_QSTR(MP_QSTR_HEAD), MP_ROM_INT(UH_HEAD) },
    { MP_ROM_QSTR(MP_QSTR_PUT), MP_ROM_INT(UH_PUT) },
    { MP_ROM_QSTR(MP_QSTR_PATCH), MP_ROM_INT(UH_PATCH) },
    { MP_ROM_QSTR(MP_QSTR_OPTIONS), MP_ROM_INT(UH_OPTIONS) },
    { MP_ROM_QSTR(MP_QSTR_MAX_HEADERS), MP_ROM_INT(UH_MAX_HEADERS) },
    { MP_ROM_QSTR(MP_QSTR_FILE_BLOCK), MP_ROM_INT(UH_DEFAULT_FILE_BLOCK) },
    { MP_ROM_QSTR(MP_QSTR_EVENT_QUEUE), MP_ROM_INT(UH_DEFAULT_EVENT_QUEUE) },
    { MP_ROM_QSTR(MP_QSTR_BODY_BUFFER), MP_ROM_INT(UH_DEFAULT_BODY_BUFFER) },
    { MP_ROM_QSTR(MP_QSTR_MAX_HEADER), MP_ROM_INT(UH_DEFAULT_MAX_HEADER) },
    { MP_ROM_QSTR(MP_QSTR_MIN_RATE), MP_ROM_INT(UH_DEFAULT_MIN_RATE) },
    { MP_ROM_QSTR(MP_QSTR_WS_QUEUE), MP_ROM_INT(UH_DEFAULT_WS_QUEUE) },
    { MP_ROM_QSTR(MP_QSTR_TLS), MP_ROM_INT(UH_TLS) },
};
static MP_DEFINE_CONST_DICT(uhttpd_module_globals, uhttpd_module_globals_table);

const mp_obj_module_t uhttpd_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&uhttpd_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__uhttpd, uhttpd_user_cmodule);
