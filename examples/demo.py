# uhttpd demo: `make run` (= micropython -i examples/demo.py), then open
# http://127.0.0.1:8080/.  The script ends after starting the server, so the
# REPL takes over the terminal and the page's WebREPL terminal can use it;
# the event ticker runs in a thread of its own.
#
#   /            the demo page (examples/www): live slider, echo, event log,
#                REPL terminal
#   /hello       plain text, /hello?name=you
#   /status      JSON
#   /count       a chunked reply
#   /echo        POST: echoes the body
#   /fs/         JSON listing of examples/www; files under it
#   /events      Server-Sent Events (a tick every second)
#   /ws/slider   WebSocket: the page's slider; a value one page sends is
#                broadcast to every open page
#   /ws/echo     WebSocket: echoes every message
#   /upload/<path>  POST/PUT writes the body to the absolute <path>, DELETE removes it
#   /admin       the device page: files of examples/www, event log, REPL terminal
import sys
import time
import uhttpd

port = 8080
host = "127.0.0.1"
pwd = "uhttpd"
tls = None
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--port":
        port = int(args.pop(0))
    elif a == "--host":
        host = args.pop(0)
    elif a == "--password":
        pwd = args.pop(0)
    elif a == "--tls":
        tls = (args.pop(0), args.pop(0))   # --tls cert.pem key.pem: HTTPS

here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
if not here.startswith("/"):
    import os
    here = os.getcwd() + "/" + here
www = here + "/www"
started = time.time()
hits = 0


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


srv = uhttpd.Server(port, host=host, cors=True, events=3, routes=16, tls=tls)
scheme = "https" if tls else "http"
srv.route("/hello", uhttpd.GET, hello)
srv.route("/status", uhttpd.GET, status)
srv.route("/count", uhttpd.GET, count)
srv.route("/echo", uhttpd.POST, echo)
srv.event("/events")
try:
    srv.ws("/", pwd)
    repl = "WebREPL on %s://%s:%d/ (password %r)" % ("wss" if tls else "ws", host, srv.port(), pwd)
except OSError as e:
    repl = "no WebREPL: %s" % e
slider = ["50"]


def slider_moved(ws, msg):
    # a page moved its slider: every page (that one too) gets the value
    try:
        v = min(100, max(0, int(msg)))
    except ValueError:
        return
    slider[0] = str(v)
    srv.broadcast("/ws/slider", slider[0])


srv.websocket("/ws/slider", slider_moved, on_open=lambda ws: ws.send(slider[0]), max_msg=16)
srv.websocket("/ws/echo", lambda ws, msg: ws.send(msg), max_msg=1024)
srv.receive(True, "/upload", delete=True)
srv.serve("/fs", www)
srv.admin("/admin", fs=www)    # before the catch-all serve("") below
srv.serve("", www, dirs=False)


def ticker():
    n = 0
    while True:
        time.sleep(1)
        n += 1
        srv.dispatch('{"tick": %d, "uptime": %d}' % (n, time.time() - started), "tick")


import _thread
_thread.start_new_thread(ticker, ())
print("uhttpd demo on %s://%s:%d/  (Ctrl-D at the REPL to stop)" % (scheme, host, srv.port()))
print("device page on %s://%s:%d/admin" % (scheme, host, srv.port()))
print(repl)
