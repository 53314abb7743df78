# Test app: the device page.  Run with `micropython -i admin.py ...` (the REPL
# then waits on stdin, for the terminal).  argv, in any order:
#   fs=<path>                   the page's filesystem root (admin(fs=...))
#   serve=<prefix>,<base>[,nodirs][,ext]   serve() (repeatable, in order)
#   recv=<prefix>[,delete][,extonly][,static]  receive() (repeatable)
#   events=1                    event('/events'); GET /fire?data=..&event=..
#   ws=<pwd>                    ws('/ws', pwd)
#   auth=<user:pass>            AUTH_BASIC
#   acl=1                       file_acl: 'locked' read-only, 'hidden' 404
#   ext=<path>                  ext_path
#   routes=<n>                  route slots (default 16)
#   first=1                     admin() before the other routes (else after)
import sys
import uhttpd

opts = []
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts.append((k, v))
one = dict(opts)

kw = {}
if "auth" in one:
    import binascii
    kw["acl"] = uhttpd.AUTH_BASIC
    kw["auth"] = b"Basic " + binascii.b2a_base64(one["auth"].encode()).strip()
if "ext" in one:
    kw["ext_path"] = one["ext"]
srv = uhttpd.Server(0, host="127.0.0.1", routes=int(one.get("routes", "16")),
                    events=2 if "events" in one else 0, timeout=3, **kw)
fs = one.get("fs", "/")
if "first" in one:
    srv.admin("/admin", fs)

for k, v in opts:
    f = v.split(",")
    if k == "serve":
        srv.serve(f[0], f[1] if len(f) > 1 and f[1] else None, dirs="nodirs" not in f, ext="ext" in f)
    elif k == "recv":
        srv.receive("static" not in f, f[0], extonly="extonly" in f, delete="delete" in f)
    elif k == "events":
        srv.event("/events")

        def fire(req):
            q = req.parse_qs()
            ev = q.get(b"event")
            ok = srv.dispatch(q.get(b"data", b"hello").decode(), ev.decode() if ev else None)
            req.write(str(ok), mime="text/plain")

        srv.route("/fire", uhttpd.GET, fire)
    elif k == "ws":
        srv.ws("/ws", v)
    elif k == "acl":
        def acl(path):
            if "hidden" in path:
                return 404
            if "locked" in path:
                return uhttpd.ACL_RO
            return uhttpd.ACL_RW
        srv.file_acl(acl)

if "first" not in one:
    srv.admin("/admin", fs)
print("READY", srv.port())
