"""uhttpd REPL glue: validates ws()'s password, claims the process's one
REPL url, and gives the server's native WebREPL stream (native/uh_ws.c,
which speaks the protocol itself) to os.dupterm.  Neither the `websocket`
nor the `_webrepl` module is used: the built-in WebREPL's password is left
alone."""

_claimed = False


class _Repl:
    def __init__(self, pwd):
        self.pwd = pwd   # read by the server at each upgrade

    def attach(self, stream):
        """Called by the server with a new session's stream."""
        import os
        os.dupterm(stream)


def setup(pwd):
    """Validate ``pwd`` (1 to 9 characters, as WebREPL's) and claim the
    process's REPL url."""
    global _claimed
    import os
    if not hasattr(os, "dupterm"):
        raise OSError("uhttpd: this firmware has no os.dupterm (needed for the REPL)")
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
