# Test app: the application WebSocket API (tests/test_websocket.py).
# argv: k=v options: clients, max_msg, ws_queue, max_conns, timeout,
# acl=basic|custom, cors=1, origins=a,b (allowed Origin values),
# cert=PATH key=PATH (HTTPS).  Prints READY <port>.
#
#   /ws      WebSocket: echoes; "whoami" -> "id <ws.id>"; "close <code>"
#            closes from the callback; "to <id> <text>" sends <text> to
#            another client; "ack <n>" records flood progress (no reply);
#            "raise" raises
#   /ws      plain GET (no upgrade): a route of its own, "plain GET"
#   /only    WebSocket with no plain route (a plain GET gets 404)
#   /stats   JSON: open ids, [id, code] per on_close (the last 64), counts
#   /send?id=&data=[&bin=1][&times=N]   ws.send() from another handler (the id
#            may be the last closed client's: its kept object)
#   /later?id=&data=          ws.send() from the main thread
#   /open?id=                 ws.open
#   /close?id=&code=          ws.close(code) from a handler
#   /broadcast?data=[&bin=1][&times=N][&url=/ws]  (times: data repeated)
#   /mem     gc.collect(), then gc.mem_alloc()
#   /stop    the main thread closes the server
#   /flood?n=&size=&extra=&window=&readers=1,2
#            the main thread broadcasts numbered messages of `size` bytes,
#            never more than `window` ahead of the slowest reader's ack,
#            until one client stops counting (it fell behind) and `extra`
#            more went out, or n in all; then "end".  /flood reports.
import gc
import json
import sys
import time
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

kw = {}
if opts.get("acl") == "basic":
    kw["acl"] = uhttpd.AUTH_BASIC
    kw["auth"] = b"Basic dTpw"   # u:p


def custom_auth(req):
    tok = req.header("x-token")
    if tok == b"let-me-in":
        return True
    if tok is not None:
        return 403
    return False


if opts.get("acl") == "custom":
    kw["acl"] = uhttpd.AUTH_CUSTOM
    kw["auth"] = custom_auth
if "ws_queue" in opts:
    kw["ws_queue"] = int(opts["ws_queue"])
if "cert" in opts:
    kw["tls"] = (opts["cert"], opts["key"])

srv = uhttpd.Server(0, host="127.0.0.1", routes=16, cors=opts.get("cors") == "1",
                    max_conns=int(opts.get("max_conns", "4")),
                    timeout=float(opts.get("timeout", "5")), **kw)
live = {}      # ws.id -> ws, from on_open to on_close
closed = []    # [ws.id, code] per on_close, the last 64
stats = {"msgs": 0, "opened": 0}
pending = []   # (id, data) for the main thread to send
acks = {}      # ws.id -> the last flood message it acknowledged
flood = {}
gone = {}      # the last closed ws object, kept (its id -> it)
stop = []


def on_message(ws, msg):
    stats["msgs"] += 1
    if isinstance(msg, str):
        if msg.startswith("ack "):
            acks[ws.id] = int(msg[4:])
            return
        if msg == "whoami":
            ws.send("id %d" % ws.id)
            return
        if msg == "raise":
            raise ValueError("a callback that raises, on purpose")
        if msg.startswith("close "):
            ws.close(int(msg[6:]))
            return
        if msg.startswith("to "):
            _, i, text = msg.split(" ", 2)
            other = live.get(int(i))
            ws.send("sent %s" % (other is not None and other.send(text)))
            return
    ws.send(msg)


def on_open(ws):
    stats["opened"] += 1
    live[ws.id] = ws


def on_close(ws, code):
    live.pop(ws.id, None)
    acks.pop(ws.id, None)
    closed.append([ws.id, code])
    gone.clear()
    gone[ws.id] = ws
    if len(closed) > 64:
        closed.pop(0)


origins = opts["origins"].split(",") if "origins" in opts else None
srv.websocket("/ws", on_message, clients=int(opts.get("clients", "4")),
              max_msg=int(opts.get("max_msg", "4096")), on_open=on_open, on_close=on_close,
              origins=origins)
srv.websocket("/only", on_message, clients=1)


def plain(req):
    req.write("plain GET", mime="text/plain")


def get_stats(req):
    req.write(json.dumps({"open": sorted(live), "closed": closed, "msgs": stats["msgs"],
                          "opened": stats["opened"]}), mime="application/json")


def data_of(req):
    data = (req.query("data") or b"") * int(req.query("times") or b"1")
    return data if req.query("bin") is not None else data.decode()


def send(req):
    i = int(req.query("id"))
    ws = live.get(i) or gone.get(i)
    if ws is None:
        req.write("no such client", status=404)
        return
    req.write(str(ws.send(data_of(req))))


def is_open(req):
    i = int(req.query("id"))
    ws = live.get(i) or gone.get(i)
    req.write("no such client" if ws is None else str(ws.open))


def later(req):
    pending.append((int(req.query("id")), data_of(req)))
    req.write("queued")


def close(req):
    ws = live.get(int(req.query("id")))
    if ws is None:
        req.write("no such client", status=404)
        return
    ws.close(code=int(req.query("code") or b"1000"))
    req.write("ok")


def broadcast(req):
    url = (req.query("url") or b"/ws").decode()
    req.write(str(srv.broadcast(url, data_of(req))))


def mem(req):
    gc.collect()
    req.write(str(gc.mem_alloc()))


def start_flood(req):
    if req.query("n") is None:
        req.write(json.dumps(flood), mime="application/json")
        return
    flood.clear()
    flood.update({"n": int(req.query("n")), "size": int(req.query("size")),
                  "extra": int(req.query("extra")), "window": int(req.query("window")),
                  "readers": [int(i) for i in req.query("readers").split(b",")],
                  "sent": 0, "first": None, "counts": [], "dropped_at": None, "done": False})
    req.write("started")


srv.route("/ws", uhttpd.GET, plain)
srv.route("/stats", uhttpd.GET, get_stats)
srv.route("/send", uhttpd.GET, send)
srv.route("/later", uhttpd.GET, later)
srv.route("/open", uhttpd.GET, is_open)
srv.route("/close", uhttpd.GET, close)
srv.route("/broadcast", uhttpd.GET, broadcast)
srv.route("/mem", uhttpd.GET, mem)
srv.route("/stop", uhttpd.GET, lambda req: (stop.append(1), req.write("stopping")))
srv.route("/flood", uhttpd.GET, start_flood)


def flood_step(f):
    # one more numbered message when every reader has acknowledged all
    # but the last `window`; False when there is nothing to do
    low = min(acks.get(i, -1) for i in f["readers"])
    if f["sent"] - low - 1 >= f["window"]:
        return False
    n = f["sent"]
    c = srv.broadcast("/ws", "%08d" % n + "." * (f["size"] - 8))
    if f["first"] is None:
        f["first"] = c
    if c < f["first"] and f["dropped_at"] is None:
        f["dropped_at"] = n
    if not f["counts"] or f["counts"][-1][1] != c:
        f["counts"].append([n, c])
    f["sent"] = n + 1
    if f["sent"] >= f["n"] or (f["dropped_at"] is not None and f["sent"] >= f["dropped_at"] + f["extra"]):
        srv.broadcast("/ws", "end")
        f["done"] = True
    return True


print("READY", srv.port())
try:
    while True:
        while pending:
            i, data = pending.pop(0)
            if i in live:
                live[i].send(data)
        if stop:
            srv.close()   # open WebSockets get 1001
            stop.clear()
        busy = False
        if flood and not flood["done"]:
            busy = flood_step(flood)
        if not busy:
            time.sleep_ms(1)
except KeyboardInterrupt:
    pass
