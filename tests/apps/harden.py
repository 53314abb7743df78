# Test app for the hardening rules (design.md section 7): slow and hostile
# clients.  argv: k=v options (max_conns, timeout, min_rate, body_buffer,
# events, queue, auth=basic) and root=<dir> for the receiver.
import sys
import time
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

kw = {}
for k in ("max_conns", "min_rate", "body_buffer", "events", "max_header"):
    if k in opts:
        kw[k] = int(opts[k])
if "queue" in opts:
    kw["event_queue"] = int(opts["queue"])
if "timeout" in opts:
    kw["timeout"] = float(opts["timeout"])
if opts.get("auth") == "basic":
    kw["acl"] = uhttpd.AUTH_BASIC
    kw["auth"] = b"Basic YW5zd2VyOjQy"  # answer:42

srv = uhttpd.Server(0, host="127.0.0.1", routes=32, **kw)


def hello(req):
    req.write("Hello, World!", mime="text/plain")


def read_all(req):
    n = 0
    while True:
        b = req.read(4096)
        if not b:
            break
        n += len(b)
    req.write(str(n), mime="text/plain")


def big(req):
    # a large chunked reply: `mb` MiB in 16 KiB chunks
    mb = int(req.query("mb") or b"16")
    chunk = b"x" * 16384
    for _ in range(mb * 64):
        req.send_chunk(chunk, mime="application/octet-stream")
    req.send_chunk(None)


def deep(n):
    import json  # noqa: F401  (an import at every level, as in the report)
    return 1 if n == 0 else 1 + deep(n - 1)


def recurse(req):
    req.write(str(deep(int(req.query("n") or b"100000"))), mime="text/plain")


pending = []


def dispatch(req):
    # queue a dispatch for the MAIN thread (kind=cr|big|plain)
    pending.append((req.query("kind") or b"plain").decode())
    req.write("queued", mime="text/plain")


def listeners(req):
    req.write(str(srv._core.listeners()), mime="text/plain")


def stats(req):
    req.write("%d %d" % srv._core.stats(), mime="text/plain")


srv.route("/hello", uhttpd.GET, hello)
srv.route("/read", uhttpd.POST, read_all)
srv.route("/big", uhttpd.GET, big)
srv.route("/recurse", uhttpd.GET, recurse)
srv.route("/dispatch", uhttpd.GET, dispatch)
srv.route("/listeners", uhttpd.GET, listeners)
srv.route("/stats", uhttpd.GET, stats)
if "root" in opts:
    srv.serve("/files", opts["root"])
    srv.receive(True, "/up")
if kw.get("events"):
    srv.event("/events")
print("READY", srv.port())

results = []
while True:
    time.sleep(0.01)
    while pending:
        kind = pending.pop(0)
        try:
            if kind == "cr":
                r = srv.dispatch("a\revent: admin\rdata: x\r\nid: 7\ny")
            elif kind == "big":
                r = srv.dispatch("B" * (int(opts.get("queue", "1024")) * 3))
            elif kind == "badevent":
                r = srv.dispatch("x", "ev\rdata: forged")
            else:
                r = srv.dispatch("plain")
            print("DISPATCH", kind, r)
        except Exception as e:
            print("DISPATCH", kind, "raised", type(e).__name__, e)
