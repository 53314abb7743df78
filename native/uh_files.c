/*
 * uhttpd: the file server's and the file receiver's hot paths.
 *
 * Files are opened, read and written through MicroPython's VFS (LittleFS or
 * FAT on a board, VfsPosix on unix) with the GIL held for one block at a
 * time; every block goes over the network with the GIL released.  A
 * transfer that does not fit in one go is driven by the server loop
 * (states UH_CS_FILE_TX / UH_CS_FILE_RX), so a slow client never holds up
 * the others.  Each connection has one block buffer (file_block bytes),
 * allocated when serve() or receive() is configured: serving or receiving
 * a file of any size allocates nothing more.
 *
 * On unix, a VfsPosix file exposes its descriptor (MP_STREAM_GET_FILENO)
 * and large downloads use sendfile(2); every other VFS takes the portable
 * read-a-block path.
 *
 * Uploads go to a temporary file beside the target, renamed over it only
 * when the whole body arrived; any failure removes the temporary file.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/stream.h"
#include "py/mperrno.h"
#include "py/objstr.h"
#include "extmod/vfs.h"

#include "uh_server.h"

#if defined(__linux__)
#include <sys/sendfile.h>
#define UH_HAVE_SENDFILE (1)
#else
#define UH_HAVE_SENDFILE (0)
#endif

/* ---- setup --------------------------------------------------------------- */

void uh_files_alloc(uh_state_t *st) {
    for (size_t k = 0; k < st->max_conns; k++) {
        uh_conn_t *c = &st->conns[k];
        if (c->fbuf == NULL) {
            c->fbuf = m_new(char, st->file_block);
            c->file_fd = -1;
        }
    }
}

/* ---- small helpers (GIL held) -------------------------------------------- */

typedef struct {
    int is_dir;
    uint64_t size;
    mp_int_t mtime;
} uh_stat_t;

/* 0 on success, else an errno (ENOENT...). */
static int uh_stat(mp_obj_t path, uh_stat_t *out) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t t = mp_vfs_stat(path);
        size_t n;
        mp_obj_t *it;
        mp_obj_tuple_get(t, &n, &it);
        mp_int_t mode = mp_obj_get_int(it[0]);
        out->is_dir = (mode & MP_S_IFDIR) == MP_S_IFDIR;
        out->size = (uint64_t)mp_obj_get_int_truncated(it[6]);
        out->mtime = mp_obj_get_int_truncated(it[8]);
        nlr_pop();
        return 0;
    } else {
        mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
        if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_OSError))) {
            mp_obj_t args = mp_obj_exception_get_value(exc);
            if (mp_obj_is_small_int(args)) {
                return MP_OBJ_SMALL_INT_VALUE(args);
            }
            return MP_ENOENT;
        }
        nlr_jump(nlr.ret_val);
    }
}

/* Run the file ACL callback; 0 when access is granted, else a status. */
static int uh_acl(uh_state_t *st, mp_obj_t path, int need) {
    if (st->file_acl == mp_const_none || st->file_acl == MP_OBJ_NULL) {
        return 0;
    }
    mp_obj_t r = mp_call_function_1(st->file_acl, path);
    if (mp_obj_is_small_int(r)) {
        mp_int_t v = MP_OBJ_SMALL_INT_VALUE(r);
        if (v >= 400 && v <= 599) {
            return (int)v;
        }
        if ((v == 1 || v == 2 || v == 3) && (v & need) == need) {
            return 0;
        }
    }
    return 403;
}

static const char *uh_mime(const char *name, size_t n) {
    static const char *const table[][2] = {
        { "html", "text/html" }, { "htm", "text/html" }, { "css", "text/css" },
        { "js", "application/javascript" }, { "mjs", "application/javascript" },
        { "json", "application/json" }, { "map", "application/json" }, { "txt", "text/plain" },
        { "md", "text/markdown" }, { "csv", "text/csv" }, { "xml", "application/xml" },
        { "svg", "image/svg+xml" }, { "png", "image/png" }, { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" }, { "gif", "image/gif" }, { "ico", "image/x-icon" },
        { "webp", "image/webp" }, { "wasm", "application/wasm" }, { "pdf", "application/pdf" },
        { "zip", "application/zip" }, { "gz", "application/gzip" }, { "woff", "font/woff" },
        { "woff2", "font/woff2" }, { "mp3", "audio/mpeg" }, { "wav", "audio/wav" },
        { "mp4", "video/mp4" }, { "py", "text/x-python" }, { "bin", "application/octet-stream" },
    };
    size_t dot = n;
    while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/') {
        dot--;
    }
    if (dot == 0 || name[dot - 1] != '.') {
        return "application/octet-stream";
    }
    const char *ext = name + dot;
    size_t el = n - dot;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        size_t tl = strlen(table[i][0]);
        if (tl != el) {
            continue;
        }
        size_t k = 0;
        while (k < el && (ext[k] | 0x20) == table[i][0][k]) {
            k++;
        }
        if (k == el) {
            return table[i][1];
        }
    }
    return "application/octet-stream";
}

static int uh_span_contains(const uh_header_t *h, const char *needle) {
    if (h == NULL) {
        return 0;
    }
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= h->value.len; i++) {
        if (memcmp(h->value.ptr + i, needle, nl) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Range: bytes=a-b | a- | -n (one range).  Returns 1 satisfiable (sets
 * start/len), 0 no usable Range header (serve it all), -1 unsatisfiable. */
static int uh_parse_range(const uh_header_t *h, uint64_t size, uint64_t *start, uint64_t *len) {
    if (h == NULL || h->value.len < 7 || memcmp(h->value.ptr, "bytes=", 6) != 0) {
        return 0;
    }
    const char *p = h->value.ptr + 6, *e = h->value.ptr + h->value.len;
    for (const char *q = p; q < e; q++) {
        if (*q == ',') {
            return 0;   /* several ranges: the whole file is a valid answer */
        }
    }
    uint64_t a = 0, b = 0;
    int da = 0, db = 0;
    while (p < e && *p >= '0' && *p <= '9' && da < 19) {
        a = a * 10 + (uint64_t)(*p++ - '0');
        da++;
    }
    if (p >= e || *p != '-') {
        return 0;
    }
    p++;
    while (p < e && *p >= '0' && *p <= '9' && db < 19) {
        b = b * 10 + (uint64_t)(*p++ - '0');
        db++;
    }
    if (p != e || (!da && !db)) {
        return 0;
    }
    if (!da) {
        /* suffix: the last b bytes */
        if (b == 0 || size == 0) {
            return -1;
        }
        if (b > size) {
            b = size;
        }
        *start = size - b;
        *len = b;
        return 1;
    }
    if (a >= size) {
        return -1;
    }
    if (!db || b >= size) {
        b = size - 1;
    }
    if (b < a) {
        return 0;
    }
    *start = a;
    *len = b - a + 1;
    return 1;
}

static mp_obj_t uh_open(mp_obj_t path, const char *mode) {
    mp_obj_t args[2] = { path, mp_obj_new_str(mode, strlen(mode)) };
    return mp_vfs_open(2, args, (mp_map_t *)&mp_const_empty_map);
}

static void uh_file_close(mp_obj_t f) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_stream_close(f);
        nlr_pop();
    }
}

static void uh_remove_quiet(mp_obj_t path) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_vfs_remove(path);
        nlr_pop();
    }
}

/* ---- download -------------------------------------------------------------- */

static void uh_send_file(uh_state_t *st, uh_conn_t *c, mp_obj_t fspath, const char *name, size_t namelen,
    const uh_stat_t *stt, mp_obj_t gzpath, uint64_t gzsize) {
    char etag[48];
    char extra[256];
    uint64_t size = gzpath != MP_OBJ_NULL ? gzsize : stt->size;
    snprintf(etag, sizeof(etag), "\"%lx-%lx%s\"", (unsigned long)stt->size, (unsigned long)stt->mtime,
        gzpath != MP_OBJ_NULL ? "-gz" : "");
    const char *mime = uh_mime(name, namelen);

    const uh_header_t *inm = uh_find_header(c, "if-none-match", 13);
    if (inm != NULL && (uh_span_contains(inm, etag) || (inm->value.len == 1 && inm->value.ptr[0] == '*'))) {
        snprintf(extra, sizeof(extra), "ETag: %s\r\n", etag);
        uh_reply_simple(st, c, 304, extra, NULL);
        return;
    }

    uint64_t start = 0, len = size;
    int status = 200;
    size_t en = (size_t)snprintf(extra, sizeof(extra), "ETag: %s\r\nAccept-Ranges: bytes\r\n", etag);
    if (gzpath != MP_OBJ_NULL) {
        en += (size_t)snprintf(extra + en, sizeof(extra) - en, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    } else {
        int rr = uh_parse_range(uh_find_header(c, "range", 5), size, &start, &len);
        if (rr < 0) {
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%lu\r\n", (unsigned long)size);
            uh_reply_simple(st, c, 416, extra, NULL);
            return;
        }
        if (rr > 0) {
            status = 206;
            en += (size_t)snprintf(extra + en, sizeof(extra) - en, "Content-Range: bytes %lu-%lu/%lu\r\n",
                (unsigned long)start, (unsigned long)(start + len - 1), (unsigned long)size);
        }
    }
    mp_obj_t f = uh_open(gzpath != MP_OBJ_NULL ? gzpath : fspath, "rb");
    size_t hn = uh_build_head(st, c, status, NULL, 0, mime, strlen(mime), mp_const_none, st->cors, (int64_t)len, extra);
    c->resp = UH_RESP_WRITTEN;
    if (c->head_only || len == 0) {
        uh_file_close(f);
        uh_send_gil(st, c, c->tx, hn, 0);
        return;
    }
    if (start > 0) {
        struct mp_stream_seek_t seek = { .offset = (mp_off_t)start, .whence = 0 };
        int err;
        if (mp_get_stream(f)->ioctl(f, MP_STREAM_SEEK, (uintptr_t)&seek, &err) == MP_STREAM_ERROR) {
            uh_file_close(f);
            mp_raise_OSError(err);
        }
    }
    c->file_fd = -1;
    #if UH_HAVE_SENDFILE
    if (len > st->file_block && c->io.tls == NULL) {
        int err;
        mp_uint_t fd = mp_get_stream(f)->ioctl(f, MP_STREAM_GET_FILENO, 0, &err);
        if (fd != MP_STREAM_ERROR) {
            c->file_fd = (int)fd;
        }
    }
    #endif
    /* the head and the first block go out in one send when they fit */
    size_t n = 0;
    if (hn <= st->file_block) {
        memcpy(c->fbuf, c->tx, hn);
        n = hn;
    } else {
        uh_send_gil(st, c, c->tx, hn, 1);
    }
    if (c->file_fd < 0) {
        size_t want = st->file_block - n;
        if ((uint64_t)want > len) {
            want = (size_t)len;
        }
        int err;
        mp_uint_t r = mp_get_stream(f)->read(f, c->fbuf + n, want, &err);
        if (r == MP_STREAM_ERROR || r == 0) {
            uh_file_close(f);
            c->io_error = 1;
            mp_raise_OSError(r == 0 ? MP_EIO : err);
        }
        n += r;
        len -= r;
        start += r;
    }
    c->fpos = 0;
    c->fend = n;
    c->file_off = start;
    c->file_left = len;
    c->file = f;
    /* try to finish right here: small files never enter the loop */
    ssize_t w = 0;
    MP_THREAD_GIL_EXIT();
    while (c->fpos < c->fend) {
        w = uh_io_send(&c->io, c->fbuf + c->fpos, c->fend - c->fpos, len != 0);
        if (w <= 0) {
            break;
        }
        c->fpos += (size_t)w;
    }
    int gone = w < 0 && w != UH_IO_AGAIN;
    MP_THREAD_GIL_ENTER();
    if (gone) {
        c->file = MP_OBJ_NULL;
        c->file_fd = -1;
        uh_file_close(f);
        c->io_error = 1;
        c->keep_alive = 0;
        return;
    }
    if (c->fpos == c->fend && c->file_left == 0) {
        c->file = MP_OBJ_NULL;
        uh_file_close(f);
        return;
    }
    c->resp = UH_RESP_DEFERRED;
    c->next_state = UH_CS_FILE_TX;
}

/* GET/HEAD under a serve() prefix.  cfg: (prefix, base, dirs, ext, listing) */
void uh_files_serve(uh_state_t *st, uh_conn_t *c, mp_obj_t cfg) {
    size_t n;
    mp_obj_t *it;
    mp_obj_tuple_get(cfg, &n, &it);
    size_t plen, blen;
    mp_obj_str_get_data(it[0], &plen);
    const char *base = mp_obj_str_get_data(it[1], &blen);
    int dirs = mp_obj_is_true(it[2]);
    int ext = mp_obj_is_true(it[3]);
    if (c->path_len < plen || c->path[plen] != '/') {
        uh_reply_simple(st, c, 404, NULL, NULL);
        return;
    }
    /* the request path is decoded and normalised (no '.', '..', '//'), so
     * base + rel can never leave base */
    const char *rel = c->path + plen;
    size_t rlen = c->path_len - plen;
    int want_dir = rel[rlen - 1] == '/';

    for (int pass = ext ? 0 : 1; pass < 2; pass++) {
        vstr_t v;
        vstr_init(&v, blen + rlen + 16);
        if (pass == 0) {
            size_t el;
            const char *e = mp_obj_str_get_data(st->ext_path, &el);
            vstr_add_strn(&v, e, el);
        }
        vstr_add_strn(&v, base, blen);
        vstr_add_strn(&v, rel, rlen);
        if (v.len == 0) {
            vstr_add_byte(&v, '/');
        }
        mp_obj_t fs = mp_obj_new_str_from_vstr(&v);
        uh_stat_t stt;
        size_t fslen;
        const char *fsp = mp_obj_str_get_data(fs, &fslen);
        /* stat without the trailing '/' (VFS implementations differ) */
        mp_obj_t fs_stat = fs;
        if (fslen > 1 && fsp[fslen - 1] == '/') {
            fs_stat = mp_obj_new_str(fsp, fslen - 1);
        }
        if (uh_stat(fs_stat, &stt) != 0) {
            if (pass == 0) {
                continue;   /* not on external storage: try the plain path */
            }
            uh_reply_simple(st, c, 404, NULL, NULL);
            return;
        }
        if (want_dir) {
            if (!stt.is_dir) {
                uh_reply_simple(st, c, 404, NULL, NULL);
                return;
            }
            if (dirs) {
                int s = uh_acl(st, fs, 1);
                if (s) {
                    uh_reply_simple(st, c, s, NULL, NULL);
                    return;
                }
                mp_obj_t a[3] = { MP_OBJ_FROM_PTR(c->reqobj), fs,
                                  mp_obj_new_str(c->path, c->path_len) };
                mp_call_function_n_kw(it[4], 3, 0, a);
                return;
            }
            vstr_t iv;
            vstr_init(&iv, fslen + 11);
            vstr_add_strn(&iv, fsp, fslen);
            vstr_add_str(&iv, "index.html");
            mp_obj_t index = mp_obj_new_str_from_vstr(&iv);
            if (uh_stat(index, &stt) != 0 || stt.is_dir) {
                uh_reply_simple(st, c, 403, NULL, NULL);
                return;
            }
            fs = index;
            fsp = mp_obj_str_get_data(fs, &fslen);
        } else if (stt.is_dir) {
            /* a directory without the trailing slash: redirect */
            vstr_t loc;
            vstr_init(&loc, c->req.path.len + c->req.query.len + 24);
            vstr_add_str(&loc, "Location: ");
            vstr_add_strn(&loc, c->req.path.ptr, c->req.path.len);
            vstr_add_byte(&loc, '/');
            if (c->req.query.len) {
                vstr_add_byte(&loc, '?');
                vstr_add_strn(&loc, c->req.query.ptr, c->req.query.len);
            }
            vstr_add_str(&loc, "\r\n");
            uh_reply_simple(st, c, 301, vstr_null_terminated_str(&loc), NULL);
            return;
        }
        int s = uh_acl(st, fs, 1);
        if (s) {
            uh_reply_simple(st, c, s, NULL, NULL);
            return;
        }
        mp_obj_t gz = MP_OBJ_NULL;
        uh_stat_t gst;
        if (uh_span_contains(uh_find_header(c, "accept-encoding", 15), "gzip")
            && uh_find_header(c, "range", 5) == NULL) {
            vstr_t gv;
            vstr_init(&gv, fslen + 4);
            vstr_add_strn(&gv, fsp, fslen);
            vstr_add_str(&gv, ".gz");
            mp_obj_t g = mp_obj_new_str_from_vstr(&gv);
            if (uh_stat(g, &gst) == 0 && !gst.is_dir) {
                gz = g;
            }
        }
        uh_send_file(st, c, fs, fsp, fslen, &stt, gz, gz != MP_OBJ_NULL ? gst.size : 0);
        return;
    }
}

/* ---- upload ---------------------------------------------------------------- */

/* Write all of buf to the file; 0 or an errno. */
static int uh_write_all(mp_obj_t f, const char *buf, size_t n) {
    const mp_stream_p_t *s = mp_get_stream(f);
    while (n > 0) {
        int err = 0;
        mp_uint_t w = s->write(f, buf, n, &err);
        if (w == MP_STREAM_ERROR) {
            return err ? err : MP_EIO;
        }
        if (w == 0) {
            return MP_ENOSPC;
        }
        buf += w;
        n -= w;
    }
    return 0;
}

/* Make the temporary file the target (GIL held); 0 or an errno. */
static int uh_commit(mp_obj_t tmp, mp_obj_t dst) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_vfs_rename(tmp, dst);
        nlr_pop();
        return 0;
    }
    /* some filesystems (FAT) refuse to rename over an existing file */
    if (nlr_push(&nlr) == 0) {
        mp_vfs_remove(dst);
        mp_vfs_rename(tmp, dst);
        nlr_pop();
        return 0;
    }
    uh_remove_quiet(tmp);
    return MP_EIO;
}

static void uh_rx_cleanup(uh_conn_t *c) {
    if (c->file != MP_OBJ_NULL) {
        uh_file_close(c->file);
        c->file = MP_OBJ_NULL;
    }
    if (c->rx_tmp != MP_OBJ_NULL) {
        uh_remove_quiet(c->rx_tmp);
        c->rx_tmp = MP_OBJ_NULL;
    }
    c->rx_dst = MP_OBJ_NULL;
}

/* Request._recv_to(tmp, dst, created): stream the body into tmp, then
 * rename it to dst.  Returns True when done (the caller replies), False
 * when the loop finishes the upload and replies itself (201 if created
 * else 200).  Raises OSError (errno) when the file cannot be written; no
 * temporary file is left behind. */
static mp_obj_t uh_recv_to(size_t n_args, const mp_obj_t *args) {
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(args[0]);
    uh_state_t *st = ro->st;
    uh_conn_t *c = ro->conn;
    if (c == NULL || c->state != UH_CS_BUSY || c->resp != UH_RESP_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    mp_obj_t tmp = args[1], dst = args[2];
    uh_files_alloc(st);
    if (c->req.expect_continue && !c->continue_sent && !c->body_done && c->req.minor_version == 1) {
        c->continue_sent = 1;
        uh_send_gil(st, c, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0);
    }
    mp_obj_t f = uh_open(tmp, "wb");
    c->file = f;
    c->rx_tmp = tmp;
    c->rx_dst = dst;
    /* body bytes that came with the head */
    int err = 0;
    if (c->ravail) {
        err = uh_write_all(f, c->buf + c->rpos, c->ravail);
        if (c->body_kind == UH_BODY_LENGTH) {
            c->body_left -= c->ravail;
            if (c->body_left == 0) {
                c->body_done = 1;
            }
        }
        c->rpos += c->ravail;
        c->ravail = 0;
    }
    if (err) {
        uh_rx_cleanup(c);
        c->keep_alive = 0;
        mp_raise_OSError(err);
    }
    if (c->body_done || c->body_kind == UH_BODY_NONE) {
        uh_file_close(f);
        c->file = MP_OBJ_NULL;
        err = uh_commit(tmp, dst);
        c->rx_tmp = MP_OBJ_NULL;
        c->rx_dst = MP_OBJ_NULL;
        if (err) {
            mp_raise_OSError(err);
        }
        return mp_const_true;
    }
    c->rx_status = n_args > 3 && mp_obj_is_true(args[3]) ? 201 : 200;
    c->resp = UH_RESP_DEFERRED;
    c->next_state = UH_CS_FILE_RX;
    return mp_const_false;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_recv_to_obj, 3, 4, uh_recv_to);

/* ---- the loop side (no GIL on entry) -------------------------------------- */

void uh_stream_abort(uh_state_t *st, uh_conn_t *c, int status) {
    uh_conn_scratch(st, c);   /* a reply from the loop: this level's scratch */
    MP_THREAD_GIL_ENTER();
    int rx = c->state == UH_CS_FILE_RX;
    if (rx) {
        uh_rx_cleanup(c);
    } else if (c->file != MP_OBJ_NULL) {
        uh_file_close(c->file);
        c->file = MP_OBJ_NULL;
    }
    c->file_fd = -1;
    c->keep_alive = 0;
    if (rx && status && c->io.fd >= 0) {
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            uh_reply_simple(st, c, status, NULL, NULL);
            nlr_pop();
        }
    }
    MP_THREAD_GIL_EXIT();
    c->state = UH_CS_BUSY;
    if (rx && status && c->io.fd >= 0) {
        uh_conn_linger(st, c);
    } else {
        uh_conn_close(st, c);
    }
}

/* What a non-blocking sendfile() result means for the pump. */
enum { UH_IO_PROGRESS, UH_IO_RETRY, UH_IO_WAIT, UH_IO_FAIL };

static int uh_io_step(ssize_t w) {
    if (w > 0) {
        return UH_IO_PROGRESS;
    }
    if (w < 0 && errno == EINTR) {
        return UH_IO_RETRY;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return UH_IO_WAIT;
    }
    return UH_IO_FAIL;   /* an error, or 0 bytes (the peer or the file ended) */
}

static void uh_tx_pump(uh_state_t *st, uh_conn_t *c) {
    size_t budget = 16;   /* blocks per wake-up: keep other clients moving */
    while (budget--) {
        if (c->fpos < c->fend) {
            ssize_t w = uh_io_send(&c->io, c->fbuf + c->fpos, c->fend - c->fpos, c->file_left != 0);
            if (w > 0) {
                c->fpos += (size_t)w;
                uh_rate_progress(c, (size_t)w);
            } else if (w == UH_IO_AGAIN) {
                return;
            } else {
                uh_stream_abort(st, c, 0);
                return;
            }
            continue;
        }
        if (c->file_left == 0) {
            MP_THREAD_GIL_ENTER();
            uh_file_close(c->file);
            c->file = MP_OBJ_NULL;
            MP_THREAD_GIL_EXIT();
            c->file_fd = -1;
            c->resp = UH_RESP_WRITTEN;
            uh_conn_finish_reply(st, c);
            return;
        }
        #if UH_HAVE_SENDFILE
        if (c->file_fd >= 0) {
            off_t off = (off_t)c->file_off;
            size_t want = c->file_left > (1u << 20) ? (1u << 20) : (size_t)c->file_left;
            ssize_t w = sendfile(c->io.fd, c->file_fd, &off, want);
            int step = uh_io_step(w);
            if (step == UH_IO_PROGRESS) {
                c->file_off += (uint64_t)w;
                c->file_left -= (uint64_t)w;
                uh_rate_progress(c, (size_t)w);
            } else if (step == UH_IO_WAIT) {
                return;
            } else if (step == UH_IO_FAIL) {
                uh_stream_abort(st, c, 0);   /* error, or the file shrank */
                return;
            }
            continue;
        }
        #endif
        size_t want = st->file_block;
        if ((uint64_t)want > c->file_left) {
            want = (size_t)c->file_left;
        }
        int err = 0;
        mp_uint_t r;
        MP_THREAD_GIL_ENTER();
        r = mp_get_stream(c->file)->read(c->file, c->fbuf, want, &err);
        MP_THREAD_GIL_EXIT();
        if (r == MP_STREAM_ERROR || r == 0) {
            uh_stream_abort(st, c, 0);
            return;
        }
        c->fpos = 0;
        c->fend = r;
        c->file_left -= r;
    }
}

static void uh_rx_done(uh_state_t *st, uh_conn_t *c, const char *rest, size_t restlen) {
    uh_conn_scratch(st, c);   /* a reply from the loop: this level's scratch */
    MP_THREAD_GIL_ENTER();
    uh_file_close(c->file);
    c->file = MP_OBJ_NULL;
    int err = uh_commit(c->rx_tmp, c->rx_dst);
    c->rx_tmp = MP_OBJ_NULL;
    c->rx_dst = MP_OBJ_NULL;
    int status = err ? 500 : c->rx_status;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        uh_reply_simple(st, c, status, NULL, status == 201 ? "Created\n" : status == 200 ? "OK\n" : NULL);
        nlr_pop();
    } else {
        c->io_error = 1;
    }
    MP_THREAD_GIL_EXIT();
    c->state = UH_CS_BUSY;
    if (c->io_error) {
        uh_conn_close(st, c);
        return;
    }
    /* a pipelined request that arrived behind the body */
    if (restlen > 0 && restlen <= c->cap) {
        memmove(c->buf, rest, restlen);
        c->len = restlen;
    } else {
        if (restlen > 0) {
            c->keep_alive = 0;
        }
        c->len = 0;
    }
    c->head_len = 0;
    c->rpos = 0;
    c->ravail = 0;
    c->body_kind = UH_BODY_NONE;
    uh_conn_finish_reply(st, c);
}

static void uh_rx_pump(uh_state_t *st, uh_conn_t *c) {
    size_t budget = 16;
    while (budget--) {
        size_t want = st->file_block;
        if (c->body_kind == UH_BODY_LENGTH && (uint64_t)want > c->body_left) {
            want = (size_t)c->body_left;
        }
        ssize_t r = uh_io_recv(&c->io, c->fbuf, want);
        if (r == UH_IO_AGAIN) {
            return;
        }
        if (r <= 0) {
            uh_stream_abort(st, c, 0);   /* the client vanished: nothing kept */
            return;
        }
        uh_rate_progress(c, (size_t)r);
        size_t dn = (size_t)r;
        int done = 0;
        size_t rest = 0;
        if (c->body_kind == UH_BODY_CHUNKED) {
            int d = uh_decode_chunked(&c->chunk, c->fbuf, &dn);
            if (d < 0 && d != UH_PARTIAL) {
                uh_stream_abort(st, c, -d);
                return;
            }
            c->body_total += dn;
            if (c->body_total > st->max_body) {
                uh_stream_abort(st, c, 413);
                return;
            }
            if (d >= 0) {
                done = 1;
                rest = (size_t)d;
            }
        } else {
            c->body_left -= dn;
            done = c->body_left == 0;
        }
        if (dn > 0) {
            int err;
            MP_THREAD_GIL_ENTER();
            err = uh_write_all(c->file, c->fbuf, dn);
            MP_THREAD_GIL_EXIT();
            if (err) {
                uh_stream_abort(st, c, err == MP_ENOSPC ? 507 : 500);
                return;
            }
        }
        if (done) {
            c->body_done = 1;
            uh_rx_done(st, c, c->fbuf + dn, rest);
            return;
        }
    }
}

short uh_stream_events(uh_conn_t *c) {
    return uh_io_events(&c->io, c->state == UH_CS_FILE_TX ? POLLOUT : POLLIN);
}

void uh_stream_pump(uh_state_t *st, uh_conn_t *c, short revents) {
    if (revents & (POLLERR | POLLNVAL)) {
        uh_stream_abort(st, c, 0);
        return;
    }
    if (c->state == UH_CS_FILE_TX) {
        uh_tx_pump(st, c);
    } else {
        uh_rx_pump(st, c);
    }
}

/* Request._file_reply(status, extra_headers_str, body): a small reply
 * from the receiver's Python side with the connection's framing rules. */
static mp_obj_t uh_file_reply(size_t n_args, const mp_obj_t *args) {
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(args[0]);
    uh_conn_t *c = ro->conn;
    if (c == NULL || c->state != UH_CS_BUSY || c->resp != UH_RESP_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    const char *extra = n_args > 2 && args[2] != mp_const_none ? mp_obj_str_get_str(args[2]) : NULL;
    const char *body = n_args > 3 && args[3] != mp_const_none ? mp_obj_str_get_str(args[3]) : NULL;
    uh_reply_simple(ro->st, c, mp_obj_get_int(args[1]), extra, body);
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_file_reply_obj, 2, 4, uh_file_reply);
