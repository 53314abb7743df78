/*
 * uhttpd: the server thread: the poll loop, nested waits, min_rate, the
 * thread's life (start, stop, soft reset).
 *
 * Invariant: the loop runs WITHOUT the GIL.  It knows the connection kinds
 * only through their tables (uh_kinds[] below): each adds its members to
 * the poll set, handles their events and their deadlines.
 *
 * Nested passes: a handler runs in this thread with the GIL.  When it must
 * wait on the network (uh_wait_io: a slow reader of its reply, a body that
 * did not fit body_buffer), it runs further passes of the loop with its own
 * connection in the set, so other clients are served meanwhile, and other
 * requests' handlers may run nested on the same stack (at most nest_max
 * levels; beyond that a complete request waits, "pending", until a level is
 * free).  Each depth has its own poll arrays.  A waiting connection must
 * move min_rate bytes per `timeout` window, so it cannot hold a level (or a
 * slot) for long.
 */
#include <string.h>
#include <stdio.h>

#include "py/runtime.h"
#include "py/mpthread.h"
#include "py/mphal.h"
#include "py/gc.h"
#include "py/mperrno.h"

#include "uh_server.h"

#if !MICROPY_PY_THREAD
#error "uhttpd needs MICROPY_PY_THREAD"
#endif
#if !MICROPY_PY_THREAD_GIL
#error "uhttpd needs the GIL (MICROPY_PY_THREAD_GIL): handlers rely on its atomicity"
#endif

/* The connection kinds.  Adding a kind: its file, and one row here. */
static const uh_kind_t *const uh_kinds[] = {
    &uh_kind_http,
    &uh_kind_sse,
    &uh_kind_repl,
    &uh_kind_wsapp,
};
#define UH_NKINDS (sizeof(uh_kinds) / sizeof(uh_kinds[0]))

/* ---- min_rate ---------------------------------------------------------------- */

void uh_rate_start(uh_state_t *st, uh_conn_t *c, uint64_t expect) {
    uint64_t need = (uint64_t)st->min_rate * st->timeout_ms / 1000;
    if (need > expect) {
        need = expect;
    }
    if (need > 0x7fffffff) {
        need = 0x7fffffff;
    }
    c->win_need = (uint32_t)need;
    c->win_bytes = 0;
    c->deadline = uh_ticks_ms() + st->timeout_ms;
}

int uh_rate_check(uh_state_t *st, uh_conn_t *c, uint32_t now, uint64_t expect) {
    (void)now;
    if (c->win_bytes < c->win_need || (c->win_need == 0 && c->win_bytes == 0 && expect > 0)) {
        return 1;
    }
    uh_rate_start(st, c, expect);
    return 0;
}

/* ---- one pass of the loop -------------------------------------------------- */

static void uh_accept(uh_state_t *st) {
    for (int i = 0; i < 64; i++) {
        int fd = accept(st->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop polling the listener briefly
                 * instead of spinning on it */
                st->accept_pause_until = uh_ticks_ms() + 100;
            }
            return;
        }
        uh_fd_track(fd);
        uh_set_nonblock(fd);
        uh_sock_tune(fd);
        uh_set_cloexec(fd);
        uh_http_accept(st, fd);
    }
}

/* lwIP's select() fails the whole call with EBADF when one socket in the set
 * is no longer valid.  Find it (one zero-timeout poll per entry) and hand
 * its owner a POLLNVAL so the owner closes it; the next pass rebuilds. */
static void uh_cull_bad(uh_state_t *st, struct pollfd *p, uh_pent_t *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct pollfd one = { .fd = p[i].fd, .events = p[i].events, .revents = 0 };
        int r = poll(&one, 1, 0);
        if ((r < 0 && errno == EBADF) || (r > 0 && (one.revents & POLLNVAL))) {
            mp_printf(&mp_plat_print, "uhttpd: dropping fd %d (invalid in the poll set)\n", p[i].fd);
            if (e[i].kind != NULL) {
                e[i].kind->ready(st, e[i].owner, POLLNVAL);
            }
        }
    }
}

/* One pass at the current depth.  wc (optional): a connection whose handler
 * waits for wev; the pass returns wc's revents (0 when it did not fire)
 * after at most max_ms (-1: until something happens). */
static short uh_loop_pass(uh_state_t *st, uh_conn_t *wc, short wev, int32_t max_ms) {
    if (st->pfds_next != NULL && st->depth == 0) {
        /* websocket() added members: take the larger poll arrays (nothing
         * else uses the old ones at the top level) */
        st->pents = st->pents_next;
        st->npoll = st->npoll_next;
        st->pfds = st->pfds_next;
        st->pfds_next = NULL;
    }
    size_t d = st->depth;
    struct pollfd *p = st->pfds + d * st->npoll;
    uh_pent_t *e = st->pents + d * st->npoll;
    st->wakeups++;
    uh_close_run_queue(st);
    if (st->pending_any && st->depth < st->nest_max) {
        uh_http_process_pending(st);
    }
    if (st->stop) {
        return 0;
    }
    uint32_t now = uh_ticks_ms();
    int32_t timeout = max_ms;
    size_t n = 0;
    p[n].fd = st->wake.rd;
    p[n].events = POLLIN;
    e[n].kind = NULL;
    e[n].owner = &st->wake;
    e[n].io = NULL;
    n++;
    if (uh_diff(now, st->accept_pause_until) >= 0) {
        p[n].fd = st->lfd;
        p[n].events = POLLIN;
        e[n].kind = NULL;
        e[n].owner = &st->lfd;
        e[n].io = NULL;
        n++;
    } else {
        int32_t left = uh_diff(st->accept_pause_until, now) + 1;
        if (timeout < 0 || left < timeout) {
            timeout = left;
        }
    }
    size_t wi = (size_t)-1;
    if (wc != NULL) {
        wi = n;
        p[n].fd = wc->io.fd;
        p[n].events = wev;
        e[n].kind = NULL;
        e[n].owner = wc;
        e[n].io = &wc->io;
        n++;
    }
    for (size_t k = 0; k < UH_NKINDS; k++) {
        n += uh_kinds[k]->prepare(st, p + n, e + n, st->npoll - n, &timeout, now);
    }
    for (size_t i = 0; i < n; i++) {
        p[i].revents = 0;
        if (e[i].io != NULL && uh_io_pending(e[i].io)) {
            timeout = 0;   /* decrypted bytes wait inside TLS */
        }
    }
    int r = uh_poll(p, n, timeout);
    if (r < 0) {
        if (errno == EBADF) {
            uh_cull_bad(st, p, e, n);
        }
        return 0;
    }
    short wrev = 0;
    for (size_t i = 0; i < n && !st->stop; i++) {
        short ev = p[i].revents;
        if (e[i].io != NULL && uh_io_pending(e[i].io)) {
            ev |= POLLIN;
        }
        if (ev == 0) {
            continue;
        }
        if (i == wi) {
            wrev = ev;
        } else if (e[i].owner == &st->wake) {
            uh_wakeup_drain(&st->wake);
        } else if (e[i].owner == &st->lfd) {
            uh_accept(st);
        } else if (e[i].kind != NULL) {
            /* the member may have moved on (closed, reused) in a nested
             * pass since the set was built: only its current fd counts */
            if (e[i].io == NULL || e[i].io->fd == p[i].fd) {
                e[i].kind->ready(st, e[i].owner, ev);
            }
        }
    }
    now = uh_ticks_ms();
    for (size_t k = 0; k < UH_NKINDS && !st->stop; k++) {
        uh_kinds[k]->tick(st, now);
    }
    return wrev;
}

int uh_wait_io(uh_state_t *st, uh_conn_t *c, short want) {
    if (st->thread_id != mp_thread_get_id() || c->state != UH_CS_BUSY) {
        /* only a handler (in the server thread) waits; replies the loop
         * itself sends are small and never wait */
        return -1;
    }
    uint32_t now = uh_ticks_ms();
    if (uh_diff(now, c->deadline) >= 0) {
        /* the window ran out while the handler computed: not the client's
         * fault; judge only time spent waiting on it */
        uh_rate_start(st, c, UINT64_MAX);
    }
    for (;;) {
        if (st->stop || c->io.fd < 0) {
            return -1;
        }
        now = uh_ticks_ms();
        if (uh_diff(now, c->deadline) >= 0 && uh_rate_check(st, c, now, UINT64_MAX)) {
            return 0;
        }
        int32_t left = uh_diff(c->deadline, now);
        if (left < 0) {
            left = 0;
        }
        short ev = uh_loop_pass(st, c, uh_io_events(&c->io, want), left + 1);
        if (ev & (POLLNVAL)) {
            return -1;
        }
        if (ev) {
            return 1;   /* ready, or an error the next I/O call reports */
        }
    }
}

static void uh_loop(uh_state_t *st) {
    while (!st->stop) {
        uh_loop_pass(st, NULL, 0, -1);
    }
}

static void uh_state_unlink(uh_state_t *st) {
    uh_state_t **pp = &MP_STATE_VM(uhttpd_servers);
    while (*pp != NULL) {
        if (*pp == st) {
            *pp = st->next;
            break;
        }
        pp = &(*pp)->next;
    }
    st->next = NULL;
}

/*
 * Soft reset on ESP32 (the reasoning; it cannot run here):
 *
 * ports/esp32/main.c calls mp_thread_deinit(), which vTaskDelete()s every
 * other task wherever it is, then gc_sweep_all() runs finalisers, then
 * mp_deinit() and a fresh heap.  Deleting this task inside select(), a
 * socket call or close() could leave lwIP's or the VFS's mutex held forever
 * or let tcpip_thread write into a freed stack.  So the build wraps
 * mp_thread_deinit at link time (-Wl,--wrap=mp_thread_deinit, see
 * native/micropython.cmake and .mk): uh_stop_all_servers() below asks every
 * server to stop, wakes it and waits (bounded) until its thread has left the
 * loop, closed its sockets and returned, and only then are threads deleted.
 * A server thread that cannot stop in time (a handler in an endless loop,
 * or one blocked in a socket call of its own) is deleted as before: then
 * the old risk remains, which only such a handler can bring back.
 *
 * MicroPython 1.25.0's esp32 port can delete a thread twice when it ended
 * just before mp_thread_deinit (fixed upstream in e1ab04e, v1.26): the
 * finished task's pre-deletion hook runs in the idle task, which may not
 * have run yet.  Whenever a server thread ended in this cycle (stopped
 * here, or by close() just before the reset), the hook sleeps a few ticks
 * so the idle task reaps those tasks first.  Threads of your own (_thread)
 * still need MicroPython >= 1.26 for the general fix.
 *
 * Left behind in static memory: the fd bitmap (uh_io.c; all closed by then)
 * and the module's cycle flag, which the hook clears so that the next
 * import's __init__ starts afresh (and a re-import within a cycle does
 * nothing).
 */
/* A server thread ended in this reset cycle (see the deinit hook). */
static volatile uint8_t uh_thread_ended;

static void *uh_thread_entry(void *arg) {
    uh_state_t *st = arg;
    /* Take the GIL before touching thread state: the creator adjusts
     * st->stack_size after the thread already runs (micropython-notes 2). */
    MP_THREAD_GIL_ENTER();
    mp_state_thread_t ts;
    /* The stack check fires UH_STACK_MARGIN before the end: C code between
     * two checks (imports, the VFS, libc) must not run off the stack. */
    size_t limit = st->stack_size > 2 * UH_STACK_MARGIN ? st->stack_size - UH_STACK_MARGIN : st->stack_size / 2;
    mp_thread_init_state(&ts, limit, NULL, NULL);
    /* Only a "ready" thread has its stack scanned by the GC. */
    mp_thread_start();
    st->thread_id = mp_thread_get_id();

    uh_port_thread_init();

    MP_THREAD_GIL_EXIT();
    uh_loop(st);
    for (size_t k = 0; k < UH_NKINDS; k++) {
        uh_kinds[k]->shutdown(st);
    }
    uh_close_run_queue(st);
    MP_THREAD_GIL_ENTER();
    uh_repl_server_gone(st);
    if (st->lfd >= 0) {
        uh_close_fd(st->lfd);
        st->lfd = -1;
    }
    uh_wakeup_close(&st->wake);
    uh_state_unlink(st);
    uh_thread_ended = 1;
    st->running = 0;
    mp_thread_finish();
    MP_THREAD_GIL_EXIT();
    return NULL;
}

void uh_state_start(uh_state_t *st) {
    st->running = 1;
    st->stack_size = UH_THREAD_STACK;
    st->next = MP_STATE_VM(uhttpd_servers);
    MP_STATE_VM(uhttpd_servers) = st;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_thread_create(uh_thread_entry, st, &st->stack_size);
        nlr_pop();
    } else {
        uh_state_unlink(st);
        st->running = 0;
        nlr_jump(nlr.ret_val);
    }
}

/* Stop the thread and wait until it has closed its sockets (GIL held).
 * From inside the server thread (a handler calling close()) only ask. */
void uh_thread_stop_wait(uh_state_t *st) {
    if (!st->running) {
        return;
    }
    st->stop = 1;
    uh_wakeup_signal(&st->wake);
    if (st->thread_id != 0 && st->thread_id == mp_thread_get_id()) {
        return;
    }
    while (st->running) {
        MP_THREAD_GIL_EXIT();
        uh_sleep_ms(1);
        MP_THREAD_GIL_ENTER();
    }
}

/* Stop every server (bounded): at exit, and before a soft reset deletes
 * threads.  GIL held by the caller.  Returns how many did not stop. */
static int uh_stop_all_servers(uint32_t bound_ms) {
    for (uh_state_t *s = MP_STATE_VM(uhttpd_servers); s != NULL; s = s->next) {
        s->stop = 1;
        uh_wakeup_signal(&s->wake);
    }
    uint32_t start = uh_ticks_ms();
    for (;;) {
        int left = 0;
        for (uh_state_t *s = MP_STATE_VM(uhttpd_servers); s != NULL; s = s->next) {
            if (s->running && s->thread_id != mp_thread_get_id()) {
                left++;
            }
        }
        if (left == 0 || uh_diff(uh_ticks_ms(), start) >= (int32_t)bound_ms) {
            return left;
        }
        MP_THREAD_GIL_EXIT();
        uh_sleep_ms(1);
        MP_THREAD_GIL_ENTER();
    }
}

void uh_module_cycle_end(void);   /* moduhttpd.c */

#if UH_WRAP_DEINIT
void __real_mp_thread_deinit(void);

void __wrap_mp_thread_deinit(void) {
    /* Called by the main thread at exit (unix) and at soft reset (ESP32),
     * with the GIL held and the VM still usable. */
    if (MP_STATE_VM(uhttpd_servers) != NULL) {
        uh_stop_all_servers(2000);
    }
    #if defined(ESP_PLATFORM)
    if (uh_thread_ended) {
        /* let the idle task run the pre-deletion hook of the tasks that
         * ended (the 1.25 double-delete bug, see above) */
        MP_THREAD_GIL_EXIT();
        vTaskDelay(pdMS_TO_TICKS(20) ? pdMS_TO_TICKS(20) : 2);
        MP_THREAD_GIL_ENTER();
    }
    #endif
    uh_thread_ended = 0;
    uh_module_cycle_end();
    __real_mp_thread_deinit();
}
#endif

int uh_stop_all(void) {
    return uh_stop_all_servers(5000);
}

MP_REGISTER_ROOT_POINTER(struct _uh_state_t *uhttpd_servers);
