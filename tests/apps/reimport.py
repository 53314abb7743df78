# Test app: the C module is imported again while a server runs.  A
# built-in module is not kept in sys.modules, so every `import _uhttpd`
# runs its __init__ again (py/objmodule.c); the server must keep serving.
import time
import uhttpd


def reimport():
    import _uhttpd  # noqa: F401  (runs _uhttpd.__init__ again)


def again(req):
    reimport()
    req.write("reimported", mime="text/plain")


def hello(req):
    req.write("Hello, World!", mime="text/plain")


srv = uhttpd.Server(0, host="127.0.0.1")
srv.route("/reimport", uhttpd.GET, again)
srv.route("/hello", uhttpd.GET, hello)
reimport()
print("READY", srv.port())
while True:
    time.sleep(0.1)
