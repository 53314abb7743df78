/*
 * uhttpd: the WebSocket REPL (WebREPL-compatible), a connection kind.
 *
 * A GET that asks for the upgrade on the ws() url is answered here with
 * "101 Switching Protocols" (RFC 6455 4.2.2; the accept key comes from
 * uh_ws_accept in uh_parse.c), then the connection leaves the HTTP table:
 * it becomes a native stream object (_uhttpd.WebREPL) that speaks the
 * WebREPL protocol itself and is given to os.dupterm by the glue
 * (frozen/uhttpd_repl.py).  Frames are parsed and built by uh_wsframe.c, the
 * code the application WebSockets use, in its lenient mode: masked and
 * unmasked client frames (webrepl_cli.py sends unmasked ones), no UTF-8
 * check (the terminal sends raw bytes in text frames).
 *
 * The protocol, as MicroPython's extmod/modwebrepl.c and its clients
 * (webrepl.html, webrepl_cli.py, PyPI's `webrepl`) have it:
 *  - login: the text "Password: "; the client types the password and CR
 *    (or LF), in text or binary frames; right: "\r\nWebREPL connected\r\n>>> "
 *    (one text frame), wrong: "\r\nAccess denied\r\n" and a close frame.
 *    The password is uhttpd's own (ws(url, pwd)), compared in constant time;
 *    _webrepl.password(), the built-in WebREPL's, is never touched.
 *    Without a password the REPL opens at once.
 *  - terminal: text frames carry keystrokes in, each write of the REPL
 *    goes out as one text frame (split only above UH_REPL_OUT_MAX).
 *  - files: binary frames.  An 82-byte little-endian header, possibly
 *    spread over several frames: "WA", op u8 (1 PUT, 2 GET, 3 GET_VER),
 *    flags u8, offset u64 (ignored, as upstream), size u32, fname_len u16,
 *    fname 64 bytes.  Replies are binary "WB" + u16 status.  GET_VER: 3 bytes
 *    (major, minor, micro).  PUT: "WB" status once opened, then `size` bytes
 *    arrive in binary frames, then "WB" status.  GET: "WB" status once
 *    opened; for each byte the client sends, one frame of a u16 length and
 *    up to 256 bytes of the file; a 0 length ends it, then "WB" status.
 *    Unlike upstream, errors are reported: the status is the errno
 *    (ENOENT 2 for a missing file, EISDIR 21, ENOSPC 28, EINVAL 22 for a
 *    bad header...), never a hang.  A PUT whose write fails still consumes
 *    its `size` bytes and reports the error at the end; a GET whose read
 *    fails sends the 0-length chunk and the error.  Files go through the
 *    VFS (mp_vfs_open, stream read/write) with the GIL held.
 *  - a ping is answered with a pong; a close frame is answered with a
 *    close frame and ends the session, as does a protocol error (close
 *    with its code, e.g. 1002) or a message over UH_REPL_MAX_MSG (1009).
 *
 * One REPL session per process.  os.dupterm has one slot on esp32: while
 * it is taken, by our session or anybody else's (the built-in WebREPL),
 * the upgrade gets 503; the slot is never stolen.  The session ends when
 * the client closes or goes away, on a wrong password, or when dupterm
 * lets go of it.
 *
 * Login (design.md section 7): a client that has not logged in within the
 * server's `timeout` is cut off by the server thread (the REPL slot is
 * free again); after a wrong password (or a session that ended without a
 * login) the next upgrade is refused with 503 and Retry-After for a
 * back-off that doubles from 1 s up to 30 s (process-wide).
 *
 * The socket is polled by the server thread only on ports where the REPL
 * is fed by os.dupterm_notify (ESP32), and it is always closed by the
 * server thread (uh_close_deferred): lwIP's select fails for everyone when
 * a socket in its set is closed by another thread.
 *
 * Reads: on unix the REPL reads dupterm with blocking calls
 * (ports/unix/unix_mphal.c), so reads block with the GIL released.  Where
 * os.dupterm_notify exists (ESP32) reads are non-blocking (EAGAIN) and the
 * server loop, on readability of the session socket, calls the notify hook.
 *
 * Threads: reads (one at a time) run in the thread that reads the REPL;
 * writes come from any thread that prints.  The socket and its TLS state
 * are used only under uh_repl_mutex, taken with the GIL released by those
 * who then wait on the network, and never held while waiting for the GIL
 * (so taking it with the GIL held, as close does, cannot deadlock).  The
 * parser, the file state and the login state belong to the reader.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/stream.h"
#include "py/mperrno.h"
#include "extmod/vfs.h"

#include "uh_server.h"
#include "uh_wsframe.h"

/* Longest client message (text or binary, fragments included); longer:
 * close 1009.  Every WebREPL client sends file data in 1 KiB frames. */
#ifndef UH_REPL_MAX_MSG
#define UH_REPL_MAX_MSG (4096)
#endif
/* Bytes taken from the socket at once. */
#define UH_REPL_RAW (512)
/* Longest text frame of REPL output (a longer write is split). */
#define UH_REPL_OUT_MAX (4096)
/* A frame this small goes out in one send (header and payload). */
#define UH_REPL_SMALL (256)
/* GET: file bytes per chunk (the protocol's limit). */
#define UH_REPL_CHUNK (256)
/* A send that cannot progress for this long ends the session. */
#define UH_REPL_SEND_MS (5000)
/* Password buffers (ws() allows 1 to 9 characters). */
#define UH_REPL_PW_BUF (16)
/* The file request header. */
#define UH_REPL_HDR (82)

enum { F_HDR = 0, F_PUT, F_GET };
enum { OP_PUT = 1, OP_GET = 2, OP_VER = 3 };

typedef struct _uh_repl_obj_t {
    mp_obj_base_t base;
    uh_io_t io;            /* under uh_repl_mutex */
    uh_state_t *owner;     /* the server whose thread closes the socket */
    uint8_t nonblock;      /* notify-driven: reads never wait */
    uint8_t busy;          /* a read() runs (it may release the GIL) */
    uint8_t eof;           /* the session is over: reads say EOF */
    uint8_t need_login;
    uint8_t logged_in;
    uint8_t counted;       /* this session's failure is in the back-off */
    uint8_t pw_len;
    uint8_t typed_len;
    uint8_t typed_over;    /* more typed than the buffer holds */
    uint8_t fstate;        /* F_HDR, F_PUT, F_GET */
    uint8_t hdr_len;
    uint16_t ferr;         /* PUT: the first error, reported at the end */
    uint32_t left;         /* PUT: bytes still to come */
    mp_obj_t file;         /* the open file of a PUT or GET, or MP_OBJ_NULL */
    mp_obj_t put_tmp;      /* PUT: the temporary being written (removed unless committed) */
    mp_obj_t put_dst;      /* PUT: the target it becomes when complete */
    size_t term_pos;       /* REPL input waiting in p.msg[term_pos..term_len) */
    size_t term_len;
    size_t raw_pos;        /* received, not yet parsed: raw[raw_pos..raw_len) */
    size_t raw_len;
    char pw[UH_REPL_PW_BUF];      /* uhttpd's password, zero-padded */
    char typed[UH_REPL_PW_BUF];   /* what the client typed, zero-padded */
    uint8_t hdr[UH_REPL_HDR];
    uint8_t raw[UH_REPL_RAW];
    uh_wsp_t p;
    uint8_t msg[UH_REPL_MAX_MSG];
} uh_repl_obj_t;

static const mp_obj_type_t uh_repl_type;

/* The active session, or NULL.  GIL held to touch it. */
MP_REGISTER_ROOT_POINTER(struct _uh_repl_obj_t *uhttpd_repl_sock);

/* What the server thread needs without the GIL (plain C statics). */
static volatile int uh_repl_fd = -1;           /* session socket, or -1 */
static uh_state_t *volatile uh_repl_owner;     /* its server */
static volatile uint8_t uh_repl_logged_in;
static volatile uint8_t uh_repl_cut;           /* login timed out: shut down */
static volatile uint32_t uh_repl_login_deadline;
/* Password back-off (process-wide). */
static uint32_t uh_repl_backoff_ms;
static uint32_t uh_repl_next_try;
/* The session's socket and TLS state (see the top of the file). */
static mp_thread_mutex_t uh_repl_mutex;
static uint8_t uh_repl_mutex_ready;

/* Wake-up pipe for the unix REPL's stdin wait (boards/unix-uhttpd). */
static int uh_repl_notify[2] = { -1, -1 };

int uhttpd_repl_notify_fd(void) {
    return uh_repl_notify[0];
}

static void uh_repl_failed(void) {
    uh_repl_backoff_ms = uh_repl_backoff_ms ? uh_repl_backoff_ms * 2 : 1000;
    if (uh_repl_backoff_ms > 30000) {
        uh_repl_backoff_ms = 30000;
    }
    uh_repl_next_try = uh_ticks_ms() + uh_repl_backoff_ms;
}

/* ---- files (GIL held) ---------------------------------------------------- */

/* The status for an exception: an OSError's errno, else EIO. */
static uint16_t uh_repl_errno(void *ret_val) {
    mp_obj_t exc = MP_OBJ_FROM_PTR(ret_val);
    if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_OSError))) {
        mp_obj_t v = mp_obj_exception_get_value(exc);
        if (mp_obj_is_small_int(v)) {
            mp_int_t e = MP_OBJ_SMALL_INT_VALUE(v);
            if (e > 0 && e <= 0xFFFF) {
                return (uint16_t)e;
            }
        }
    }
    return MP_EIO;
}

/* Close the open file; its error (a PUT's last flush), or 0. */
static uint16_t uh_repl_file_close(uh_repl_obj_t *s) {
    mp_obj_t f = s->file;
    s->file = MP_OBJ_NULL;
    uint16_t err = 0;
    if (f != MP_OBJ_NULL) {
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            mp_stream_close(f);
            nlr_pop();
        } else {
            err = uh_repl_errno(nlr.ret_val);
        }
    }
    if (s->put_tmp != MP_OBJ_NULL) {
        /* a PUT that did not complete: nothing of it stays */
        uh_remove_quiet(s->put_tmp);
        s->put_tmp = MP_OBJ_NULL;
        s->put_dst = MP_OBJ_NULL;
    }
    return err;
}

/* ---- the socket ---------------------------------------------------------- */

/* End the session's socket (idempotent, GIL held, any thread). */
static void uh_repl_shut(uh_repl_obj_t *s) {
    s->eof = 1;
    int fd = s->io.fd;
    if (fd >= 0) {
        /* wakes a reader or a writer blocked on it; the descriptor stays
         * valid until the server thread closes it */
        shutdown(fd, SHUT_RDWR);
        mp_thread_mutex_lock(&uh_repl_mutex, 1);
        #if UH_TLS
        uh_io_t tmp = s->io;
        tmp.fd = -1;
        uh_io_close(&tmp);     /* the TLS state is this object's alone */
        #endif
        s->io.fd = -1;
        s->io.tls = NULL;
        mp_thread_mutex_unlock(&uh_repl_mutex);
        if (fd == uh_repl_fd) {
            uh_repl_fd = -1;
            if (s->need_login && !s->logged_in && !s->counted) {
                s->counted = 1;
                uh_repl_failed();   /* ended without logging in */
            }
        }
        uh_close_deferred(s->owner, fd);
    }
    if (!s->busy) {
        uh_repl_file_close(s);      /* else the reader does it */
    }
    if (MP_STATE_VM(uhttpd_repl_sock) == s) {
        MP_STATE_VM(uhttpd_repl_sock) = NULL;
    }
    /* the stream stays in its dupterm slot (so a new session waits with
     * 503) until the reader returns EOF and dupterm lets go of it, or
     * uh_repl_detach_dead() removes it */
}

/* Send a[0..an) then b[0..bn) as one piece of the stream (GIL held on entry
 * and exit, released while sending).  0 sent; -1 the session is over. */
static int uh_repl_send2(uh_repl_obj_t *s, const uint8_t *a, size_t an, const void *b, size_t bn) {
    uint8_t small[UH_WS_MAX_HEADER + UH_REPL_SMALL];
    int r = -1;
    if (s->eof) {
        return -1;
    }
    MP_THREAD_GIL_EXIT();
    mp_thread_mutex_lock(&uh_repl_mutex, 1);
    if (s->io.fd >= 0) {
        if (an + bn <= sizeof(small)) {
            memcpy(small, a, an);
            if (bn) {
                memcpy(small + an, b, bn);
            }
            r = uh_send_all_blocking(&s->io, (const char *)small, an + bn, UH_REPL_SEND_MS);
        } else {
            r = uh_send_all_blocking(&s->io, (const char *)a, an, UH_REPL_SEND_MS);
            if (r == 0 && bn) {
                r = uh_send_all_blocking(&s->io, b, bn, UH_REPL_SEND_MS);
            }
        }
    }
    mp_thread_mutex_unlock(&uh_repl_mutex);
    MP_THREAD_GIL_ENTER();
    if (r < 0) {
        uh_repl_shut(s);    /* the client went away or stopped reading */
    }
    return r;
}

/* One unmasked frame (FIN set). */
static int uh_repl_frame(uh_repl_obj_t *s, int opcode, const void *data, size_t len) {
    uint8_t h[UH_WS_MAX_HEADER];
    size_t hn = uh_ws_header(h, opcode, 1, len);
    return uh_repl_send2(s, h, hn, data, len);
}

static int uh_repl_text(uh_repl_obj_t *s, const char *text) {
    return uh_repl_frame(s, UH_WS_OP_TEXT, text, strlen(text));
}

/* "WB" + u16 status. */
static int uh_repl_status(uh_repl_obj_t *s, uint16_t status) {
    uint8_t b[4] = { 'W', 'B', (uint8_t)(status & 0xFF), (uint8_t)(status >> 8) };
    return uh_repl_frame(s, UH_WS_OP_BINARY, b, sizeof(b));
}

/* Send a close frame (code 0: none) and end the session. */
static void uh_repl_close(uh_repl_obj_t *s, int code) {
    uint8_t f[UH_WS_MAX_CLOSE_FRAME];
    size_t n = uh_ws_close_frame(f, code, NULL, 0);
    uh_repl_send2(s, f, n, NULL, 0);
    uh_repl_shut(s);
}

/* Fill raw[] from the socket (GIL held; released while waiting).
 * 1 bytes came, 0 none yet (non-blocking), -1 EOF or an error. */
static int uh_repl_recv(uh_repl_obj_t *s) {
    ssize_t r;
    int nb = s->nonblock;
    MP_THREAD_GIL_EXIT();
    for (;;) {
        short ev = POLLIN;
        mp_thread_mutex_lock(&uh_repl_mutex, 1);
        int fd = s->io.fd;
        if (fd < 0) {
            r = UH_IO_EOF;
        } else {
            r = uh_io_recv(&s->io, s->raw, sizeof(s->raw));
            ev = uh_io_events(&s->io, POLLIN);
        }
        mp_thread_mutex_unlock(&uh_repl_mutex);
        if (r != UH_IO_AGAIN || nb) {
            break;
        }
        struct pollfd p = { .fd = fd, .events = ev, .revents = 0 };
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            r = UH_IO_ERR;
            break;
        }
    }
    MP_THREAD_GIL_ENTER();
    if (r > 0) {
        s->raw_pos = 0;
        s->raw_len = (size_t)r;
        return 1;
    }
    return r == UH_IO_AGAIN ? 0 : -1;
}

/* ---- the file protocol (reader, GIL held) -------------------------------- */

static void uh_repl_get_chunk(uh_repl_obj_t *s) {
    uint8_t b[2 + UH_REPL_CHUNK];
    mp_uint_t n = 0;
    uint16_t err = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        int e = 0;
        const mp_stream_p_t *sp = mp_get_stream(s->file);
        n = sp->read(s->file, b + 2, UH_REPL_CHUNK, &e);
        if (n == MP_STREAM_ERROR) {
            n = 0;
            err = e > 0 && e <= 0xFFFF ? (uint16_t)e : MP_EIO;
        }
        nlr_pop();
    } else {
        n = 0;
        err = uh_repl_errno(nlr.ret_val);
    }
    b[0] = (uint8_t)(n & 0xFF);
    b[1] = (uint8_t)(n >> 8);
    if (uh_repl_frame(s, UH_WS_OP_BINARY, b, 2 + n) < 0) {
        return;
    }
    if (n == 0) {
        /* the end (or an error): the 0-length chunk, then the status */
        uint16_t cerr = uh_repl_file_close(s);
        s->fstate = F_HDR;
        uh_repl_status(s, err ? err : cerr);
    }
}

static void uh_repl_put_data(uh_repl_obj_t *s, const uint8_t *d, size_t n) {
    if (s->file != MP_OBJ_NULL) {
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            int e = 0;
            mp_uint_t w = mp_stream_write_exactly(s->file, d, n, &e);
            if (e != 0 || w != n) {
                s->ferr = e > 0 && e <= 0xFFFF ? (uint16_t)e : MP_EIO;
            }
            nlr_pop();
        } else {
            s->ferr = uh_repl_errno(nlr.ret_val);
        }
        if (s->ferr) {
            uh_repl_file_close(s);   /* the rest is received and dropped */
        }
    }
    s->left -= (uint32_t)n;
    if (s->left == 0) {
        /* complete: the temporary becomes the file (nothing half-written
         * is ever seen under the target's name) */
        mp_obj_t tmp = s->put_tmp, dst = s->put_dst;
        s->put_tmp = MP_OBJ_NULL;
        s->put_dst = MP_OBJ_NULL;
        uint16_t err = uh_repl_file_close(s);
        if (s->ferr) {
            err = s->ferr;
        }
        if (tmp != MP_OBJ_NULL) {
            if (err) {
                uh_remove_quiet(tmp);
            } else {
                int ce = uh_commit(tmp, dst);
                err = ce > 0 && ce <= 0xFFFF ? (uint16_t)ce : (ce ? MP_EIO : 0);
            }
        }
        s->fstate = F_HDR;
        uh_repl_status(s, err);
    }
}

/* An existing file that is neither regular nor a directory (a device, a
 * FIFO: unix only): a PUT writes it in place, never renames over it. */
static int uh_repl_special(mp_obj_t path) {
    int special = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t t = mp_vfs_stat(path);
        size_t n;
        mp_obj_t *it;
        mp_obj_tuple_get(t, &n, &it);
        mp_int_t mode = mp_obj_get_int(it[0]);
        special = (mode & 0xF000) != 0x8000 && (mode & 0xF000) != MP_S_IFDIR;
        nlr_pop();
    }
    return special;
}

/* A whole request header is in hdr[]. */
static void uh_repl_request(uh_repl_obj_t *s) {
    const uint8_t *h = s->hdr;
    int op = h[2];
    uint32_t size = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
    size_t name_len = (size_t)h[16] | (size_t)h[17] << 8;
    const char *name = (const char *)h + 18;
    if (h[0] != 'W' || h[1] != 'A' || op < OP_PUT || op > OP_VER) {
        uh_repl_status(s, MP_EINVAL);
        return;
    }
    if (op == OP_VER) {
        static const uint8_t ver[3] = { MICROPY_VERSION_MAJOR, MICROPY_VERSION_MINOR, MICROPY_VERSION_MICRO };
        uh_repl_frame(s, UH_WS_OP_BINARY, ver, sizeof(ver));
        return;
    }
    if (name_len == 0 || name_len > 64 || memchr(name, 0, name_len) != NULL) {
        uh_repl_status(s, MP_EINVAL);
        return;
    }
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t path = mp_obj_new_str(name, name_len);
        if (op == OP_PUT && !uh_repl_special(path)) {
            /* written to a temporary beside the target, renamed when
             * complete (as the HTTP receiver does) */
            vstr_t v;
            vstr_init(&v, name_len + 12);
            vstr_add_strn(&v, name, name_len);
            vstr_add_str(&v, ".repl.uhtmp");
            s->put_dst = path;
            s->put_tmp = mp_obj_new_str_from_vstr(&v);
            path = s->put_tmp;
        }
        mp_obj_t args[2] = { path, MP_OBJ_NEW_QSTR(op == OP_PUT ? MP_QSTR_wb : MP_QSTR_rb) };
        s->file = mp_vfs_open(2, args, (mp_map_t *)&mp_const_empty_map);
        /* a file object of a Python VFS may lack the C stream protocol */
        mp_get_stream_raise(s->file, op == OP_PUT ? MP_STREAM_OP_WRITE : MP_STREAM_OP_READ);
        nlr_pop();
    } else {
        uint16_t err = uh_repl_errno(nlr.ret_val);
        uh_repl_file_close(s);
        uh_repl_status(s, err);
        return;
    }
    if (uh_repl_status(s, 0) < 0) {
        return;
    }
    if (op == OP_GET) {
        s->fstate = F_GET;
    } else {
        s->fstate = F_PUT;
        s->ferr = 0;
        s->left = size;
        if (size == 0) {
            uh_repl_put_data(s, NULL, 0);
        }
    }
}

/* The bytes of a binary message, after login. */
static void uh_repl_binary(uh_repl_obj_t *s, const uint8_t *d, size_t n) {
    while (n > 0 && !s->eof) {
        size_t k;
        switch (s->fstate) {
            case F_PUT:
                k = n < s->left ? n : s->left;
                uh_repl_put_data(s, d, k);
                break;
            case F_GET:
                k = 1;   /* each byte asks for the next chunk */
                uh_repl_get_chunk(s);
                break;
            default:
                k = UH_REPL_HDR - s->hdr_len;
                if (k > n) {
                    k = n;
                }
                memcpy(s->hdr + s->hdr_len, d, k);
                s->hdr_len += (uint8_t)k;
                if (s->hdr_len == UH_REPL_HDR) {
                    s->hdr_len = 0;
                    uh_repl_request(s);
                }
                break;
        }
        d += k;
        n -= k;
    }
}

/* ---- messages (reader, GIL held) ----------------------------------------- */

/* The typed password is complete: compare without an early exit. */
static int uh_repl_pw_ok(uh_repl_obj_t *s) {
    unsigned diff = (unsigned)(s->typed_len ^ s->pw_len) | s->typed_over;
    for (size_t i = 0; i < UH_REPL_PW_BUF; i++) {
        diff |= (unsigned)(uint8_t)(s->typed[i] ^ s->pw[i]);
    }
    return diff == 0;
}

/* Password bytes at the start of m[0..n): returns how many were used (the
 * rest belongs to the REPL), or n + 1 when the session ended. */
static size_t uh_repl_login(uh_repl_obj_t *s, const uint8_t *m, size_t n) {
    size_t i = 0;
    for (; i < n; i++) {
        uint8_t c = m[i];
        if (c == '\r' || c == '\n') {
            break;
        }
        if (s->typed_len < UH_REPL_PW_BUF) {
            s->typed[s->typed_len++] = (char)c;
        } else {
            s->typed_over = 1;
        }
    }
    if (i == n) {
        return n;   /* more to come */
    }
    int ok = uh_repl_pw_ok(s);
    memset(s->typed, 0, sizeof(s->typed));
    s->typed_len = 0;
    s->typed_over = 0;
    if (!ok) {
        s->counted = 1;
        uh_repl_failed();
        uh_repl_text(s, "\r\nAccess denied\r\n");
        uh_repl_close(s, UH_WS_CLOSE_POLICY);
        return n + 1;
    }
    s->logged_in = 1;
    uh_repl_logged_in = 1;
    uh_repl_backoff_ms = 0;
    /* one frame: clients look for it in one read */
    uh_repl_text(s, "\r\nWebREPL connected\r\n>>> ");
    return i + 1;
}

static void uh_repl_message(uh_repl_obj_t *s) {
    const uint8_t *m = s->p.msg;
    size_t n = s->p.msg_len;
    size_t i = 0;
    if (!s->logged_in) {
        i = uh_repl_login(s, m, n);
        if (i >= n) {
            return;
        }
    }
    if (s->p.opcode == UH_WS_OP_TEXT) {
        /* REPL input: read() hands it out before the parser runs again */
        s->term_pos = i;
        s->term_len = n;
    } else {
        uh_repl_binary(s, m + i, n - i);
    }
}

/* Parse what raw[] holds up to the next event and act on it. */
static void uh_repl_step(uh_repl_obj_t *s) {
    size_t used;
    int ev = uh_wsp_feed(&s->p, s->raw + s->raw_pos, s->raw_len - s->raw_pos, &used);
    s->raw_pos += used;
    switch (ev) {
        case UH_WS_EV_MESSAGE:
            uh_repl_message(s);
            break;
        case UH_WS_EV_PING:
            uh_repl_frame(s, UH_WS_OP_PONG, s->p.ctrl, s->p.ctrl_len);
            break;
        case UH_WS_EV_CLOSE:
            /* echo the peer's code (none for an empty close) */
            uh_repl_close(s, s->p.code == UH_WS_CLOSE_NO_STATUS ? 0 : s->p.code);
            break;
        case UH_WS_EV_ERROR:
            uh_repl_close(s, s->p.code);
            break;
        default:
            break;   /* NEED_MORE, PONG */
    }
}

/* ---- the stream ---------------------------------------------------------- */

static mp_uint_t uh_repl_read(mp_obj_t self_in, void *buf, mp_uint_t size, int *errcode) {
    uh_repl_obj_t *s = MP_OBJ_TO_PTR(self_in);
    if (size == 0) {
        return 0;
    }
    if (s->busy) {
        /* another thread is inside read() (its GIL is released) */
        *errcode = MP_EAGAIN;
        return MP_STREAM_ERROR;
    }
    s->busy = 1;
    mp_uint_t ret;
    for (;;) {
        if (s->term_pos < s->term_len) {
            size_t k = s->term_len - s->term_pos;
            if (k > size) {
                k = size;
            }
            memcpy(buf, s->p.msg + s->term_pos, k);
            s->term_pos += k;
            ret = k;
            break;
        }
        if (s->eof) {
            ret = 0;
            break;
        }
        if (s->raw_pos < s->raw_len) {
            uh_repl_step(s);
            continue;
        }
        int r = uh_repl_recv(s);
        if (r == 0) {
            *errcode = MP_EAGAIN;
            ret = MP_STREAM_ERROR;
            break;
        }
        if (r < 0) {
            uh_repl_shut(s);    /* EOF or a reset: the session is over */
        }
    }
    if (s->eof) {
        uh_repl_file_close(s);   /* may release the GIL: still busy */
    }
    s->busy = 0;
    return ret;
}

/* REPL output: one text frame per write (split above UH_REPL_OUT_MAX at a
 * UTF-8 character boundary).  Swallowed before login and after the end. */
static mp_uint_t uh_repl_write(mp_obj_t self_in, const void *buf, mp_uint_t size, int *errcode) {
    uh_repl_obj_t *s = MP_OBJ_TO_PTR(self_in);
    (void)errcode;
    const uint8_t *p = buf;
    size_t left = size;
    while (left > 0 && s->logged_in && !s->eof) {
        size_t k = left;
        if (k > UH_REPL_OUT_MAX) {
            k = UH_REPL_OUT_MAX;
            size_t back = 0;
            while (back < 3 && (p[k - back] & 0xC0) == 0x80) {
                back++;
            }
            if (back < 3) {
                k -= back;
            }
        }
        if (uh_repl_frame(s, UH_WS_OP_TEXT, p, k) < 0) {
            break;
        }
        p += k;
        left -= k;
    }
    return size;
}

static mp_uint_t uh_repl_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
    uh_repl_obj_t *s = MP_OBJ_TO_PTR(self_in);
    switch (request) {
        case MP_STREAM_CLOSE:
            uh_repl_shut(s);
            return 0;
        case MP_STREAM_GET_FILENO:
            return (mp_uint_t)s->io.fd;
        case MP_STREAM_POLL: {
            mp_uint_t ret = 0;
            if (s->term_pos < s->term_len || s->raw_pos < s->raw_len) {
                ret |= arg & MP_STREAM_POLL_RD;
            }
            if (s->eof) {
                return arg & (MP_STREAM_POLL_RD | MP_STREAM_POLL_HUP);
            }
            struct pollfd p = { .fd = -1, .events = 0, .revents = 0 };
            mp_thread_mutex_lock(&uh_repl_mutex, 1);
            if (s->io.fd >= 0) {
                p.fd = s->io.fd;
                if ((arg & MP_STREAM_POLL_RD) && uh_io_pending(&s->io)) {
                    ret |= MP_STREAM_POLL_RD;
                }
            }
            mp_thread_mutex_unlock(&uh_repl_mutex);
            if (arg & MP_STREAM_POLL_RD) {
                p.events |= POLLIN;
            }
            if (arg & MP_STREAM_POLL_WR) {
                p.events |= POLLOUT;
            }
            if (p.fd >= 0 && poll(&p, 1, 0) > 0) {
                if (p.revents & POLLIN) {
                    ret |= MP_STREAM_POLL_RD;
                }
                if (p.revents & POLLOUT) {
                    ret |= MP_STREAM_POLL_WR;
                }
                if (p.revents & (UH_POLLHUP | POLLERR)) {
                    ret |= MP_STREAM_POLL_HUP;
                }
            }
            return ret;
        }
        default:
            *errcode = MP_EINVAL;
            return MP_STREAM_ERROR;
    }
}

/* The finaliser: the open file may already be swept (finalisers run in
 * any order), so it is left to its own finaliser. */
static mp_obj_t uh_repl_del(mp_obj_t self_in) {
    uh_repl_obj_t *s = MP_OBJ_TO_PTR(self_in);
    s->file = MP_OBJ_NULL;
    s->put_tmp = MP_OBJ_NULL;
    s->put_dst = MP_OBJ_NULL;
    uh_repl_shut(s);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(uh_repl_del_obj, uh_repl_del);

static const mp_rom_map_elem_t uh_repl_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&mp_stream_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&mp_stream_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&mp_stream_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&mp_stream_close_obj) },
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&uh_repl_del_obj) },
};
static MP_DEFINE_CONST_DICT(uh_repl_locals_dict, uh_repl_locals_table);

static const mp_stream_p_t uh_repl_stream_p = {
    .read = uh_repl_read,
    .write = uh_repl_write,
    .ioctl = uh_repl_ioctl,
};

static MP_DEFINE_CONST_OBJ_TYPE(
    uh_repl_type,
    MP_QSTR_WebREPL,
    MP_TYPE_FLAG_ITER_IS_STREAM,
    protocol, &uh_repl_stream_p,
    locals_dict, &uh_repl_locals_dict
    );

/* ---- the session ---------------------------------------------------------- */

/* The session is over once dupterm no longer holds our stream (e.g. EOF,
 * or someone replaced it): close its socket.  GIL held. */
void uhttpd_repl_reap(void) {
    uh_repl_obj_t *s = MP_STATE_VM(uhttpd_repl_sock);
    if (s == NULL) {
        return;
    }
    #if MICROPY_PY_OS_DUPTERM
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        if (MP_STATE_VM(dupterm_objs[i]) == MP_OBJ_FROM_PTR(s)) {
            return;   /* still attached */
        }
    }
    #endif
    uh_repl_shut(s);
}

/* Take ended sessions that no reader is inside out of the dupterm slots.
 * dupterm itself lets go of a stream whose read says EOF, except where it
 * treats a native stream's EOF as "no input"
 * (MICROPY_PY_OS_DUPTERM_BUILTIN_STREAM), or when nobody reads (unix, a
 * script running).  A stream a reader is inside is left alone: its caller
 * clears the slot when the read returns.  GIL held. */
static void uh_repl_detach_dead(void) {
    #if MICROPY_PY_OS_DUPTERM
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        mp_obj_t o = MP_STATE_VM(dupterm_objs[i]);
        if (o != MP_OBJ_NULL && mp_obj_is_type(o, &uh_repl_type)) {
            uh_repl_obj_t *s = MP_OBJ_TO_PTR(o);
            if (s->eof && !s->busy) {
                MP_STATE_VM(dupterm_objs[i]) = MP_OBJ_NULL;
            }
        }
    }
    #endif
}

/* The server that owns the session stops: nobody polls the socket any
 * more, so its close may happen directly (GIL held). */
void uh_repl_server_gone(uh_state_t *st) {
    if (uh_repl_owner == st) {
        uh_repl_owner = NULL;
        uh_repl_obj_t *s = MP_STATE_VM(uhttpd_repl_sock);
        if (s != NULL) {
            s->owner = NULL;
        }
    }
}

/* Is every dupterm slot taken (by anyone: our session or another)? */
static int uh_dupterm_taken(void) {
    #if MICROPY_PY_OS_DUPTERM
    for (size_t i = 0; i < MICROPY_PY_OS_DUPTERM; i++) {
        if (MP_STATE_VM(dupterm_objs[i]) == MP_OBJ_NULL) {
            return 0;
        }
    }
    return 1;
    #else
    return 1;
    #endif
}

void uh_ws_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target) {
    c->keep_alive = 0;
    const uh_header_t *key = uh_find_header(c, "sec-websocket-key", 17);
    if (key == NULL || key->value.len == 0 || key->value.len > 128) {
        uh_reply_simple(st, c, 400, NULL, "Sec-WebSocket-Key required\n");
        return;
    }
    uhttpd_repl_reap();
    uh_repl_detach_dead();
    if (MP_STATE_VM(uhttpd_repl_sock) != NULL) {
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "another REPL session is active\n");
        return;
    }
    if (uh_dupterm_taken()) {
        uh_reply_simple(st, c, 503, "Retry-After: 5\r\n", "the REPL is in use (os.dupterm slot taken)\n");
        return;
    }
    int32_t wait = uh_diff(uh_repl_next_try, uh_ticks_ms());
    if (uh_repl_backoff_ms && wait > 0) {
        char extra[40];
        snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", (unsigned)((wait + 999) / 1000));
        uh_reply_simple(st, c, 503, extra, "wrong password: wait before the next try\n");
        return;
    }
    size_t pre = c->len - c->head_len;
    if (pre > UH_REPL_RAW) {
        uh_reply_simple(st, c, 400, NULL, NULL);
        return;
    }
    mp_obj_t pwd = mp_load_attr(target, MP_QSTR_pwd);
    size_t pw_len = 0;
    const char *pw = pwd == mp_const_none ? "" : mp_obj_str_get_data(pwd, &pw_len);
    if (pw_len >= UH_REPL_PW_BUF) {
        mp_raise_ValueError(MP_ERROR_TEXT("password too long"));
    }
    if (!uh_repl_mutex_ready) {
        mp_thread_mutex_init(&uh_repl_mutex);
        uh_repl_mutex_ready = 1;
    }

    /* the session object first: the only allocation, before the 101 */
    uh_repl_obj_t *s = mp_obj_malloc_with_finaliser(uh_repl_obj_t, &uh_repl_type);
    memset((uint8_t *)s + sizeof(s->base), 0, sizeof(*s) - sizeof(s->base));
    s->io.fd = -1;
    s->file = MP_OBJ_NULL;
    s->put_tmp = MP_OBJ_NULL;
    s->put_dst = MP_OBJ_NULL;
    s->p.msg = s->msg;
    s->p.max_msg = sizeof(s->msg);
    s->p.require_mask = 0;   /* webrepl_cli.py sends unmasked frames */
    s->p.check_utf8 = 0;     /* the terminal sends raw bytes as text */
    s->need_login = pw_len > 0;
    s->logged_in = !s->need_login;
    s->pw_len = (uint8_t)pw_len;
    memcpy(s->pw, pw, pw_len);
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    s->nonblock = 1;   /* fed by notifications: never block the reader */
    #endif

    char accept[29];
    uh_ws_accept(key->value.ptr, key->value.len, accept);
    char head[176];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n%s", accept,
        s->need_login ? "\x81\x0a" "Password: " : "");
    c->resp = UH_RESP_RAW;
    uh_send_gil(st, c, head, (size_t)n, 0);

    uh_io_move(&s->io, &c->io);   /* detached: the socket belongs to the REPL now */
    s->owner = st;
    s->raw_len = pre;
    memcpy(s->raw, c->buf + c->head_len, pre);
    c->len = c->head_len;
    MP_STATE_VM(uhttpd_repl_sock) = s;
    uh_repl_logged_in = s->logged_in;
    uh_repl_cut = 0;
    uh_repl_login_deadline = uh_ticks_ms() + st->timeout_ms;
    uh_repl_owner = st;
    uh_repl_fd = s->io.fd;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_call_function_1(mp_load_attr(target, MP_QSTR_attach), MP_OBJ_FROM_PTR(s));
        nlr_pop();
    } else {
        uh_repl_shut(s);
        nlr_jump(nlr.ret_val);
    }
    uh_wakeup_signal(&st->wake);
    if (pre > 0) {
        /* bytes that came with the handshake: no socket event will say so */
        #if MICROPY_PY_OS_DUPTERM_NOTIFY
        mp_obj_t os = mp_import_name(MP_QSTR_os, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        mp_call_function_1(mp_load_attr(os, MP_QSTR_dupterm_notify), mp_const_none);
        #endif
    }
    if (uh_repl_notify[1] >= 0) {
        char b = 1;
        int w = write(uh_repl_notify[1], &b, 1);
        (void)w;
    }
}

/* ---- the kind's operations (server thread, no GIL) ---------------------- */

static size_t uh_repl_prepare(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout,
    uint32_t now) {
    int fd = uh_repl_fd;
    if (uh_repl_owner != st || fd < 0 || room == 0) {
        return 0;
    }
    if (!uh_repl_logged_in && !uh_repl_cut) {
        int32_t left = uh_diff(uh_repl_login_deadline, now);
        if (left < 0) {
            left = 0;
        }
        if (*timeout < 0 || left + 1 < *timeout) {
            *timeout = left + 1;
        }
    }
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    /* the REPL is fed by os.dupterm_notify: watch the session socket */
    p[0].fd = fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    e[0].kind = &uh_kind_repl;
    e[0].owner = NULL;
    e[0].io = NULL;
    return 1;
    #else
    (void)p;
    (void)e;
    return 0;
    #endif
}

static void uh_repl_ready(uh_state_t *st, void *owner, short ev) {
    (void)owner;
    (void)st;
    (void)ev;
    #if MICROPY_PY_OS_DUPTERM_NOTIFY
    /* let dupterm pull what arrived (or the EOF, or an error) into the
     * REPL's input buffer */
    MP_THREAD_GIL_ENTER();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t os = mp_import_name(MP_QSTR_os, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        mp_call_function_1(mp_load_attr(os, MP_QSTR_dupterm_notify), mp_const_none);
        nlr_pop();
    }
    uhttpd_repl_reap();
    uh_repl_detach_dead();
    MP_THREAD_GIL_EXIT();
    #endif
}

static void uh_repl_tick(uh_state_t *st, uint32_t now) {
    int fd = uh_repl_fd;
    if (uh_repl_owner != st || fd < 0 || uh_repl_logged_in || uh_repl_cut) {
        return;
    }
    if (uh_diff(now, uh_repl_login_deadline) >= 0) {
        /* not logged in within `timeout`: cut it off; the reader sees EOF,
         * the session ends and the socket is closed through the queue */
        uh_repl_cut = 1;
        shutdown(fd, SHUT_RDWR);
    }
}

static void uh_repl_shutdown(uh_state_t *st) {
    (void)st;
}

const uh_kind_t uh_kind_repl = {
    .prepare = uh_repl_prepare,
    .ready = uh_repl_ready,
    .tick = uh_repl_tick,
    .shutdown = uh_repl_shutdown,
};

/* Module __init__ (start-up, soft reset): forget a session of the previous
 * cycle; on unix make the pipe the REPL's stdin wait also watches. */
void uh_ws_reset(void) {
    MP_STATE_VM(uhttpd_repl_sock) = NULL;
    uh_repl_fd = -1;
    uh_repl_owner = NULL;
    #if UH_WRAP_DEINIT
    /* once per cycle (moduhttpd.c): every thread that could hold the mutex
     * was stopped or deleted, perhaps while it held it */
    uh_repl_mutex_ready = 0;
    #endif
    if (!uh_repl_mutex_ready) {
        mp_thread_mutex_init(&uh_repl_mutex);
        uh_repl_mutex_ready = 1;
    }
    #if !UH_WAKEUP_UDP
    if (uh_repl_notify[0] < 0 && pipe(uh_repl_notify) == 0) {
        uh_set_nonblock(uh_repl_notify[0]);
        uh_set_nonblock(uh_repl_notify[1]);
        uh_set_cloexec(uh_repl_notify[0]);
        uh_set_cloexec(uh_repl_notify[1]);
    }
    #endif
}
