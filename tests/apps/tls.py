# Test app: an HTTPS server.  argv: cert key root [k=v ...] (timeout,
# max_conns, pwd: a WebREPL on '/', events).  Prints READY <port>, or
# ERROR <message> when the constructor refuses the cert/key.
import sys
import time
import uhttpd

cert, key, root = sys.argv[1], sys.argv[2], sys.argv[3]
opts = {}
for a in sys.argv[4:]:
    k, _, v = a.partition("=")
    opts[k] = v
kw = {}
if "timeout" in opts:
    kw["timeout"] = float(opts["timeout"])
if "max_conns" in opts:
    kw["max_conns"] = int(opts["max_conns"])
if opts.get("bytes") == "1":
    cert = open(cert, "rb").read()
    key = open(key, "rb").read()
try:
    srv = uhttpd.Server(0, host="127.0.0.1", tls=(cert, key), events=2, routes=16, **kw)
except ValueError as e:
    print("ERROR", e)
    sys.exit(0)


def hello(req):
    req.write("Hello over TLS", mime="text/plain")


def echo(req):
    req.write(req.read(), mime="application/octet-stream")


def chunks(req):
    for i in range(int(req.query("n") or b"10")):
        req.send_chunk("chunk %d;" % i, mime="text/plain")
    req.send_chunk(None)


def send(req):
    srv.dispatch((req.query("data") or b"x").decode())
    req.write("ok")


srv.route("/hello", uhttpd.GET, hello)
srv.route("/echo", uhttpd.POST, echo)
srv.route("/chunks", uhttpd.GET, chunks)
srv.route("/send", uhttpd.GET, send)
srv.event("/events")
srv.serve("/files", root)
srv.receive(True, "/up")
if "pwd" in opts:
    srv.ws("/", opts["pwd"])
print("READY", srv.port())
if "pwd" not in opts:
    while True:
        time.sleep(0.1)
# with a REPL url the script ends here and the interactive REPL (-i) runs
