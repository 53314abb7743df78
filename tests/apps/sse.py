# Test app: Server-Sent Events.  argv: events=N ping=S queue=B
import sys
import time
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v
srv = uhttpd.Server(0, host="127.0.0.1", events=int(opts.get("events", "2")),
                    event_ping=float(opts.get("ping", "15")),
                    event_queue=int(opts.get("queue", "4096")) if "queue" in opts else None)
srv.event("/events")


def send(req):
    q = req.parse_qs()
    data = q.get(b"data", b"hello").decode()
    ev = q.get(b"event")
    n = int(q.get(b"n", b"1"))
    ok = True
    for i in range(n):
        ok = srv.dispatch(data.replace("\\n", "\n") if n == 1 else "%s %d" % (data, i),
                          ev.decode() if ev else None)
    req.write("%s" % ok, mime="text/plain")


def listeners(req):
    req.write(str(srv._core.listeners()), mime="text/plain")


def timed(req):
    # dispatch from the handler thread: time n dispatches (never blocks)
    n = int(req.query("n") or b"1000")
    t = time.ticks_us()
    for i in range(n):
        srv.dispatch("event number %d" % i)
    req.write(str(time.ticks_diff(time.ticks_us(), t)), mime="text/plain")


srv.route("/send", uhttpd.GET, send)
srv.route("/listeners", uhttpd.GET, listeners)
srv.route("/timed", uhttpd.GET, timed)
print("READY", srv.port())

# main-thread dispatcher, driven by a flag file? keep it simple: idle
try:
    while True:
        time.sleep(0.1)
except KeyboardInterrupt:
    pass
