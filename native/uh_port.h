/*
 * uhttpd: the platform seam.  Everything that differs between the unix host
 * build (pthreads, Linux sockets) and ESP32 (FreeRTOS task, lwIP sockets)
 * lives here; the rest of native/ uses BSD sockets and MicroPython's API.
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
#define UH_THREAD_STACK (16 * 1024)      /* bytes; handlers run on it */
#define UH_SEND_FLAGS (0)
#define UH_SEND_MORE (0)
/* lwIP has no pipe(): the wakeup channel is a UDP socket bound to loopback
 * that sends to itself (the esp_http_server control-socket approach). */
#define UH_WAKEUP_UDP (1)
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
#define UH_THREAD_STACK (0)              /* port default (8k words) */
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
#endif

#if defined(ESP_PLATFORM)
#include <sys/poll.h>
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
void uh_sock_tune(int fd);               /* TCP_NODELAY etc. */
int uh_close_fd(int fd);
void uh_port_thread_init(void);        /* in the server thread, at start */

#endif
