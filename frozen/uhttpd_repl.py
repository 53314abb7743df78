"""uhttpd REPL glue (placeholder): Server.ws() is not available yet."""


def setup(pwd):
    raise OSError("uhttpd: WebREPL support is not built in")


def release():
    pass
