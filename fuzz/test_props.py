"""hypothesis properties of the parser, the chunked decoder and the pure
helpers (run by `make test`; HYPOTHESIS_PROFILE=long for a long run)."""
import hashlib
import base64
import re

from hypothesis import given, strategies as st, assume, example

from uhp import (lib, parse, decode_chunked, url_decode, path_normalize, match, query_find,
                 sha1, ws_accept, ERRORS, METHODS)

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
token = st.text(alphabet=TCHAR, min_size=1, max_size=12)
pchar = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"))
segment = st.lists(st.one_of(pchar, st.builds(lambda b: "%%%02X" % b, st.integers(1, 255))),
                   max_size=8).map("".join)
path = st.lists(segment, min_size=0, max_size=5).map(lambda s: "/" + "/".join(s))
query = st.lists(st.tuples(st.text(alphabet="abcdefxyz0123", min_size=1, max_size=5),
                           st.one_of(st.none(), st.text(alphabet="abcxyz0123%+", max_size=6))),
                 max_size=4).map(lambda kv: "&".join(k if v is None else "%s=%s" % (k, v) for k, v in kv))
vchar = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=20)
field_value = st.lists(vchar, min_size=0, max_size=3).map(" ".join)
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
header = st.tuples(token.filter(lambda t: t.lower() not in RESERVED), field_value)


@st.composite
def chunked_body(draw):
    payload = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=5))
    out = b""
    for p in payload:
        ext = draw(st.sampled_from([b"", b";a", b";a=b", b';n="v;x"']))
        out += b"%x" % len(p) + ext + b"\r\n" + p + b"\r\n"
    out += b"0\r\n"
    for name, val in draw(st.lists(header, max_size=2)):
        out += name.encode() + b": " + val.encode() + b"\r\n"
    out += b"\r\n"
    return out, b"".join(payload)


@st.composite
def valid_request(draw):
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    p = draw(path)
    q = draw(query)
    target = p + ("?" + q if q else "")
    hdrs = draw(st.lists(header, max_size=8))
    body_kind = draw(st.sampled_from(["none", "cl", "chunked"]))
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: example.test"]
    for n, v in hdrs:
        lines.append("%s: %s" % (n, v))
    body, payload = b"", b""
    if body_kind == "cl":
        payload = draw(st.binary(max_size=64))
        lines.append("Content-Length: %d" % len(payload))
        body = payload
    elif body_kind == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body, payload = draw(chunked_body())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return dict(raw=head + body, head=head, method=method, target=target, path=p, query=q,
                headers=[(b"Host", b"example.test")] + [(n.encode(), v.encode()) for n, v in hdrs],
                body_kind=body_kind, payload=payload, body=body)


def valid_rc(rc, n):
    return rc == lib.UH_PARTIAL or rc in ERRORS or 0 < rc <= n


@given(st.binary(max_size=600))
def test_arbitrary_bytes_end_in_a_known_result(data):
    rc, p = parse(data)   # spans are checked inside parse()
    assert valid_rc(rc, len(data))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_request_line(data):
    raw = b"GET / HTTP/1.1\r\n" + data
    rc, _ = parse(raw)
    assert valid_rc(rc, len(raw))


@given(valid_request())
def test_valid_requests_round_trip(r):
    rc, p = parse(r["raw"])
    assert rc == len(r["head"])
    assert METHODS[p.method] == r["method"]
    assert p.target == r["target"].encode()
    assert p.path == r["path"].encode()
    assert p.query == r["query"].encode()
    got = [(n, v) for n, v in p.headers if n.lower() not in (b"content-length", b"transfer-encoding")]
    assert got == r["headers"]
    if r["body_kind"] == "cl":
        assert p.content_length == len(r["payload"]) and not p.chunked
    elif r["body_kind"] == "chunked":
        assert p.chunked and p.content_length == -1
        rc2, payload, rest = decode_chunked(r["body"])
        assert rc2 == 0 and payload == r["payload"] and rest == b""
    else:
        assert p.content_length == -1 and not p.chunked


@given(valid_request(), st.data())
def test_split_invariance(r, data):
    """Fed in any split, a request parses exactly as when fed whole."""
    whole_rc, whole = parse(r["raw"])
    cut = data.draw(st.integers(0, len(r["head"])))
    rc, _ = parse(r["raw"][:cut])
    if cut < len(r["head"]):
        assert rc == lib.UH_PARTIAL
    if r["body_kind"] == "chunked":
        body = r["body"]
        cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
        pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
        rc1, out1, rest1 = decode_chunked(body)
        rc2, out2, rest2 = decode_chunked(body, pieces)
        assert (rc1 >= 0) == (rc2 >= 0) and out1 == out2 and rest1 == rest2
        bytewise = [body[i:i + 1] for i in range(len(body))]
        rc3, out3, rest3 = decode_chunked(body, bytewise)
        assert out3 == out1


@given(valid_request(), st.integers(0, 10**6), st.integers(0, 255))
def test_one_byte_mutation_is_ok_or_a_named_error(r, pos, byte):
    raw = bytearray(r["head"])
    raw[pos % len(raw)] = byte
    rc, _ = parse(bytes(raw))
    assert valid_rc(rc, len(raw))


@given(st.binary(max_size=200), st.data())
def test_chunked_arbitrary_split_invariant(data, d):
    cuts = sorted(d.draw(st.lists(st.integers(0, len(data)), max_size=5)))
    pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    r1 = decode_chunked(data)
    r2 = decode_chunked(data, pieces)
    assert (r1[0] >= 0) == (r2[0] >= 0)
    assert (r1[0] == lib.UH_PARTIAL) == (r2[0] == lib.UH_PARTIAL)
    if r1[0] >= 0 or r1[0] == lib.UH_PARTIAL:
        assert r1[1] == r2[1] and r1[2] == r2[2]


# ---- helpers -------------------------------------------------------------------

@given(st.binary(max_size=100))
def test_url_decode_matches_reference(s):
    from urllib.parse import unquote_to_bytes
    got = url_decode(s)
    bad = re.search(rb"%(?![0-9A-Fa-f]{2})", s) or re.search(rb"%00", s)
    if bad:
        assert got is None
    else:
        assert got == unquote_to_bytes(s)


@given(st.text(alphabet="/.\\ab", max_size=30).map(lambda t: ("/" + t).encode()))
@example(b"/a/../../b")
@example(b"/..")
@example(b"/a/./b/../c//")
def test_path_normalize(p):
    got = path_normalize(p)
    import posixpath
    ref = "/" + posixpath.normpath(p.replace(b"\\", b"/").decode()).lstrip("/")
    climbs = False
    depth = 0
    for seg in p.replace(b"\\", b"/").split(b"/"):
        if seg == b"..":
            depth -= 1
            climbs |= depth < 0
        elif seg not in (b"", b"."):
            depth += 1
    if climbs:
        assert got is None
        return
    assert got is not None and got.startswith(b"/")
    assert b"/../" not in got + b"/" and b"/./" not in got + b"/" and b"//" not in got
    assert got.rstrip(b"/") == ref.encode().rstrip(b"/")
    assert path_normalize(got) == got     # idempotent


@given(st.text(alphabet="ab*/", max_size=8), st.text(alphabet="ab/", max_size=12))
def test_wildcard_match_vs_regex(pat, s):
    rx = "^" + "".join(".*" if c == "*" else re.escape(c) for c in pat) + "$"
    assert match(pat.encode(), s.encode()) == bool(re.match(rx, s, re.S))


@given(query, st.text(alphabet="abcdefxyz0123", min_size=1, max_size=5))
def test_query_find_first_match(q, key):
    ref = None
    for part in q.split("&"):
        if not part:
            continue
        k, eq, v = part.partition("=")
        if k == key:
            ref = True if not eq else v.encode()
            break
    assert query_find(q.encode(), key.encode()) == ref


@given(st.binary(max_size=300))
def test_sha1(data):
    assert sha1(data) == hashlib.sha1(data).digest()


@given(st.binary(min_size=1, max_size=60))
def test_ws_accept(key):
    ref = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert ws_accept(key) == ref


def test_ws_accept_rfc6455_example():
    assert ws_accept(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
