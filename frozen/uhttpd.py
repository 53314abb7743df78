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
_METHODS = GET | POST | DELETE


def _bits(n):
    c = 0
    while n:
        c += n & 1
        n >>= 1
    return c


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
    """

    def __init__(self, port=80, acl=AUTH_OPEN, cors=False, routes=8, auth=None,
                 events=0, host="0.0.0.0", max_conns=4, max_header=2048,
                 timeout=5, max_body=16 * 1024 * 1024, ext_path="/sd"):
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
        self._ext_path = ext_path
        self._core = _uhttpd.Core(self, host, port, max_conns, max_header,
                                  int(timeout * 1000), max_body)
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

    def close(self):
        """Stop the server thread and free the port (idempotent)."""
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
