# ssl for the uhttpd unix host build: a thin layer over the built-in `tls`
# module (mbedTLS), with the API of MicroPython's documented `ssl` module
# (docs/library/ssl.rst).  On the board, micropython-lib's `ssl` package
# plays this part; Debian's +ds source tree does not ship micropython-lib,
# so the host variant freezes this file instead (see manifest.py here).
import tls
from tls import *  # noqa: F401,F403  (PROTOCOL_*, CERT_*, MBEDTLS_VERSION)


def _data(x):
    # str: a file path; bytes-like: the content itself.
    if isinstance(x, str):
        with open(x, "rb") as f:
            return f.read()
    return x


class SSLContext:
    def __init__(self, *args):
        self._ctx = tls.SSLContext(*args)
        self._ctx.verify_mode = tls.CERT_NONE

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._ctx.verify_mode = mode

    def load_cert_chain(self, certfile, keyfile):
        self._ctx.load_cert_chain(_data(certfile), _data(keyfile))

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile is not None:
            cadata = _data(cafile)
        self._ctx.load_verify_locations(cadata)

    def get_ciphers(self):
        return self._ctx.get_ciphers()

    def set_ciphers(self, ciphers):
        self._ctx.set_ciphers(ciphers)

    def wrap_socket(
        self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None
    ):
        return self._ctx.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname,
        )


def wrap_socket(
    sock,
    server_side=False,
    key=None,
    cert=None,
    cert_reqs=CERT_NONE,  # noqa: F405
    cadata=None,
    server_hostname=None,
    do_handshake=True,
):
    ctx = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)  # noqa: F405
    if cert is not None or key is not None:
        ctx.load_cert_chain(cert, key)
    if cadata is not None:
        ctx.load_verify_locations(cadata=cadata)
    ctx.verify_mode = cert_reqs
    return ctx.wrap_socket(
        sock,
        server_side=server_side,
        do_handshake_on_connect=do_handshake,
        server_hostname=server_hostname,
    )
