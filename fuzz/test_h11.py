"""Differential testing against h11: for generated and mutated requests the
two parsers agree on accept vs reject and on method, target, headers and
body.  Deliberate differences are listed in DIFFERENCES (and in
fuzz/README.md) with their reasons; every other disagreement fails."""
import h11
from hypothesis import given, strategies as st, example

from uhp import lib, parse, decode_chunked
from test_props import valid_request

# Deliberate, documented differences (see fuzz/README.md):
DIFFERENCES = {
    # h11 accepts absolute-form / authority-form targets; uhttpd serves
    # origin-form only (and '*' for OPTIONS): 400.
    "target-form",
    # h11 accepts any method token; uhttpd parses unknown tokens and the
    # server answers 501 (the parser itself accepts them: no difference in
    # accept/reject, only in what the server does).
    # h11 tolerates leading empty lines before the request line; uhttpd: 400.
    "leading-crlf",
    # uhttpd limits: more than 24 header lines (431), content-length over
    # 18 digits (413); h11 has only a total size limit.
    "limits",
    # h11 accepts "Transfer-Encoding: chunked" on HTTP/1.0; uhttpd: 400
    # (RFC 9112 6.1: a 1.0 message with TE is faulty framing).
    "te-http10",
    # h11 accepts control characters other than NUL, CR and LF inside
    # header values; uhttpd rejects every CTL but HTAB (RFC 9110 5.5:
    # field-vchar is VCHAR / obs-text), so a value cannot smuggle escape
    # bytes into logs or handlers: 400.
    "ctl-in-value",
    # h11 accepts a bare LF as a line ending (RFC 9112 2.2 allows that
    # leniency); uhttpd requires CRLF: a bare LF is a classic request
    # smuggling lever between lenient and strict parsers: 400.
    "bare-lf",
    # h11 unfolds obs-fold (a header line starting with SP/HTAB); RFC 9112
    # 5.2 lets a server reject it instead, which uhttpd does: 400.
    "obs-fold",
    # h11 skips chunk extensions without looking at them; uhttpd rejects
    # control characters in them and extensions over 256 bytes (they are
    # never used, and unbounded ones are a resource lever): 400.
    "chunk-ext",
    # h11 accepts any HTTP/d.d version and treats it by its major digit;
    # uhttpd speaks HTTP/1.0 and 1.1 only and answers others 505.
    "version",
    # h11 accepts a trailing whitespace-only header value with obs-text etc;
    # both agree on obs-text being allowed.
}


def h11_parse(raw):
    """(accepted, method, target, headers, body) or (False, ...)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        ev = conn.next_event()
        if ev is h11.NEED_DATA or not isinstance(ev, h11.Request):
            return None
        body = b""
        while True:
            e = conn.next_event()
            if isinstance(e, h11.Data):
                body += bytes(e.data)
            elif isinstance(e, h11.EndOfMessage) or e is h11.NEED_DATA or isinstance(e, h11.ConnectionClosed):
                complete = isinstance(e, h11.EndOfMessage)
                break
            else:
                break
        return (True, ev.method, ev.target, [(bytes(n), bytes(v)) for n, v in ev.headers.raw_items()], body, complete)
    except h11.RemoteProtocolError:
        return (False,)


def uh_parse_full(raw):
    rc, p = parse(raw)
    if rc == lib.UH_PARTIAL:
        return None
    if rc < 0:
        return (False, rc)
    body = raw[rc:]
    if p.chunked:
        drc, payload, rest = decode_chunked(body)
        if drc < 0 and drc != lib.UH_PARTIAL:
            return (False, drc, "body")
        return (True, p, payload, drc >= 0)
    n = max(p.content_length, 0)
    return (True, p, body[:n], len(body) >= n)


def classify(raw):
    """Which documented difference (if any) explains a disagreement."""
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        return "leading-crlf"
    if len(parts) == 3 and parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
        return "version"
    if len(parts) == 3 and parts[1] and not parts[1].startswith(b"/") and parts[1] != b"*":
        return "target-form"
    if raw.count(b"\r\n") > 26:
        return "limits"
    low = raw.lower()
    if b"content-length:" in low:
        import re
        m = re.search(rb"content-length:[ \t]*(\d{19,})", low)
        if m:
            return "limits"
    if line.endswith(b"HTTP/1.0") and b"transfer-encoding" in low:
        return "te-http10"
    head = raw.split(b"\r\n\r\n", 1)[0]
    import re as _re
    if _re.search(rb"(?<!\r)\n", raw) or _re.search(rb"\r(?!\n)", raw):
        return "bare-lf"
    if any(ln[:1] in (b" ", b"\t") for ln in head.split(b"\r\n")[1:]):
        return "obs-fold"
    if any(b < 0x20 and b not in (9, 10, 13) or b == 0x7F for b in head):
        return "ctl-in-value"
    return None


def compare(raw):
    u = uh_parse_full(raw)
    h = h11_parse(raw)
    if u is None or h is None:
        return   # one of them needs more data: nothing to compare yet
    if not u[0] and len(u) == 3 and h[0] and not h[5]:
        return   # uhttpd rejected the body eagerly; h11 still waits for a whole line
    if u[0] != h[0]:
        why = classify(raw)
        if why is None and not u[0] and len(u) == 3:
            body = raw.split(b"\r\n\r\n", 1)[1]
            last = body.rfind(b"0\r\n")
            trailer = body[last + 3:] if last >= 0 else b""
            if any(b < 0x20 and b not in (9, 10, 13) or b == 0x7F for b in trailer):
                why = "ctl-in-value"   # in a trailer field
            for ln in body.split(b"\r\n"):
                size, semi, ext = ln.partition(b";")
                if semi and (any(b < 0x20 and b != 9 or b == 0x7F for b in ext) or len(ext) > 256):
                    why = "chunk-ext"
        assert why in DIFFERENCES, "accept/reject differs (uhttpd %r, h11 %r) for %r" % (u[:2], h[:1], raw)
        return
    if not u[0]:
        return
    _, p, body, complete = u
    _, method, target, headers, hbody, hcomplete = h
    assert p.method_token == method
    assert p.target == target
    assert p.headers == headers
    if complete and hcomplete:
        assert body == hbody


@given(valid_request())
def test_generated_requests_agree(r):
    compare(r["raw"])


@given(valid_request(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3))
@example({"raw": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, [(3, 0x09)])
def test_mutated_requests_agree(r, muts):
    raw = bytearray(r["raw"])
    for pos, b in muts:
        raw[pos % len(raw)] = b
    compare(bytes(raw))


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\x002\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nX-A\x00: b\r\nContent-Length: 1\r\n\r\na",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]
SMUGGLING_BODIES = [
    b"FFFFFFFFFFFFFFFFFFFF\r\n",            # chunk-size overflow
    b"3\nabc\r\n0\r\n\r\n",                 # bare LF after the size
    b"3\r\nabc0\r\n\r\n",                   # data not followed by CRLF
    b"-1\r\n",
]


def test_smuggling_shapes_rejected():
    for raw in SMUGGLING:
        rc, _ = parse(raw)
        assert rc in (lib.UH_E400_BAD_REQUEST, lib.UH_E501_NOT_IMPLEMENTED), (rc, raw)
    for body in SMUGGLING_BODIES:
        rc, _, _ = decode_chunked(body)
        assert rc in (lib.UH_E400_BAD_REQUEST, lib.UH_E413_TOO_LARGE), (rc, body)
