/*
 * uhttpd: compile-time defaults and ceilings.  A board overrides any of them
 * from its mpconfigboard.h (or with -D); Python keyword arguments of
 * uhttpd.Server set the run-time values within these ceilings.
 */
#ifndef UHTTPD_UH_CONFIG_H
#define UHTTPD_UH_CONFIG_H

/* Simultaneous HTTP connections (SSE listeners are counted apart). */
#ifndef UH_DEFAULT_MAX_CONNS
#define UH_DEFAULT_MAX_CONNS (4)
#endif
#ifndef UH_CEIL_MAX_CONNS
#define UH_CEIL_MAX_CONNS (256)
#endif

/* Request line + headers, bytes; over it: 414 (line) or 431 (headers). */
#ifndef UH_DEFAULT_MAX_HEADER
#if defined(ESP_PLATFORM)
#define UH_DEFAULT_MAX_HEADER (1024)
#else
#define UH_DEFAULT_MAX_HEADER (2048)
#endif
#endif
#ifndef UH_MIN_MAX_HEADER
#define UH_MIN_MAX_HEADER (256)
#endif
#ifndef UH_CEIL_MAX_HEADER
#define UH_CEIL_MAX_HEADER (65536)
#endif

/* Headers per request; more: 431. */
#ifndef UH_MAX_HEADERS
#define UH_MAX_HEADERS (24)
#endif

/* Response header scratch (one per server). */
#ifndef UH_TX_BUF
#define UH_TX_BUF (1024)
#endif

/* Seconds for a request head, body inactivity and idle keep-alive. */
#ifndef UH_DEFAULT_TIMEOUT_MS
#define UH_DEFAULT_TIMEOUT_MS (5000)
#endif

/* Largest request body accepted (413 above). */
#ifndef UH_DEFAULT_MAX_BODY
#define UH_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#endif

/* listen() backlog: a burst of 32 clients must not lose SYNs. */
#ifndef UH_LISTEN_BACKLOG
#define UH_LISTEN_BACKLOG (128)
#endif

/* After an error reply the socket is half-closed and read until EOF for at
 * most this long, so the client sees the reply instead of a reset. */
#ifndef UH_LINGER_MS
#define UH_LINGER_MS (1000)
#endif

/* File streaming block (bytes per connection, allocated by serve() or
 * receive()), settable per server with Server(file_block=...). */
#ifndef UH_DEFAULT_FILE_BLOCK
#if defined(ESP_PLATFORM)
#define UH_DEFAULT_FILE_BLOCK (2048)
#else
#define UH_DEFAULT_FILE_BLOCK (16384)
#endif
#endif

/* Per-listener SSE queue (bytes, allocated at start); a listener whose
 * queue cannot take the next event is dropped. */
#ifndef UH_DEFAULT_EVENT_QUEUE
#if defined(ESP_PLATFORM)
#define UH_DEFAULT_EVENT_QUEUE (1024)
#else
#define UH_DEFAULT_EVENT_QUEUE (8192)
#endif
#endif

/* A request body up to this size is received by the loop before the
 * handler runs, so read() never waits on the network for it (per
 * connection, allocated at start).  Settable with Server(body_buffer=...). */
#ifndef UH_DEFAULT_BODY_BUFFER
#if defined(ESP_PLATFORM)
#define UH_DEFAULT_BODY_BUFFER (2048)
#else
#define UH_DEFAULT_BODY_BUFFER (8192)
#endif
#endif

/* Bytes per second a body, an upload or a transfer must keep up, averaged
 * over each `timeout` window (408 and close below it). */
#ifndef UH_DEFAULT_MIN_RATE
#define UH_DEFAULT_MIN_RATE (1024)
#endif

/* Most handlers on the server thread's stack at once: a handler that waits
 * on a slow client lets the loop run other requests' handlers meanwhile,
 * nested on the same stack. */
#ifndef UH_NEST_MAX
#if defined(ESP_PLATFORM)
#define UH_NEST_MAX (2)
#else
#define UH_NEST_MAX (4)
#endif
#endif

/* Forms (uh_form.c): bytes for one multipart part's header block (its
 * lines, plus the name and filename when they need unescaping); a larger
 * block is 400.  Per connection, allocated when a server first parses a
 * multipart body. */
#ifndef UH_PART_HEADER
#define UH_PART_HEADER (1024)
#endif

/* File parts one multipart upload to the receiver may store (each holds a
 * temporary file until the body is complete); more: 413. */
#ifndef UH_MAX_UPLOAD_FILES
#define UH_MAX_UPLOAD_FILES (16)
#endif

/* Host test build that behaves like lwIP (see uh_port.h). */
#ifndef UH_STRICT_LWIP
#define UH_STRICT_LWIP (0)
#endif

/* HTTPS (native/uh_tls.c over mbedTLS).  UH_TLS is set by the build, not by
 * mpconfigboard.h: uh_tls.c includes no MicroPython header, so only a -D
 * reaches it (native/micropython.mk turns it off when the port has no
 * mbedTLS; on ESP32 the IDF's mbedTLS is always there). */
#ifndef UH_TLS
#define UH_TLS (1)
#endif

/* TLS session-ID cache entries per server (a few hundred bytes each; the
 * session tickets carry resumption for clients that support them). */
#ifndef UH_TLS_CACHE_ENTRIES
#if defined(ESP_PLATFORM)
#define UH_TLS_CACHE_ENTRIES (4)
#else
#define UH_TLS_CACHE_ENTRIES (16)
#endif
#endif

/* Lifetime of TLS session tickets and cached sessions, seconds. */
#ifndef UH_TLS_SESSION_LIFETIME
#define UH_TLS_SESSION_LIFETIME (86400)
#endif

/* Send queue per application WebSocket client (bytes, allocated by
 * websocket(); at least one max_msg frame).  A client that falls this far
 * behind is closed with 1008. */
#ifndef UH_DEFAULT_WS_QUEUE
#if defined(ESP_PLATFORM)
#define UH_DEFAULT_WS_QUEUE (2048)
#else
#define UH_DEFAULT_WS_QUEUE (16384)
#endif
#endif

#endif
