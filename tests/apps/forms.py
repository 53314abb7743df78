# Test app: forms (design.md section 11).  argv: [acl=1]
# [body_buffer=N] [max_body=N] [timeout=S]
import sys
import time
import json
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

import hashlib


def digest():
    return hashlib.sha256()


kw = {}
for k in ("body_buffer", "max_body"):
    if k in opts:
        kw[k] = int(opts[k])
srv = uhttpd.Server(0, host="127.0.0.1", routes=20, timeout=float(opts.get("timeout", "2")), **kw)
srv.receive(True, "/up", delete=True)


def text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else v


def form(req):
    d = req.form()
    bad = [k for k in d if not isinstance(k, str) or not isinstance(d[k], str)]
    if bad or not isinstance(d, dict):
        req.write("form() must give a dict of str -> str\n", status=500)
        return
    req.write(json.dumps(d), mime="application/json")


def parts(req):
    """Each part streamed: read(n) (n from ?n=, -1 for all at once) or
    readinto(buf) with ?into=<size>; reports what arrived."""
    n = int(text(req.query("n") or b"4096"))
    into = req.query("into")
    out = []
    for p in req.parts():
        h = digest()
        size = 0
        first = b""
        if into:
            buf = bytearray(int(text(into)))
            while True:
                k = p.readinto(buf)
                if not k:
                    break
                h.update(memoryview(buf)[:k])
                if len(first) < 64:
                    first += bytes(buf[:min(k, 64 - len(first))])
                size += k
        else:
            while True:
                b = p.read(n)
                if not b:
                    break
                h.update(b)
                if len(first) < 64:
                    first += b[:64 - len(first)]
                size += len(b)
                if n < 0:
                    assert p.read(n) == b""
                    break
        hdrs = {}
        for k, v in p.headers.items():
            hdrs[text(k).lower()] = text(v)
        out.append({"name": text(p.name), "filename": None if p.filename is None else text(p.filename),
                    "types": [type(p.name).__name__, type(p.filename).__name__],
                    "headers": hdrs, "size": size,
                    "sha256": "".join("%02x" % c for c in h.digest()),
                    "head": "".join("%02x" % c for c in first)})
    req.write(json.dumps(out), mime="application/json")


def form_then_body(req):
    # form() of a body that is not a form: {} and the body stays readable
    d = req.form()
    req.write(json.dumps({"form": d, "body": req.read().decode()}), mime="application/json")


def form_caught(req):
    # a handler that catches the error of a bad form answers itself
    try:
        req.form()
    except ValueError as e:
        req.write("caught ValueError: %s" % e, status=422, mime="text/plain")
    except OSError as e:
        req.write("caught OSError %d" % e.args[0], status=422, mime="text/plain")


kept = []


def parts_rules(req):
    """?mode=skip: read the first 3 bytes of each part, then move on;
    mode=dead: a part read after the iterator moved on; mode=keep: keep
    the first part for /parts-kept (read after the request)."""
    mode = text(req.query("mode") or b"skip")
    out = []
    first = None
    for p in req.parts():
        if mode == "skip":
            out.append([p.name, p.read(3).decode(), p.read(0).decode()])
        elif mode == "dead":
            if first is None:
                first = p
                continue
            try:
                first.read()
                out.append("read")
            except OSError:
                out.append("dead")
            try:
                first.readinto(bytearray(4))
                out.append("readinto")
            except OSError:
                out.append("dead")
            out.append(p.read().decode())
        elif mode == "keep":
            kept.append(p)
            out.append(p.name)
            break
    req.write(json.dumps(out), mime="application/json")


def parts_kept(req):
    try:
        kept.pop().read()
        req.write("read")
    except OSError:
        req.write("dead")


srv.route("/form", uhttpd.POST, form)
srv.route("/parts", uhttpd.POST, parts)
srv.route("/form-body", uhttpd.POST, form_then_body)
srv.route("/form-caught", uhttpd.POST, form_caught)
srv.route("/parts-rules", uhttpd.POST, parts_rules)
srv.route("/parts-kept", uhttpd.GET, parts_kept)

if opts.get("acl"):
    seen = []

    def acl(path):
        seen.append(path)
        if "private" in path:
            return 403
        if "teapot" in path:
            return 418
        return uhttpd.ACL_RW
    srv.file_acl(acl)

    def acl_log(req):
        req.write("\n".join(seen), mime="text/plain")
        seen.clear()
    srv.route("/acl-log", uhttpd.GET, acl_log)

print("READY", srv.port())
try:
    while True:
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
