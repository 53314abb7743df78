"""native/uh_multipart.c through cffi: named cases (each also run at every
split position) and properties on arbitrary bytes.  The differential test
against python-multipart is test_multipart_diff.py."""
import os
import random

import pytest
from hypothesis import given, strategies as st

import ump
from ump import DONE, E400, ffi, lib, parse

CT = b"multipart/form-data; boundary=XyZ"


def body(*parts, close=True, nl=b"\r\n", boundary=b"XyZ"):
    """parts: (header lines, data)."""
    out = b""
    for hdrs, data in parts:
        out += b"--" + boundary + nl + b"".join(h + nl for h in hdrs) + nl + data + nl
    return out + (b"--" + boundary + b"--" if close else b"")


def field(name, data, extra=()):
    return ([b'Content-Disposition: form-data; name="' + name + b'"'] + list(extra), data)


def everywhere(ct, b, hcap=ump.HCAP):
    """Parse whole, at every split and byte by byte: one answer."""
    rc, parts, _ = parse(ct, b, hcap=hcap)
    want = (rc, [p.key() for p in parts])
    for i in range(1, len(b)):
        r2, p2, _ = parse(ct, b, [i], hcap=hcap)
        assert (r2, [p.key() for p in p2]) == want, "split at %d" % i
    r3, p3, _ = parse(ct, b, range(len(b)), hcap=hcap)
    assert (r3, [p.key() for p in p3]) == want, "byte by byte"
    return rc, parts


# ---- Content-Type and boundary ----------------------------------------------------

@pytest.mark.parametrize("ct,ok", [
    (b"multipart/form-data; boundary=XyZ", True),
    (b'multipart/form-data; boundary="XyZ"', True),
    (b"Multipart/Form-Data;BOUNDARY=XyZ", True),
    (b"multipart/form-data ; charset=utf-8; boundary=XyZ ", True),
    (b'multipart/form-data; boundary="X\\yZ"', True),           # kept: X\yZ
    (b"multipart/form-data; boundary=" + b"b" * 70, True),
    (b"multipart/form-data; boundary=" + b"b" * 71, False),
    (b'multipart/form-data; boundary="' + b"b" * 71 + b'"', False),
    (b'multipart/form-data; boundary="a b"', True),
    (b'multipart/form-data; boundary="ab "', False),            # RFC 2046: no trailing space
    (b"multipart/form-data; boundary=", False),
    (b'multipart/form-data; boundary=""', False),
    (b"multipart/form-data", False),
    (b"multipart/form-data; charset=utf-8", False),
    (b"multipart/form-data; boundary=a; boundary=a", False),
    (b'multipart/form-data; boundary="abc', False),
    (b"multipart/form-data; boundary=a\x01b", False),
    (b"multipart/form-data; boundary=a\xffb", False),
    (b"multipart/mixed; boundary=XyZ", False),
    (b"application/x-www-form-urlencoded", False),
    (b"", False),
])
def test_init(ct, ok):
    rc, _ = ump.new(ct)
    assert rc == (0 if ok else E400)


def test_boundary_length_edges():
    for n, ok in ((69, True), (70, True), (71, False)):
        b = b"q" * n
        ct = b"multipart/form-data; boundary=" + b
        rc, parts, _ = parse(ct, body(field(b"a", b"1"), boundary=b))
        assert (rc == DONE and parts[0].data == b"1") if ok else rc == E400


def test_quoted_boundary_with_escapes():
    # \" and \\ are undone (as python-multipart does); other backslashes stay
    ct = b'multipart/form-data; boundary="X\\"y\\\\Z\\w"'
    rc, parts, _ = parse(ct, body(field(b"a", b"v"), boundary=b'X"y\\Z\\w'))
    assert rc == DONE and parts[0].data == b"v"


@pytest.mark.parametrize("ct,yes", [(b"multipart/form-data", 1), (b" MULTIPART/FORM-DATA;x", 1),
                                    (b"multipart/form-datax", 0), (b"text/plain", 0), (b"", 0)])
def test_is_form(ct, yes):
    assert lib.uh_mp_is_form(ct, len(ct)) == yes


# ---- framing ------------------------------------------------------------------------

def test_fields_files_and_headers():
    b = body(field(b"a", b"hello"),
             ([b'Content-Disposition: form-data; name="up"; filename="x.bin"',
               b"Content-Type: application/octet-stream", b"X-Other:  v  "], bytes(range(256))))
    rc, parts = everywhere(CT, b)
    assert rc == DONE
    assert [p.key() for p in parts] == [(b"a", None, b"", b"hello"),
                                        (b"up", b"x.bin", b"application/octet-stream", bytes(range(256)))]
    assert parts[1].headers == [(b"Content-Disposition", b'form-data; name="up"; filename="x.bin"'),
                                (b"Content-Type", b"application/octet-stream"), (b"X-Other", b"v")]


def test_empty_form_and_empty_parts():
    assert everywhere(CT, b"--XyZ--") == (DONE, [])
    rc, parts = everywhere(CT, body(field(b"", b""), field(b"e", b"")))
    assert rc == DONE and [p.key() for p in parts] == [(b"", None, b"", b""), (b"e", None, b"", b"")]


def test_preamble_and_epilogue_ignored():
    b = b"This is a preamble\r\n--XyZx\r\n--XyZ-x\r\n--XyZ\rx\r\nx--XyZ\r\n--Xy\r\n\r\n" + body(field(b"a", b"1")) + b"\r\nepilogue --XyZ\r\n"
    rc, parts = everywhere(CT, b)
    assert rc == DONE and [p.key() for p in parts] == [(b"a", None, b"", b"1")]


def test_near_delimiters_are_data():
    data = b"\r\n--XyZx \r\n--Xy\r\n--XyZ-\r\n--XyZ\rz\r\n-\r\r\n--\n--XyZ\r\n"[:-2] + b"!"
    rc, parts = everywhere(CT, body(field(b"a", data)))
    assert rc == DONE and parts[0].data == data


def test_transport_padding():
    b = b"--XyZ \t\r\n" + field(b"a", b"1")[0][0] + b"\r\n\r\n1\r\n--XyZ  \r\n" + \
        field(b"b", b"2")[0][0] + b"\r\n\r\n2\r\n--XyZ--"
    rc, parts = everywhere(CT, b)
    assert rc == DONE and [p.data for p in parts] == [b"1", b"2"]
    bad = b"--XyZ\r\n" + field(b"a", b"1")[0][0] + b"\r\n\r\n1\r\n--XyZ  x\r\n"
    assert everywhere(CT, bad)[0] == E400


def test_lf_only_body():
    b = body(field(b"a", b"one\r\ntwo"), field(b"b", b"x\n--XyZy"), nl=b"\n")
    rc, parts = everywhere(CT, b)
    # the first delimiter line ends in LF: LF-only from then on
    assert rc == DONE and [p.data for p in parts] == [b"one\r\ntwo", b"x\n--XyZy"]
    # in a CRLF body, "\n--XyZ\n" is data
    b2 = body(field(b"a", b"p\n--XyZ\nq"))
    rc, parts = everywhere(CT, b2)
    assert rc == DONE and parts[0].data == b"p\n--XyZ\nq"


def test_bare_lf_in_part_headers_of_crlf_body_400():
    # python-multipart reads 'name=""\nX-A: 1' as one value: no such doubt here
    b = b'--XyZ\r\nContent-Disposition: form-data; name=""\nX-A: 1\r\n\r\nx\r\n--XyZ--'
    assert everywhere(CT, b)[0] == E400
    rc, parts = everywhere(CT, b.replace(b"\r\n", b"\n"))
    assert rc == DONE and parts[0].headers == [(b"Content-Disposition", b'form-data; name=""'), (b"X-A", b"1")]


def test_close_delimiter_then_done_forever():
    rc, (mp, hbuf, _) = ump.new(CT)
    ev = ffi.new("uh_mp_event_t *")
    used = ffi.new("size_t *")
    b = body(field(b"a", b"1")) + b"\r\ntrailing junk"
    evs = []
    off = 0
    while off < len(b):
        r = lib.uh_mp_feed(mp, b[off:], len(b) - off, used, ev)
        evs.append(r)
        off += used[0]
    assert evs == [ump.PART_BEGIN, ump.DATA, ump.PART_END, DONE]
    assert lib.uh_mp_feed(mp, b"more", 4, used, ev) == DONE and used[0] == 4
    assert lib.uh_mp_feed(mp, b"", 0, used, ev) == DONE
    assert lib.uh_mp_finish(mp) == DONE


def test_truncated_is_400_and_sticky():
    b = body(field(b"a", b"123"))
    for cut in range(len(b)):
        assert parse(CT, b[:cut])[0] == E400, cut
    rc, (mp, hbuf, _) = ump.new(CT)
    ev = ffi.new("uh_mp_event_t *")
    used = ffi.new("size_t *")
    assert lib.uh_mp_finish(mp) == E400
    assert lib.uh_mp_feed(mp, b, len(b), used, ev) == E400


def test_truncated_at_close_delimiter():
    b = body(field(b"a", b"123"))
    for tail in (b"--XyZ", b"--XyZ-", b"--XyZ\r"):
        assert parse(CT, b[:b.rindex(b"--XyZ--")] + tail)[0] == E400


# ---- part headers -------------------------------------------------------------------

@pytest.mark.parametrize("hdrs", [
    [],                                                          # no Content-Disposition
    [b"Content-Type: text/plain"],
    [b"Content-Disposition: attachment; name=\"a\""],            # not form-data
    [b"Content-Disposition: form-data"],                         # no name
    [b"Content-Disposition: form-data; filename=\"a\""],
    [b"Content-Disposition: form-data; name=\"a\"; name=\"b\""],
    [b"Content-Disposition: form-data; name=\"a\"; filename=x; filename=y"],
    [b"Content-Disposition: form-data; name=\"a\"", b"Content-Disposition: form-data; name=\"b\""],
    [b"Content-Disposition: form-data; name=\"a\"", b"Content-Type: a", b"Content-Type: b"],
    [b"Content-Disposition: form-data; name=\"a"],                # no closing quote
    [b"Content-Disposition: form-data; name"],
    [b"Content-Disposition: form-data name=a"],
    [b"Content-Disposition: form-data; name=a\"; filename=\"\""],   # a quote in an unquoted value
    [b"Content-Disposition: form-data; name=\"a\"x; filename=b"],     # bytes after the closing quote
    [b"Content-Disposition: form-data; name=\"a\"", b" folded"],  # obs-fold
    [b"Content-Disposition: form-data; name=\"a\"", b"NoColon"],
    [b"Content-Disposition: form-data; name=\"a\"", b"Bad Name: x"],
    [b"Content-Disposition: form-data; name=\"a\"", b": empty name"],
    [b"Content-Disposition: form-data; name=\"a\x00\""],
    [b"Content-Disposition: form-data; name=\"a\"", b"X: a\rb"],  # bare CR
    [b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''%zz"],
    [b"Content-Disposition: form-data; name=\"a\"; filename*=noquotes"],
    [b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''a; filename*=UTF-8''b"],
])
def test_bad_part_headers_400(hdrs):
    assert everywhere(CT, body((hdrs, b"data")))[0] == E400


@pytest.mark.parametrize("disp,name,filename", [
    (b'form-data; name="a"', b"a", None),
    (b"form-data; name=a", b"a", None),
    (b"FORM-DATA;NAME=a;FILENAME=b.txt", b"a", b"b.txt"),
    (b'form-data ; name = "a" ; filename = "b c.txt" ;', b"a", b"b c.txt"),
    (b'form-data; name="q\\"uote"; filename="x\\"y\\\\z"', b'q"uote', b'x"y\\z'),
    (b'form-data; name="semi;colon"; filename="a=b;c"', b"semi;colon", b"a=b;c"),
    (b'form-data; name="a"; filename="C:\\dir\\f.txt"', b"a", b"C:\\dir\\f.txt"),   # lone backslashes kept
    (b'form-data; name="a"; filename=""', b"a", b""),
    (b'form-data; name="a"; filename="%22x%22"', b"a", b"%22x%22"),            # HTML5 escapes not undone
    (b'form-data; name="\xc3\xa9"; filename="\xe6\x97\xa5.txt"', "é".encode(), "日.txt".encode()),
    (b"form-data; name=\"a\"; filename=\"plain.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt",
     b"a", "€ rates.txt".encode()),
    (b"form-data; name=\"a\"; filename*=utf-8'en'%C3%A9; filename=\"e.txt\"", b"a", "é".encode()),
    (b"form-data; name=\"a\"; filename*=iso-8859-1''%E9t%E9", b"a", "été".encode()),
    (b"form-data; name=\"a\"; filename=\"fallback.txt\"; filename*=KOI8-R''%C1", b"a", b"fallback.txt"),
    (b"form-data; name=\"a\"; filename*=UTF-8''", b"a", b""),
    (b"form-data; name=\"a\"; filename*=\"UTF-8''q%20q\"", b"a", b"q q"),
    (b"form-data; name=\"a\"; other=\"x;y\"; filename=f", b"a", b"f"),
])
def test_disposition(disp, name, filename):
    rc, parts = everywhere(CT, body(([b"Content-Disposition: " + disp], b"d")))
    assert rc == DONE
    assert (parts[0].name, parts[0].filename) == (name, filename)


def test_header_case_and_content_type():
    rc, parts = everywhere(CT, body(([b"content-disposition: form-data; name=a",
                                      b"CONTENT-TYPE:\ttext/html; charset=utf-8\t"], b"<p>")))
    assert rc == DONE and parts[0].content_type == b"text/html; charset=utf-8"


def header_block_size(lines):
    """Bytes a header block takes in the buffer: lines with LF ends."""
    return sum(len(h) + 1 for h in lines)


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"])
def test_header_limit_edges(nl):
    lines = [b'Content-Disposition: form-data; name="a"', b"X-Pad: " + b"p" * 300]
    n = header_block_size(lines)
    b = body((lines, b"data"), nl=nl)
    for hcap, ok in ((n - 1, False), (n, True), (n + 1, True)):
        rc, parts = everywhere(CT, b, hcap=hcap)
        assert (rc == DONE) == ok, hcap
        if ok:
            assert parts[0].data == b"data"


def test_header_limit_counts_unescaped_names():
    lines = [b'Content-Disposition: form-data; name="a\\"b"']       # a"b needs 3 bytes more
    n = header_block_size(lines)
    b = body((lines, b"x"))
    assert parse(CT, b, hcap=n + 2)[0] == E400
    rc, parts, _ = parse(CT, b, hcap=n + 3)
    assert rc == DONE and parts[0].name == b'a"b'


def test_header_limit_default_1k():
    lines = [b'Content-Disposition: form-data; name="a"', b"X-Pad: " + b"p" * 2000]
    assert parse(CT, body((lines, b"x")))[0] == E400


def test_header_iterator_on_raw_block():
    blk = b"A: 1\r\nB:2 \n\nbare\nC:\t3"
    raw = ffi.new("char[]", blk)
    span = ffi.new("uh_span_t *", {"ptr": raw, "len": len(blk)})
    n, v = ffi.new("uh_span_t *"), ffi.new("uh_span_t *")
    got = []
    while lib.uh_mp_header_next(span, n, v):
        got.append((ffi.buffer(n.ptr, n.len)[:], ffi.buffer(v.ptr, v.len)[:]))
    assert got == [(b"A", b"1"), (b"B", b"2"), (b"bare", b""), (b"C", b"3")]


# ---- zero copy, bounded memory --------------------------------------------------------

def test_bulk_data_is_zero_copy():
    data = os.urandom(1 << 20)
    b = body(([b'Content-Disposition: form-data; name="f"; filename="big"'], data))
    rng = random.Random(1)
    cuts = sorted(rng.sample(range(1, len(b)), 200))
    rc, parts, _ = parse(CT, b, cuts)
    assert rc == DONE and parts[0].data == data
    # only bytes held back at the end of a read come from the state, at most
    # the delimiter and one byte per read; the rest are spans into the input
    assert ump.stats["held"] <= 201 * (4 + 3 + 1)
    # one DATA event per read, plus a few for held-back bytes and for CRs
    # that start a partial match inside a read
    assert ump.stats["data_events"] <= 2 * 201 + data.count(b"\r\n-")


def test_data_at_every_split_near_the_end_of_reads():
    # every cut inside a delimiter: held back, then given out from the state
    data = b"ab\r\n--Xy\r\n--XyZ-z\r\n--XyZ\r\r\n"
    b = body(field(b"a", data))
    rc, parts = everywhere(CT, b)
    assert rc == DONE and parts[0].data == data


# ---- properties on arbitrary bytes ---------------------------------------------------

FRAGMENTS = st.sampled_from([b"\r\n", b"\n", b"--", b"--XyZ", b"\r\n--XyZ", b"\r\n--XyZ--", b"\r\n--XyZ\r\n",
                             b"Content-Disposition: form-data; name=", b'"a"', b"; filename=", b"filename*=",
                             b"UTF-8''%41", b"Content-Type: x", b"\r\n\r\n", b" ", b"\\", b'"', b"\x00", b";"])
BODIES = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=12)), max_size=30).map(b"".join)


@given(BODIES, st.lists(st.integers(0, 400), max_size=8), st.integers(0, 200))
def test_arbitrary_bytes_split_invariant(b, cuts, hcap):
    """No crash, consumed <= len, bounded state (checked inside ump.run), and
    the same answer however the body is split."""
    rc, parts, _ = parse(CT, b, hcap=hcap)
    assert rc in (DONE, E400)
    r2, p2, _ = parse(CT, b, cuts, hcap=hcap)
    assert r2 == rc
    assert [(p.name, p.filename, p.content_type) for p in p2] == [(p.name, p.filename, p.content_type) for p in parts]
    if rc == DONE:
        assert [p.data for p in p2] == [p.data for p in parts]


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_arbitrary_content_type_and_body(ct, b):
    rc, parts, _ = parse(ct, b)
    assert rc in (DONE, E400)
    if lib.uh_mp_is_form(ct, len(ct)) == 0:
        assert ump.new(ct)[0] == E400


# ---- libFuzzer seeds and findings ------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY = sorted([os.path.join(HERE, "corpus_multipart", f) for f in os.listdir(os.path.join(HERE, "corpus_multipart"))] +
                [os.path.join(HERE, "regressions", f) for f in os.listdir(os.path.join(HERE, "regressions"))
                 if f.startswith("multipart-")])


@pytest.mark.parametrize("path", REPLAY, ids=[os.path.basename(p) for p in REPLAY])
def test_replay_libfuzzer_inputs(path):
    """The harness's input format: hcap/5, a read-size seed, the Content-Type
    up to LF, the body; parsed whole, byte by byte and in reads of 1..97."""
    raw = open(path, "rb").read()
    if len(raw) < 2:
        return
    hcap, seed, rest = raw[0] * 5, raw[1], raw[2:]
    ct, sep, b = rest[:300].partition(b"\n")
    if not sep:
        ct, b = CT, rest
    else:
        b = rest[len(ct) + 1:]
    rc, parts, _ = parse(ct, b, hcap=hcap)
    want = (rc, [p.key() for p in parts])
    rng = random.Random(seed)
    cuts = [rng.randrange(len(b) + 1) for _ in range(20)]
    for c in (cuts, range(len(b))):
        r2, p2, _ = parse(ct, b, c, hcap=hcap)
        assert (r2, [p.key() for p in p2]) == want
