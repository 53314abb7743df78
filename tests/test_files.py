"""serve(), receive(), file_acl(): real clients against real files."""
import gzip
import hashlib
import json
import os
import socket
import subprocess
import time

import pytest
import requests

from uhttpd_testlib import start_app, stop_app


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("files")
    www = r / "www"
    (www / "sub").mkdir(parents=True)
    (www / "empty").mkdir()
    (www / "a.txt").write_text("hello file\n")
    (www / "page.html").write_text("<h1>page</h1>")
    (www / "style.css").write_text("body{}")
    (www / "data.unknownext").write_bytes(b"\x00\x01")
    (www / "sub" / "index.html").write_text("<h1>index</h1>")
    (www / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (www / "app.js").write_text("console.log('plain');\n" * 50)
    (www / "app.js.gz").write_bytes(gzip.compress(((www / "app.js").read_bytes())))
    (www / "private.txt").write_text("nope")
    (www / "teapot.txt").write_text("tea")
    (www / "readonly.txt").write_text("ro")
    (www / "writeonly.txt").write_text("wo")
    (www / "bogus.txt").write_text("b")
    (r / "sd").mkdir()
    # ext=True: <ext_path> + <base> + <rel> is tried first
    sdcopy = r / "sd" / str(www).lstrip("/")
    sdcopy.mkdir(parents=True)
    (sdcopy / "a.txt").write_text("from sd card\n")
    (r / "secret.txt").write_text("TOP SECRET")
    (r / "up").mkdir()
    return r


@pytest.fixture(scope="module")
def fs(root, tmp_path_factory):
    r = start_app("files", "root=%s" % root, tmp_path=tmp_path_factory.mktemp("fsapp"))
    yield r
    stop_app(r)


@pytest.fixture(scope="module")
def fsacl(root, tmp_path_factory):
    r = start_app("files", "root=%s" % root, "acl=1", tmp_path=tmp_path_factory.mktemp("fsacl"))
    yield r
    stop_app(r)


# ---- serving ----------------------------------------------------------------

def test_get_file(fs):
    r = requests.get(fs.url + "/fs/a.txt")
    assert r.status_code == 200 and r.text == "hello file\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"].startswith('"')


@pytest.mark.parametrize("name,mime", [("page.html", "text/html"), ("style.css", "text/css"),
                                       ("app.js", "application/javascript"),
                                       ("data.unknownext", "application/octet-stream")])
def test_content_type(fs, name, mime):
    assert requests.get(fs.url + "/fs/" + name).headers["Content-Type"] == mime


def test_big_file_byte_exact(fs, root):
    r = requests.get(fs.url + "/fs/big.bin")
    assert r.content == (root / "www" / "big.bin").read_bytes()


def test_head(fs):
    r = requests.head(fs.url + "/fs/big.bin")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(3 * 1024 * 1024 + 17)
    assert r.content == b""
    # the connection is still in step afterwards
    with requests.Session() as s:
        assert s.head(fs.url + "/fs/a.txt").status_code == 200
        assert s.get(fs.url + "/fs/a.txt").text == "hello file\n"


def test_directory_listing_shape(fs):
    r = requests.get(fs.url + "/fs/")
    assert r.headers["Content-Type"] == "application/json"
    d = r.json()
    assert set(d) == {"path", "list"}
    assert d["path"] == "/fs/"
    assert d["list"][0] == {"path": "..", "type": "directory", "size": 0}
    byname = {e["path"]: e for e in d["list"]}
    assert byname["a.txt"] == {"path": "a.txt", "type": "file", "size": 11}
    assert byname["sub"] == {"path": "sub", "type": "directory", "size": 0}
    assert all(set(e) == {"path", "type", "size"} for e in d["list"])


def test_subdirectory_listing(fs):
    d = requests.get(fs.url + "/fs/sub/").json()
    assert [e["path"] for e in d["list"]] == ["..", "index.html"]
    assert requests.get(fs.url + "/fs/empty/").json()["list"] == [{"path": "..", "type": "directory", "size": 0}]


def test_directory_without_slash_redirects(fs):
    r = requests.get(fs.url + "/fs/sub", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/fs/sub/"


def test_dirs_false_index_or_403(fs):
    assert requests.get(fs.url + "/nodirs/sub/").text == "<h1>index</h1>"
    assert requests.get(fs.url + "/nodirs/empty/").status_code == 403


def test_missing_404(fs):
    assert requests.get(fs.url + "/fs/nothere.txt").status_code == 404
    assert requests.get(fs.url + "/fs/a.txt/").status_code == 404


def test_ext_storage_first(fs):
    assert requests.get(fs.url + "/ext/a.txt").text == "from sd card\n"
    assert requests.get(fs.url + "/ext/page.html").text == "<h1>page</h1>"  # falls back


def test_etag_304(fs):
    r = requests.get(fs.url + "/fs/a.txt")
    etag = r.headers["ETag"]
    r2 = requests.get(fs.url + "/fs/a.txt", headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b""
    assert requests.get(fs.url + "/fs/a.txt", headers={"If-None-Match": '"other"'}).status_code == 200


def test_etag_changes_with_file(fs, root):
    p = root / "www" / "changing.txt"
    p.write_text("one")
    e1 = requests.get(fs.url + "/fs/changing.txt").headers["ETag"]
    p.write_text("three")
    e2 = requests.get(fs.url + "/fs/changing.txt").headers["ETag"]
    assert e1 != e2


@pytest.mark.parametrize("rng,start,end", [("bytes=0-9", 0, 9), ("bytes=100-", 100, None),
                                           ("bytes=-50", -50, None), ("bytes=5-5", 5, 5)])
def test_range(fs, root, rng, start, end):
    data = (root / "www" / "big.bin").read_bytes()
    r = requests.get(fs.url + "/fs/big.bin", headers={"Range": rng})
    assert r.status_code == 206
    want = data[start:] if end is None else data[start:end + 1]
    assert r.content == want
    assert r.headers["Content-Range"].endswith("/%d" % len(data))


def test_range_416(fs):
    r = requests.get(fs.url + "/fs/a.txt", headers={"Range": "bytes=500-600"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */11"


def test_gzip_sibling(fs, root):
    r = requests.get(fs.url + "/fs/app.js", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"] == "application/javascript"
    assert r.text == (root / "www" / "app.js").read_text()     # requests decodes it
    r = requests.get(fs.url + "/fs/app.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers


def test_curl_compressed_head_and_resume(fs, root, tmp_path):
    out = subprocess.run(["curl", "-s", "--compressed", fs.url + "/fs/app.js"], capture_output=True, check=True)
    assert out.stdout == (root / "www" / "app.js").read_bytes()
    out = subprocess.run(["curl", "-sI", fs.url + "/fs/a.txt"], capture_output=True, check=True)
    assert out.stdout.startswith(b"HTTP/1.1 200") and b"Content-Length: 11" in out.stdout
    part = tmp_path / "big.part"
    data = (root / "www" / "big.bin").read_bytes()
    part.write_bytes(data[:12345])
    subprocess.run(["curl", "-s", "-C", "-", "-o", str(part), fs.url + "/fs/big.bin"], check=True)
    assert part.read_bytes() == data


# ---- path safety --------------------------------------------------------------

TRICKS = ["/fs/../secret.txt", "/fs/%2e%2e/secret.txt", "/fs/%2E%2E%2Fsecret.txt", "/fs/..%2fsecret.txt",
          "/fs/..%5csecret.txt", "/fs/%5c..%5csecret.txt", "/fs//../secret.txt", "/fs/./../secret.txt",
          "/fs/sub/../../secret.txt", "/fs/%252e%252e/secret.txt", "/fs/..%00/secret.txt",
          "/fs/%00", "/fs/..", "/fs/....//secret.txt", "/fs/.%2e/secret.txt", "/fs/\\..\\secret.txt",
          "/fs/sub/%2e%2e/%2e%2e/secret.txt", "/ext/../secret.txt", "/ext/%2e%2e/%2e%2e/secret.txt"]


@pytest.mark.parametrize("path", TRICKS)
def test_no_escape_from_base(fs, path):
    out = fs.raw(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"TOP SECRET" not in out
    status = int(out.split(b" ")[1])
    assert status in (400, 403, 404), out[:80]


def test_no_escape_via_listing(fs):
    for p in ["/fs/../", "/fs/%2e%2e/", "/fs/sub/../../"]:
        r = requests.get(fs.url + p)
        assert r.status_code in (400, 403, 404) or r.json()["path"].startswith("/fs/")
        assert "secret.txt" not in r.text


# ---- receiving ----------------------------------------------------------------

def test_upload_create_replace(fs, root):
    target = root / "up" / "new" / "deep" / "f.bin"
    body = os.urandom(200000)
    r = requests.post(fs.url + "/up" + str(target), data=body)
    assert r.status_code == 201
    assert target.read_bytes() == body
    r = requests.post(fs.url + "/up" + str(target), data=b"second")
    assert r.status_code == 200
    assert target.read_bytes() == b"second"
    assert not [p for p in target.parent.iterdir() if p.name != "f.bin"]   # no temporaries


def test_upload_chunked(fs, root):
    target = root / "up" / "chunked.bin"

    def gen():
        for i in range(100):
            yield bytes([i]) * 3000
    r = requests.post(fs.url + "/up" + str(target), data=gen())
    assert r.status_code == 201
    assert target.read_bytes() == b"".join(bytes([i]) * 3000 for i in range(100))


def test_upload_curl_put_and_data_binary(fs, root, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(500000))
    t1 = root / "up" / "curl-T.bin"
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(src),
                          fs.url + "/up" + str(t1)], capture_output=True, check=True)
    assert out.stdout == b"201" and t1.read_bytes() == src.read_bytes()
    t2 = root / "up" / "curl-data.bin"
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@%s" % src,
                          fs.url + "/up" + str(t2)], capture_output=True, check=True)
    assert out.stdout == b"201" and t2.read_bytes() == src.read_bytes()


def test_mkdir(fs, root):
    r = requests.post(fs.url + "/up" + str(root / "up" / "made" / "here") + "/")
    assert r.status_code == 201
    assert (root / "up" / "made" / "here").is_dir()
    assert requests.post(fs.url + "/up" + str(root / "up" / "made" / "here") + "/").status_code == 200


def test_delete_file_dir_force(fs, root):
    d = root / "up" / "del"
    (d / "inner").mkdir(parents=True)
    (d / "inner" / "x.txt").write_text("x")
    (d / "f.txt").write_text("f")
    base = fs.url + "/up" + str(d)
    assert requests.delete(base + "/f.txt").status_code == 204
    assert not (d / "f.txt").exists()
    assert requests.delete(base + "/f.txt").status_code == 404
    assert requests.delete(base + "/").status_code == 409
    assert requests.delete(base + "/?force=1").status_code == 204
    assert not d.exists()


def test_delete_needs_delete_flag(fs, root):
    (root / "up" / "keep.txt").write_text("k")
    r = requests.delete(fs.url + "/upload")
    assert r.status_code == 405


def test_static_upload_content_disposition(fs, root):
    target = root / "up" / "static.txt"
    r = requests.post(fs.url + "/upload", data=b"static body",
                      headers={"Content-Disposition": 'attachment; filename="%s"' % target})
    assert r.status_code == 201 and target.read_bytes() == b"static body"
    r = requests.post(fs.url + "/upload", data=b"again",
                      headers={"Content-Disposition": 'attachement; filename="%s"' % target})
    assert r.status_code == 200 and target.read_bytes() == b"again"
    assert requests.post(fs.url + "/upload", data=b"x").status_code == 400


def test_static_upload_no_escape(fs, root):
    r = requests.post(fs.url + "/upload", data=b"x",
                      headers={"Content-Disposition": 'attachment; filename="/../../etc/evil"'})
    assert r.status_code == 400


def test_upload_needs_length_411(fs, root):
    out = fs.raw(b"POST /up%s/nolen.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % str(root / "up").encode())
    assert out.startswith(b"HTTP/1.1 411")


def test_upload_too_large_413(root, app):
    r = app("files", "root=%s" % root, "max_body=1000")
    target = root / "up" / "toolarge.txt"
    target.write_text("old")
    resp = requests.post(r.url + "/up" + str(target), data=b"x" * 5000)
    assert resp.status_code == 413
    assert target.read_text() == "old"

    def gen():
        for _ in range(10):
            yield b"y" * 500
    resp = requests.post(r.url + "/up" + str(target), data=gen())
    assert resp.status_code == 413
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith("toolarge")) == ["toolarge.txt"]


def test_extonly(fs, root):
    r = requests.post(fs.url + "/sdonly" + str(root / "up" / "x.txt"), data=b"x")
    assert r.status_code == 403
    # ext_path of the test app is <root>/sd
    r = requests.post(fs.url + "/sdonly" + str(root / "sd" / "ok.txt"), data=b"ok")
    assert r.status_code == 201 and (root / "sd" / "ok.txt").read_text() == "ok"


def test_disconnect_mid_upload_keeps_old_file(fs, root):
    target = root / "up" / "precious.txt"
    target.write_text("precious original")
    s = socket.create_connection(("127.0.0.1", fs.port))
    s.sendall(b"POST /up%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" % str(target).encode())
    s.sendall(b"z" * 300000)
    time.sleep(0.2)    # let the server write some of it (not a synchronisation)
    s.close()
    # the server notices, removes the temporary file; poll for that
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sorted(p.name for p in root.joinpath("up").iterdir() if p.name.startswith("precious")) == ["precious.txt"]:
            break
        time.sleep(0.05)
    assert target.read_text() == "precious original"
    assert sorted(p.name for p in root.joinpath("up").iterdir() if p.name.startswith("precious")) == ["precious.txt"]
    assert requests.get(fs.url + "/fs/a.txt").status_code == 200


def test_stalled_upload_times_out_keeps_old_file(fs, root):
    target = root / "up" / "stalled.txt"
    target.write_text("old stalled")
    s = socket.create_connection(("127.0.0.1", fs.port))
    s.sendall(b"POST /up%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % str(target).encode())
    s.sendall(b"q" * 50000)
    s.settimeout(10)
    out = s.recv(4096)       # the server gives up after its 2 s timeout
    s.close()
    assert out.startswith(b"HTTP/1.1 408")
    assert target.read_text() == "old stalled"
    assert sorted(p.name for p in root.joinpath("up").iterdir() if p.name.startswith("stalled")) == ["stalled.txt"]


def test_disk_full_507_keeps_old_file(root, app):
    r = app("files", "root=%s" % root, "ram=1", "block=2048")
    resp = requests.post(r.url + "/up/ram/keep.txt", data=os.urandom(100000))
    assert resp.status_code == 507
    # the old file is intact and no temporary is left on the RAM disk
    c = requests.get(r.url + "/cat?p=/ram/keep.txt")
    assert c.content == b"original content\n"
    assert c.headers["X-Dir"] == "keep.txt"
    # replacing it with something too big fails the same way
    resp = requests.post(r.url + "/up/ram/keep.txt", data=os.urandom(100000))
    assert resp.status_code == 507
    c = requests.get(r.url + "/cat?p=/ram/keep.txt")
    assert c.content == b"original content\n" and c.headers["X-Dir"] == "keep.txt"
    # and the filesystem still works
    assert requests.post(r.url + "/up/ram/small.txt", data=b"fits").status_code == 201
    assert requests.get(r.url + "/cat?p=/ram/small.txt").content == b"fits"


def test_slow_download_does_not_block_others(fs):
    s = socket.create_connection(("127.0.0.1", fs.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /fs/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(100)   # started, then we stop reading
    # the stalled download holds for the server's 2 s timeout; a blocked loop
    # would fail these request timeouts
    for _ in range(5):
        assert requests.get(fs.url + "/fs/a.txt", timeout=1).status_code == 200
    s.close()


# ---- ACL ------------------------------------------------------------------------

def test_acl_statuses(fsacl):
    u = fsacl.url + "/fs/"
    assert requests.get(u + "private.txt").status_code == 403
    assert requests.get(u + "teapot.txt").status_code == 418
    assert requests.get(u + "readonly.txt").text == "ro"
    assert requests.get(u + "writeonly.txt").status_code == 403
    assert requests.get(u + "bogus.txt").status_code == 403
    assert requests.get(u + "a.txt").status_code == 200


def test_acl_sees_paths_dirs_with_slash(fsacl, root):
    requests.get(fsacl.url + "/acl-log")
    requests.get(fsacl.url + "/fs/a.txt")
    requests.get(fsacl.url + "/fs/sub/")
    log = requests.get(fsacl.url + "/acl-log").text.split("\n")
    # the directory, then each entry of its listing (left out if denied)
    assert log == [str(root / "www" / "a.txt"), str(root / "www" / "sub") + "/",
                   str(root / "www" / "sub" / "index.html")]


def test_acl_write(fsacl, root):
    t = root / "up" / "readonly-upload.txt"
    assert requests.post(fsacl.url + "/up" + str(t), data=b"x").status_code == 403
    assert not t.exists()
    t2 = root / "up" / "private"
    assert requests.post(fsacl.url + "/up" + str(t2) + "/").status_code == 403
    assert not t2.exists()
    t3 = root / "up" / "writeonly.txt"
    assert requests.post(fsacl.url + "/up" + str(t3), data=b"w").status_code == 201
    t4 = root / "up" / "teapot.txt"
    t4.write_text("keep")
    assert requests.delete(fsacl.url + "/up" + str(t4)).status_code == 418
    assert t4.read_text() == "keep"


# ---- memory -----------------------------------------------------------------------

def test_files_larger_than_heap(root, app, tmp_path):
    big = root / "www" / "huge.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    r = app("files", "root=%s" % root, "block=2048", heapsize="160K")
    got = requests.get(r.url + "/fs/huge.bin").content
    assert hashlib.sha256(got).digest() == hashlib.sha256(big.read_bytes()).digest()
    target = root / "up" / "huge-up.bin"
    resp = requests.post(r.url + "/up" + str(target), data=big.read_bytes())
    assert resp.status_code == 201
    assert target.read_bytes() == big.read_bytes()
