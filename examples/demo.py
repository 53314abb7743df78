# uhttpd demo: `make run`, then open http://127.0.0.1:8080/
import sys
import time
import uhttpd

port = 8080
host = "127.0.0.1"
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--port":
        port = int(args.pop(0))
    elif a == "--host":
        host = args.pop(0)

started = time.time()
hits = 0


def index(req):
    req.write(
        "<!doctype html><title>uhttpd</title><h1>uhttpd demo</h1><ul>"
        "<li><a href='/hello'>/hello</a> plain text"
        "<li><a href='/hello?name=you'>/hello?name=you</a> query"
        "<li><a href='/status'>/status</a> JSON"
        "<li><a href='/count'>/count</a> chunked reply"
        "<li>POST to /echo echoes the body"
        "</ul>"
    )


def hello(req):
    global hits
    hits += 1
    name = req.query("name")
    name = name.decode() if isinstance(name, bytes) else "World"
    req.write("Hello %s!\n" % name, mime="text/plain")


def status(req):
    import json
    import gc
    req.write(json.dumps({"uptime": time.time() - started, "hello_hits": hits,
                          "mem_free": gc.mem_free()}), mime="application/json")


def count(req):
    for i in range(10):
        req.send_chunk("line %d\n" % i, mime="text/plain")
    req.send_chunk(None)


def echo(req):
    body = req.read()
    req.write(body, mime=req.header("content-type") or "application/octet-stream")


srv = uhttpd.Server(port, host=host, cors=True)
srv.route("/", uhttpd.GET, index)
srv.route("/hello", uhttpd.GET, hello)
srv.route("/status", uhttpd.GET, status)
srv.route("/count", uhttpd.GET, count)
srv.route("/echo", uhttpd.POST, echo)
print("uhttpd demo on http://%s:%d/  (Ctrl-C to stop)" % (host, srv.port()))
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    srv.close()
