"""uhttpd: a micro HTTP server running in its own thread.

The server thread and everything per request (parsing, routing, auth,
handler calls, responses) is C in the ``_uhttpd`` module; this facade
validates arguments, keeps the route table with the slot accounting of the
original API, and holds the options.

Example::

    import uhttpd

    def hello(req):
        req.write('Hello World', mime='text/plain')

    srv = uhttpd.Server(8080)
    srv.route('/hello', uhttpd.GET, hello)
"""

import os

import _uhttpd

GET = _uhttpd.GET
POST = _uhttpd.POST
DELETE = _uhttpd.DELETE
HEAD = _uhttpd.HEAD
PUT = _uhttpd.PUT
PATCH = _uhttpd.PATCH
OPTIONS = _uhttpd.OPTIONS

AUTH_OPEN = 0
AUTH_BASIC = 1
AUTH_CUSTOM = 2

ACL_RO = 1
ACL_WO = 2
ACL_RW = 3

Request = _uhttpd.Request

_ROUTE_PY = 0
_ROUTE_FILES = 1
_ROUTE_RECV = 2
_ROUTE_WS = 3
_ROUTE_EVENTS = 4
_ROUTE_WSAPP = 5
_METHODS = GET | POST | DELETE


def _bits(n):
    c = 0
    while n:
        c += n & 1
        n >>= 1
    return c


def _tls_pair(tls):
    if not isinstance(tls, (tuple, list)) or len(tls) != 2:
        raise ValueError("tls must be (cert, key)")
    out = []
    for what, v in zip(("cert", "key"), tls):
        if isinstance(v, str):
            try:
                with open(v, "rb") as f:
                    v = f.read()
            except OSError as e:
                raise ValueError("tls %s file %r cannot be read (%s)" % (what, tls[0 if what == "cert" else 1], e))
        if not isinstance(v, (bytes, bytearray)) or not v:
            raise ValueError("tls %s must be a path (str) or the content (bytes)" % what)
        out.append(bytes(v))
    return tuple(out)


def _check_url(url, what="url"):
    if isinstance(url, bytes):
        url = url.decode()
    if not isinstance(url, str) or not url.startswith("/"):
        raise ValueError(what + " must be a str starting with '/'")
    return url


class Server:
    """Start an HTTP server on ``port`` in a thread of its own.

    :param port: TCP port (0 picks a free one, see :meth:`port`).
    :param acl: ``AUTH_OPEN``, ``AUTH_BASIC`` or ``AUTH_CUSTOM``.
    :param cors: add ``Access-Control-Allow-Origin: *`` to every reply.
    :param routes: the number of route slots (one is reserved for OPTIONS)
        or an iterable of ``(url, methods, callback)``.
    :param auth: the whole ``Authorization`` value (``AUTH_BASIC``) or a
        callable ``auth(req)`` (``AUTH_CUSTOM``).
    :param events: maximum simultaneous Server-Sent Events listeners.
    :param host: bind address (default all interfaces).
    :param max_conns: simultaneous HTTP connections (503 beyond).
    :param max_header: bytes for request line + headers (414/431 beyond).
    :param timeout: seconds for a request head, body inactivity and idle
        keep-alive connections (408 for a slow head).
    :param max_body: largest request body in bytes (413 beyond).
    :param ext_path: the external storage mount path.
    :param file_block: bytes per connection for file transfers (allocated
        by serve()/receive(); default 16 KiB on unix, 2 KiB on ESP32).
    :param event_queue: bytes queued per SSE listener (default 8 KiB on
        unix, 1 KiB on ESP32); a listener that falls further behind is
        dropped.
    :param event_ping: seconds between keep-alive comments to SSE
        listeners (finds dead ones); 0 disables.
    :param body_buffer: request bodies up to this many bytes (default 8 KiB
        on unix, 2 KiB on ESP32) are received before the handler runs, so
        ``read()`` never waits on the network for them.
    :param min_rate: bytes per second that a larger body, an upload or a
        transfer must keep up over each ``timeout`` window (408 and close
        below it); 0 only cuts clients that stop completely.
    :param ws_queue: bytes queued per application WebSocket client (default
        16 KiB on unix, 2 KiB on ESP32; at least one ``max_msg`` frame); a
        client that falls further behind is closed with 1008.
    :param tls: ``(cert, key)``: serve HTTPS.  Each a ``str`` path or
        ``bytes`` content, PEM or DER; a bad or mismatched pair raises
        ``ValueError`` before anything starts.
    """

    def __init__(self, port=80, acl=AUTH_OPEN, cors=False, routes=8, auth=None,
                 events=0, host="0.0.0.0", max_conns=4, max_header=None,
                 timeout=5, max_body=16 * 1024 * 1024, ext_path="/sd",
                 file_block=None, event_queue=None, event_ping=15,
                 body_buffer=None, min_rate=None, tls=None, ws_queue=None):
        if acl == AUTH_BASIC:
            if isinstance(auth, str):
                auth = auth.encode()
            if not isinstance(auth, (bytes, bytearray)) or not auth:
                raise ValueError("AUTH_BASIC needs auth=b'Basic <base64>'")
            auth = bytes(auth)
        elif acl == AUTH_CUSTOM:
            if not callable(auth):
                raise ValueError("AUTH_CUSTOM needs a callable auth(req)")
        elif acl == AUTH_OPEN:
            auth = None
        else:
            raise ValueError("acl must be AUTH_OPEN, AUTH_BASIC or AUTH_CUSTOM")
        if not isinstance(events, int) or events < 0:
            raise ValueError("events must be an int >= 0")
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self._routes = []
        self._fixed = False
        if isinstance(routes, int):
            if routes < 1:
                raise ValueError("routes must be >= 1 (one slot is for OPTIONS)")
            self._slots = routes
            preset = ()
        else:
            preset = list(routes)
            self._slots = 1 + sum(_bits(r[1] & _METHODS) for r in preset)
        self._used = 1  # OPTIONS
        self._events = events
        if not isinstance(ext_path, str) or not ext_path.startswith("/") or ext_path == "/":
            raise ValueError("ext_path must be an absolute path such as '/sd'")
        self._fcfg = [None, ext_path.rstrip("/")]   # [file_acl, ext_path], shared with receivers
        self._file_block = file_block
        if tls is not None:
            tls = _tls_pair(tls)
        self._core = _uhttpd.Core(self, host, port, max_conns,
                                  _uhttpd.MAX_HEADER if max_header is None else max_header,
                                  int(timeout * 1000), max_body, events,
                                  event_queue or _uhttpd.EVENT_QUEUE,
                                  int(event_ping * 1000),
                                  _uhttpd.BODY_BUFFER if body_buffer is None else body_buffer,
                                  _uhttpd.MIN_RATE if min_rate is None else min_rate,
                                  tls,
                                  _uhttpd.WS_QUEUE if ws_queue is None else ws_queue)
        self._event_url = None
        self._core.configure(self._routes, acl, auth, cors)
        for r in preset:
            if len(r) != 3:
                raise ValueError("each route must be (url, methods, callback)")
            self.route(r[0], r[1], r[2])
        self._fixed = not isinstance(routes, int)

    def port(self):
        """The TCP port this server listens on."""
        return self._core.port()

    def _take(self, n, what):
        if self._used + n > self._slots:
            raise OSError(
                "uhttpd: out of route slots (routes=%d, %d used, %s needs %d)"
                % (self._slots, self._used, what, n))
        self._used += n

    def route(self, url, methods, callback):
        """Call ``callback(req)`` for ``methods`` (``GET|POST|DELETE``) on
        ``url`` (``*`` matches any run of characters).  Routes are probed in
        registration order."""
        if self._fixed:
            raise OSError("uhttpd: routes were given to Server(); route() is closed")
        url = _check_url(url)
        if not isinstance(methods, int) or methods & ~_METHODS or not methods:
            raise ValueError("methods must be a combination of GET, POST, DELETE")
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._take(_bits(methods), "route %s" % url)
        self._routes.append((url, methods, _ROUTE_PY, callback))

    def _files_setup(self):
        self._core.set_files(self._fcfg[1], self._fcfg[0],
                             self._file_block or _uhttpd.FILE_BLOCK)

    def file_acl(self, cb):
        """``cb(path)`` decides every file server/receiver access: return
        ``ACL_RO``, ``ACL_WO``, ``ACL_RW`` or an HTTP status >= 400;
        anything else is 403.  Directories end with ``/``.  None removes it."""
        if cb is not None and not callable(cb):
            raise TypeError("file_acl needs a callable or None")
        self._fcfg[0] = cb
        self._files_setup()

    def serve(self, prefix="", base=None, dirs=True, ext=False):
        """Serve files for GET/HEAD under ``<prefix>/*`` from ``base``
        (JSON listings for directory urls ending in ``/`` when ``dirs``,
        else ``index.html`` or 403)."""
        prefix = "" if prefix in ("", "/", None) else _check_url(prefix, "prefix").rstrip("/")
        if "*" in prefix:
            raise ValueError("prefix must not contain '*'")
        if base is None or base == "/":
            base = ""
        else:
            base = _check_url(base, "base").rstrip("/")
        self._take(1, "serve()")
        self._files_setup()
        self._routes.append((prefix + "/*", GET, _ROUTE_FILES,
                             (prefix, base, bool(dirs), bool(ext), _listing)))

    def receive(self, dynamic=True, prefix=None, extonly=False, delete=False):
        """Receive uploads: with ``dynamic``, POST ``<prefix>/*`` writes the
        body to the path after the prefix (a path ending in ``/`` makes a
        directory) and, with ``delete``, DELETE removes (``?force=1``:
        recursively); otherwise POST to ``prefix`` takes the path from
        ``Content-Disposition: attachment; filename="/path"``."""
        if dynamic:
            prefix = "" if prefix in (None, "", "/") else _check_url(prefix, "prefix").rstrip("/")
            url = prefix + "/*"
        else:
            if prefix is None:
                raise ValueError("receive(dynamic=False) needs the endpoint prefix")
            prefix = _check_url(prefix, "prefix")
            url = prefix
            if delete:
                raise ValueError("delete needs dynamic=True")
        if "*" in prefix:
            raise ValueError("prefix must not contain '*'")
        methods = POST | (DELETE if delete else 0)
        self._take(_bits(methods), "receive()")
        methods |= PUT   # (ext) curl -T and other PUT uploaders
        self._files_setup()
        cfg = (prefix, bool(dynamic), bool(extonly), self._fcfg)
        self._routes.append((url, methods, _ROUTE_RECV, (_receive, cfg)))

    def event(self, url):
        """GET ``url`` opens a ``text/event-stream`` (at most ``events``
        listeners at once, 503 beyond).  One event url per server."""
        if self._events < 1:
            raise OSError("uhttpd: Server(events=N) must be > 0 to use event()")
        if self._event_url is not None:
            raise OSError("uhttpd: one event url per server (already %s)" % self._event_url)
        url = _check_url(url)
        if "*" in url:
            raise ValueError("the event url must not be a wildcard")
        self._take(1, "event %s" % url)
        self._event_url = url
        self._routes.append((url, GET, _ROUTE_EVENTS, None))

    def dispatch(self, data, event=None):
        """Send ``data`` (str or bytes; several lines become several
        ``data:`` lines) to every listener, optionally as ``event``.
        Returns False when nobody listens.  Never waits on the network: a
        listener that cannot keep up is dropped."""
        return self._core.dispatch(data, event)

    def ws(self, url, pwd=None):
        """Give the MicroPython REPL over a WebSocket at ``url``
        (WebREPL-compatible; ``pwd`` up to 9 characters).  Only requests
        that ask for the upgrade match; a plain GET falls through to the
        next route.  One REPL url per process."""
        import uhttpd_repl
        url = _check_url(url)
        target = uhttpd_repl.setup(pwd)   # validates pwd, claims the REPL
        try:
            self._take(1, "ws %s" % url)
        except Exception:
            uhttpd_repl.release()
            raise
        self._routes.append((url, GET, _ROUTE_WS, target))

    def websocket(self, url, callback, clients=4, max_msg=4096, on_open=None, on_close=None,
                  origins=None):
        """Application WebSockets at ``url`` (one slot; GET with
        ``Upgrade: websocket`` only, a plain GET falls through).
        ``callback(ws, msg)`` runs in the server thread for each complete
        message (``str`` for text, ``bytes`` for binary); ``on_open(ws)``
        and ``on_close(ws, code)`` are optional.  At most ``clients`` at
        once (503 beyond, before the upgrade); messages up to ``max_msg``
        bytes (a longer one closes with 1009).  ``origins``: a list of
        allowed ``Origin`` values (others get 403).  ``ws.send(data)`` never
        waits (a bounded queue per client, ``Server(ws_queue=...)``; a client
        that falls behind is closed with 1008), ``ws.close(code=1000)``,
        ``ws.id``.  Every slot is allocated now."""
        url = _check_url(url)
        if "*" in url:
            raise ValueError("the websocket url must not be a wildcard")
        if not callable(callback):
            raise TypeError("callback must be callable")
        for cb in (on_open, on_close):
            if cb is not None and not callable(cb):
                raise TypeError("on_open and on_close must be callable or None")
        if origins is not None:
            if isinstance(origins, (str, bytes)):
                origins = [origins]
            origins = tuple(o.encode() if isinstance(o, str) else bytes(o) for o in origins)
        self._take(1, "websocket %s" % url)
        target = self._core.websocket(url, callback, clients, max_msg, on_open, on_close, origins)
        self._routes.append((url, GET, _ROUTE_WSAPP, target))

    def broadcast(self, url, data):
        """Send ``data`` (``str``: a text message, ``bytes``: binary) to
        every client of the WebSocket ``url``; returns how many got it.
        Never waits on the network."""
        return self._core.broadcast(_check_url(url), data)

    def admin(self, url="/admin", fs="/"):
        """(ext) The device page at ``url`` (one slot): browse, upload,
        download, edit and delete files under the filesystem path ``fs``,
        watch the events, use the REPL terminal.  It works only through this
        server's serve() (with dirs), receive() (dynamic), event() and ws()
        routes, whatever was registered when the page asks; features without
        a route are hidden, and auth and file_acl apply as for any client.
        Register it before a catch-all ``serve('')``."""
        url = _check_url(url)
        if "*" in url:
            raise ValueError("the admin url must not be a wildcard")
        fs = _check_url(fs, "fs")
        import uhttpd_admin
        self._take(1, "admin %s" % url)
        self._routes.append((url, GET, _ROUTE_PY, uhttpd_admin.handler(fs)))

    def close(self):
        """Stop the server thread and free the port (idempotent)."""
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- file server / receiver helpers (module level: no reference back to
# the Server, so an unreferenced Server can be garbage-collected) ----------

_S_IFDIR = 0x4000
_S_IFREG = 0x8000
_realname = _uhttpd.realname   # the C rules of uh_real_ok (uh_files.c)


def _listing(req, fspath, urlpath, base, acl):
    # entries that lead out of base (symlinks), that are not plain files or
    # directories, or that file_acl would not let be read are left out
    from json import dumps
    d = fspath.rstrip("/") or "/"
    pre = d + "/" if d != "/" else "/"
    items = ['{"path": "..", "type": "directory", "size": 0}']
    for e in os.ilistdir(d):
        name = e[0]
        full = pre + name
        if e[1] not in (_S_IFDIR, _S_IFREG) and not _realname(full, base):
            continue
        try:
            st = os.stat(full)
        except OSError:
            continue
        kind = st[0] & 0xF000
        if kind != _S_IFDIR and kind != _S_IFREG:
            continue
        isdir = kind == _S_IFDIR
        if acl is not None and _acl_cb(acl, full + "/" if isdir else full, ACL_RO):
            continue
        items.append('{"path": %s, "type": "%s", "size": %d}' % (
            dumps(name), "directory" if isdir else "file", 0 if isdir else st[6]))
    req.write('{"path": %s, "list": [%s]}' % (dumps(urlpath), ", ".join(items)),
              mime="application/json", headers={"Cache-Control": "no-cache"})


def _errno_status(e):
    n = e.errno if hasattr(e, "errno") else (e.args[0] if e.args else 0)
    return {2: 404, 1: 403, 13: 403, 28: 507, 17: 409, 39: 409, 21: 409, 20: 409,
            30: 403, 36: 414}.get(n, 500)


def _isdir(path):
    try:
        return os.stat(path)[0] & _S_IFDIR != 0
    except OSError:
        return None   # missing


def _makedirs(path):
    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        kind = _isdir(cur)
        if kind is None:
            os.mkdir(cur)
        elif not kind:
            raise OSError(20)   # ENOTDIR


def _entries(d):
    # (subdirectory names, other names) in d; a symlink is never followed
    dirs = []
    files = []
    for e in os.ilistdir(d):
        kind = e[1]
        if kind == 0:   # type unknown (some host file systems): ask
            q = d + "/" + e[0]
            kind = _S_IFDIR if _realname(q) and _isdir(q) else _S_IFREG
        (dirs if kind == _S_IFDIR else files).append(e[0])
    return dirs, files


def _tree(top, post=False):
    # Every entry below the directory top as (path, isdir), directories
    # before their contents (post: after them).  Iterative: the depth of a
    # tree is the client's choice, the server thread's stack is not.  The
    # stack holds, per level, the length of its path and the
    # subdirectories still to visit.
    stack = []
    cur = top
    while True:
        dirs, files = _entries(cur)
        for name in files:
            yield cur + "/" + name, False
        stack.append((len(cur), dirs))
        while stack:
            n, dirs = stack[-1]
            cur = cur[:n]
            if dirs:
                cur += "/" + dirs.pop()
                if not post:
                    yield cur, True
                break
            stack.pop()
            if post and stack:
                yield cur, True
        else:
            return


def _acl_cb(cb, path, need):
    r = cb(path)
    if isinstance(r, int) and not isinstance(r, bool):
        if 400 <= r <= 599:
            return r
        if r in (ACL_RO, ACL_WO, ACL_RW) and r & need == need:
            return 0
    return 403


def _acl(fcfg, path, need):
    return 0 if fcfg[0] is None else _acl_cb(fcfg[0], path, need)


def _disposition_path(req):
    h = req.header("content-disposition")
    if not h:
        return None
    h = h.decode()
    kind, _, rest = h.partition(";")
    if kind.strip().lower() not in ("attachment", "attachement"):
        return None
    for p in rest.split(";"):
        k, _, v = p.strip().partition("=")
        if k.strip().lower() == "filename":
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            return v
    return None


def _receive(req, cfg):
    prefix, dynamic, extonly, fcfg = cfg
    if dynamic:
        path = req.path()[len(prefix):]
    else:
        path = _disposition_path(req)
        if path is None:
            return req._file_reply(400, None, "Content-Disposition: attachment; filename=\"/path\" required\n")
        path = _uhttpd.normpath(path)   # the C normaliser the server uses
        if path is None:
            return req._file_reply(400, None, "bad filename\n")
    if path in ("", "/"):
        return req._file_reply(403)
    ext = fcfg[1]
    if extonly and not (path == ext + "/" or path.startswith(ext + "/")):
        return req._file_reply(403, None, "uploads only under %s\n" % ext)
    if not _realname(path):
        # another spelling of a stored name, or a symlink on the way
        return req._file_reply(404)
    is_dir = path.endswith("/")
    if req.method() == DELETE:
        return _delete(req, path, fcfg)
    if is_dir and _is_multipart(req):
        # a form upload into the directory: every file part is checked by
        # _mp_target as it arrives (C streams, renames and replies)
        if req.header("content-length") is None and req.header("transfer-encoding") is None:
            return req._file_reply(411)
        return req._recv_mp(path, _mp_target, fcfg)
    s = _acl(fcfg, path, ACL_WO)
    if s:
        return req._file_reply(s)
    try:
        if is_dir:
            existed = _isdir(path)
            if existed is False:
                return req._file_reply(409, None, "a file is in the way\n")
            _makedirs(path)
            return req._file_reply(200 if existed else 201)
        if req.header("content-length") is None and req.header("transfer-encoding") is None:
            return req._file_reply(411)
        parent = path.rsplit("/", 1)[0]
        if parent:
            _makedirs(parent)
        kind = _isdir(path)
        if kind:
            return req._file_reply(409, None, "a directory is in the way\n")
        created = kind is None
        if req._recv_to(path, created):
            req._file_reply(201 if created else 200, None, "Created\n" if created else "OK\n")
    except OSError as e:
        req._file_reply(_errno_status(e))


def _is_multipart(req):
    ct = req.header("content-type")
    return ct is not None and ct.split(b";", 1)[0].strip().lower() == b"multipart/form-data"


def _mp_target(fcfg, d, name):
    # Where a file part of a multipart upload into the directory d goes:
    # its path, or the status to answer.  Called by the C side when the
    # part's headers are complete, before anything is written.  The name is
    # a base name: no separator, no "..", no NUL.
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return 400
    p = d + name
    if not _realname(p):
        return 404
    s = _acl(fcfg, p, ACL_WO)
    if s:
        return s
    try:
        _makedirs(d)
        if _isdir(p):
            return 409
    except OSError as e:
        return _errno_status(e)
    return p


def _delete(req, path, fcfg):
    p = path.rstrip("/") or "/"
    kind = _isdir(p)
    s = _acl(fcfg, p + "/" if kind else path, ACL_WO)
    if s:
        return req._file_reply(s)
    if kind is None:
        return req._file_reply(404)
    try:
        if kind:
            if req.query("force") in (b"1", True):
                # file_acl decides about every entry before anything goes
                for q, isdir in _tree(p) if fcfg[0] is not None else ():
                    s = _acl(fcfg, q + "/" if isdir else q, ACL_WO)
                    if s:
                        return req._file_reply(s)
                for q, isdir in _tree(p, True):
                    if isdir:
                        os.rmdir(q)
                    else:
                        os.remove(q)
                os.rmdir(p)
            else:
                try:
                    os.rmdir(p)
                except OSError as e:
                    if _isdir(p):
                        return req._file_reply(409, None, "directory not empty (use ?force=1)\n")
                    raise e
        else:
            if path.endswith("/"):
                return req._file_reply(404)
            os.remove(p)
        req._file_reply(204)
    except OSError as e:
        req._file_reply(_errno_status(e))
