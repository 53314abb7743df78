/*
 * uhttpd: the platform seam.  Everything that differs between the unix host
 * build (pthreads, Linux sockets) and ESP32 (FreeRTOS task, lwIP sockets)
 * lives here and in the "platform pieces" of uh_io.c; the rest of native/
 * uses BSD sockets and MicroPython's API.
 *
 * lwIP rules (design.md section 8), followed on every platform:
 *  - only the server thread closes a socket its loop polls (lwIP's select()
 *    fails the whole call with EBADF when another thread closed one);
 *  - no SO_SNDBUF, no POLLHUP, no FD_CLOEXEC on lwIP: UH_HAVE_* say what
 *    exists, and code that uses them degrades without them.
 * UH_STRICT_LWIP=1 (a host test build, see the Makefile) compiles the host
 * as lwIP would: the options lwIP lacks are compiled out, a POLLNVAL from
 * poll() aborts loudly, and closing a socket the server thread polls from
 * another thread aborts too.  The suite runs on that build in CI.
 */
#ifndef UHTTPD_UH_PORT_H
#define UHTTPD_UH_PORT_H

#include <stdint.h>
#include <errno.h>

#if defined(ESP_PLATFORM)
/* ---- ESP32 (ESP-IDF, lwIP) ---- */
#include "lwip/sockets.h"
#include "lwip/netdb.h"
#include <fcntl.h>
#include <sys/poll.h>
#define UH_THREAD_STACK (16 * 1024)      /* bytes; handlers run on it */
/* MicroPython's stack check fires this many bytes before the real end of
 * the stack (C frames below the check point, ISRs on Xtensa). */
#define UH_STACK_MARGIN (2048)
#define UH_SEND_FLAGS (0)
#define UH_SEND_MORE (0)
/* lwIP has no pipe(): the wakeup channel is a UDP socket bound to loopback
 * that sends to itself (the esp_http_server control-socket approach). */
#define UH_WAKEUP_UDP (1)
#define UH_HAVE_SNDBUF (0)
#define UH_HAVE_POLLHUP (0)
#define UH_HAVE_CLOEXEC (0)
#else
/* ---- unix ---- */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <signal.h>
#include <pthread.h>
/* Handlers run on this thread: deep enough for a handler that imports
 * modules and recurses a little, and sanitizer builds need more. */
#if defined(__SANITIZE_ADDRESS__) || defined(UH_BIG_STACK)
#define UH_THREAD_STACK (1024 * 1024)
#else
#define UH_THREAD_STACK (256 * 1024)
#endif
/* The stack check fires this far before the end, so that C code between
 * two checks (the import machinery, the VFS, libc) never runs off the end. */
#define UH_STACK_MARGIN (32 * 1024)
#ifdef MSG_NOSIGNAL
#define UH_SEND_FLAGS (MSG_NOSIGNAL)
#else
#define UH_SEND_FLAGS (0)
#endif
#ifdef MSG_MORE
#define UH_SEND_MORE (MSG_MORE)
#else
#define UH_SEND_MORE (0)
#endif
#define UH_WAKEUP_UDP (0)
#if UH_STRICT_LWIP
#define UH_HAVE_SNDBUF (0)
#define UH_HAVE_POLLHUP (0)
#define UH_HAVE_CLOEXEC (0)
#else
#define UH_HAVE_SNDBUF (1)
#define UH_HAVE_POLLHUP (1)
#define UH_HAVE_CLOEXEC (1)
#endif
#endif

#if UH_HAVE_POLLHUP
#define UH_POLLHUP (POLLHUP)
#else
#define UH_POLLHUP (0)
#endif

/* Wakeup channel: lets close() and dispatch() (any thread) interrupt the
 * server thread's poll().  rd is polled; write one byte to wr to wake. */
typedef struct {
    int rd;
    int wr;
} uh_wakeup_t;

int uh_wakeup_open(uh_wakeup_t *w);
void uh_wakeup_signal(uh_wakeup_t *w);
void uh_wakeup_drain(uh_wakeup_t *w);
void uh_wakeup_close(uh_wakeup_t *w);

int uh_poll(struct pollfd *fds, size_t n, int timeout_ms);
void uh_sleep_ms(uint32_t ms);
int uh_set_nonblock(int fd);
void uh_set_cloexec(int fd);
void uh_sock_tune(int fd);               /* TCP_NODELAY etc. */
void uh_port_thread_init(void);          /* in the server thread, at start */

#endif
