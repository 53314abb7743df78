# Test app: WebREPL on '/', a plain route on '/' too (falls through).
# Run with `micropython -i repl.py <pwd|->`: the REPL then waits on stdin.
import sys
import uhttpd

pwd = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 5
# The built-in WebREPL's password (modwebrepl.c keeps one process-wide
# buffer): set before ws(), it must survive uhttpd's REPL sessions.
try:
    import _webrepl
    _webrepl.password("builtin")
except ImportError:
    _webrepl = None
srv = uhttpd.Server(0, host="127.0.0.1", timeout=timeout)
srv.ws("/", pwd)


def index(req):
    req.write("plain GET on /", mime="text/plain")


srv.route("/", uhttpd.GET, index)


def take(req):
    # someone else (e.g. the built-in WebREPL) holds the dupterm slot
    import io
    import os
    os.dupterm(io.BytesIO() if req.query("on") else None)
    req.write("ok")


srv.route("/take", uhttpd.GET, take)


def say(req):
    # output from the server thread: it goes to the REPL session too
    import sys
    for i in range(int(req.query("n"))):
        sys.stdout.write("handler-line %d\n" % i)   # one write, one frame
    req.write("ok")


srv.route("/say", uhttpd.GET, say)


def builtin(req):
    # log in to a built-in _webrepl on a BytesIO with ?pw=: its constructor
    # writes "Password: " over the first 10 bytes (the same bytes), the
    # read takes the rest, and the verdict is appended
    import io
    init = b"Password: " + req.query("pw") + b"\r"   # query() gives bytes
    b = io.BytesIO(init)
    _webrepl._webrepl(b).read(1)
    req.write(b.getvalue()[len(init):], mime="text/plain")


if _webrepl is not None:
    srv.route("/builtin", uhttpd.GET, builtin)
print("READY", srv.port())
if len(sys.argv) > 3 and sys.argv[3] == "loop":
    # no interactive REPL: keep the program running
    import time
    while True:
        time.sleep(1)
