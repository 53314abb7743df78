/*
 * uhttpd: the server core shared by the loop (uh_server.c) and the Python
 * bindings (moduhttpd.c).
 *
 * Threading model (design.md section 2): one native thread per Server owns
 * the listening socket and every connection and multiplexes them with
 * poll().  The loop runs WITHOUT the GIL; it takes the GIL only to run Python
 * (auth, routing callbacks, handlers) and to touch MicroPython objects, and
 * every wait on the network (poll, recv, send) inside a handler releases it
 * again.  All buffers are allocated once when the server starts.
 */
#ifndef UHTTPD_UH_SERVER_H
#define UHTTPD_UH_SERVER_H

#include "py/obj.h"
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
};

/* Connection states. */
enum {
    UH_CS_FREE = 0,
    UH_CS_HEAD,        /* waiting for / reading a request head */
    UH_CS_BUSY,        /* a request is being served (handler running) */
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
    int fd;
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
    uint16_t err_status;   /* status to answer after a body read failure */
    char *buf;             /* cap bytes, allocated once */
    size_t cap;
    size_t len;
    size_t head_len;
    size_t rpos;           /* unread (decoded) body bytes: buf[rpos..rpos+ravail) */
    size_t ravail;
    uint64_t body_left;    /* Content-Length bytes not yet handed out (incl. ravail) */
    uint64_t body_total;   /* decoded chunked bytes so far */
    uh_chunked_t chunk;
    uh_request_t req;
    uint32_t deadline;
    uint32_t stamp;        /* last activity, for closing the oldest idle */
    /* streaming (uh_files.c): all set up with the GIL, used by the loop */
    uint8_t next_state;    /* UH_CS_FILE_TX / UH_CS_FILE_RX after the handler */
    uint16_t rx_status;    /* upload: 201 created or 200 replaced */
    int file_fd;           /* VfsPosix fd for sendfile(), else -1 */
    mp_obj_t file;         /* open VFS file or MP_OBJ_NULL */
    mp_obj_t rx_tmp;       /* upload: temporary path beside the target */
    mp_obj_t rx_dst;       /* upload: the target path */
    char *fbuf;            /* st->file_block bytes (serve()/receive() set up) */
    size_t fpos, fend;     /* pending bytes in fbuf */
    uint64_t file_off;     /* download: next file offset (sendfile) */
    uint64_t file_left;    /* download: bytes still to send */
} uh_conn_t;

struct _uhttpd_request_obj_t;

/* A Server-Sent Events listener (uh_sse.c). */
typedef struct {
    int fd;
    size_t len;                  /* queued bytes in q */
    char *q;                     /* sse_qsize bytes, allocated at start */
} uh_sse_t;

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
    mp_uint_t thread_id;
    size_t stack_size;
    size_t max_conns;
    size_t max_header;
    uint64_t max_body;
    uint32_t timeout_ms;
    uint32_t accept_pause_until;
    mp_obj_t auth;               /* bytes (basic) or callable (custom) */
    mp_obj_t file_acl;           /* file_acl(cb) callable or None */
    mp_obj_t ext_path;           /* external storage mount path (str) */
    size_t file_block;           /* bytes per file block (per connection) */
    mp_obj_t routes;             /* list of (pattern, mask, kind, target) */
    uh_conn_t *conns;
    struct pollfd *pfds;
    uh_conn_t **pconn;           /* pfds[i] -> connection (NULL for others) */
    uh_sse_t *sse;               /* `events` listener slots */
    size_t n_sse;
    size_t sse_qsize;
    uint32_t sse_ping_ms;
    uint32_t sse_next_ping;
    mp_thread_mutex_t sse_mutex; /* queues: dispatch() (any thread) vs loop */
    char *tx;                    /* UH_TX_BUF: response head scratch */
    char *pathbuf;               /* max_header + 1: decoded request path */
    size_t path_len;
    struct _uhttpd_request_obj_t *reqobj;
} uh_state_t;

typedef struct _uhttpd_request_obj_t {
    mp_obj_base_t base;
    uh_state_t *st;
    uh_conn_t *conn;             /* NULL when the request is over */
    uint8_t mflag;
} uhttpd_request_obj_t;

extern const mp_obj_type_t uhttpd_request_type;

/* uh_server.c */
uint32_t uh_ticks_ms(void);
void uh_state_start(uh_state_t *st);              /* GIL held: create thread */
void uh_thread_stop_wait(uh_state_t *st);         /* GIL held */
int uh_fd_track(int fd);
void uh_fd_untrack(int fd);
void uh_fd_close_all_tracked(void);

/* Network I/O for handlers; GIL held on entry and exit, released inside.
 * On failure they mark the connection and raise OSError. */
void uh_send_gil(uh_state_t *st, uh_conn_t *c, const void *data, size_t len, int more);
mp_int_t uh_body_read(uh_state_t *st, uh_conn_t *c, char *dst, size_t n);

#define UH_LEN_CHUNKED (-1)
#define UH_LEN_NONE (-2)

/* Response head into st->tx; returns its length.  body_len < 0: chunked
 * (or close-delimited for HTTP/1.0).  extra: raw "Name: v\r\n" lines. */
size_t uh_build_head(uh_state_t *st, uh_conn_t *c, int status, const char *status_str, size_t status_len,
    const char *mime, size_t mime_len, mp_obj_t headers, int cors, int64_t body_len, const char *extra);
/* A complete small reply (GIL held). */
void uh_reply_simple(uh_state_t *st, uh_conn_t *c, int status, const char *extra, const char *body);

/* moduhttpd.c: routing, auth and the handler call (GIL held). */
void uh_handle_request(uh_state_t *st, uh_conn_t *c);
const uh_header_t *uh_find_header(uh_conn_t *c, const char *name, size_t nlen);

void uh_conn_close(uh_state_t *st, uh_conn_t *c);      /* no GIL */
void uh_conn_linger(uh_state_t *st, uh_conn_t *c);     /* no GIL */
int uh_send_all_nogil(int fd, const char *p, size_t len, int more, uint32_t timeout_ms);
ssize_t uh_recv_wait(int fd, char *dst, size_t n, uint32_t timeout_ms);

/* uh_files.c */
void uh_files_alloc(uh_state_t *st);                      /* GIL held */
void uh_files_serve(uh_state_t *st, uh_conn_t *c, mp_obj_t cfg);   /* GIL held */
void uh_stream_pump(uh_state_t *st, uh_conn_t *c, short revents); /* no GIL */
void uh_stream_abort(uh_state_t *st, uh_conn_t *c, int status);   /* no GIL */
void uh_conn_finish_reply(uh_state_t *st, uh_conn_t *c);          /* no GIL */
extern const mp_obj_fun_builtin_var_t uh_recv_to_obj;
extern const mp_obj_fun_builtin_var_t uh_file_reply_obj;

/* uh_sse.c */
void uh_sse_alloc(uh_state_t *st, size_t n, size_t qsize);         /* GIL held */
void uh_sse_accept(uh_state_t *st, uh_conn_t *c);                 /* GIL held */
mp_obj_t uh_sse_dispatch(uh_state_t *st, mp_obj_t data, mp_obj_t event); /* GIL held */
size_t uh_sse_prepare(uh_state_t *st, struct pollfd *p);          /* no GIL */
void uh_sse_handle(uh_state_t *st, struct pollfd *p, size_t n);   /* no GIL */
int32_t uh_sse_tick(uh_state_t *st, uint32_t now);                /* no GIL */
size_t uh_sse_count(uh_state_t *st);
void uh_sse_close_all(uh_state_t *st);

/* uh_ws.c: answer a WebSocket upgrade on the REPL url and hand the socket
 * over to the REPL (GIL held).  On success the connection is detached from
 * the server: set c->fd = -1 (the loop then frees the slot). */
void uh_ws_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target);
int uh_ws_notify_fd(void);      /* no GIL */
void uh_ws_notify(void);        /* GIL held */
void uh_ws_reset(void);
void uhttpd_repl_reap(void);

#endif
