/*
 * uhttpd: WebSocket upgrade for the REPL url (placeholder until the WebREPL
 * bridge lands): answers 501 so a client gets a clear status.
 */
#include "py/runtime.h"
#include "uh_server.h"

void uh_ws_upgrade(uh_state_t *st, uh_conn_t *c, mp_obj_t target) {
    (void)target;
    c->keep_alive = 0;
    uh_reply_simple(st, c, 501, NULL, "WebREPL is not available in this build\n");
}
