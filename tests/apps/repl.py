# Test app: WebREPL on '/', a plain route on '/' too (falls through).
# Run with `micropython -i repl.py <pwd|->`: the REPL then waits on stdin.
import sys
import uhttpd

pwd = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
srv = uhttpd.Server(0, host="127.0.0.1")
srv.ws("/", pwd)


def index(req):
    req.write("plain GET on /", mime="text/plain")


srv.route("/", uhttpd.GET, index)
print("READY", srv.port())
