# Test app: application WebSockets (design.md section 10), an echo at /echo.
# argv: clients=N max_msg=N max_conns=N.  Prints READY <port>.
import sys
import json
import time
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

srv = uhttpd.Server(0, host="127.0.0.1", max_conns=int(opts.get("max_conns", "4")))
live = {}      # ws.id -> ws, from on_open to on_close
closed = []    # [ws.id, code] per on_close, in order
stats = {"msgs": 0, "opened": 0}
pending = []   # (id, data) for the main thread to send


def on_message(ws, msg):
    stats["msgs"] += 1
    ws.send(msg)


def on_open(ws):
    stats["opened"] += 1
    live[ws.id] = ws


def on_close(ws, code):
    live.pop(ws.id, None)
    closed.append([ws.id, code])


srv.websocket("/echo", on_message, clients=int(opts.get("clients", "4")),
              max_msg=int(opts.get("max_msg", "65536")), on_open=on_open, on_close=on_close)


def get_stats(req):
    req.write(json.dumps({"open": sorted(live), "closed": closed, "msgs": stats["msgs"],
                          "opened": stats["opened"]}), mime="application/json")


def close(req):
    ws = live.get(int(req.query("id")))
    if ws is None:
        req.write("no such client", status=404)
        return
    ws.close(code=int(req.query("code") or b"1000"))
    req.write("ok")


def broadcast(req):
    data = req.query("data") or b""
    if req.query("bin") is None:
        data = data.decode()
    req.write(str(srv.broadcast("/echo", data)))


def later(req):
    # ws.send from the main thread (the loop below), not the server thread
    pending.append((int(req.query("id")), (req.query("data") or b"").decode()))
    req.write("queued")


srv.route("/stats", uhttpd.GET, get_stats)
srv.route("/close", uhttpd.GET, close)
srv.route("/broadcast", uhttpd.GET, broadcast)
srv.route("/later", uhttpd.GET, later)
print("READY", srv.port())

try:
    while True:
        while pending:
            i, data = pending.pop(0)
            if i in live:
                live[i].send(data)
        time.sleep_ms(5)
except KeyboardInterrupt:
    pass
