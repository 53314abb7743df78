"""Python-side helpers around the cffi parser build."""
from build_ffi import load

ffi, lib = load()

MAX_HEADERS = 24
ERRORS = {lib.UH_E400_BAD_REQUEST, lib.UH_E411_LENGTH_REQUIRED, lib.UH_E413_TOO_LARGE,
          lib.UH_E414_URI_TOO_LONG, lib.UH_E431_HEADERS_TOO_LARGE, lib.UH_E501_NOT_IMPLEMENTED,
          lib.UH_E505_VERSION}
METHODS = {1: "GET", 2: "HEAD", 3: "POST", 4: "PUT", 5: "DELETE", 6: "OPTIONS", 7: "PATCH",
           8: "CONNECT", 9: "TRACE"}


class Parsed:
    pass


def parse(data, max_headers=MAX_HEADERS):
    """Parse with the input at the very end of its own allocation (an
    over-read walks off it; under ASan in the libFuzzer harness it traps).
    Returns (rc, Parsed or None); all spans are checked to lie inside."""
    buf = ffi.new("char[]", len(data)) if data else ffi.new("char[]", 1)
    ffi.memmove(buf, data, len(data))
    hdrs = ffi.new("uh_header_t[]", max_headers)
    req = ffi.new("uh_request_t *")
    req.headers = hdrs
    req.max_headers = max_headers
    rc = lib.uh_parse_request(buf, len(data), req)
    if rc <= 0:
        return rc, None
    base = int(ffi.cast("uintptr_t", buf))

    def span(s, allow_null=True):
        if s.ptr == ffi.NULL:
            assert s.len == 0 and allow_null
            return b""
        off = int(ffi.cast("uintptr_t", s.ptr)) - base
        assert 0 <= off and off + s.len <= rc, (off, s.len, rc)
        return data[off:off + s.len]
    p = Parsed()
    p.method = req.method
    p.method_token = span(req.method_token)
    p.target = span(req.target)
    p.path = span(req.path)
    p.query = span(req.query)
    p.minor = req.minor_version
    p.content_length = req.content_length
    p.chunked = req.chunked
    p.keep_alive = req.keep_alive
    p.expect_continue = req.expect_continue
    p.upgrade_websocket = req.upgrade_websocket
    assert req.num_headers <= max_headers
    p.headers = [(span(hdrs[i].name), span(hdrs[i].value)) for i in range(req.num_headers)]
    return rc, p


def decode_chunked(data, pieces=None):
    """Feed data (whole, or as the given pieces) to the chunked decoder.
    Returns (rc, payload, rest)."""
    st = ffi.new("uh_chunked_t *")
    pieces = pieces or [data]
    out = b""
    rc = lib.UH_PARTIAL
    for i, piece in enumerate(pieces):
        buf = ffi.new("char[]", max(1, len(piece)))
        ffi.memmove(buf, piece, len(piece))
        n = ffi.new("size_t *", len(piece))
        rc = lib.uh_decode_chunked(st, buf, n)
        if rc < 0 and rc != lib.UH_PARTIAL:
            return rc, out, b""
        assert n[0] <= len(piece)
        out += ffi.buffer(buf, n[0])[:]
        if rc >= 0:
            assert n[0] + rc <= len(piece)
            rest = ffi.buffer(buf, n[0] + rc)[n[0]:]
            rest += b"".join(pieces[i + 1:])
            return rc, out, rest
    return rc, out, b""


def url_decode(s, cap=None):
    cap = len(s) if cap is None else cap
    dst = ffi.new("char[]", max(1, cap))
    n = lib.uh_url_decode(s, len(s), dst, cap)
    return None if n < 0 else ffi.buffer(dst, n)[:]


def path_normalize(s):
    buf = ffi.new("char[]", max(1, len(s)))
    ffi.memmove(buf, s, len(s))
    n = lib.uh_path_normalize(buf, len(s))
    return None if n < 0 else ffi.buffer(buf, n)[:]


def match(pat, s):
    return bool(lib.uh_match(pat, len(pat), s, len(s)))


def query_find(q, key):
    val = ffi.new("uh_span_t *")
    if not lib.uh_query_find(q, len(q), key, len(key), val):
        return None
    if val.ptr == ffi.NULL:
        return True
    return ffi.buffer(val.ptr, val.len)[:]


def sha1(data):
    out = ffi.new("uint8_t[20]")
    lib.uh_sha1(data, len(data), out)
    return bytes(out)


def ws_accept(key):
    out = ffi.new("char[29]")
    lib.uh_ws_accept(key, len(key), out)
    return ffi.string(out)
