"""The file server and receiver under attack (design.md section 7): deep
trees, recursive DELETE against file_acl, concurrent uploads of one path,
aliases on FAT, open redirects, symlinks out of base, listings and ACL."""
import errno
import json
import os
import socket
import threading
import time

import pytest

from uhttpd_testlib import start_app, stop_app


# ---- helpers ----------------------------------------------------------------

def http(r, method, path, body=b"", headers=None, timeout=10.0):
    """One request with the path sent byte for byte as given (no client
    normalisation); returns (status, {lower-case name: value}, body)."""
    if isinstance(path, str):
        path = path.encode()
    h = {"Host": "x", "Connection": "close"}
    if body or method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = b"%s %s HTTP/1.1\r\n" % (method.encode(), path)
    head += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in h.items())
    out = r.raw(head + b"\r\n" + body, timeout=timeout)
    assert out, "no reply to %s %r" % (method, path)
    top, _, rest = out.partition(b"\r\n\r\n")
    lines = top.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    return status, hdrs, rest


def listing(r, path):
    s, _, b = http(r, "GET", path)
    assert s == 200, (path, s, b[:200])
    return [e["path"] for e in json.loads(b)["list"]]


def acl_log(r):
    s, _, b = http(r, "GET", "/acl-log")
    assert s == 200
    return set(b.decode().split("\n")) - {""}


def cat(r, path):
    """(content, sorted directory listing) as MicroPython's VFS sees them."""
    s, h, b = http(r, "GET", "/cat?p=" + path)
    return (b, h["x-dir"].split("/")) if s == 200 else (None, None)


@pytest.fixture
def www(tmp_path):
    w = tmp_path / "www"
    (w / "sub").mkdir(parents=True)
    (w / "a.txt").write_text("hello a\n")
    (w / "sub" / "b.txt").write_text("b\n")
    return w


# ---- 1. deep trees ----------------------------------------------------------

DEPTH = 1000


def rm_deep(top):
    """Remove a tree too deep for shutil.rmtree (Python's recursion limit)."""
    stack = [top] if os.path.isdir(top) else []
    while stack:
        p = stack[-1]
        subs = []
        for e in os.scandir(p):
            if e.is_dir(follow_symlinks=False):
                subs.append(e.path)
            else:
                os.unlink(e.path)
        if subs:
            stack.extend(subs)
        else:
            os.rmdir(p)
            stack.pop()


@pytest.fixture
def deep_cleanup(www):
    yield
    rm_deep(str(www / "deep"))
    rm_deep(str(www / "wide"))


def test_deep_tree_create_list_delete(app, tmp_path, www, deep_cleanup):
    r = app("harden_files", "root=%s" % tmp_path, "max_header=8192")
    rel = "/deep" + "/d" * DEPTH
    s, _, _ = http(r, "POST", "/up%s%s/" % (www, rel))
    assert s == 201
    assert os.path.isdir(str(www) + rel)
    assert listing(r, "/fs%s/" % rel) == [".."]
    assert listing(r, "/fs/deep/") == ["..", "d"]
    s, h, _ = http(r, "GET", "/fs%s" % rel)       # too long for an absolute Location
    assert s == 301 and h["location"] == "./d/"
    s, _, _ = http(r, "DELETE", "/up%s/deep/?force=1" % www)
    assert s == 204
    assert not (www / "deep").exists()
    assert r.alive()
    assert sorted(listing(r, "/fs/")) == ["..", "a.txt", "sub"]


def test_deep_tree_of_files_delete(app, tmp_path, www, deep_cleanup):
    # files on every level: the walk lists, checks and deletes them all
    r = app("harden_files", "root=%s" % tmp_path, "max_header=8192", "acl=1")
    p = str(www / "wide")
    os.mkdir(p)
    for i in range(300):
        with open(p + "/f%d.txt" % (i % 3), "w") as f:
            f.write("x")
        p += "/n"
        os.mkdir(p)
    http(r, "GET", "/acl-log?count=1")
    s, _, _ = http(r, "DELETE", "/up%s/wide/?force=1" % www)
    assert s == 204 and not (www / "wide").exists()
    assert http(r, "GET", "/acl-log?count=1")[2] == b"%d" % (1 + 300 * 2)   # every entry was asked about


# ---- 2. recursive DELETE asks file_acl for every entry first -----------------

def make_tree(base, files):
    for rel, data in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)


def snapshot(base):
    out = {}
    for dp, dns, fns in os.walk(base):
        for n in dns:
            out[os.path.relpath(os.path.join(dp, n), base) + "/"] = None
        for n in fns:
            f = os.path.join(dp, n)
            out[os.path.relpath(f, base)] = open(f).read() if os.path.isfile(f) else "(special)"
    return out


@pytest.mark.parametrize("denied,status", [("sub/deeper/private/c.txt", 403),
                                           ("sub/teapot.txt", 418),
                                           ("sub/deeper/secret.txt", 403)])
def test_recursive_delete_denied_entry_deletes_nothing(app, tmp_path, www, denied, status):
    r = app("harden_files", "root=%s" % tmp_path, "acl=1")
    t = www / "t"
    files = {"a.txt": "a", "z.txt": "z", "sub/b.txt": "b", "sub/deeper/d.txt": "d", denied: "deny"}
    make_tree(t, files)
    before = snapshot(t)
    s, _, _ = http(r, "DELETE", "/up%s/?force=1" % t)
    assert s == status
    assert snapshot(t) == before


def test_recursive_delete_asks_for_every_entry_dirs_with_slash(app, tmp_path, www):
    r = app("harden_files", "root=%s" % tmp_path, "acl=1")
    t = www / "t"
    make_tree(t, {"a.txt": "a", "sub/b.txt": "b", "sub/empty/.keep": "", "c/d/e.txt": "e"})
    acl_log(r)
    s, _, _ = http(r, "DELETE", "/up%s/?force=1" % t)
    assert s == 204 and not t.exists()
    want = {str(t) + "/"} | {str(t / k) for k in ("a.txt", "sub/b.txt", "sub/empty/.keep", "c/d/e.txt")}
    want |= {str(t / k) + "/" for k in ("sub", "sub/empty", "c", "c/d")}
    assert acl_log(r) == want


def test_delete_without_force_asks_for_the_directory_only(app, tmp_path, www):
    r = app("harden_files", "root=%s" % tmp_path, "acl=1")
    (www / "private").mkdir()
    s, _, _ = http(r, "DELETE", "/up%s/private" % www)   # a directory named without '/'
    assert s == 403 and (www / "private").is_dir()


# ---- 3. atomic uploads under concurrency --------------------------------------

def upload(port, path, body, vanish=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
            path.encode(), len(body))
        if vanish:
            s.sendall(head + body[:len(body) // 2])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return None
        s.sendall(head + body)
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        return int(out.split(b" ")[1])
    finally:
        s.close()


def test_concurrent_uploads_of_one_path(app, tmp_path, www):
    r = app("harden_files", "root=%s" % tmp_path, "max_conns=12", "timeout=5")
    d = www / "race"
    d.mkdir()
    target = d / "target.bin"
    old = b"old file\n" * 1000
    target.write_bytes(old)
    bodies = [bytes([65 + i]) * (200000 + 7919 * i) for i in range(8)]
    allowed = set(bodies) | {old}
    upath = "/up%s" % target
    errors = []

    def reader(stop):
        while not stop.is_set():
            s, _, b = http(r, "GET", "/fs/race/target.bin")
            if s != 200 or b not in allowed:
                errors.append(("read", s, len(b)))

    for rnd in range(5):
        stop = threading.Event()
        rt = threading.Thread(target=reader, args=(stop,))
        rt.start()
        results = [None] * len(bodies)

        def up(i):
            try:
                results[i] = upload(r.port, upath, bodies[i], vanish=i % 3 == 2)
            except OSError as e:
                results[i] = e
        ts = [threading.Thread(target=up, args=(i,)) for i in range(len(bodies))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stop.set()
        rt.join()
        for i, res in enumerate(results):
            if i % 3 != 2:
                assert res in (200, 201), (rnd, i, res)
        # the vanished clients' temporaries go once the server saw the close
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sorted(os.listdir(d)) != ["target.bin"]:
            time.sleep(0.05)
        assert sorted(os.listdir(d)) == ["target.bin"], rnd
        assert target.read_bytes() in allowed, rnd
        assert not errors, errors[:5]
    assert r.alive()


def test_upload_temporary_names_are_unique_and_beside_target(app, tmp_path, www):
    # two uploads of one path in flight at once: two temporaries beside it
    r = app("harden_files", "root=%s" % tmp_path)
    target = www / "pair.bin"
    socks = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        s.sendall(b"POST /up%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % str(target).encode())
        s.sendall(b"p" * 40000)
        socks.append(s)
    deadline = time.monotonic() + 5
    names = []
    while time.monotonic() < deadline:
        names = [n for n in os.listdir(www) if n.startswith("pair.bin.")]
        if len(names) == 2 and all(os.path.getsize(www / n) == 40000 for n in names):
            break
        time.sleep(0.05)
    assert len(names) == 2 and all(n.endswith(".uhtmp") for n in names), names
    for s in socks:
        s.sendall(b"p" * 60000)
        assert s.recv(100).startswith(b"HTTP/1.1 20")
        s.close()
    assert target.read_bytes() == b"p" * 100000
    assert not [n for n in os.listdir(www) if n.startswith("pair.bin.")]


# ---- 4. file_acl sees the real name (FAT) --------------------------------------

ALIASES = ["/PRIVATE/key.txt", "/Private/key.txt", "/PRIVAT~1/k.txt", "/SECRET.TXT", "/Secret.txt",
           "/secret.txt.", "/secret.txt%20", "/secret.txt.%20.", "/private./key.txt",
           "/private%20/key.txt", "/PUBLIC.TXT", "/public.txt.", "/PUB/", "/pub./"]


@pytest.fixture
def fat(tmp_path, www):
    r = start_app("harden_files", "root=%s" % tmp_path, "fat=1", "acl=1", tmp_path=tmp_path)
    yield r
    stop_app(r)


def test_fat_controls(fat):
    assert http(fat, "GET", "/fat/public.txt")[2] == b"PUBLIC"
    assert http(fat, "GET", "/ext/public.txt")[2] == b"PUBLIC"
    assert http(fat, "GET", "/fat/secret.txt")[0] == 403
    assert http(fat, "GET", "/fat/private/key.txt")[0] == 403
    assert http(fat, "GET", "/fat/privatedata/k.txt")[0] == 403
    s, h, _ = http(fat, "GET", "/fat/pub")
    assert s == 301 and h["location"] == "/fat/pub/"
    assert sorted(listing(fat, "/fat/")) == ["..", "pub", "public.txt"]


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("prefix", ["/fat", "/ext"])
def test_fat_alias_read_404(fat, prefix, alias):
    s, h, b = http(fat, "GET", prefix + alias)
    assert s == 404, (s, h, b[:100])


@pytest.mark.parametrize("alias", ALIASES)
def test_fat_alias_write_404(fat, alias):
    before = {p: cat(fat, "/sd/www" + p) for p in ("/secret.txt", "/private/key.txt", "/privatedata/k.txt",
                                                   "/public.txt", "/pub/index.html")}
    target = "/up/sd/www" + alias + ("x.txt" if alias.endswith("/") else "")
    s, _, _ = http(fat, "POST", target, b"pwned")
    assert s == 404
    if not alias.endswith("/"):
        assert http(fat, "DELETE", "/up/sd/www" + alias)[0] == 404
    s, _, _ = http(fat, "POST", "/up/sd/www" + alias.rstrip("/") + "/newdir/")
    assert s == 404
    after = {p: cat(fat, "/sd/www" + p) for p in before}
    assert after == before
    assert cat(fat, "/sd/www/public.txt")[1] == ["private", "privatedata", "pub", "public.txt", "secret.txt"]


def test_fat_alias_delete_dir_404(fat):
    assert http(fat, "DELETE", "/up/sd/www/PRIVATE/?force=1")[0] == 404
    assert http(fat, "DELETE", "/up/sd/www/PUB/?force=1")[0] == 404
    assert cat(fat, "/sd/www/private/key.txt")[0] == b"KEY"
    assert cat(fat, "/sd/www/pub/index.html")[0] == b"<h1>pub</h1>"


def test_fat_new_names_that_fat_would_change_404(fat):
    # FAT drops trailing dots and spaces: the name stored would not be the
    # name file_acl saw
    for name in ("new.txt.", "new.txt%20", "newdir./", "newdir%20/"):
        assert http(fat, "POST", "/up/sd/www/pub/" + name, b"n")[0] == 404, name
    assert cat(fat, "/sd/www/pub/index.html")[1] == ["index.html"]


def test_fat_upload_replace_and_mkdir(fat):
    assert http(fat, "POST", "/up/sd/www/pub/new.txt", b"one")[0] == 201
    assert http(fat, "POST", "/up/sd/www/pub/new.txt", b"two")[0] == 200   # rename over an existing file
    assert cat(fat, "/sd/www/pub/new.txt") == (b"two", ["index.html", "new.txt"])
    assert http(fat, "POST", "/up/sd/www/pub/Deep/Er/")[0] == 201
    assert http(fat, "POST", "/up/sd/www/pub/Deep/Er/f.txt", b"f")[0] == 201
    assert http(fat, "GET", "/fat/pub/Deep/Er/f.txt")[2] == b"f"
    assert http(fat, "GET", "/fat/pub/deep/er/f.txt")[0] == 404
    assert http(fat, "DELETE", "/up/sd/www/pub/Deep/?force=1")[0] == 204
    assert cat(fat, "/sd/www/pub/new.txt")[1] == ["index.html", "new.txt"]


# ---- 5. redirects stay on the server ----------------------------------------------

@pytest.mark.parametrize("raw,loc", [
    ("//evil.example/../fs/sub", "/fs/sub/"),
    ("///evil.example/%2e%2e/fs/sub", "/fs/sub/"),
    ("/\\evil.example/../fs/sub", "/fs/sub/"),
    ("/%5Cevil.example/..%2Ffs/sub", "/fs/sub/"),
    ("/%2F%2Fevil.example/../fs/sub", "/fs/sub/"),
    ("/fs//sub", "/fs/sub/"),
    ("/fs/./sub?x=1&y=%2F%2Fevil", "/fs/sub/?x=1&y=%2F%2Fevil"),
    ("/fs/we%20ird%25%3Fdir", "/fs/we%20ird%25%3Fdir/"),
    ("/fs/%C3%A9t%C3%A9", "/fs/%C3%A9t%C3%A9/"),
])
def test_redirect_location_is_normalised(app, tmp_path, www, raw, loc):
    (www / "we ird%?dir").mkdir()
    (www / "\u00e9t\u00e9").mkdir()
    r = app("harden_files", "root=%s" % tmp_path)
    s, h, _ = http(r, "GET", raw)
    assert s == 301 and h["location"] == loc
    assert not h["location"].startswith(("//", "/\\"))
    # the Location leads to the listing of that directory
    assert http(r, "GET", loc)[0] == 200


@pytest.mark.parametrize("k,relative", [(92, False), (93, False), (94, True)])
def test_redirect_long_location_edge(app, tmp_path, www, k, relative):
    # the Location line may take half of the response head (UH_TX_BUF / 2 =
    # 512 bytes): "Location: " + path + "/" + CRLF; beyond it a relative one
    rel = "/" + "a" * 200 + "/" + "b" * 200 + "/" + "c" * k
    os.makedirs(str(www) + rel)
    r = app("harden_files", "root=%s" % tmp_path)
    s, h, _ = http(r, "GET", "/fs" + rel)
    assert s == 301
    assert len("Location: " + "/fs" + rel + "/\r\n") == 512 + k - 93
    assert h["location"] == ("./" + "c" * k + "/" if relative else "/fs" + rel + "/")
    s, h, _ = http(r, "GET", "/fs" + rel + "?q=1")   # the query comes along
    assert s == 301 and h["location"] == "./" + "c" * k + "/?q=1"


def test_redirect_only_after_acl(app, tmp_path, www):
    (www / "private").mkdir()
    (www / "teapot").mkdir()
    r = app("harden_files", "root=%s" % tmp_path, "acl=1")
    s, h, _ = http(r, "GET", "/fs/private")
    assert s == 403 and "location" not in h
    s, h, _ = http(r, "GET", "/fs/teapot")
    assert s == 418 and "location" not in h
    s, h, _ = http(r, "GET", "/nodirs/private")
    assert s == 403 and "location" not in h
    assert http(r, "GET", "/fs/sub")[0] == 301


# ---- 6. symlinks never lead out of base (VfsPosix) ----------------------------------

@pytest.fixture
def links(tmp_path, www):
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret.txt").write_text("OUTSIDE SECRET")
    (out / "dir" / "x.txt").write_text("outside x")
    (out / "dir" / "index.html").write_text("outside index")
    (out / "evil.gz").write_bytes(b"outside gz")
    os.mkfifo(out / "fifo")
    (www / "app.js").write_text("plain js")
    os.symlink(out / "evil.gz", www / "app.js.gz")
    os.symlink(out / "secret.txt", www / "out_file")
    os.symlink(out / "dir", www / "out_dir")
    os.symlink("../outside/dir", www / "out_rel")
    os.symlink(out / "nothere", www / "dangling")
    os.symlink(out / "fifo", www / "fifo_link")
    os.symlink(www / "a.txt", www / "in_file")
    os.symlink("sub", www / "in_dir")
    os.symlink(www / "in_dir", www / "in_chain")
    return out


def fifo_unopened(out):
    # opening a FIFO's write end without blocking fails while nobody reads it
    try:
        fd = os.open(out / "fifo", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        return e.errno == errno.ENXIO
    os.close(fd)
    return False


@pytest.mark.parametrize("path", ["/fs/out_file", "/fs/out_dir/x.txt", "/fs/out_dir/", "/fs/out_dir",
                                  "/fs/out_rel/x.txt", "/fs/out_rel/", "/fs/dangling", "/fs/fifo_link",
                                  "/nodirs/out_dir/", "/nodirs/out_rel/"])
def test_symlink_out_of_base_404(app, tmp_path, www, links, path):
    r = app("harden_files", "root=%s" % tmp_path)
    s, h, b = http(r, "GET", path, timeout=5)
    assert s == 404 and b"outside" not in b and b"OUTSIDE" not in b, (s, h, b[:100])
    assert fifo_unopened(links)
    assert r.alive()


def test_symlink_in_base_works(app, tmp_path, www, links):
    r = app("harden_files", "root=%s" % tmp_path)
    assert http(r, "GET", "/fs/in_file")[2] == b"hello a\n"
    assert http(r, "GET", "/fs/in_dir/b.txt")[2] == b"b\n"
    assert http(r, "GET", "/fs/in_chain/b.txt")[2] == b"b\n"
    assert listing(r, "/fs/in_dir/") == ["..", "b.txt"]
    # the gzip sibling leads out: the plain file is sent
    s, h, b = http(r, "GET", "/fs/app.js", headers={"Accept-Encoding": "gzip"})
    assert s == 200 and b == b"plain js" and "content-encoding" not in h


def test_listing_leaves_out_links_out_of_base(app, tmp_path, www, links):
    r = app("harden_files", "root=%s" % tmp_path)
    assert sorted(listing(r, "/fs/")) == ["..", "a.txt", "app.js", "in_chain", "in_dir", "in_file", "sub"]
    assert fifo_unopened(links)


@pytest.mark.parametrize("method,rel,body", [
    ("POST", "out_file", b"pwned"), ("POST", "out_dir/new.txt", b"pwned"), ("POST", "out_rel/x.txt", b"pwned"),
    ("POST", "dangling", b"pwned"), ("POST", "out_dir/newdir/", b""), ("POST", "fifo_link", b"pwned"),
    ("DELETE", "out_dir/x.txt", b""), ("DELETE", "out_dir/?force=1", b""), ("DELETE", "out_dir?force=1", b""),
    ("DELETE", "out_file", b""), ("POST", "in_dir/new.txt", b"x"),
])
def test_receiver_never_follows_symlinks(app, tmp_path, www, links, method, rel, body):
    r = app("harden_files", "root=%s" % tmp_path)
    before = snapshot(links)
    s, _, _ = http(r, method, "/up%s/%s" % (www, rel), body, timeout=5)
    assert s == 404
    assert snapshot(links) == before
    assert os.path.islink(www / rel.split("/")[0].split("?")[0])
    assert not (www / "sub" / "new.txt").exists()
    assert fifo_unopened(links)
    assert r.alive()


def test_symlinks_on_a_vfsposix_with_a_root(app, tmp_path, www, links):
    # VfsPosix(<root>) at /jail: the host path is the VFS's root + the path
    r = app("harden_files", "root=%s" % tmp_path, "jail=1")
    assert http(r, "GET", "/jfs/a.txt")[2] == b"hello a\n"
    assert http(r, "GET", "/jfs/in_file")[2] == b"hello a\n"          # an absolute host link, inside
    assert http(r, "GET", "/jfs/in_dir/b.txt")[2] == b"b\n"
    for p in ("/jfs/out_file", "/jfs/out_dir/x.txt", "/jfs/out_rel/", "/jfs/fifo_link", "/jfs/dangling"):
        assert http(r, "GET", p, timeout=5)[0] == 404, p
    assert sorted(listing(r, "/jfs/")) == ["..", "a.txt", "app.js", "in_chain", "in_dir", "in_file", "sub"]
    before = snapshot(links)
    assert http(r, "POST", "/up/jail/www/out_dir/newdir/")[0] == 404
    assert http(r, "DELETE", "/up/jail/www/out_dir?force=1")[0] == 404
    assert http(r, "POST", "/up/jail/www/in_dir/newdir/")[0] == 404
    assert snapshot(links) == before and not (www / "sub" / "newdir").exists()
    assert http(r, "POST", "/up/jail/www/made/here/")[0] == 201
    assert (www / "made" / "here").is_dir()
    assert http(r, "DELETE", "/up/jail/www/made/?force=1")[0] == 204
    assert not (www / "made").exists()
    assert fifo_unopened(links) and r.alive()


def test_recursive_delete_unlinks_symlinks_inside(app, tmp_path, www, links):
    r = app("harden_files", "root=%s" % tmp_path)
    t = www / "tree"
    (t / "d").mkdir(parents=True)
    (t / "f.txt").write_text("f")
    os.symlink(links / "dir", t / "d" / "link_dir")
    os.symlink(links / "secret.txt", t / "link_file")
    before = snapshot(links)
    assert http(r, "DELETE", "/up%s/?force=1" % t)[0] == 204
    assert not t.exists() and snapshot(links) == before


# ---- 7. listings leave out what file_acl denies ------------------------------------

def test_listing_leaves_out_denied_entries(app, tmp_path, www):
    (www / "private").mkdir()
    (www / "private.txt").write_text("p")
    (www / "secret.txt").write_text("s")
    (www / "teapot.txt").write_text("t")
    (www / "sub" / "secret.txt").write_text("s")
    r = app("harden_files", "root=%s" % tmp_path, "acl=1")
    acl_log(r)
    assert sorted(listing(r, "/fs/")) == ["..", "a.txt", "sub"]
    assert sorted(listing(r, "/fs/sub/")) == ["..", "b.txt"]
    log = acl_log(r)
    assert str(www / "private") + "/" in log and str(www / "sub") + "/" in log   # dirs with '/'
    assert str(www / "teapot.txt") in log
