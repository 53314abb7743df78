"""uhttpd device page (``Server.admin()``).

GET <url> sends the frozen, gzip-compressed page (``uhttpd_admin_page``,
generated from admin/admin.html by tools/mkadmin.py); GET <url>?config
sends the JSON the page sets itself up from, computed from the server's
route table at request time.  The page then uses only those routes, so auth
and file_acl decide everything it can do; this module reads no file."""

import uhttpd

_HEADERS = "Cache-Control: no-cache\r\nVary: Accept-Encoding\r\n"


def handler(fs):
    """The route callback for a page rooted at the filesystem path ``fs``."""
    fs = fs.rstrip("/")

    def admin(req):
        if req.query("config") is not None:
            _config(req, fs)
        else:
            _page(req)

    return admin


def _page(req):
    from uhttpd_admin_page import ETAG, GZ

    inm = req.header("if-none-match")
    if inm and ETAG.encode() in inm:
        return req._file_reply(304, "ETag: " + ETAG + "\r\n" + _HEADERS)
    ae = req.header("accept-encoding")
    # no Accept-Encoding means any coding will do (RFC 9110 12.5.3)
    if ae is not None and b"gzip" not in ae.lower():
        return req.write("the device page is sent gzip-compressed only\n",
                         status="406 Not Acceptable", mime="text/plain")
    req.write(GZ, mime="text/html; charset=utf-8", headers={
        "Content-Encoding": "gzip",
        "Vary": "Accept-Encoding",
        "ETag": ETAG,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
    })


def _under(path, top):
    # both without a trailing '/'; '' is the root
    return path == top or path.startswith(top + "/")


def config(srv, fs):
    """What the page can use for the filesystem path ``fs`` (no trailing
    '/'): ``list`` the url prefix whose listing is ``fs`` (serve() with
    dirs), ``recv`` the receiver url prefix writing to ``fs`` (a dynamic
    receive()), ``delete``, ``events`` and ``ws`` urls; None when absent.
    The first matching route wins, as in request routing."""
    cfg = {"fs": fs or "/", "list": None, "recv": None, "delete": False,
           "events": None, "ws": None}
    for url, methods, kind, data in srv._routes:
        if kind == uhttpd._ROUTE_FILES:
            prefix, base, dirs = data[0], data[1], data[2]
            if cfg["list"] is None and dirs and _under(fs, base):
                cfg["list"] = prefix + fs[len(base):]
        elif kind == uhttpd._ROUTE_RECV:
            prefix, dynamic, extonly, fcfg = data[1]
            if cfg["recv"] is None and dynamic and (not extonly or _under(fs, fcfg[1])):
                cfg["recv"] = prefix + fs
                cfg["delete"] = bool(methods & uhttpd.DELETE)
        elif kind == uhttpd._ROUTE_EVENTS:
            cfg["events"] = url
        elif kind == uhttpd._ROUTE_WS and cfg["ws"] is None:
            cfg["ws"] = url
    return cfg


def _config(req, fs):
    from json import dumps

    srv = req.server()
    if srv is None:
        return req._file_reply(503)
    req.write(dumps(config(srv, fs)), mime="application/json",
              headers={"Cache-Control": "no-store"})
