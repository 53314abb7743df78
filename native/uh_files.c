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
#include "py/unicode.h"
#include "extmod/vfs.h"
#include "extmod/vfs_lfs.h"
#include "extmod/vfs_posix.h"

#include "uh_server.h"
#include "uh_form.h"

#if defined(__linux__)
#include <sys/sendfile.h>
#define UH_HAVE_SENDFILE (1)
#else
#define UH_HAVE_SENDFILE (0)
#endif

/* Symlinks exist only on VfsPosix, i.e. on unix hosts (ESP32's VFSs have
 * none); there realpath(3) resolves them. */
#if MICROPY_VFS_POSIX && !defined(ESP_PLATFORM)
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#define UH_HAVE_REALPATH (1)
#else
#define UH_HAVE_REALPATH (0)
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
    int is_special;   /* a FIFO, device or socket: never opened */
    uint64_t size;
    mp_int_t mtime;
} uh_stat_t;

/* The errno of a caught OSError (ENOENT when it has none); any other
 * exception goes on up. */
static int uh_oserror_errno(void *ret_val) {
    mp_obj_t exc = MP_OBJ_FROM_PTR(ret_val);
    if (!mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_OSError))) {
        nlr_jump(ret_val);
    }
    mp_obj_t args = mp_obj_exception_get_value(exc);
    return mp_obj_is_small_int(args) ? (int)MP_OBJ_SMALL_INT_VALUE(args) : MP_ENOENT;
}

/* 0 on success, else an errno (ENOENT...). */
static int uh_stat(mp_obj_t path, uh_stat_t *out) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t t = mp_vfs_stat(path);
        size_t n;
        mp_obj_t *it;
        mp_obj_tuple_get(t, &n, &it);
        mp_int_t mode = mp_obj_get_int(it[0]);
        mp_int_t fmt = mode & 0xf000;
        out->is_dir = (mode & MP_S_IFDIR) == MP_S_IFDIR;
        out->is_special = fmt == 0x1000 || fmt == 0x2000 || fmt == 0x6000 || fmt == 0xc000;
        out->size = (uint64_t)mp_obj_get_int_truncated(it[6]);
        out->mtime = mp_obj_get_int_truncated(it[8]);
        nlr_pop();
        return 0;
    } else {
        return uh_oserror_errno(nlr.ret_val);
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

void uh_remove_quiet(mp_obj_t path) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_vfs_remove(path);
        nlr_pop();
    }
}

/* ---- real names (design.md section 7) --------------------------------------
 *
 * A path is served or written only under the name stored on disk, so that
 * file_acl, which sees the request's spelling, decides about the file that
 * is really touched:
 * - On a VFS that resolves other spellings (FAT: any case, 8.3 names such
 *   as PRIVAT~1, trailing dots and spaces are dropped) every component must
 *   appear byte for byte in the listing of its parent; a component that
 *   does not exist yet must not end in '.' or ' ' (FAT would store another
 *   name).  Only the components below `base` (serve) or below the mount
 *   point (receiver) are walked: those are the ones a client chooses.
 * - VfsPosix and LittleFS store and look up exact names (Linux file systems
 *   are case-sensitive), so no listing is walked there: the VFS type of the
 *   mount decides.  A VfsPosix directory on a case-insensitive host file
 *   system (vfat, casefold) is not detected.
 * - Symlinks (VfsPosix on unix only): the real path (realpath(3)) of the
 *   path, or of its longest existing ancestor for a name still to be
 *   created, must lie inside the real path of `base`; with no base (the
 *   receiver) the path must contain no symlink at all below the mount's
 *   root, so a write or delete goes exactly where file_acl was told.  A
 *   dangling link is refused.  Checked before anything is opened; a link
 *   swapped in by a local process between check and use is not covered.
 */

enum { UH_NAMES_EXACT, UH_NAMES_WALK, UH_NAMES_POSIX };

static int uh_vfs_kind(mp_obj_t vfs) {
    const mp_obj_type_t *t = mp_obj_get_type(vfs);
    #if MICROPY_VFS_POSIX
    if (t == &mp_type_vfs_posix) {
        return UH_NAMES_POSIX;
    }
    #endif
    #if MICROPY_VFS_LFS1
    if (t == &mp_type_vfs_lfs1) {
        return UH_NAMES_EXACT;
    }
    #endif
    #if MICROPY_VFS_LFS2
    if (t == &mp_type_vfs_lfs2) {
        return UH_NAMES_EXACT;
    }
    #endif
    (void)t;
    return UH_NAMES_WALK;   /* FAT, and any VFS written in Python */
}

/* vfs.<meth>(path[0:n]) with the GIL held; MP_OBJ_NULL on OSError. */
static mp_obj_t uh_vfs_call(mp_obj_t vfs, qstr meth, const char *path, size_t n) {
    mp_obj_t m[3];
    mp_load_method(vfs, meth, m);
    m[2] = n ? mp_obj_new_str(path, n) : MP_OBJ_NEW_QSTR(MP_QSTR__slash_);
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t r = mp_call_method_n_kw(1, 0, m);
        nlr_pop();
        return r;
    }
    uh_oserror_errno(nlr.ret_val);
    return MP_OBJ_NULL;
}

/* Does the directory path[0:dn] list an entry named exactly name[0:nn]? */
static int uh_dir_has(mp_obj_t vfs, const char *path, size_t dn, const char *name, size_t nn) {
    mp_obj_t it = uh_vfs_call(vfs, MP_QSTR_ilistdir, path, dn);
    if (it == MP_OBJ_NULL) {
        return 0;
    }
    int found = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_iter_buf_t ib;
        mp_obj_t iter = mp_getiter(it, &ib), e;
        /* read to the end: an iterator left open may hold the directory */
        while ((e = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION) {
            size_t en, ln;
            mp_obj_t *items;
            mp_obj_get_array(e, &en, &items);
            if (en > 0 && mp_obj_is_str_or_bytes(items[0])) {
                const char *s = mp_obj_str_get_data(items[0], &ln);
                found |= ln == nn && memcmp(s, name, nn) == 0;
            }
        }
        nlr_pop();
    } else {
        uh_oserror_errno(nlr.ret_val);
    }
    return found;
}

/* The walk for spelling-resolving VFSs over the in-mount path p[0:n]
 * (starts with '/'), components from offset `from` on. */
static int uh_names_walk(mp_obj_t vfs, const char *p, size_t n, size_t from) {
    int exists = 1;
    size_t i = from;
    while (i < n) {
        while (i < n && p[i] == '/') {
            i++;
        }
        size_t s = i;
        while (i < n && p[i] != '/') {
            i++;
        }
        if (i == s) {
            break;
        }
        if (p[i - 1] == '.' || p[i - 1] == ' ') {
            return 0;   /* an alias of the name without them, or not storable */
        }
        if (exists && !uh_dir_has(vfs, p, s > 1 ? s - 1 : 0, p + s, i - s)) {
            if (uh_vfs_call(vfs, MP_QSTR_stat, p, i) != MP_OBJ_NULL) {
                return 0;   /* there under another spelling */
            }
            exists = 0;     /* a new name: the rest is created as spelled */
        }
    }
    return 1;
}

#if UH_HAVE_REALPATH
/* MicroPython 1.25 keeps a VfsPosix's host root in a private struct
 * (mp_obj_vfs_posix_t in extmod/vfs_posix.c) and no API returns it; this
 * mirror must match it field for field, hence the version check.  root
 * holds "<root>/" in its first root_len bytes (root_len 0: no root). */
#if MICROPY_VERSION_MAJOR != 1 || MICROPY_VERSION_MINOR != 25
#error "uhttpd: check uh_vfs_posix_mirror_t against mp_obj_vfs_posix_t in extmod/vfs_posix.c"
#endif
typedef struct {
    mp_obj_base_t base;
    vstr_t root;
    size_t root_len;
    bool readonly;
} uh_vfs_posix_mirror_t;

/* realpath(3) of h[0:n] (h is scratch: it gets NUL bytes), or of its
 * longest existing ancestor.  NULL: refuse (a dangling link, a loop, an
 * error).  The result is malloc'ed. */
static char *uh_realpath_prefix(char *h, size_t n) {
    for (;;) {
        h[n] = 0;
        char *r = realpath(h, NULL);
        if (r != NULL) {
            return r;
        }
        struct stat sb;
        if ((errno != ENOENT && errno != ENOTDIR) || lstat(h, &sb) == 0 || n <= 1) {
            return NULL;
        }
        while (n > 1 && h[n - 1] != '/') {
            n--;
        }
        if (n > 1) {
            n--;
        }
    }
}

static int uh_path_inside(const char *r, const char *top) {
    size_t tl = strlen(top);
    if (tl == 1) {
        return 1;   /* "/" */
    }
    return strncmp(r, top, tl) == 0 && (r[tl] == 0 || r[tl] == '/');
}

/* lstat(2) each component of the host path h[0:n] after offset `from`
 * (h[n] must exist).  0: none is a symlink (up to the first that does not
 * exist: the rest is created as named), 1: a symlink, -1: an error. */
static int uh_links_below(char *h, size_t n, size_t from) {
    size_t i = from;
    while (i < n) {
        while (i < n && h[i] == '/') {
            i++;
        }
        while (i < n && h[i] != '/') {
            i++;
        }
        char ch = h[i];
        h[i] = 0;
        struct stat sb;
        int r = lstat(h, &sb);
        h[i] = ch;
        if (r != 0) {
            return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
        }
        if (S_ISLNK(sb.st_mode)) {
            return 1;
        }
    }
    return 0;
}

/* The symlink rule for the VfsPosix vfs; q[0:n]: the in-mount path, bq[0:bn]
 * the in-mount path of base (NULL: the receiver's rule).  The common case
 * costs one lstat per component below base (or below the mount's root for
 * the receiver); realpath(3) only runs when a symlink is met under base. */
static int uh_links_ok(mp_obj_t vfs, const char *q, size_t n, const char *bq, size_t bn) {
    uh_vfs_posix_mirror_t *m = MP_OBJ_TO_PTR(vfs);
    size_t rl = m->root_len ? m->root_len - 1 : 0;
    vstr_t h;
    vstr_init(&h, rl + n + bn + 2);
    vstr_add_strn(&h, m->root.buf, rl);
    size_t hr = h.len;
    vstr_add_strn(&h, q, n);
    size_t hn = h.len;
    vstr_add_byte(&h, 0);
    int ok;
    if (bq == NULL) {
        ok = uh_links_below(h.buf, hn, hr) == 0;   /* the receiver: no link at all */
    } else {
        int under = bn <= n && memcmp(q, bq, bn) == 0 && (bn == n || q[bn] == '/');
        size_t from = under ? hr + bn : hr;
        int l = uh_links_below(h.buf, hn, from);
        ok = l == 0;
        if (l == 1) {
            /* a link under base: where does it lead? */
            vstr_t t;
            vstr_init(&t, rl + bn + 2);
            vstr_add_strn(&t, m->root.buf, rl);
            vstr_add_strn(&t, bq, bn);
            if (t.len == 0) {
                vstr_add_byte(&t, '/');
            }
            char *top = realpath(vstr_null_terminated_str(&t), NULL);
            char *r = top != NULL ? uh_realpath_prefix(h.buf, hn) : NULL;
            ok = r != NULL && uh_path_inside(r, top);
            free(r);
            free(top);
            vstr_clear(&t);
        }
    }
    vstr_clear(&h);
    return ok;
}
#endif

/* 1 when the VFS path may be used under that name (the rules above);
 * base: a VFS path (serve: symlinks must stay inside it) or MP_OBJ_NULL
 * (the receiver: no symlinks, names checked from the mount point on). */
static int uh_real_ok(mp_obj_t path, mp_obj_t base) {
    size_t n;
    const char *p = mp_obj_str_get_data(path, &n);
    if (n == 0 || p[0] != '/') {
        return 0;
    }
    const char *q;
    mp_vfs_mount_t *vfs = mp_vfs_lookup_path(mp_obj_str_get_str(path), &q);
    if (vfs == MP_VFS_NONE || vfs == MP_VFS_ROOT || q < p || q > p + n) {
        return 1;   /* nothing mounted there, or a mount point itself */
    }
    size_t qn = n - (size_t)(q - p);
    while (qn > 1 && q[qn - 1] == '/') {
        qn--;
    }
    /* base on the same mount: the in-mount part of base is not walked */
    const char *bq = NULL;
    size_t bn = 0;
    if (base != MP_OBJ_NULL) {
        size_t bl;
        const char *b = mp_obj_str_get_data(base, &bl);
        const char *bo = "";
        mp_vfs_mount_t *bv = bl ? mp_vfs_lookup_path(mp_obj_str_get_str(base), &bo) : MP_VFS_ROOT;
        if (bv == vfs && bo >= b && bo <= b + bl) {
            bq = bo;
            bn = bl - (size_t)(bo - b);
            while (bn > 0 && bq[bn - 1] == '/') {
                bn--;
            }
        } else {
            bq = "";    /* base is the mount point or above it */
        }
    }
    switch (uh_vfs_kind(vfs->obj)) {
        case UH_NAMES_WALK:
            return uh_names_walk(vfs->obj, q, qn, bq == NULL ? 0 : bn <= qn ? bn : qn);
        #if UH_HAVE_REALPATH
        case UH_NAMES_POSIX:
            return uh_links_ok(vfs->obj, q, qn, bq, bn);
        #endif
        default:
            return 1;
    }
}

/* _uhttpd.realname(path, base=None) -> bool: may `path` be used under that
 * name (uh_real_ok); the receiver's Python side and listings call it. */
static mp_obj_t uh_realname(size_t n_args, const mp_obj_t *args) {
    mp_obj_t base = n_args > 1 && args[1] != mp_const_none ? args[1] : MP_OBJ_NULL;
    return mp_obj_new_bool(uh_real_ok(args[0], base));
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_realname_obj, 1, 2, uh_realname);

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

static void uh_add_encoded(vstr_t *v, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
            || (ch != 0 && strchr("/-._~!$&'()*+,;=:@", ch) != NULL)) {
            vstr_add_byte(v, (byte)ch);
        } else {
            vstr_add_byte(v, '%');
            vstr_add_byte(v, (byte)hex[ch >> 4]);
            vstr_add_byte(v, (byte)hex[ch & 15]);
        }
    }
}

/* 301 to the slashed url of a directory.  Location is the normalised,
 * decoded request path, percent-encoded: it starts with a single '/' (the
 * normaliser leaves no '//' and no '\\') and stays on this server; the
 * query goes along as it came (the parser admits only visible ASCII there).
 * A Location too long for the response head is relative ("./<last>/"),
 * which the client resolves against its own url, on this server too. */
static void uh_redirect_dir(uh_state_t *st, uh_conn_t *c) {
    const size_t room = UH_TX_BUF / 2;
    vstr_t loc;
    vstr_init(&loc, 3 * c->path_len + c->req.query.len + 24);
    vstr_add_str(&loc, "Location: ");
    uh_add_encoded(&loc, c->path, c->path_len);
    size_t tail = 3 + (c->req.query.len ? c->req.query.len + 1 : 0);   /* "/?query\r\n" */
    if (loc.len + tail > room) {
        size_t last = c->path_len;
        while (last > 0 && c->path[last - 1] != '/') {
            last--;
        }
        loc.len = 10;
        vstr_add_str(&loc, "./");
        uh_add_encoded(&loc, c->path + last, c->path_len - last);
    }
    vstr_add_byte(&loc, '/');
    if (c->req.query.len && loc.len + tail - 1 <= room) {
        vstr_add_byte(&loc, '?');
        vstr_add_strn(&loc, c->req.query.ptr, c->req.query.len);
    }
    vstr_add_str(&loc, "\r\n");
    if (loc.len > room) {
        vstr_clear(&loc);
        uh_reply_simple(st, c, 414, NULL, NULL);
        return;
    }
    uh_reply_simple(st, c, 301, vstr_null_terminated_str(&loc), NULL);
    vstr_clear(&loc);
}

static mp_obj_t uh_str_concat(const char *a, size_t an, const char *b, size_t bn) {
    vstr_t v;
    vstr_init(&v, an + bn + 1);
    vstr_add_strn(&v, a, an);
    vstr_add_strn(&v, b, bn);
    return mp_obj_new_str_from_vstr(&v);
}

/* A file next to fs (index.html, name.gz) that may be sent: it exists, is
 * a regular file and passes the real-name rules. */
static int uh_usable_file(mp_obj_t path, mp_obj_t base, uh_stat_t *out) {
    return uh_stat(path, out) == 0 && !out->is_dir && !out->is_special && uh_real_ok(path, base);
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
     * base + rel can never leave base by name; uh_real_ok keeps symlinks
     * and spellings the VFS resolves from doing so */
    const char *rel = c->path + plen;
    size_t rlen = c->path_len - plen;
    int want_dir = rel[rlen - 1] == '/';

    for (int pass = ext ? 0 : 1; pass < 2; pass++) {
        mp_obj_t root = it[1];
        if (pass == 0) {
            size_t el;
            const char *e = mp_obj_str_get_data(st->ext_path, &el);
            root = uh_str_concat(e, el, base, blen);
        }
        size_t rootlen;
        const char *rootp = mp_obj_str_get_data(root, &rootlen);
        mp_obj_t fs = uh_str_concat(rootp, rootlen, rel, rlen);
        uh_stat_t stt;
        size_t fslen;
        const char *fsp = mp_obj_str_get_data(fs, &fslen);
        /* stat without the trailing '/' (VFS implementations differ) */
        mp_obj_t fs_stat = fs;
        if (fslen > 1 && fsp[fslen - 1] == '/') {
            fs_stat = mp_obj_new_str(fsp, fslen - 1);
        }
        if (uh_stat(fs_stat, &stt) != 0 || stt.is_special || !uh_real_ok(fs_stat, root)) {
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
                mp_obj_t a[5] = { MP_OBJ_FROM_PTR(c->reqobj), fs,
                                  mp_obj_new_str(c->path, c->path_len), root,
                                  st->file_acl == MP_OBJ_NULL ? mp_const_none : st->file_acl };
                mp_call_function_n_kw(it[4], 5, 0, a);
                return;
            }
            mp_obj_t index = uh_str_concat(fsp, fslen, "index.html", 10);
            if (!uh_usable_file(index, root, &stt)) {
                uh_reply_simple(st, c, 403, NULL, NULL);
                return;
            }
            fs = index;
            fsp = mp_obj_str_get_data(fs, &fslen);
        } else if (stt.is_dir) {
            /* a directory without the trailing slash: redirect, if it may be read */
            int s = uh_acl(st, uh_str_concat(fsp, fslen, "/", 1), 1);
            if (s) {
                uh_reply_simple(st, c, s, NULL, NULL);
                return;
            }
            uh_redirect_dir(st, c);
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
            mp_obj_t g = uh_str_concat(fsp, fslen, ".gz", 3);
            if (uh_usable_file(g, root, &gst)) {
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

/* mp_vfs_rename(a, b) (GIL held); 0 or an errno. */
static int uh_rename(mp_obj_t a, mp_obj_t b) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_vfs_rename(a, b);
        nlr_pop();
        return 0;
    }
    return uh_oserror_errno(nlr.ret_val);
}

/* Make the temporary file the target (GIL held); 0 or an errno.  The rename
 * replaces the target in one step where the VFS can (VfsPosix, LittleFS,
 * and MicroPython's VfsFat, which removes and renames itself).  A VFS that
 * refuses to rename over an existing file (EEXIST) gets remove-then-rename,
 * only while our temporary file exists and the target is a file: never
 * remove a target for a rename that could not work anyway. */
int uh_commit(mp_obj_t tmp, mp_obj_t dst) {
    int err = uh_rename(tmp, dst);
    uh_stat_t ts, ds;
    if (err == MP_EEXIST && uh_stat(tmp, &ts) == 0 && !ts.is_dir && uh_stat(dst, &ds) == 0 && !ds.is_dir) {
        uh_remove_quiet(dst);
        err = uh_rename(tmp, dst);
    }
    if (err) {
        uh_remove_quiet(tmp);
    }
    return err;
}

/* The temporary file of an upload to dst: beside it (same directory, so the
 * rename stays on one file system) and unique among uploads in flight,
 * <dst>.<slot>-<n>.uhtmp with the connection's slot and a counter, so
 * concurrent uploads of one path never share (or remove) a temporary. */
static mp_obj_t uh_tmp_name(uh_state_t *st, uh_conn_t *c, mp_obj_t dst) {
    static uint32_t counter;
    size_t dn;
    const char *d = mp_obj_str_get_data(dst, &dn);
    char suffix[40];
    int sn = snprintf(suffix, sizeof(suffix), ".%u-%lx.uhtmp", (unsigned)(c - st->conns),
        (unsigned long)++counter);
    return uh_str_concat(d, dn, suffix, (size_t)sn);
}

static void uh_mprx_cleanup(uh_conn_t *c);

static void uh_rx_cleanup(uh_conn_t *c) {
    uh_mprx_cleanup(c);
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

/* Request._recv_to(dst, created): stream the body into a temporary file
 * of its own (uh_tmp_name), then rename it to dst.  Returns True when done
 * (the caller replies), False when the loop finishes the upload and
 * replies itself (201 if created else 200).  Raises OSError (errno) when
 * the file cannot be written; no temporary file is left behind. */
static mp_obj_t uh_recv_to(size_t n_args, const mp_obj_t *args) {
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(args[0]);
    uh_state_t *st = ro->st;
    uh_conn_t *c = ro->conn;
    if (c == NULL || c->state != UH_CS_BUSY || c->resp != UH_RESP_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    /* the earlier form _recv_to(tmp, dst, created) is still accepted (tmp
     * is ignored) so that callers written against it keep working */
    int old_form = n_args == 4 || (n_args == 3 && mp_obj_is_str(args[2]));
    mp_obj_t dst = args[old_form ? 2 : 1];
    mp_obj_t created = n_args > (size_t)(old_form ? 3 : 2) ? args[old_form ? 3 : 2] : mp_const_false;
    mp_obj_t tmp = uh_tmp_name(st, c, dst);
    uh_files_alloc(st);
    uh_mprx_cleanup(c);   /* (never a multipart upload on the go here; the pump must not think so) */
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
    c->rx_status = mp_obj_is_true(created) ? 201 : 200;
    c->resp = UH_RESP_DEFERRED;
    c->next_state = UH_CS_FILE_RX;
    return mp_const_false;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_recv_to_obj, 2, 4, uh_recv_to);

/* ---- multipart upload into a directory (design.md section 11) -------------
 *
 * A POST (or PUT) of a multipart/form-data body to a directory url: every
 * file part goes to <dir><its filename>, through a temporary file of its
 * own as any upload; text fields are skipped.  When a file part's headers
 * are complete, before anything is written, the Python side (_mp_target
 * in frozen/uhttpd.py: the name rules, the real name, file_acl, parent
 * directories) says where it goes or which status to answer.  A complete
 * part waits as its temporary; once the body ended after the closing
 * delimiter, the temporaries are renamed over their targets in part order
 * and the reply is 201 with the JSON list of the stored paths.  A body cut
 * off or malformed anywhere, a refused part, a full disk: that status, no
 * file stored and no temporary left; every target stays as it was.
 *
 * The body streams through the loop like a raw upload (state FILE_RX,
 * uh_rx_pump; min_rate applies), parsed without the GIL; the GIL is taken
 * for the VFS (open, write, close, rename) and the target callback only.
 * State: the connection's uh_form_t (parser, header buffer, the list of
 * complete parts), c->file / c->rx_tmp / c->rx_dst for the part being
 * written.  At most UH_MAX_UPLOAD_FILES file parts (413 beyond).
 */

static int uh_errno_status(int err) {
    switch (err) {
        case MP_ENOSPC:
            return 507;
        case MP_EACCES:
        case MP_EPERM:
        case MP_EROFS:
            return 403;
        case MP_ENOENT:
            return 404;
        case MP_EEXIST:
        case MP_EISDIR:
        case MP_ENOTDIR:
            return 409;
        default:
            return 500;
    }
}

/* The status for an exception caught in the upload (GIL held): an OSError
 * by its errno; anything else is printed (a bug in a callback) and 500. */
static int uh_exc_status(void *ret_val) {
    mp_obj_t exc = MP_OBJ_FROM_PTR(ret_val);
    if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_OSError))) {
        mp_obj_t a = mp_obj_exception_get_value(exc);
        return mp_obj_is_small_int(a) ? uh_errno_status((int)MP_OBJ_SMALL_INT_VALUE(a)) : 500;
    }
    mp_printf(MICROPY_ERROR_PRINTER, "uhttpd: exception in a multipart upload\n");
    mp_obj_print_exception(MICROPY_ERROR_PRINTER, exc);
    return 500;
}

/* Forget the multipart upload of c and remove its complete parts'
 * temporaries (GIL held).  The part being written: uh_rx_cleanup. */
static void uh_mprx_cleanup(uh_conn_t *c) {
    uh_form_t *fm = c->form;
    if (fm == NULL || !fm->rx) {
        return;
    }
    if (fm->done != MP_OBJ_NULL) {
        size_t n;
        mp_obj_t *items;
        mp_obj_list_get(fm->done, &n, &items);
        for (size_t i = 0; i + 1 < n; i += 2) {
            if (items[i] != mp_const_none) {
                uh_remove_quiet(items[i]);
                items[i] = mp_const_none;
            }
        }
    }
    fm->rx = 0;
    fm->done = MP_OBJ_NULL;
    fm->dir = MP_OBJ_NULL;
    fm->target = MP_OBJ_NULL;
    fm->cfg = MP_OBJ_NULL;
}

/* A part's headers are complete (no GIL).  0 or a status. */
static int uh_mprx_begin(uh_state_t *st, uh_conn_t *c, const uh_mp_event_t *ev) {
    uh_form_t *fm = c->form;
    fm->skip = 1;
    fm->empty = 0;
    if (!ev->has_filename) {
        return 0;                   /* a text field: not stored */
    }
    if (ev->filename.len == 0) {
        fm->empty = 1;              /* a file input left empty (filename=""): skipped if it is */
        return 0;
    }
    if (fm->nfiles >= UH_MAX_UPLOAD_FILES) {
        return 413;
    }
    if (!utf8_check((const byte *)ev->filename.ptr, ev->filename.len)) {
        return 400;
    }
    int status = 0;
    MP_THREAD_GIL_ENTER();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t a[3] = { fm->cfg, fm->dir, mp_obj_new_str(ev->filename.ptr, ev->filename.len) };
        mp_obj_t dst = mp_call_function_n_kw(fm->target, 3, 0, a);
        if (mp_obj_is_small_int(dst)) {
            mp_int_t v = MP_OBJ_SMALL_INT_VALUE(dst);
            status = v >= 400 && v <= 599 ? (int)v : 500;
        } else {
            mp_obj_str_get_str(dst);    /* a str, or TypeError (500) */
            mp_obj_t tmp = uh_tmp_name(st, c, dst);
            c->file = uh_open(tmp, "wb");
            c->rx_tmp = tmp;
            c->rx_dst = dst;
            fm->nfiles++;
            fm->skip = 0;
        }
        nlr_pop();
    } else {
        status = uh_exc_status(nlr.ret_val);
    }
    MP_THREAD_GIL_EXIT();
    return status;
}

/* Part data (no GIL).  0 or a status. */
static int uh_mprx_data(uh_conn_t *c, const char *p, size_t n) {
    uh_form_t *fm = c->form;
    if (fm->skip) {
        return fm->empty && n > 0 ? 400 : 0;   /* data with filename="": no name to store it under */
    }
    int err;
    MP_THREAD_GIL_ENTER();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        err = uh_write_all(c->file, p, n);
        nlr_pop();
    } else {
        err = -uh_exc_status(nlr.ret_val);
    }
    MP_THREAD_GIL_EXIT();
    if (err < 0) {
        return -err;
    }
    return err ? (err == MP_ENOSPC ? 507 : 500) : 0;
}

/* A part's data is complete (no GIL): close its file (a close that
 * fails, e.g. a flush onto a full disk, fails the upload) and keep it for
 * the rename.  0 or a status. */
static int uh_mprx_end(uh_conn_t *c) {
    uh_form_t *fm = c->form;
    int was_file = !fm->skip;
    fm->skip = 1;
    fm->empty = 0;
    if (!was_file) {
        return 0;
    }
    int status = 0;
    MP_THREAD_GIL_ENTER();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t f = c->file;
        c->file = MP_OBJ_NULL;
        mp_stream_close(f);
        mp_obj_list_append(fm->done, c->rx_tmp);
        mp_obj_list_append(fm->done, c->rx_dst);
        c->rx_tmp = MP_OBJ_NULL;   /* the list owns it now */
        c->rx_dst = MP_OBJ_NULL;
        nlr_pop();
    } else {
        status = uh_exc_status(nlr.ret_val);
    }
    MP_THREAD_GIL_EXIT();
    return status;
}

/* Body bytes p[0:n) of a multipart upload (no GIL).  0 or a status. */
static int uh_mprx_feed(uh_state_t *st, uh_conn_t *c, const char *p, size_t n) {
    uh_form_t *fm = c->form;
    size_t pos = 0;
    while (!fm->mp_done) {
        size_t used;
        uh_mp_event_t ev;
        int r = uh_mp_feed(&fm->mp, p + pos, n - pos, &used, &ev);
        pos += used;
        int s;
        switch (r) {
            case UH_MP_NEED_MORE:
                return 0;
            case UH_MP_DONE:
                fm->mp_done = 1;   /* the rest of the body is epilogue */
                s = 0;
                break;
            case UH_MP_PART_BEGIN:
                s = uh_mprx_begin(st, c, &ev);
                break;
            case UH_MP_DATA:
                s = uh_mprx_data(c, ev.data.ptr, ev.data.len);
                break;
            case UH_MP_PART_END:
                s = uh_mprx_end(c);
                break;
            default:
                s = 400;
                break;
        }
        if (s) {
            return s;
        }
    }
    return 0;
}

static void uh_json_str(vstr_t *v, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    vstr_add_byte(v, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            vstr_add_byte(v, '\\');
            vstr_add_byte(v, ch);
        } else if (ch < 0x20) {
            vstr_add_str(v, "\\u00");
            vstr_add_byte(v, (byte)hex[ch >> 4]);
            vstr_add_byte(v, (byte)hex[ch & 15]);
        } else {
            vstr_add_byte(v, ch);
        }
    }
    vstr_add_byte(v, '"');
}

/* The body is complete (GIL held): rename every stored part into place in
 * order and reply 201 with their paths.  Returns 0 (replied), or the status
 * to answer (the upload state is then still to be cleaned up).  A rename
 * that fails (rare: the checks ran at the part's start) fails the reply;
 * the parts renamed before it stay. */
static int uh_mprx_commit(uh_state_t *st, uh_conn_t *c) {
    uh_form_t *fm = c->form;
    if (!fm->mp_done) {
        return 400;                 /* the body ended before the closing delimiter */
    }
    size_t n;
    mp_obj_t *items;
    mp_obj_list_get(fm->done, &n, &items);
    vstr_t js;
    vstr_init(&js, 16 + n * 32);
    vstr_add_byte(&js, '[');
    int status = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        mp_obj_t tmp = items[i];
        items[i] = mp_const_none;
        if (status) {
            uh_remove_quiet(tmp);
            continue;
        }
        int err = uh_commit(tmp, items[i + 1]);   /* removes tmp when it fails */
        if (err) {
            status = uh_errno_status(err);
            continue;
        }
        size_t dl;
        const char *d = mp_obj_str_get_data(items[i + 1], &dl);
        if (js.len > 1) {
            vstr_add_str(&js, ", ");
        }
        uh_json_str(&js, d, dl);
    }
    vstr_add_byte(&js, ']');
    uh_mprx_cleanup(c);
    if (status) {
        vstr_clear(&js);
        return status;
    }
    size_t hn = uh_build_head(st, c, 201, NULL, 0, "application/json", 16, mp_const_none, st->cors,
        (int64_t)js.len, NULL);
    c->resp = UH_RESP_WRITTEN;
    uh_send_gil(st, c, c->tx, hn, 1);
    uh_send_gil(st, c, js.buf, js.len, 0);
    vstr_clear(&js);
    return 0;
}

/* Request._recv_mp(dir, target, cfg): the multipart upload of this
 * request into the directory dir (ends with '/'); target(cfg, dir,
 * filename) -> path or status is asked for every file part.  Replies
 * itself: at once when the body is already in, else the loop finishes the
 * upload (state FILE_RX) and replies. */
static mp_obj_t uh_recv_mp(size_t n_args, const mp_obj_t *args) {
    uhttpd_request_obj_t *ro = MP_OBJ_TO_PTR(args[0]);
    uh_state_t *st = ro->st;
    uh_conn_t *c = ro->conn;
    if (c == NULL || c->state != UH_CS_BUSY || c->resp != UH_RESP_NONE) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("request is over"));
    }
    mp_obj_str_get_str(args[1]);
    uh_files_alloc(st);
    uh_form_t *fm = uh_form_state(st, c);
    uh_span_t ct = uh_form_ctype(c);
    fm->serial = 0;
    if (uh_mp_init(&fm->mp, ct.ptr, ct.len, fm->hbuf, UH_PART_HEADER) < 0) {
        c->keep_alive = 0;
        uh_reply_simple(st, c, 400, NULL, "bad multipart/form-data Content-Type\n");
        return mp_const_none;
    }
    fm->done = mp_obj_new_list(0, NULL);
    fm->dir = args[1];
    fm->target = args[2];
    fm->cfg = n_args > 3 ? args[3] : mp_const_none;
    fm->nfiles = 0;
    fm->mp_done = 0;
    fm->skip = 1;
    fm->empty = 0;
    fm->rx = 1;
    int status = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        uh_send_continue(st, c);
        if (c->ravail) {
            /* body bytes that came with the head */
            const char *p = c->buf + c->rpos;
            size_t n = c->ravail;
            uh_body_consume(c, n);
            MP_THREAD_GIL_EXIT();
            status = uh_mprx_feed(st, c, p, n);
            MP_THREAD_GIL_ENTER();
        }
        if (!status && (c->body_done || c->body_kind == UH_BODY_NONE)) {
            status = uh_mprx_commit(st, c);   /* replies 201 */
        }
        nlr_pop();
    } else {
        uh_rx_cleanup(c);
        nlr_jump(nlr.ret_val);
    }
    if (status) {
        uh_rx_cleanup(c);
        c->keep_alive = 0;
        uh_reply_simple(st, c, status, NULL, NULL);
    } else if (c->resp == UH_RESP_NONE) {
        c->resp = UH_RESP_DEFERRED;
        c->next_state = UH_CS_FILE_RX;
    }
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(uh_recv_mp_obj, 3, 4, uh_recv_mp);

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

#if UH_HAVE_SENDFILE
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
#endif

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

static void uh_rx_finish(uh_state_t *st, uh_conn_t *c, const char *rest, size_t restlen);

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
    uh_rx_finish(st, c, rest, restlen);
}

/* The body of a multipart upload is complete (no GIL): rename and reply,
 * or answer the error. */
static void uh_mprx_done(uh_state_t *st, uh_conn_t *c, const char *rest, size_t restlen) {
    uh_conn_scratch(st, c);
    MP_THREAD_GIL_ENTER();
    int status;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        status = uh_mprx_commit(st, c);
        nlr_pop();
    } else {
        /* the reply could not be sent, or a bug: nothing is left behind */
        status = c->io_error ? 0 : uh_exc_status(nlr.ret_val);
        uh_rx_cleanup(c);
    }
    MP_THREAD_GIL_EXIT();
    if (status) {
        uh_stream_abort(st, c, status);
        return;
    }
    uh_rx_finish(st, c, rest, restlen);
}

/* After the reply to an upload (no GIL): the next request, or close. */
static void uh_rx_finish(uh_state_t *st, uh_conn_t *c, const char *rest, size_t restlen) {
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
        int multipart = c->form != NULL && c->form->rx;
        if (dn > 0 && multipart) {
            int s = uh_mprx_feed(st, c, c->fbuf, dn);
            if (s) {
                uh_stream_abort(st, c, s);
                return;
            }
        } else if (dn > 0) {
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
            if (multipart) {
                uh_mprx_done(st, c, c->fbuf + dn, rest);
            } else {
                uh_rx_done(st, c, c->fbuf + dn, rest);
            }
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
