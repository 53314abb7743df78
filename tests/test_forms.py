"""Forms (design.md section 11): req.form(), req.parts() and multipart
uploads to the receiver, with real clients: requests (files=, data=),
curl -F, and raw sockets that split the body at delimiter positions."""
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from uhttpd_testlib import start_app, stop_app


BODY_BUFFER = 1024
BOUNDARY = b"----uhttpdTestBoundary7MA4YWxk"
CT = "multipart/form-data; boundary=" + BOUNDARY.decode()


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    r = start_app("forms", "body_buffer=%d" % BODY_BUFFER, tmp_path=tmp_path_factory.mktemp("forms"))
    yield r
    stop_app(r)


@pytest.fixture(scope="module")
def formsacl(tmp_path_factory):
    r = start_app("forms", "acl=1", tmp_path=tmp_path_factory.mktemp("formsacl"))
    yield r
    stop_app(r)


@pytest.fixture
def updir(tmp_path):
    d = tmp_path / "up"
    d.mkdir()
    return d


# ---- helpers ----------------------------------------------------------------------

def mp_body(parts, boundary=BOUNDARY, close=True, nl=b"\r\n"):
    """parts: (name, filename or None, data, extra header lines)."""
    out = b""
    for name, filename, data, *extra in parts:
        disp = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
        if filename is not None:
            disp += b'; filename="' + (filename if isinstance(filename, bytes) else filename.encode()) + b'"'
        hdrs = [disp] + (extra[0] if extra else [])
        out += b"--" + boundary + nl + b"".join(h + nl for h in hdrs) + nl + data + nl
    return out + (b"--" + boundary + b"--" + nl if close else b"")


def head(url_path, length, ctype=CT, extra=b""):
    return (b"POST " + url_path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode() +
            b"\r\nContent-Length: " + str(length).encode() + b"\r\nConnection: close\r\n" + extra + b"\r\n")


def send_split(srv, url_path, body, cuts, ctype=CT):
    """One request, the body sent in pieces cut at the given offsets."""
    s = srv.connect(timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.sendall(head(url_path, len(body), ctype))
        last = 0
        for c in sorted(set(cuts)) + [len(body)]:
            if c > last:
                s.sendall(body[last:c])
                # pacing, not synchronisation: makes separate reads likely;
                # the test holds either way
                time.sleep(0.002)
                last = c
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None


def json_of(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def names_in(d):
    return sorted(p.name for p in d.iterdir())


def wait_for(pred, secs=5.0):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def stored_ok(listing, paths):
    """The receiver's JSON list names the stored files: as file system
    paths, or as the urls they were posted under (/up + path)."""
    assert isinstance(listing, list) and len(listing) == len(paths), listing
    for got, p in zip(listing, paths):
        assert got in (str(p), "/up" + str(p)), (got, p)


# ---- req.form() ---------------------------------------------------------------------

def test_form_urlencoded(forms):
    fields = {"name": "Zoë & co", "eq": "a=b", "plus": "1+1", "empty": "", "multi": "line1\r\nline2",
              "ünï": "日本"}
    r = requests.post(forms.url + "/form", data=fields)
    assert r.status_code == 200, r.text
    assert r.json() == fields


def test_form_urlencoded_plus_and_percent(forms):
    r = requests.post(forms.url + "/form", data=b"a=x+y%2Bz&b=%C3%A9",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json() == {"a": "x y+z", "b": "é"}


def test_form_multipart_text_fields_only(forms):
    r = requests.post(forms.url + "/form", data={"title": "Grüße", "n": "42"},
                      files={"upload": ("a.bin", b"\x00\x01binary"), "note": (None, "from files=")})
    assert r.status_code == 200, r.text
    assert r.json() == {"title": "Grüße", "n": "42", "note": "from files="}


def test_form_curl_F(forms):
    out = subprocess.run(["curl", "-s", "-F", "a=1", "-F", "b=été", "-F", "c=", forms.url + "/form"],
                         capture_output=True, check=True)
    assert json.loads(out.stdout) == {"a": "1", "b": "été", "c": ""}


@pytest.mark.parametrize("size,status", [(BODY_BUFFER - 1, 200), (BODY_BUFFER, 200), (BODY_BUFFER + 1, 413)])
def test_form_urlencoded_body_buffer_edges(forms, size, status):
    body = b"k=" + b"v" * (size - 2)
    r = requests.post(forms.url + "/form", data=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == status
    if status == 200:
        assert r.json() == {"k": "v" * (size - 2)}


@pytest.mark.parametrize("delta,status", [(-1, 200), (0, 200), (1, 413)])
def test_form_multipart_body_buffer_edges(forms, delta, status):
    frame = mp_body([("k", None, b"")])
    body = mp_body([("k", None, b"v" * (BODY_BUFFER - len(frame) + delta))])
    assert len(body) == BODY_BUFFER + delta
    r = requests.post(forms.url + "/form", data=body, headers={"Content-Type": CT})
    assert r.status_code == status
    if status == 200:
        assert r.json() == {"k": "v" * (BODY_BUFFER - len(frame) + delta)}


@pytest.mark.parametrize("ctype", ["multipart/form-data", "multipart/form-data; boundary=",
                                   "multipart/form-data; boundary=" + "b" * 71])
def test_form_bad_boundary_400(forms, ctype):
    r = requests.post(forms.url + "/form", data=mp_body([("a", None, b"1")]), headers={"Content-Type": ctype})
    assert r.status_code == 400


def test_form_boundary_70_ok(forms):
    b = b"b" * 70
    r = requests.post(forms.url + "/form", data=mp_body([("a", None, b"1")], boundary=b),
                      headers={"Content-Type": "multipart/form-data; boundary=" + b.decode()})
    assert r.status_code == 200 and r.json() == {"a": "1"}


def test_form_truncated_multipart_400(forms):
    body = mp_body([("a", None, b"1")], close=False)
    r = requests.post(forms.url + "/form", data=body, headers={"Content-Type": CT})
    assert r.status_code == 400


# ---- req.parts() ---------------------------------------------------------------------

def test_parts_in_order_with_names_filenames_headers(forms):
    files = [("first", (None, "text value")),
             ("doc", ("report.txt", b"hello\r\n--not a boundary\r\n", "text/plain")),
             ("bin", ("blob.bin", bytes(range(256)) * 40, "application/octet-stream")),
             ("last", (None, "z"))]
    r = requests.post(forms.url + "/parts", files=files)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [p["name"] for p in got] == ["first", "doc", "bin", "last"]
    assert [p["filename"] for p in got] == [None, "report.txt", "blob.bin", None]
    assert got[0]["types"] == ["str", "NoneType"] and got[1]["types"] == ["str", "str"]
    assert got[1]["headers"]["content-type"] == "text/plain"
    assert got[2]["headers"]["content-type"] == "application/octet-stream"
    assert 'filename="blob.bin"' in got[2]["headers"]["content-disposition"]
    datas = [b"text value", b"hello\r\n--not a boundary\r\n", bytes(range(256)) * 40, b"z"]
    assert [p["size"] for p in got] == [len(d) for d in datas]
    assert [p["sha256"] for p in got] == [sha(d) for d in datas]


@pytest.mark.parametrize("query", ["n=1", "n=7", "n=4096", "n=-1", "into=1", "into=1000", "into=65536"])
def test_parts_read_and_readinto(forms, query):
    data = os.urandom(50000)
    r = requests.post(forms.url + "/parts?" + query, files={"f": ("x.bin", data), "t": (None, "small")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(p["name"], p["size"], p["sha256"]) for p in got] == [("f", len(data), sha(data)), ("t", 5, sha(b"small"))]
    assert got[0]["head"] == data[:64].hex()


def test_parts_filename_star_and_unicode(forms):
    body = (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"fallback.txt\"; "
            b"filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nE\r\n--" + BOUNDARY + b"\r\n"
            b"Content-Disposition: form-data; name=\"g\"; filename=\"\xc3\xa9t\xc3\xa9.txt\"\r\n\r\nF\r\n"
            b"--" + BOUNDARY + b"--\r\n")
    r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    assert [p["filename"] for p in r.json()] == ["€ rates.txt", "été.txt"]


def test_parts_lf_only_body(forms):
    body = mp_body([("a", None, b"one"), ("b", "b.txt", b"two\r\nlines")], nl=b"\n")
    r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    assert [(p["name"], p["size"]) for p in r.json()] == [("a", 3), ("b", 10)]


def test_parts_stream_larger_than_heap(tmp_path):
    # a 3 MiB part through a 256 KiB heap: parts are streamed, not held
    r = start_app("forms", tmp_path=tmp_path, heapsize="256K")
    try:
        data = os.urandom(3 * 1024 * 1024)
        resp = requests.post(r.url + "/parts?into=4096", files={"big": ("big.bin", data)})
        assert resp.status_code == 200, resp.text
        assert [(p["size"], p["sha256"]) for p in resp.json()] == [(len(data), sha(data))]
    finally:
        stop_app(r)


def test_parts_split_at_every_delimiter_position(forms):
    data1 = b"payload one \r\n--" + BOUNDARY[:10]
    body = mp_body([("a", "a.txt", data1), ("b", None, b"second")])
    want = [("a", len(data1), sha(data1)), ("b", 6, sha(b"second"))]
    d1 = body.index(b"\r\n--" + BOUNDARY + b"\r\n")
    d2 = body.rindex(b"\r\n--" + BOUNDARY + b"--")
    positions = list(range(0, 12)) + list(range(d1 - 2, d1 + len(BOUNDARY) + 8)) + \
        list(range(d2 - 2, len(body) + 1))
    for k in positions:
        out = send_split(forms, "/parts", body, [k])
        assert status_of(out) == 200, (k, out[:200])
        assert [(p["name"], p["size"], p["sha256"]) for p in json_of(out)] == want, k


def test_parts_part_headers_over_limit_400(forms):
    body = mp_body([("a", None, b"1", [b"X-Big: " + b"h" * 16384])])
    r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert r.status_code == 400


@pytest.mark.parametrize("body", [
    mp_body([("a", None, b"1")], close=False),                                      # no closing delimiter
    mp_body([("a", None, b"1")])[:-len(BOUNDARY) - 6] + b"--",                    # cut inside it
    b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",  # no name
    b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"a\"\r\nbad header\r\n\r\nx\r\n--" +
    BOUNDARY + b"--\r\n",
], ids=["unclosed", "cut-close", "no-disposition", "bad-header"])
def test_parts_malformed_400(forms, body):
    r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert r.status_code == 400


def test_parts_preamble_epilogue_ignored(forms):
    body = b"preamble line\r\n" + mp_body([("a", None, b"1")]) + b"epilogue --" + BOUNDARY + b"\r\n"
    r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert r.status_code == 200 and [(p["name"], p["size"]) for p in r.json()] == [("a", 1)]


def test_server_still_serves_after_bad_forms(forms):
    for body in (b"--" + BOUNDARY + b"\r\n\x00\r\n", b"\xff" * 100):
        requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
    assert requests.post(forms.url + "/form", data={"ok": "1"}).json() == {"ok": "1"}
    assert forms.alive()


# ---- the receiver -------------------------------------------------------------------------

def test_receive_requests_files(forms, updir):
    a, b = os.urandom(100000), b"text file\n"
    r = requests.post(forms.url + "/up" + str(updir) + "/",
                      files=[("f1", ("a.bin", a)), ("f2", ("b.txt", b, "text/plain"))], data={"note": "x"})
    assert r.status_code == 201, r.text
    stored_ok(r.json(), [updir / "a.bin", updir / "b.txt"])
    assert (updir / "a.bin").read_bytes() == a and (updir / "b.txt").read_bytes() == b
    assert names_in(updir) == ["a.bin", "b.txt"]          # text fields are not files; no temporaries


def test_receive_replaces_existing_file(forms, updir):
    (updir / "same.txt").write_bytes(b"old")
    r = requests.post(forms.url + "/up" + str(updir) + "/", files={"f": ("same.txt", b"new content")})
    assert r.status_code == 201
    stored_ok(r.json(), [updir / "same.txt"])
    assert (updir / "same.txt").read_bytes() == b"new content"
    assert names_in(updir) == ["same.txt"]


def test_receive_into_new_directory(forms, updir):
    target = updir / "made" / "here"
    r = requests.post(forms.url + "/up" + str(target) + "/", files={"f": ("n.txt", b"n")})
    assert r.status_code == 201
    assert (target / "n.txt").read_bytes() == b"n"


def test_receive_curl_F(forms, updir, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024 + 3))        # big enough for Expect: 100-continue
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-F", "file=@%s" % src,
                          "-F", "other=@%s;filename=renamed.dat" % src, "-F", "field=value",
                          forms.url + "/up" + str(updir) + "/"], capture_output=True, check=True)
    text, code = out.stdout.rsplit(b"\n", 1)
    assert code == b"201", out.stdout[-300:]
    stored_ok(json.loads(text), [updir / "src.bin", updir / "renamed.dat"])
    assert (updir / "src.bin").read_bytes() == src.read_bytes()
    assert (updir / "renamed.dat").read_bytes() == src.read_bytes()
    assert names_in(updir) == ["renamed.dat", "src.bin"]


def test_receive_curl_form_escape_quotes(forms, updir, tmp_path):
    src = tmp_path / "q.txt"
    src.write_bytes(b"quoted")
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--form-escape",
                          "-F", 'f=@%s;filename=say "hi" ü.txt' % src, forms.url + "/up" + str(updir) + "/"],
                         capture_output=True, check=True)
    assert out.stdout == b"201"
    assert (updir / 'say "hi" ü.txt').read_bytes() == b"quoted"


def test_receive_chunked_multipart(forms, updir):
    body = mp_body([("f", "chunked.bin", os.urandom(70000))])

    def gen():
        for i in range(0, len(body), 3333):
            yield body[i:i + 3333]
    r = requests.post(forms.url + "/up" + str(updir) + "/", data=gen(), headers={"Content-Type": CT})
    assert r.status_code == 201
    assert (updir / "chunked.bin").read_bytes() == body[body.index(b"\r\n\r\n") + 4:body.rindex(b"\r\n--")]


def test_receive_split_at_every_delimiter_position(forms, updir):
    one = b"first \r\n--" + BOUNDARY[:-1] + b" \r"
    two = os.urandom(3000)
    body = mp_body([("a", "one.bin", one), ("t", None, b"text"), ("b", "two.bin", two)])
    delims = [i for i in range(len(body)) if body.startswith(b"\r\n--" + BOUNDARY, i)]
    positions = set(range(0, len(BOUNDARY) + 6))
    for d in delims:
        positions |= set(range(d - 1, d + len(BOUNDARY) + 8))
    for k in sorted(positions):
        out = send_split(forms, "/up" + str(updir) + "/", body, [k])
        assert status_of(out) == 201, (k, out[:300])
        assert (updir / "one.bin").read_bytes() == one and (updir / "two.bin").read_bytes() == two, k
    assert names_in(updir) == ["one.bin", "two.bin"]


@pytest.mark.parametrize("filename", [b"..", b"../escape.txt", b"a/b.txt", b"/abs.txt", b"a\\b.txt",
                                      b"C:\\x\\y.txt", b"nul\x00.txt"])
def test_receive_bad_filename_400(forms, updir, filename):
    body = mp_body([("f", filename, b"evil")])
    out = send_split(forms, "/up" + str(updir) + "/", body, [])
    assert status_of(out) == 400
    assert names_in(updir) == []
    assert not (updir.parent / "escape.txt").exists() and not (updir.parent / "abs.txt").exists()


def test_receive_requests_bad_filename_400(forms, updir):
    r = requests.post(forms.url + "/up" + str(updir) + "/", files={"f": ("../../evil.txt", b"x")})
    assert r.status_code == 400
    assert names_in(updir) == [] and not (updir.parent.parent / "evil.txt").exists()


def test_receive_multipart_needs_directory_url(forms, updir):
    # a multipart body to a file url is stored verbatim, as any upload
    body = mp_body([("f", "x.txt", b"x")])
    r = requests.post(forms.url + "/up" + str(updir) + "/plain.txt", data=body, headers={"Content-Type": CT})
    assert r.status_code == 201
    assert (updir / "plain.txt").read_bytes() == body


def test_receive_acl_checks_every_file(formsacl, updir):
    requests.get(formsacl.url + "/acl-log")
    r = requests.post(formsacl.url + "/up" + str(updir) + "/", files=[("a", ("x.txt", b"1")), ("b", ("y.txt", b"2"))])
    assert r.status_code == 201
    log = requests.get(formsacl.url + "/acl-log").text.split("\n")
    assert str(updir / "x.txt") in log and str(updir / "y.txt") in log


@pytest.mark.parametrize("name,status", [("private.txt", 403), ("teapot.txt", 418)], ids=["denied", "status"])
def test_receive_acl_denied_touches_nothing(formsacl, updir, name, status):
    (updir / name).write_bytes(b"keep")
    r = requests.post(formsacl.url + "/up" + str(updir) + "/", files={"f": (name, b"overwrite")})
    assert r.status_code == status
    assert (updir / name).read_bytes() == b"keep" and names_in(updir) == [name]


@pytest.mark.parametrize("cut", ["in-data", "before-delimiter", "in-delimiter", "delimiter-dash"])
def test_receive_truncated_multipart_keeps_old_file(forms, updir, cut):
    """A complete HTTP body whose multipart ends early: 400, no file, no
    temporary, the old file whole."""
    (updir / "precious.txt").write_bytes(b"precious original")
    full = mp_body([("f", "precious.txt", b"N" * 5000)])
    d = full.rindex(b"\r\n--" + BOUNDARY)
    body = {"in-data": full[:d - 100], "before-delimiter": full[:d], "in-delimiter": full[:d + 10],
            "delimiter-dash": full[:d + 4 + len(BOUNDARY) + 1]}[cut]
    out = send_split(forms, "/up" + str(updir) + "/", body, [])
    assert status_of(out) == 400
    assert (updir / "precious.txt").read_bytes() == b"precious original"
    assert names_in(updir) == ["precious.txt"]


def test_receive_disconnect_mid_file_keeps_old_file(forms, updir):
    (updir / "precious.txt").write_bytes(b"precious original")
    full = mp_body([("f", "precious.txt", b"z" * 1000000)])
    s = forms.connect()
    s.sendall(head("/up" + str(updir) + "/", len(full)))
    s.sendall(full[:300000])
    s.close()
    # the server notices and removes its temporary: poll for that
    assert wait_for(lambda: names_in(updir) == ["precious.txt"])
    assert (updir / "precious.txt").read_bytes() == b"precious original"
    assert requests.post(forms.url + "/form", data={"ok": "1"}).status_code == 200


def test_receive_stalled_upload_408_keeps_old_file(forms, updir):
    (updir / "precious.txt").write_bytes(b"old stalled")
    full = mp_body([("f", "precious.txt", b"q" * 100000)])
    s = forms.connect(timeout=10)
    s.sendall(head("/up" + str(updir) + "/", len(full)))
    s.sendall(full[:50000])
    out = s.recv(4096)                    # the app's timeout is 2 s
    s.close()
    assert status_of(out) == 408
    assert wait_for(lambda: names_in(updir) == ["precious.txt"])
    assert (updir / "precious.txt").read_bytes() == b"old stalled"


def test_receive_concurrent_uploads_of_one_name(forms, updir):
    (updir / "race.bin").write_bytes(b"old")
    bodies = [bytes([65 + i]) * 300000 for i in range(4)]
    codes = []

    def up(b):
        codes.append(requests.post(forms.url + "/up" + str(updir) + "/", files={"f": ("race.bin", b)}).status_code)
    ts = [threading.Thread(target=up, args=(b,)) for b in bodies]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(codes) == [201] * 4
    assert (updir / "race.bin").read_bytes() in bodies
    assert names_in(updir) == ["race.bin"]


def test_receive_larger_than_heap(tmp_path):
    r = start_app("forms", tmp_path=tmp_path, heapsize="256K")
    try:
        d = tmp_path / "up"
        d.mkdir()
        data = os.urandom(3 * 1024 * 1024)
        resp = requests.post(r.url + "/up" + str(d) + "/", files={"f": ("big.bin", data)})
        assert resp.status_code == 201
        assert hashlib.sha256((d / "big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    finally:
        stop_app(r)


def test_receive_url_quoted_directory(forms, updir):
    sub = updir / "with space"
    sub.mkdir()
    r = requests.post(forms.url + "/up" + urllib.parse.quote(str(sub)) + "/", files={"f": ("s.txt", b"s")})
    assert r.status_code == 201
    assert (sub / "s.txt").read_bytes() == b"s"


# ---- decisions of this implementation (README "Forms") ----------------------------------

def test_form_other_content_type_gives_empty_dict_body_unread(forms):
    for ctype in ("application/json", "text/plain", None):
        h = {"Content-Type": ctype} if ctype else {}
        r = requests.post(forms.url + "/form-body", data=b'{"a": "1"}', headers=h)
        assert r.status_code == 200 and r.json() == {"form": {}, "body": '{"a": "1"}'}, ctype


def test_form_urlencoded_charset_param_and_bare_keys(forms):
    r = requests.post(forms.url + "/form", data=b"a=1&&bare&b=&a=2",
                      headers={"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"})
    assert r.status_code == 200 and r.json() == {"a": "2", "bare": "", "b": ""}


def test_form_chunked_body_buffer_edges(forms):
    for size, status in ((BODY_BUFFER - 1, 200), (BODY_BUFFER, 200), (BODY_BUFFER + 1, 413)):
        body = b"k=" + b"v" * (size - 2)
        r = requests.post(forms.url + "/form", data=iter([body[:7], body[7:]]),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == status, size
        if status == 200:
            assert r.json() == {"k": "v" * (size - 2)}


@pytest.mark.parametrize("size,status", [(BODY_BUFFER, 200), (BODY_BUFFER + 1, 413)])
def test_form_expect_100_continue(forms, size, status):
    # the loop does not wait for such a body: form() reads it (or refuses it unread)
    body = b"k=" + b"v" * (size - 2)
    s = forms.connect(timeout=10)
    try:
        s.sendall(head("/form", size, "application/x-www-form-urlencoded", b"Expect: 100-continue\r\n"))
        first = s.recv(65536)
        # Python routes get 100 Continue before the handler runs (design 4)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        if status == 413:
            while b"\r\n\r\n" not in first[25:]:
                first += s.recv(65536)
            assert status_of(first[25:]) == 413
            return
        s.sendall(body)
        out = first[25:]
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        assert status_of(out) == 200 and json_of(out) == {"k": "v" * (size - 2)}
    finally:
        s.close()


@pytest.mark.parametrize("body,ctype", [
    (b"a=%FF%FE", "application/x-www-form-urlencoded"),
    (mp_body([("a", None, b"\xff\xfe")]), CT),
    (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nx\r\n--' + BOUNDARY + b"--\r\n", CT),
], ids=["urlencoded-value", "multipart-value", "multipart-name"])
def test_form_not_utf8_400(forms, body, ctype):
    r = requests.post(forms.url + "/form", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 400


def test_form_errors_no_traceback_and_catchable(forms):
    before = forms.log()
    r = requests.post(forms.url + "/form", data=mp_body([("a", None, b"1")], close=False), headers={"Content-Type": CT})
    assert r.status_code == 400
    assert forms.log().count("Traceback") == before.count("Traceback")
    r = requests.post(forms.url + "/form-caught", data=mp_body([("a", None, b"1")], close=False),
                      headers={"Content-Type": CT})
    assert r.status_code == 422 and r.text.startswith("caught ValueError")
    r = requests.post(forms.url + "/form-caught", data=b"k=" + b"v" * BODY_BUFFER,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and r.text == "caught OSError 27"    # EFBIG
    assert forms.alive()


def test_parts_not_multipart_415(forms):
    for h in ({"Content-Type": "application/x-www-form-urlencoded"}, {}):
        r = requests.post(forms.url + "/parts", data=b"a=1", headers=h)
        assert r.status_code == 415


def test_parts_skip_rest_when_iterator_moves_on(forms):
    data = os.urandom(200000)
    r = requests.post(forms.url + "/parts-rules?mode=skip",
                      files=[("a", ("a.bin", b"abcdef" + data)), ("b", (None, "xyz123")), ("c", ("c", b"Q"))])
    assert r.status_code == 200 and r.json() == [["a", "abc", ""], ["b", "xyz", ""], ["c", "Q", ""]]


def test_parts_dead_after_iterator_moves_on(forms):
    r = requests.post(forms.url + "/parts-rules?mode=dead", files=[("a", (None, "first")), ("b", (None, "second"))])
    assert r.status_code == 200 and r.json() == ["dead", "dead", "second"]


def test_parts_dead_after_request(forms):
    with requests.Session() as s:        # the same connection (and Request object) serves the next request
        r = s.post(forms.url + "/parts-rules?mode=keep", files=[("a", (None, "x" * 5000))])
        assert r.json() == ["a"]
        assert s.get(forms.url + "/parts-kept").text == "dead"
        r = s.post(forms.url + "/parts-rules?mode=keep", files=[("a", (None, "y"))])
        assert requests.get(forms.url + "/parts-kept").text == "dead"


def test_parts_part_header_buffer_edges(forms):
    # UH_PART_HEADER (1024): the part's header block, lines stored with LF ends
    disp = b'Content-Disposition: form-data; name="a"'
    for pad, status in ((0, 200), (1, 200), (2, 400)):
        k = 1024 - (len(disp) + 1) - len(b"X-Pad: \n") - 1 + pad
        body = mp_body([("a", None, b"1", [b"X-Pad: " + b"p" * k])])
        r = requests.post(forms.url + "/parts", data=body, headers={"Content-Type": CT})
        assert r.status_code == status, (pad, r.text)


def test_parts_slow_sender_does_not_stall_others(forms):
    # a part body trickling in: the handler waits in nested loop passes
    data = os.urandom(20000)
    body = mp_body([("f", "f.bin", data)])
    s = forms.connect(timeout=10)
    s.sendall(head("/parts?into=1000", len(body)))
    s.sendall(body[:3000])
    t0 = time.monotonic()
    assert requests.post(forms.url + "/form", data={"x": "1"}, timeout=5).json() == {"x": "1"}
    # a stalled server would answer only after cutting the sender (408 after
    # the app's 2 s timeout): this is liveness, not speed
    assert time.monotonic() - t0 < 1.5
    s.sendall(body[3000:])
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    assert status_of(out) == 200 and [(p["size"], p["sha256"]) for p in json_of(out)] == [(len(data), sha(data))]


# ---- the receiver: decisions ---------------------------------------------------------------

MAX_FILES = 16       # UH_MAX_UPLOAD_FILES


@pytest.mark.parametrize("n,status", [(MAX_FILES - 1, 201), (MAX_FILES, 201), (MAX_FILES + 1, 413)])
def test_receive_max_files_edges(forms, updir, n, status):
    files = [("f%d" % i, ("n%02d.txt" % i, b"%d" % i)) for i in range(n)] + [("t", (None, "text is not a file"))]
    r = requests.post(forms.url + "/up" + str(updir) + "/", files=files)
    assert r.status_code == status
    if status == 201:
        stored_ok(r.json(), [updir / ("n%02d.txt" % i) for i in range(n)])
        assert names_in(updir) == ["n%02d.txt" % i for i in range(n)]
    else:
        assert names_in(updir) == []


def test_receive_text_fields_only_201_empty_list(forms, updir):
    r = requests.post(forms.url + "/up" + str(updir) + "/", files={"a": (None, "1")})
    assert r.status_code == 201 and r.json() == [] and names_in(updir) == []


def test_receive_empty_file_input_skipped_but_not_with_data(forms, updir):
    # what a browser sends for a file input left empty: filename="" and no data
    body = mp_body([("f", "", b""), ("g", "g.txt", b"g")])
    r = requests.post(forms.url + "/up" + str(updir) + "/", data=body, headers={"Content-Type": CT})
    assert r.status_code == 201
    stored_ok(r.json(), [updir / "g.txt"])
    body = mp_body([("g", "g2.txt", b"g"), ("f", "", b"data without a name")])
    r = requests.post(forms.url + "/up" + str(updir) + "/", data=body, headers={"Content-Type": CT})
    assert r.status_code == 400 and names_in(updir) == ["g.txt"]


def test_receive_all_or_nothing(forms, updir):
    """A later part that fails (bad name, cut-off body) stores none of the
    earlier ones: the targets are renamed only when the body is complete."""
    (updir / "a.txt").write_bytes(b"old a")
    big = os.urandom(300000)
    body = mp_body([("a", "a.txt", b"new a"), ("b", "b.bin", big), ("c", "../c.txt", b"c")])
    r = requests.post(forms.url + "/up" + str(updir) + "/", data=body, headers={"Content-Type": CT})
    assert r.status_code == 400
    assert names_in(updir) == ["a.txt"] and (updir / "a.txt").read_bytes() == b"old a"
    body = mp_body([("a", "a.txt", b"new a"), ("b", "b.bin", big)])
    out = send_split(forms, "/up" + str(updir) + "/", body[:-200], [])
    assert status_of(out) == 400
    assert names_in(updir) == ["a.txt"] and (updir / "a.txt").read_bytes() == b"old a"
    s = forms.connect()                   # the client vanishes in the second file
    s.sendall(head("/up" + str(updir) + "/", len(body)) + body[:200000])
    # both parts have their temporary (a.txt's complete, b.bin's growing)
    assert wait_for(lambda: sum(n.endswith(".uhtmp") for n in names_in(updir)) == 2)
    s.close()
    assert wait_for(lambda: names_in(updir) == ["a.txt"])
    assert (updir / "a.txt").read_bytes() == b"old a"


def test_receive_directory_or_file_in_the_way_409(forms, updir):
    (updir / "sub").mkdir()
    r = requests.post(forms.url + "/up" + str(updir) + "/", files={"f": ("sub", b"x")})
    assert r.status_code == 409
    (updir / "file").write_bytes(b"f")
    r = requests.post(forms.url + "/up" + str(updir) + "/file/", files={"f": ("x.txt", b"x")})
    assert r.status_code == 409
    assert names_in(updir) == ["file", "sub"] and (updir / "file").read_bytes() == b"f"


def test_receive_acl_second_file_denied_stores_nothing(formsacl, updir):
    r = requests.post(formsacl.url + "/up" + str(updir) + "/",
                      files=[("a", ("ok.txt", b"1")), ("b", ("private.txt", b"2"))])
    assert r.status_code == 403 and names_in(updir) == []


def test_receive_keep_alive_and_pipelining(forms, updir):
    b1 = mp_body([("f", "p1.txt", b"one")])
    b2 = mp_body([("f", "p2.txt", b"two")])
    req = b""
    for b in (b1, b2):
        req += (b"POST /up" + str(updir).encode() + b"/ HTTP/1.1\r\nHost: x\r\nContent-Type: " + CT.encode() +
                b"\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
    req += b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" \
           b"Content-Length: 3\r\nConnection: close\r\n\r\na=1"
    out = forms.raw(req)
    assert out.count(b"HTTP/1.1 201 Created") == 2 and out.endswith(b'{"a": "1"}'), out
    assert names_in(updir) == ["p1.txt", "p2.txt"]


def test_receive_reply_is_json_of_stored_paths(forms, updir):
    body = mp_body([("f", 'q\\"é.txt'.encode(), b"q")])      # filename="q\"é.txt" (curl --form-escape)
    r = requests.post(forms.url + "/up" + str(updir) + "/", data=body, headers={"Content-Type": CT})
    assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
    assert r.json() == [str(updir / 'q"é.txt')]


@pytest.fixture(scope="module")
def tls_forms(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsforms")
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    root = d / "root"
    root.mkdir()
    r = start_app("tls", crt, key, root, tmp_path=d)
    r.url = "https://127.0.0.1:%d" % r.port
    r.root = root
    yield r
    stop_app(r)


def test_receive_multipart_over_tls(tls_forms):
    data = os.urandom(1024 * 1024 + 5)
    r = requests.post(tls_forms.url + "/up%s/" % tls_forms.root, files={"f": ("tls.bin", data)}, verify=False,
                      timeout=30)
    assert r.status_code == 201
    assert (tls_forms.root / "tls.bin").read_bytes() == data


def test_parts_random_bodies_reads_and_splits(forms):
    """Generated bodies (data full of near-delimiters, several parts) sent
    in random pieces, read with random read(n)/readinto sizes: every part
    arrives whole, in order.  Fixed seed: reproducible."""
    import random
    rnd = random.Random(1234)
    near = [b"\r", b"\r\n", b"\r\n-", b"\r\n--", b"\r\n--" + BOUNDARY[:5], b"\r\n--" + BOUNDARY + b"x", b"--", b"\n"]
    for case in range(12):
        parts = []
        for i in range(rnd.randint(1, 4)):
            data = b"".join(rnd.choice(near) if rnd.random() < 0.3 else os.urandom(rnd.randint(0, 700))
                            for _ in range(rnd.randint(0, 12)))
            parts.append(("p%d" % i, rnd.choice([None, "f%d.bin" % i]), data))
        body = mp_body(parts)
        query = rnd.choice(["n=%d" % rnd.randint(1, 3000), "n=-1", "into=%d" % rnd.randint(1, 5000)])
        cuts = sorted(rnd.sample(range(1, len(body)), min(4, len(body) - 1)))
        out = send_split(forms, "/parts?" + query, body, cuts)
        assert status_of(out) == 200, (case, out[:200])
        got = [(p["name"], p["filename"], p["size"], p["sha256"]) for p in json_of(out)]
        assert got == [(n, f, len(d), sha(d)) for n, f, d in parts], case


def test_parts_client_vanishes_or_stalls(forms):
    data = os.urandom(100000)
    body = mp_body([("f", "f.bin", data)])
    s = forms.connect()
    s.sendall(head("/parts?into=1000", len(body)) + body[:30000])
    s.close()                                   # vanishes mid-part
    s = forms.connect(timeout=10)
    s.sendall(head("/parts?into=1000", len(body)) + body[:30000])
    out = s.recv(4096)                          # stalls: 408 after the app's 2 s timeout
    s.close()
    assert status_of(out) == 408
    assert requests.post(forms.url + "/form", data={"ok": "1"}).json() == {"ok": "1"}
    assert forms.alive()
