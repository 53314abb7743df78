/*
 * uhttpd: the server core shared by the loop (uh_server.c), the I/O layer
 * (uh_io.c), the connection kinds (uh_http.c, uh_files.c, uh_sse.c, uh_ws.c)
 * and the Python bindings (moduhttpd.c).
 *
 * Threading model (design.md section 2): one native thread per Server owns
 * the listening socket and every connection and multiplexes them with
 * poll().  The loop runs WITHOUT the GIL; it takes the GIL only to run Python
 * (auth, routing callbacks, handlers) and to touch MicroPython objects.  A
 * handler that has to wait on the network (a slow reader of its reply, a
 * large body) runs a nested pass of the loop while it waits, so other
 * clients are served meanwhile (see uh_wait_io in uh_server.c).  All
 * buffers are allocated once when the server starts.
 *
 * Connection kinds: every member of the loop (HTTP connection, SSE
 * listener, REPL socket) belongs to a kind with a small table of operations
 * (uh_kind_t); the loop calls the table, never a feature by name.  Every
 * byte goes through one I/O pair (uh_io_recv/uh_io_send) that is plain or
 * TLS per connection.
 */
#ifndef UHTTPD_UH_SERVER_H
#define UHTTPD_UH_SERVER_H

#include "py/obj.h"
#include "py/mpthread.h"
#include "uh_config.h"
#include "uh_port.h"
#include "uh_parse.h"

/* Method flags, as exposed to Python (GET/POST/DELETE are the original's). */
enum {
    UH_GET = 1,
    UH_POST = 2,
    UH_DELETE = 4,
    UH_HEAD = 8,
    UH_PUT = 16,
    UH_PATCH = 32,
    UH_OPTIONS = 64,
    UH_OTHER = 128,
};

enum { UH_AUTH_OPEN = 0, UH_AUTH_BASIC = 1, UH_AUTH_CUSTOM = 2 };

/* Route kinds (element 2 of a route tuple (pattern, methods, kind, target)). */
enum {
    UH_ROUTE_PY = 0,      /* target: callable(req) */
    UH_ROUTE_FILES = 1,   /* target: file server config (uh_files.c) */
    UH_ROUTE_RECV = 2,    /* target: file receiver config (uh_files.c) */
    UH_ROUTE_WS = 3,      /* target: REPL config (uh_ws.c); matches only upgrade requests */
    UH_ROUTE_EVENTS = 4,  /* target: None (uh_sse.c) */
    UH_ROUTE_WSAPP = 5,   /* target: WebSocket route (uh_wsapp.c); matches only upgrade requests */
};

/* ---- the I/O layer (uh_io.c) -------------------------------------------- */

struct uh_tls_conn;

typedef struct {
    int fd;
    short want;              /* TLS: poll events the record layer needs next (0: as asked) */
    struct uh_tls_conn *tls; /* NULL: plain */
} uh_io_t;

/* Results besides byte counts: UH_IO_AGAIN (would block; uh_io_events()
 * says what to wait for), UH_IO_EOF (orderly end), UH_IO_ERR. */
#define UH_IO_AGAIN (-1)
#define UH_IO_ERR (-2)
#define UH_IO_EOF (0)

ssize_t uh_io_recv(uh_io_t *io, void *buf, size_t n);
ssize_t uh_io_send(uh_io_t *io, const void *buf, size_t n, int more);
/* Decrypted bytes already waiting inside the TLS layer (the socket may look
 * idle while these wait). */
size_t uh_io_pending(uh_io_t *io);
/* Poll events to wait for when the caller wants `want` (POLLIN/POLLOUT):
 * TLS may need the other direction (a renegotiation, a write that must be
 * retried). */
short uh_io_events(uh_io_t *io, short want);
/* Tear down the TLS state (close_notify, best effort) and the socket. */
void uh_io_close(uh_io_t *io);
/* Hand the connection state over (SSE, REPL take an HTTP connection's io). */
static inline void uh_io_move(uh_io_t *dst, uh_io_t *src) {
    *dst = *src;
    src->fd = -1;
    src->tls = NULL;
    src->want = 0;
}

/* ---- connection kinds -------------------------------------------------- */

struct _uh_state_t;

/* One poll entry: whose it is, and its io (for TLS pending bytes). */
typedef struct {
    const struct _uh_kind_t *kind;
    void *owner;
    uh_io_t *io;
} uh_pent_t;

typedef struct _uh_kind_t {
    /* Add poll entries for this kind's members to p[]/e[] (at most `room`),
     * lower *timeout_ms to the nearest deadline; returns entries added. */
    size_t (*prepare)(struct _uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t room, int32_t *timeout_ms,
        uint32_t now);
    /* A member's entry fired (revents may include a synthesized POLLIN for
     * TLS pending bytes). */
    void (*ready)(struct _uh_state_t *st, void *owner, short revents);
    /* Deadlines, pings (every pass). */
    void (*tick)(struct _uh_state_t *st, uint32_t now);
    /* The server stops: close every member (GIL not held). */
    void (*shutdown)(struct _uh_state_t *st);
} uh_kind_t;

extern const uh_kind_t uh_kind_http;
extern const uh_kind_t uh_kind_sse;
extern const uh_kind_t uh_kind_repl;
extern const uh_kind_t uh_kind_wsapp;

/* ---- HTTP connections ---------------------------------------------------- */

/* Connection states. */
enum {
    UH_CS_FREE = 0,
    UH_CS_TLS,         /* TLS handshake in progress */
    UH_CS_HEAD,        /* waiting for / reading a request head */
    UH_CS_BODY,        /* head parsed; the loop receives a body that fits body_buffer */
    UH_CS_BUSY,        /* a request is being served (its handler is on the stack) */
    UH_CS_LINGER,      /* reply sent, write side shut, reading until EOF */
    UH_CS_FILE_TX,     /* streaming a file to the client (uh_files.c) */
    UH_CS_FILE_RX,     /* streaming an upload into a file (uh_files.c) */
};

/* Response progress of the current request. */
enum {
    UH_RESP_NONE = 0,
    UH_RESP_WRITTEN,   /* write(): complete response sent */
    UH_RESP_CHUNKED,   /* send_chunk() started (chunked or close-delimited) */
    UH_RESP_CHUNK_END, /* send_chunk(None) sent */
    UH_RESP_RAW,       /* send(): caller formats HTTP; connection closes */
    UH_RESP_DEFERRED,  /* a stream was set up; the loop completes the reply */
};

enum { UH_BODY_NONE = 0, UH_BODY_LENGTH, UH_BODY_CHUNKED };

typedef struct _uh_conn_t {
    uh_io_t io;
    uint8_t state;
    uint8_t resp;
    uint8_t body_kind;
    uint8_t body_done;
    uint8_t keep_alive;    /* this request may be followed by another */
    uint8_t head_only;     /* HEAD: reply without body */
    uint8_t served;        /* at least one reply sent: idle means keep-alive idle */
    uint8_t continue_sent;
    uint8_t io_error;      /* client vanished / timed out mid-request */
    uint8_t close_delim;   /* send_chunk to HTTP/1.0: body ends at close */
    uint8_t pending;       /* a complete request waits for a free handler level */
    uint8_t index;         /* position in st->conns (temporary file names) */
    uint16_t err_status;   /* status to answer after a body read failure */
    char *buf;             /* cap bytes: head (<= max_header) + body (<= body_buffer) */
    size_t cap;
    size_t len;
    size_t head_len;
    size_t rpos;           /* unread (decoded) body bytes: buf[rpos..rpos+ravail) */
    size_t ravail;
    uint64_t body_left;    /* Content-Length bytes not yet handed out (incl. ravail) */
    uint64_t body_total;   /* decoded chunked bytes so far */
    uh_chunked_t chunk;
    uh_request_t req;
    uint32_t deadline;     /* head deadline, linger end, or the rate window's end */
    uint32_t stamp;        /* last activity, for closing the oldest idle */
    /* min_rate accounting for bodies and transfers: a window of `timeout`
     * must move at least win_need bytes */
    uint32_t win_bytes;
    uint32_t win_need;
    /* per-request context: scratch of the handler level serving it (see
     * uh_conn_scratch), so that a nested handler does not disturb one that
     * waits */
    char *path;            /* decoded, normalised request path (max_header + 1) */
    size_t path_len;
    char *tx;              /* UH_TX_BUF: response head scratch */
    struct _uhttpd_request_obj_t *reqobj;
    /* streaming (uh_files.c): all set up with the GIL, used by the loop */
    uint8_t next_state;    /* UH_CS_FILE_TX / UH_CS_FILE_RX after the handler */
    uint16_t rx_status;    /* upload: 201 created or 200 replaced */
    int file_fd;           /* VfsPosix fd for sendfile(), else -1 */
    mp_obj_t file;         /* open VFS file or MP_OBJ_NULL */
    mp_obj_t rx_tmp;       /* upload: temporary path beside the target */
    mp_obj_t rx_dst;       /* upload: the target path */
    struct uh_form *form;  /* forms and multipart state (uh_form.h), NULL until used */
    char *fbuf;            /* st->file_block bytes (serve()/receive() set up) */
    size_t fpos, fend;     /* pending bytes in fbuf */
    uint64_t file_off;     /* download: next file offset (sendfile) */
    uint64_t file_left;    /* download: bytes still to send */
} uh_conn_t;

struct _uhttpd_request_obj_t;

/* A Server-Sent Events listener (uh_sse.c). */
typedef struct {
    uh_io_t io;
    size_t len;                  /* queued bytes in q */
    char *q;                     /* sse_qsize bytes, allocated at start */
    uint8_t dead;                /* dropped by dispatch(): the loop closes it */
} uh_sse_t;

/* Connections refused with 503 (no slot) linger here, reading and
 * discarding until EOF or UH_LINGER_MS, so the client reads the 503
 * instead of a reset; when these are full too, the socket just closes. */
#ifndef UH_REJECT_SLOTS
#if defined(ESP_PLATFORM)
#define UH_REJECT_SLOTS (1)      /* lwIP sockets are few */
#else
#define UH_REJECT_SLOTS (4)
#endif
#endif
typedef struct {
    int fd;
    uint32_t deadline;
} uh_reject_t;

/* fds that another thread wants closed: the loop closes them, because lwIP
 * fails a whole select() when a socket in its set is closed under it. */
#define UH_CLOSE_QUEUE (8)

typedef struct _uh_state_t {
    struct _uh_state_t *next;    /* list of live servers (root pointer) */
    uintptr_t facade_hidden;     /* ~(Server facade): a weak reference */
    int lfd;
    uh_wakeup_t wake;
    uint16_t port;
    volatile uint8_t stop;
    volatile uint8_t running;
    uint8_t cors;
    uint8_t auth_mode;
    uint8_t depth;               /* handlers on the server thread's stack */
    uint8_t nest_max;            /* most handlers on the stack at once */
    uint8_t pending_any;         /* some connection has pending set */
    mp_uint_t thread_id;
    size_t stack_size;
    size_t max_conns;
    size_t max_header;
    size_t body_buffer;
    uint32_t min_rate;           /* bytes/s a body or transfer must keep up */
    uint64_t max_body;
    uint32_t timeout_ms;
    uint32_t accept_pause_until;
    uint32_t wakeups;            /* loop passes (idle cost measurement) */
    mp_obj_t auth;               /* bytes (basic) or callable (custom) */
    mp_obj_t file_acl;           /* file_acl(cb) callable or None */
    mp_obj_t ext_path;           /* external storage mount path (str) */
    size_t file_block;           /* bytes per file block (per connection) */
    mp_obj_t routes;             /* list of (pattern, mask, kind, target) */
    uh_conn_t *conns;
    uh_reject_t rejects[UH_REJECT_SLOTS];
    char *scratch;               /* (nest_max + 1) * scratch_size: path + head per level */
    size_t scratch_size;
    size_t npoll;                /* poll entries per pass */
    struct pollfd *pfds;         /* (nest_max + 1) * npoll: one set per pass depth */
    uh_pent_t *pents;
    uh_sse_t *sse;               /* `events` listener slots */
    size_t n_sse;
    size_t sse_qsize;
    uint32_t sse_ping_ms;
    uint32_t sse_next_ping;
    mp_thread_mutex_t sse_mutex; /* queues: dispatch() (any thread) vs loop */
    mp_thread_mutex_t ws_mutex;   /* WebSocket queues and states: send() (any thread) vs loop */
    size_t ws_qsize;             /* send queue bytes per WebSocket client */
    struct _uh_wsroute_t *wsroutes;
    /* poll arrays grown by websocket(): the loop switches to them at its
     * top level (no nested pass uses the old ones then) */
    struct pollfd *volatile pfds_next;
    uh_pent_t *pents_next;
    size_t npoll_next;
    mp_thread_mutex_t close_mutex;
    int close_q[UH_CLOSE_QUEUE];
    volatile size_t n_close;
    void *tls;                   /* uh_tls_server_t, or NULL */
} uh_state_t;

typedef struct _uhttpd_request_obj_t {
    mp_obj_base_t base;
    uh_state_t *st;
    uh_conn_t *conn;             /* NULL when the request is over */
    uint8_t mflag;
} uhttpd_request_obj_t;

extern const mp_obj_type_t uhttpd_request_type;

/* ---- uh_io.c: platform pieces, fd bookkeeping -------------------------- */
uint32_t uh_ticks_ms(void);
static inline int32_t uh_diff(uint32_t a, uint32_t b) {
    return (int32_t)(a - b);
}
int uh_fd_track(int fd);
void uh_fd_untrack(int fd);
void uh_fd_close_all_tracked(void);
/* Close a socket this thread owns (the server thread, or one nobody polls). */
int uh_close_fd(int fd);
/* Any thread: have the server thread close fd (shut down at once, so a
 * blocked reader sees EOF).  Falls back to closing when the loop is gone. */
void uh_close_deferred(uh_state_t *st, int fd);
void uh_close_run_queue(uh_state_t *st);     /* server thread */
/* Blocking helpers for threads other than the server thread (the REPL). */
int uh_send_all_blocking(uh_io_t *io, const char *p, size_t len, uint32_t timeout_ms);
/* Strict lwIP emulation (UH_STRICT_LWIP): record which thread polls. */
void uh_strict_poll_fds(const struct pollfd *p, size_t n);

/* ---- uh_server.c: the loop, the thread, nested waits ------------------- */
void uh_state_start(uh_state_t *st);              /* GIL held: create thread */
void uh_thread_stop_wait(uh_state_t *st);         /* GIL held */
/* Wait (GIL released by the caller) until c's io is ready for `want`,
 * running nested loop passes meanwhile.  1 ready, 0 too slow (min_rate /
 * timeout), -1 server stopping or error. */
int uh_wait_io(uh_state_t *st, uh_conn_t *c, short want);

/* min_rate windows (uh_server.c). */
void uh_rate_start(uh_state_t *st, uh_conn_t *c, uint64_t expect);
static inline void uh_rate_progress(uh_conn_t *c, size_t n) {
    c->win_bytes += (uint32_t)(n > 0x7fffffff ? 0x7fffffff : n);
}
/* At or past the window's end: 1 too slow, else opens the next window. */
int uh_rate_check(uh_state_t *st, uh_conn_t *c, uint32_t now, uint64_t expect);

/* Point c's path and reply-head scratch at the buffers of the current
 * level: a handler at depth d uses level d-1's (taken in uh_serve), replies
 * the loop sends at pass depth d use level d's.  Levels are never used by
 * two at once: a pass at depth d is suspended while the handler it
 * dispatched runs. */
static inline void uh_conn_scratch(uh_state_t *st, uh_conn_t *c) {
    c->path = st->scratch + st->depth * st->scratch_size;
    c->tx = c->path + st->scratch_size - UH_TX_BUF;
}

/* ---- uh_http.c: HTTP requests and replies ------------------------------- */

/* Network I/O for handlers; GIL held on entry and exit, released inside.
 * On failure they mark the connection and raise OSError. */
void uh_send_gil(uh_state_t *st, uh_conn_t *c, const void *data, size_t len, int more);
mp_int_t uh_body_read(uh_state_t *st, uh_conn_t *c, char *dst, size_t n);
/* Body bytes in place: make some available at buf[rpos..rpos+ravail)
 * (receiving, and waiting, only when none are); returns ravail, 0 at the
 * end of the body; raises like uh_body_read.  uh_body_consume(c, k) marks
 * k of them read (they stay in the buffer until the next fill). */
size_t uh_body_fill(uh_state_t *st, uh_conn_t *c);
void uh_body_consume(uh_conn_t *c, size_t k);

#define UH_LEN_CHUNKED (-1)
#define UH_LEN_NONE (-2)

/* Response head into c->tx; returns its length.  body_len < 0: chunked
 * (or close-delimited for HTTP/1.0).  extra: raw "Name: v\r\n" lines. */
size_t uh_build_head(uh_state_t *st, uh_conn_t *c, int status, const char *status_str, size_t status_len,
    const char *mime, size_t mime_len, mp_obj_t headers, int cors, int64_t body_len, const char *extra);
/* A complete small reply (GIL held). */
void uh_reply_simple(uh_state_t *st, uh_conn_t *c, int status, const char *extra, const char *body);
void uh_send_continue(uh_state_t *st, uh_conn_t *c);

/* moduhttpd.c: routing, auth and the handler call (GIL held). */
void uh_handle_request(uh_state_t *st, uh_conn_t *c);
static inline const uh_header_t *uh_find_header(uh_conn_t *c, const char *name, size_t nlen) {
    return uh_request_header(&c->req, name, nlen);
}

void uh_conn_close(uh_state_t *st, uh_conn_t *c);      /* no GIL, server thread */
void uh_conn_linger(uh_state_t *st, uh_conn_t *c);     /* no GIL */
void uh_conn_finish_reply(uh_state_t *st, uh_conn_t *c); /* no GIL */
void uh_http_accept(uh_state_t *st, int fd);           /* no GIL */
void uh_http_process_pending(uh_state_t *st);          /* no GIL */

/* ---- uh_files.c ---------------------------------------------------------- */
void uh_files_alloc(uh_state_t *st);                      /* GIL held */
void uh_files_serve(uh_state_t *st, uh_conn_t *c, mp_obj_t cfg);   /* GIL held */
void uh_stream_pump(uh_state_t *st, uh_conn_t *c, short revents); /* no GIL */
void uh_stream_abort(uh_state_t *st, uh_conn_t *c, int status);   /* no GIL */
short uh_stream_events(uh_conn_t *c);
/* Make a complete temporary file the target (GIL held): rename, with the
 * remove-then-rename FAT needs; removes the temporary on failure.  0 or an
 * errno. */
int uh_commit(mp_obj_t tmp, mp_obj_t dst);
void uh_remove_quiet(mp_obj_t path);
extern const mp_obj_fun_builtin_var_t uh_recv_to_obj;
extern const mp_obj_fun_builtin_var_t uh_file_reply_obj;

/* ---- uh_sse.c ------------------------------------------------------------- */
void uh_sse_alloc(uh_state_t *st, size_t n, size_t qsize);         /* GIL held */
void uh_sse_accept(uh_state_t *st, uh_conn_t *c);                 /* GIL held */
mp_obj_t uh_sse_dispatch(uh_state_t *st, mp_obj_t data, mp_obj_t event); /* GIL held */
size_t uh_sse_count(uh_state_t *st);

/* ---- uh_wsapp.c ----------------------------------------------------------- */
void uh_wsapp_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target);   /* GIL held */
mp_obj_t uh_wsapp_add(uh_state_t *st, const mp_obj_t *args);           /* GIL held */
mp_obj_t uh_wsapp_broadcast(uh_state_t *st, mp_obj_t url, mp_obj_t data);

/* ---- uh_ws.c: answer a WebSocket upgrade on the REPL url and hand the
 * socket over to the REPL (GIL held).  On success the connection is
 * detached from the server (c->io.fd = -1; the loop then frees the slot). */
void uh_ws_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target);
void uh_ws_reset(void);
void uhttpd_repl_reap(void);
void uh_repl_server_gone(uh_state_t *st);

#endif
