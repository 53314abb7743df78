"""Table-driven parser cases: each runs whole, for every prefix (must be
UH_PARTIAL) and split at every point (must equal the whole)."""
import pytest

from uhp import lib, parse, decode_chunked

OK = "ok"
VECTORS = [
    # name, raw, expected rc ("ok" = consumed the whole head), checks
    ("simple get", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", OK,
     dict(method=1, target=b"/", path=b"/", query=b"", minor=1, keep_alive=1, content_length=-1)),
    ("query and fragment", b"GET /p/a%20b?x=1&y#frag HTTP/1.1\r\nHost: a\r\n\r\n", OK,
     dict(target=b"/p/a%20b?x=1&y#frag", path=b"/p/a%20b", query=b"x=1&y")),
    ("http/1.0 no host", b"GET /x HTTP/1.0\r\n\r\n", OK, dict(minor=0, keep_alive=0)),
    ("1.0 keep-alive", b"GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", OK, dict(keep_alive=1)),
    ("1.1 close", b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", OK, dict(keep_alive=0)),
    ("post cl", b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", OK,
     dict(method=3, content_length=12, chunked=0)),
    ("post chunked", b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", OK,
     dict(chunked=1, content_length=-1)),
    ("ows trimmed", b"GET / HTTP/1.1\r\nHost:   a b  \t\r\nX:\r\n\r\n", OK,
     dict(headers=[(b"Host", b"a b"), (b"X", b"")])),
    ("expect", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", OK,
     dict(expect_continue=1)),
    ("websocket", b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
     OK, dict(upgrade_websocket=1)),
    ("options star", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", OK, dict(method=6, target=b"*")),
    ("unknown method token", b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", OK, dict(method=0, method_token=b"BREW")),
    ("obs-text value", b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", OK, {}),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", lib.UH_E400_BAD_REQUEST, {}),
    ("bare CR", b"GET / HTTP/1.1\rHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("no host", b"GET / HTTP/1.1\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("CTL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("DEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("two spaces", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("relative target", b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("absolute-form", b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("star not options", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("http/2", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", lib.UH_E505_VERSION, {}),
    ("http/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", lib.UH_E505_VERSION, {}),
    ("cl+te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     lib.UH_E400_BAD_REQUEST, {}),
    ("te+cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
     lib.UH_E400_BAD_REQUEST, {}),
    ("dup cl equal", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
     lib.UH_E400_BAD_REQUEST, {}),
    ("cl list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("cl negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("cl plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("cl hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("cl empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("cl huge", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
     lib.UH_E413_TOO_LARGE, {}),
    ("te gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", lib.UH_E501_NOT_IMPLEMENTED, {}),
    ("te chunked,identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
     lib.UH_E501_NOT_IMPLEMENTED, {}),
    ("te twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     lib.UH_E400_BAD_REQUEST, {}),
    ("te vertical tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
     lib.UH_E400_BAD_REQUEST, {}),
    ("te 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
    ("too many headers", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(30)) + b"\r\n",
     lib.UH_E431_HEADERS_TOO_LARGE, {}),
    ("leading CRLF", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", lib.UH_E400_BAD_REQUEST, {}),
]


def check(p, exp):
    for k, v in exp.items():
        assert getattr(p, k) == v, (k, getattr(p, k), v)


@pytest.mark.parametrize("name,raw,rc,exp", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_whole_prefixes_and_splits(name, raw, rc, exp):
    got, p = parse(raw)
    if rc == OK:
        assert got == len(raw)
        check(p, exp)
        # every strict prefix is incomplete
        for i in range(len(raw)):
            r, _ = parse(raw[:i])
            assert r == lib.UH_PARTIAL, (i, r)
        # trailing bytes (a body, a pipelined request) are not consumed
        r2, p2 = parse(raw + b"BODY")
        assert r2 == len(raw)
    else:
        assert got == rc
        # a prefix is either incomplete or already the same error
        for i in range(len(raw)):
            r, _ = parse(raw[:i])
            assert r in (lib.UH_PARTIAL, rc), (i, r)


CHUNKED = [
    ("simple", b"3\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    ("two chunks and rest", b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\nGET /", b"abc0123456789", b"GET /"),
    ("extension", b"3;name=val;x=\"q;d\"\r\nabc\r\n0;last\r\n\r\n", b"abc", b""),
    ("trailer", b"1\r\nZ\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nrest", b"Z", b"rest"),
    ("uppercase hex", b"FF\r\n" + b"x" * 255 + b"\r\n0\r\n\r\n", b"x" * 255, b""),
    ("leading zeros", b"0003\r\nabc\r\n0\r\n\r\n", b"abc", b""),
]
CHUNKED_BAD = [
    ("no size", b"\r\nabc\r\n0\r\n\r\n"),
    ("bad hex", b"3g\r\nabc\r\n0\r\n\r\n"),
    ("bare LF after size", b"3\nabc\r\n0\r\n\r\n"),
    ("missing CRLF after data", b"3\r\nabcX\r\n0\r\n\r\n"),
    ("bare LF after data", b"3\r\nabc\n0\r\n\r\n"),
    ("negative", b"-3\r\nabc\r\n0\r\n\r\n"),
    ("NUL in extension", b"3;a\x00\r\nabc\r\n0\r\n\r\n"),
    ("bare LF in trailer", b"0\r\nX: 1\n\r\n"),
]


@pytest.mark.parametrize("name,raw,payload,rest", CHUNKED, ids=[c[0] for c in CHUNKED])
def test_chunked_whole_and_byte_by_byte(name, raw, payload, rest):
    rc, out, r = decode_chunked(raw)
    assert rc == len(rest) and out == payload and r == rest
    rc, out, r = decode_chunked(raw, [raw[i:i + 1] for i in range(len(raw))])
    assert rc >= 0 and out == payload and r == rest
    for cut in range(len(raw)):
        rc, out, r = decode_chunked(raw, [raw[:cut], raw[cut:]])
        assert rc >= 0 and out == payload and r == rest


@pytest.mark.parametrize("name,raw", CHUNKED_BAD, ids=[c[0] for c in CHUNKED_BAD])
def test_chunked_rejects(name, raw):
    rc, _, _ = decode_chunked(raw)
    assert rc == lib.UH_E400_BAD_REQUEST


def test_chunked_size_overflow_is_413():
    rc, _, _ = decode_chunked(b"FFFFFFFFFFFFFFFFFF\r\n")
    assert rc == lib.UH_E413_TOO_LARGE


def test_chunked_error_is_sticky():
    from uhp import ffi
    st = ffi.new("uh_chunked_t *")
    buf = ffi.new("char[]", b"zz\r\n")
    n = ffi.new("size_t *", 4)
    assert lib.uh_decode_chunked(st, buf, n) == lib.UH_E400_BAD_REQUEST
    buf2 = ffi.new("char[]", b"3\r\nabc\r\n0\r\n\r\n")
    n2 = ffi.new("size_t *", 13)
    assert lib.uh_decode_chunked(st, buf2, n2) == lib.UH_E400_BAD_REQUEST


def test_chunk_extension_too_long():
    rc, _, _ = decode_chunked(b"3;" + b"a" * 5000 + b"\r\nabc\r\n0\r\n\r\n")
    assert rc == lib.UH_E400_BAD_REQUEST


def test_overflow_status():
    assert lib.uh_parse_overflow(b"GET /aaaa", 9) == lib.UH_E414_URI_TOO_LONG
    assert lib.uh_parse_overflow(b"GET / HTTP/1.1\r\nX: aaaa", 23) == lib.UH_E431_HEADERS_TOO_LARGE


def test_status_reasons():
    from uhp import ffi
    assert ffi.string(lib.uh_status_reason(404)) == b"Not Found"
    assert ffi.string(lib.uh_status_reason(507)) == b"Insufficient Storage"
    assert ffi.string(lib.uh_status_reason(799)) == b"Unknown"
