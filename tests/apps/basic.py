# Test app: one server exercising the core API.  Prints READY <port>.
import sys
import time
import gc
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

kw = {}
for k in ("max_conns", "max_header", "max_body", "body_buffer", "min_rate"):
    if k in opts:
        kw[k] = int(opts[k])
if "timeout" in opts:
    kw["timeout"] = float(opts["timeout"])
acl = uhttpd.AUTH_OPEN
auth = None
if opts.get("auth") == "basic":
    acl = uhttpd.AUTH_BASIC
    auth = b"Basic YW5zd2VyOjQy"  # answer:42
elif opts.get("auth") == "custom":
    acl = uhttpd.AUTH_CUSTOM

    def auth(req):
        tok = req.header("x-token")
        if tok == b"good":
            return True
        if tok == b"teapot":
            return 418
        if tok == b"boom":
            raise ValueError("auth exploded")
        return False

srv = uhttpd.Server(0, host="127.0.0.1", acl=acl, auth=auth, cors=opts.get("cors") == "1",
                    routes=32, **kw)


def hello(req):
    req.write("Hello, World!", mime="text/plain")


def info(req):
    import json
    req.write(json.dumps({
        "method": req.method(),
        "uri": req.uri(),
        "path": req.path(),
        "length": req.length(),
        "q_a": _s(req.query("a")),
        "q_b": _s(req.query(b"b")),
        "q_missing": _s(req.query("zzz")),
        "qs": {k.decode(): _s(v) for k, v in req.parse_qs().items()},
        "ua": _s(req.header("User-Agent")),
        "server_ok": req.server() is srv,
    }), mime="application/json")


def _s(v):
    if isinstance(v, bytes):
        return v.decode()
    return v


def echo(req):
    n = req.query("n")
    if n is not None:
        body = req.read(int(n))
    else:
        body = req.read()
    req.write(body, mime="application/octet-stream", headers={"X-Len": str(len(body))})


def readinto(req):
    buf = bytearray(7)
    total = 0
    parts = 0
    h = 0
    while True:
        k = req.readinto(buf)
        if not k:
            break
        for i in range(k):
            h = (h * 31 + buf[i]) & 0xFFFFFFFF
        total += k
        parts += 1
    req.write("%d %d %d" % (total, parts, h), mime="text/plain")


def ignore_body(req):
    req.write("ignored", mime="text/plain")


def chunks(req):
    n = int(req.query("n") or b"3")
    for i in range(n):
        req.send_chunk("chunk%d;" % i, mime="text/plain", headers={"X-Chunked": "yes"})
    req.send_chunk(None)


def bigchunk(req):
    req.send_chunk(b"x" * 5000, mime="text/plain")
    req.send_chunk(b"y" * 3)
    req.send_chunk(None)


def raw(req):
    req.send(b"HTTP/1.1 299 Custom\r\nContent-Length: 3\r\nX-Raw: 1\r\n\r\nraw")


def status_int(req):
    req.write("gone", status=410)


def status_str(req):
    req.write("teapot", status="418 I'm a teapot", mime=b"text/x-tea")


def nothing(req):
    pass


def boom(req):
    raise RuntimeError("handler exploded")


def boom_after_chunk(req):
    req.send_chunk("partial")
    raise RuntimeError("exploded mid-reply")


def double_write(req):
    req.write("one")
    try:
        req.write("two")
    except OSError:
        pass


def write_after_chunk(req):
    req.send_chunk("a")
    try:
        req.write("b")
        req.send_chunk("WRONG")
    except OSError:
        req.send_chunk("raised")
    req.send_chunk(None)


def bad_header(req):
    try:
        req.write("x", headers={"X-Bad": "a\r\nInjected: 1"})
    except ValueError:
        req.write("rejected", mime="text/plain")


def cors_one(req):
    req.write("c", allow_cors=True)


def slow(req):
    time.sleep(float(req.query("s") or b"0.5"))
    req.write("slow done")


def mem(req):
    gc.collect()
    req.write(str(gc.mem_alloc()), mime="text/plain")


def big(req):
    n = int(req.query("n") or b"100000")
    req.write(b"z" * n, mime="application/octet-stream")


def closer(req):
    req.write("closing")
    srv.close()


def wild(req):
    req.write("wild:" + req.path(), mime="text/plain")


def post_only(req):
    req.write("posted")


def delete_only(req):
    req.write("deleted")


def multi(req):
    req.write("multi %d" % req.method())


srv.route("/hello", uhttpd.GET, hello)
srv.route("/info", uhttpd.GET | uhttpd.POST, info)
srv.route("/echo", uhttpd.POST, echo)
srv.route("/readinto", uhttpd.POST, readinto)
srv.route("/ignore", uhttpd.POST, ignore_body)
srv.route("/chunks", uhttpd.GET, chunks)
srv.route("/bigchunk", uhttpd.GET, bigchunk)
srv.route("/raw", uhttpd.GET, raw)
srv.route("/status/int", uhttpd.GET, status_int)
srv.route("/status/str", uhttpd.GET, status_str)
srv.route("/nothing", uhttpd.GET, nothing)
srv.route("/boom", uhttpd.GET, boom)
srv.route("/boom2", uhttpd.GET, boom_after_chunk)
srv.route("/double", uhttpd.GET, double_write)
srv.route("/mix", uhttpd.GET, write_after_chunk)
srv.route("/badheader", uhttpd.GET, bad_header)
srv.route("/cors1", uhttpd.GET, cors_one)
srv.route("/slow", uhttpd.GET, slow)
srv.route("/mem", uhttpd.GET, mem)
srv.route("/big", uhttpd.GET, big)
srv.route("/close", uhttpd.GET, closer)
srv.route("/postonly", uhttpd.POST, post_only)
srv.route("/postonly", uhttpd.DELETE, delete_only)
srv.route("/multi", uhttpd.GET | uhttpd.POST | uhttpd.DELETE, multi)
srv.route("/w/*/end", uhttpd.GET, wild)
srv.route("/w/*", uhttpd.GET, wild)

print("READY", srv.port())
try:
    while True:
        time.sleep(0.2)
        if opts.get("exit_when_closed") and not srv._core.running():
            print("CLOSED")
            break
except KeyboardInterrupt:
    pass
