"""uhttpd REPL glue: binds a WebSocket from the server (_uhttpd.WSock) to the
MicroPython REPL through MicroPython's own websocket, _webrepl and
os.dupterm, so the protocol is exactly WebREPL's."""

_claimed = False


class _Repl:
    def __init__(self, pwd):
        self.pwd = pwd

    def attach(self, sock):
        """Called by the server with the upgraded socket; returns the object
        given to os.dupterm (the server tells its session by it)."""
        import os
        import websocket
        ws = websocket.websocket(sock)
        if self.pwd is not None:
            import _webrepl
            _webrepl.password(self.pwd)
            ws = _webrepl._webrepl(ws)
        os.dupterm(ws)
        return ws


def setup(pwd):
    """Validate ``pwd`` (WebREPL's rules) and claim the process's REPL url."""
    global _claimed
    try:
        import os
        import websocket  # noqa: F401
        os.dupterm  # noqa: B018
        if pwd is not None:
            import _webrepl  # noqa: F401
    except (ImportError, AttributeError):
        raise OSError("uhttpd: this firmware has no WebREPL support (websocket/_webrepl/os.dupterm)")
    if pwd is not None:
        if not isinstance(pwd, str):
            raise TypeError("pwd must be a str")
        if not 1 <= len(pwd) <= 9:
            raise ValueError("WebREPL passwords are 1 to 9 characters (got %d)" % len(pwd))
    if _claimed:
        raise OSError("uhttpd: a REPL url is already registered in this process")
    _claimed = True
    return _Repl(pwd)


def release():
    global _claimed
    _claimed = False
