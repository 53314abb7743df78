"""The device page (Server.admin()): the frozen module matches its source,
the route's headers and config, and the page itself in headless Chromium
(Debian's chromium driven by Playwright): uploads (picker and drop), download,
edit and save, delete, mkdir, the event log, the REPL terminal, features
hidden without their routes, AUTH_BASIC and file_acl."""
import gzip
import os
import pathlib
import re
import select
import shutil
import subprocess
import sys
import time

import pytest
import requests

from uhttpd_testlib import APPS, BINARY, ROOT, sanitizer_report

sys.path.insert(0, str(ROOT / "tools"))
import mkadmin  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TIMEOUT = 10000   # ms, for waits in the page


def page_module():
    ns = {}
    exec(mkadmin.OUT.read_text(), ns)
    return ns


# ---- the generated module ---------------------------------------------------

def test_generated_module_is_up_to_date():
    """frozen/uhttpd_admin_page.py holds exactly admin/admin.html, minified
    (run tools/mkadmin.py after editing the page)."""
    ns = page_module()
    page = mkadmin.minify(mkadmin.SRC.read_text(encoding="utf-8"))
    assert gzip.decompress(ns["GZ"]).decode() == page, "stale: run tools/mkadmin.py"
    assert ns["ETAG"] == mkadmin.etag(page)
    assert len(ns["GZ"]) < 12 * 1024


def test_minify_keeps_code_lines():
    src = "<!--\n note\n-->\n<p>\n  // comment\n  let u = 'http://x'; // tail\n\n</p>\n"
    assert mkadmin.minify(src) == "<p>\nlet u = 'http://x'; // tail\n</p>\n"


# ---- running the app ----------------------------------------------------------

class App:
    """tests/apps/admin.py under `micropython -i` (the REPL waits on a pipe
    nobody writes to, as in test_webrepl)."""

    def __init__(self, tmp_path, args):
        self.logpath = tmp_path / ("admin-%d.stderr" % time.monotonic_ns())
        with open(self.logpath, "wb") as err:
            self.proc = subprocess.Popen([BINARY, "-i", str(APPS / "admin.py")] + list(args),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         cwd=str(tmp_path), bufsize=0)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if r else b""
        if not line.startswith(b"READY"):
            self.close()
            raise RuntimeError("admin app did not start: %r\n%s" % (line, self.logpath.read_text()))
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])

    def config(self, **kw):
        r = requests.get(self.url + "/admin?config", **kw)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        return r.json()

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stdin.close()
        log = self.logpath.read_text(errors="replace")
        assert not sanitizer_report(log), log[-4000:]


@pytest.fixture
def app(tmp_path):
    made = []

    def start(*args):
        a = App(tmp_path, args)
        made.append(a)
        return a
    yield start
    for a in made:
        a.close()


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "fs"
    (r / "docs").mkdir(parents=True)
    (r / "hello.txt").write_text("hello world\n")
    (r / "docs" / "notes.md").write_text("# notes\n")
    return r


def full(root, *more):
    return ["fs=%s" % root, "serve=/fs,%s" % root, "recv=/up,delete", "events=1", "ws=pw"] + list(more)


# ---- the route without a browser ---------------------------------------------

def test_page_headers_etag_and_encodings(app, root):
    a = app(*full(root))
    gz = page_module()
    r = requests.get(a.url + "/admin", headers={"Accept-Encoding": "gzip, deflate"}, stream=True)
    body = r.raw.read()
    assert r.status_code == 200
    assert body == gz["GZ"]
    h = r.headers
    assert h["Content-Type"] == "text/html; charset=utf-8"
    assert h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding"
    assert h["ETag"] == gz["ETAG"] and h["Cache-Control"] == "no-cache"
    assert h["X-Frame-Options"] == "DENY" and h["Content-Length"] == str(len(gz["GZ"]))
    # revalidation: 304 without a body, the same tag
    r = requests.get(a.url + "/admin", headers={"If-None-Match": gz["ETAG"]})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == gz["ETAG"]
    assert "Content-Length" not in r.headers
    assert requests.get(a.url + "/admin", headers={"If-None-Match": '"other"'}).status_code == 200
    # HEAD: the headers only
    r = requests.head(a.url + "/admin")
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == str(len(gz["GZ"]))
    # a client that refuses gzip gets 406; one that says nothing gets gzip
    assert requests.get(a.url + "/admin", headers={"Accept-Encoding": "identity"}).status_code == 406
    raw = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", a.url + "/admin"],
                         capture_output=True, timeout=10).stdout.decode()
    assert "Content-Encoding: gzip" in raw
    # POST is not the page's: 405
    assert requests.post(a.url + "/admin", data=b"x").status_code == 405


def test_config_from_the_routes(app, root):
    a = app(*full(root))
    assert a.config() == {"fs": str(root), "list": "/fs", "recv": "/up" + str(root), "delete": True,
                          "events": "/events", "ws": "/ws"}
    assert a.config()["list"] == "/fs"
    assert requests.get(a.url + "/admin?config").headers["Cache-Control"] == "no-store"
    assert requests.get(a.url + "/fs/").json()["path"] == "/fs/"


def test_config_maps_fs_through_prefix_and_base(app, root):
    sub = root / "docs"
    # fs inside the served base, receiver without delete; an earlier serve()
    # without listings and one whose base does not hold fs are skipped
    a = app("fs=%s" % sub, "serve=/plain,%s,nodirs" % root, "serve=/other,%s/elsewhere" % root,
            "serve=/fs,%s" % root, "serve=/all,", "recv=/in")
    c = a.config()
    assert c["list"] == "/fs/docs" and c["recv"] == "/in" + str(sub) and c["delete"] is False
    assert c["events"] is None and c["ws"] is None and c["fs"] == str(sub)
    assert [e["path"] for e in requests.get(a.url + c["list"] + "/").json()["list"]] == ["..", "notes.md"]
    # the whole filesystem served at /all: fs maps to /all<fs>
    b = app("fs=%s" % root, "serve=/all,", "recv=/,delete")
    c = b.config()
    assert c["list"] == "/all" + str(root) and c["recv"] == str(root) and c["delete"] is True
    # a receiver with a fixed endpoint, or only for ext_path elsewhere: no uploads
    d = app("fs=%s" % root, "serve=/fs,%s" % root, "recv=/upload,static", "recv=/sd,extonly",
            "ext=%s/sd" % root)
    assert d.config()["recv"] is None
    e = app("fs=%s/sd" % root, "serve=/fs,%s" % root, "recv=/sd,extonly", "ext=%s/sd" % root)
    assert e.config()["recv"] == "/sd%s/sd" % root


def test_config_is_computed_at_request_time(app, root):
    # admin() registered first: the routes added after it still count
    a = app("first=1", *full(root))
    c = a.config()
    assert c["list"] == "/fs" and c["recv"] and c["events"] == "/events" and c["ws"] == "/ws"
    bare = app()
    assert bare.config() == {"fs": "/", "list": None, "recv": None, "delete": False,
                             "events": None, "ws": None}


def test_admin_takes_one_slot_and_checks_arguments():
    code = "\n".join([
        "import uhttpd",
        "s = uhttpd.Server(0, host='127.0.0.1', routes=2)",
        "s.admin()",   # OPTIONS + admin: exactly full
        "try:\n    s.admin('/b')\nexcept OSError as e:\n    print('E1', e)",
        "s.close()",
        "s = uhttpd.Server(0, host='127.0.0.1', routes=3)",
        "for a in (('/x*',), ('x',), ('/a', 'rel')):",
        "    try:\n        s.admin(*a)\n    except ValueError as e:\n        print('E2', e)",
        "s.admin('/a')",
        "s.admin('/b')",
        "print('OK', len(s._routes))",
        "s.close()",
    ])
    out = subprocess.run([BINARY, "-c", code], capture_output=True, timeout=20)
    text = out.stdout.decode()
    assert out.returncode == 0, text + out.stderr.decode()
    assert "E1 uhttpd: out of route slots (routes=2, 2 used, admin /b needs 1)" in text
    assert text.count("E2 ") == 3 and "OK 2" in text


def test_auth_basic_page_needs_credentials(app, root):
    a = app(*full(root, "auth=user:pw"))
    assert requests.get(a.url + "/admin").status_code == 401
    assert requests.get(a.url + "/admin?config").status_code == 401
    assert requests.get(a.url + "/admin?config", auth=("user", "pw")).json()["list"] == "/fs"


# ---- in the browser -------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api
    assert pathlib.Path(CHROMIUM).exists(), "Debian's chromium is missing: tools/setup-deps.sh test"
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh context per test; page.errors collects uncaught page errors."""
    contexts = []

    def make(url, **kw):
        ctx = browser.new_context(**kw)
        contexts.append(ctx)
        p = ctx.new_page()
        p.errors = []
        p.on("pageerror", lambda e: p.errors.append(str(e)))
        p.sent = []
        p.on("request", lambda r: p.sent.append(r.method))
        p.set_default_timeout(TIMEOUT)
        if url:
            # the status as the network saw it: without credentials Chromium
            # ends a 401 navigation with net::ERR_INVALID_AUTH_CREDENTIALS
            seen = []
            p.on("response", lambda r: seen.append(r.status) if r.url == url + "/admin" else None)
            try:
                p.goto(url + "/admin")
            except Exception as e:
                if "ERR_INVALID_AUTH_CREDENTIALS" not in str(e):
                    raise
            p.status = seen[-1] if seen else None
        return p
    yield make
    for c in contexts:
        c.close()


def names(p):
    return p.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.dataset.name)")


def wait_row(p, name, present=True):
    p.wait_for_function("([n, want]) => [...document.querySelectorAll('#rows tr')]"
                        ".some(r => r.dataset.name === n) === want", arg=[name, present])


def barrier(p):
    """A request from the page, answered: any request the page started before
    it has been seen by then (p.sent)."""
    p.evaluate("fetch(location.pathname + '?config').then(r => r.text())")


def message(p, bad, pattern):
    """Wait for the page's message line to show ``pattern`` (a regular
    expression) as an error (bad) or a success; return its text."""
    p.wait_for_function("([cls, re]) => { const m = document.getElementById('msg');"
                        " return !m.hidden && m.className === cls && new RegExp(re).test(m.textContent); }",
                        arg=["err" if bad else "ok", pattern])
    return p.inner_text("#msg")


def test_browse_upload_download_edit_delete(app, root, page, tmp_path):
    a = app(*full(root))
    p = page(a.url)
    assert p.status == 200
    wait_row(p, "hello.txt")
    assert names(p) == ["docs", "hello.txt"]          # folders first, no '..' at the top
    assert p.inner_text('#rows tr[data-name="hello.txt"] td.r') == "12 B"
    assert "1 folder, 1 file" in p.inner_text("#foot")
    # into a folder and back by the breadcrumbs
    p.click('#rows tr[data-name="docs"] a.n')
    wait_row(p, "notes.md")
    assert names(p) == ["..", "notes.md"]
    assert p.inner_text("#crumbs").replace("\n", "") == str(root) + "/docs"
    p.click("#crumbs a >> nth=0")
    wait_row(p, "hello.txt")

    # upload with the file picker: a name that needs escaping, and a bigger file
    big = bytes(range(256)) * 4096   # 1 MiB
    p.set_input_files("#picker", [
        {"name": "r\u00e9sum\u00e9 #1.txt", "mimeType": "text/plain", "buffer": "caf\u00e9\n".encode()},
        {"name": "big.bin", "mimeType": "application/octet-stream", "buffer": big},
        {"name": "blob.bin", "mimeType": "application/octet-stream", "buffer": b"\xff\xfe\x00"}])
    message(p, False, "^Uploaded 3 files to /$")
    wait_row(p, "big.bin")
    assert (root / "r\u00e9sum\u00e9 #1.txt").read_text() == "caf\u00e9\n"
    assert (root / "big.bin").read_bytes() == big
    assert p.inner_text('#rows tr[data-name="big.bin"] td.r') == "1.0 MiB"
    assert p.is_hidden("#prog")

    # download
    with p.expect_download() as dl:
        p.click('#rows tr[data-name="big.bin"] a.dl')
    assert dl.value.suggested_filename == "big.bin"
    assert pathlib.Path(dl.value.path()).read_bytes() == big

    # open, edit, save, read back (from the server, through a fresh listing)
    p.click('#rows tr[data-name="hello.txt"] button.ed')
    p.wait_for_selector("#edit:not([hidden])")
    assert p.input_value("#etext") == "hello world\n"
    p.fill("#etext", "edited \u2713\nline 2\n")
    assert "modified" in p.inner_text("#edirty")
    p.click("#esave")
    message(p, False, "^Saved /hello\\.txt$")
    assert (root / "hello.txt").read_text() == "edited \u2713\nline 2\n"
    p.click("#eclose")
    p.wait_for_selector("#files:not([hidden])")
    p.click('#rows tr[data-name="hello.txt"] button.ed')
    p.wait_for_selector("#edit:not([hidden])")
    assert p.input_value("#etext") == "edited \u2713\nline 2\n"
    p.keyboard.press("End")
    p.keyboard.type("3")
    p.keyboard.press("Control+s")                    # Ctrl-S saves too
    message(p, False, "^Saved /hello\\.txt$")
    assert (root / "hello.txt").read_text() == "edited \u2713\nline 2\n3"
    p.click("#eclose")

    # a binary or large file is not opened in the editor
    p.click('#rows tr[data-name="blob.bin"] button.ed')
    message(p, True, "^/blob.bin is not UTF-8 text$")
    p.click('#rows tr[data-name="big.bin"] button.ed')
    message(p, True, r"^/big.bin is too large to edit here \(1.0 MiB\)$")
    assert p.is_hidden("#edit")

    # delete a file: the confirm dialog is accepted
    dialogs = []
    p.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    p.click('#rows tr[data-name="big.bin"] button.rm')
    message(p, False, "^Deleted /big\\.bin$")
    wait_row(p, "big.bin", present=False)
    assert dialogs == ["Delete /big.bin?"] and not (root / "big.bin").exists()
    # dismissed: nothing happens
    p.once("dialog", lambda d: d.dismiss())
    p.click('#rows tr[data-name="hello.txt"] button.rm')
    barrier(p)
    assert p.sent.count("DELETE") == 1 and (root / "hello.txt").exists()

    # make a folder, go in, create a new file there, delete the folder (force)
    p.once("dialog", lambda d: d.accept("made"))
    p.click("#mkdir")
    message(p, False, "^Created /made$")
    wait_row(p, "made")
    assert (root / "made").is_dir()
    p.click('#rows tr[data-name="made"] a.n')
    wait_row(p, "..")
    p.once("dialog", lambda d: d.accept("new.txt"))
    p.click("#newfile")
    p.wait_for_selector("#edit:not([hidden])")
    p.fill("#etext", "fresh\n")
    p.click("#esave")
    message(p, False, "^Saved /made/new\\.txt$")
    assert (root / "made" / "new.txt").read_text() == "fresh\n"
    p.click("#eclose")
    wait_row(p, "new.txt")
    p.click("#crumbs a >> nth=0")
    wait_row(p, "made")
    p.once("dialog", lambda d: d.accept())
    p.click('#rows tr[data-name="made"] button.rm')
    message(p, False, "^Deleted /made$")
    assert not (root / "made").exists()
    # a name that would climb out of the folder is refused in the page
    p.once("dialog", lambda d: d.accept("../out"))
    p.click("#mkdir")
    message(p, True, "Not a valid name")
    assert not (root.parent / "out").exists()
    assert p.errors == []


def test_drop_upload_and_hostile_names(app, root, page):
    a = app(*full(root))
    p = page(a.url)
    wait_row(p, "hello.txt")
    p.click('#rows tr[data-name="docs"] a.n')
    wait_row(p, "notes.md")
    # a synthetic drop of two files onto the page, into the folder shown
    p.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['dropped\\n'], 'dropped.txt', {type: 'text/plain'}));
        dt.items.add(new File(['<b>x</b>'], '<img src=x onerror="window.pwned=1">.html'));
        const t = document.getElementById('rows');
        t.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        window.dropClass = document.getElementById('files').className;
        t.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    assert p.evaluate("window.dropClass") == "drop"
    message(p, False, "^Uploaded 2 files to /docs/$")
    wait_row(p, "dropped.txt")
    assert (root / "docs" / "dropped.txt").read_text() == "dropped\n"
    hostile = '<img src=x onerror="window.pwned=1">.html'
    assert (root / "docs" / hostile).read_text() == "<b>x</b>"
    # the name is text, never markup
    wait_row(p, hostile)
    assert p.evaluate("window.pwned") is None
    assert p.evaluate("document.querySelectorAll('#rows img').length") == 0
    assert "files" not in p.evaluate("document.getElementById('files').className")
    assert p.errors == []


def test_event_log_shows_dispatched_events(app, root, page):
    a = app(*full(root))
    p = page(a.url)
    p.click("#t-events")
    p.wait_for_function("document.getElementById('evstate').textContent === 'live'")
    assert requests.get(a.url + "/fire", params={"data": "42 degrees", "event": "temp"}).text == "True"
    assert requests.get(a.url + "/fire", params={"data": "plain"}).text == "True"
    p.wait_for_function("document.getElementById('evlog').children.length >= 2")
    log = p.inner_text("#evlog")
    assert re.search(r"temp 42 degrees", log) and re.search(r"message plain", log)
    # disconnect frees the listener: nobody is left to dispatch to
    p.click("#evconn")
    p.wait_for_function("document.getElementById('evstate').textContent === 'not connected'")
    deadline = time.monotonic() + 5
    while requests.get(a.url + "/fire", params={"data": "gone"}).text != "False":
        assert time.monotonic() < deadline, "the listener was not freed"
        time.sleep(0.1)
    assert p.errors == []


def test_repl_terminal_logs_in_and_evaluates(app, root, page):
    a = app(*full(root))
    p = page(a.url)
    p.click("#t-repl")
    p.click("#rconn")
    p.wait_for_function("document.getElementById('term').textContent.endsWith('Password: ')")
    assert p.get_attribute("#rin", "type") == "password"
    p.fill("#rin", "pw")
    p.press("#rin", "Enter")
    p.wait_for_function("document.getElementById('term').textContent.includes('WebREPL connected')")
    assert "pw" not in p.inner_text("#term")
    assert p.get_attribute("#rin", "type") == "text"
    p.fill("#rin", "6*7")
    p.press("#rin", "Enter")
    p.wait_for_function("/\\n42\\n>>> $/.test(document.getElementById('term').textContent)")
    # history and Ctrl-C
    p.press("#rin", "ArrowUp")
    assert p.input_value("#rin") == "6*7"
    # Ctrl-C abandons a half-typed block (the button and the key)
    for how in ("button", "key"):
        p.fill("#rin", "for i in range(3):")
        p.press("#rin", "Enter")
        p.wait_for_function("/\\n\\.\\.\\. +$/.test(document.getElementById('term').textContent)")
        if how == "button":
            p.click("#rctrlc")
        else:
            p.press("#rin", "Control+c")
        p.wait_for_function("document.getElementById('term').textContent.endsWith('\\n>>> ')")
    p.fill("#rin", "print('still', 6*7)")
    p.press("#rin", "Enter")
    p.wait_for_function("document.getElementById('term').textContent.endsWith('still 42\\n>>> ')")
    p.click("#rconn")      # disconnect
    p.wait_for_function("document.getElementById('rstate').textContent.startsWith('closed')")
    assert p.errors == []


def test_features_without_routes_are_hidden(app, root, page):
    # listings only: no upload, no folder, no delete, View instead of Edit
    a = app("fs=%s" % root, "serve=/fs,%s" % root)
    p = page(a.url)
    wait_row(p, "hello.txt")
    for sel in ("#pick", "#mkdir", "#newfile", "#t-events", "#t-repl", "#rows button.rm"):
        assert p.is_hidden(sel), sel
    assert p.is_visible("#t-files")
    assert p.inner_text('#rows tr[data-name="hello.txt"] button.ed') == "View"
    p.click('#rows tr[data-name="hello.txt"] button.ed')
    p.wait_for_selector("#edit:not([hidden])")
    assert p.is_hidden("#esave") and p.evaluate("document.getElementById('etext').readOnly")
    # a drop does nothing
    p.click("#eclose")
    p.evaluate("""() => { const dt = new DataTransfer(); dt.items.add(new File(['x'], 'no.txt'));
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); }""")
    barrier(p)
    assert "PUT" not in p.sent and not (root / "no.txt").exists()
    # receiver without delete: uploads yes, delete buttons no
    b = app("fs=%s" % root, "serve=/fs,%s" % root, "recv=/up")
    q = page(b.url)
    wait_row(q, "hello.txt")
    assert q.is_visible("#pick") and q.is_hidden("#rows button.rm")
    # only the terminal: it is the page
    c = app("ws=pw")
    r = page(c.url)
    r.wait_for_selector("#repl:not([hidden])")
    for sel in ("#t-files", "#t-events", "#files"):
        assert r.is_hidden(sel), sel
    # nothing at all
    d = app()
    s = page(d.url)
    s.wait_for_selector("#none:not([hidden])")
    assert p.errors == q.errors == r.errors == s.errors == []


def test_auth_basic_in_the_browser(app, root, page):
    a = app(*full(root, "auth=user:pw"))
    assert page(a.url).status == 401
    assert page(a.url, http_credentials={"username": "user", "password": "wrong"}).status == 401
    p = page(a.url, http_credentials={"username": "user", "password": "pw"})
    assert p.status == 200
    wait_row(p, "hello.txt")
    p.set_input_files("#picker", [{"name": "authed.txt", "mimeType": "text/plain", "buffer": b"ok\n"}])
    message(p, False, "^Uploaded authed\\.txt to /$")
    assert (root / "authed.txt").read_text() == "ok\n"
    p.once("dialog", lambda d: d.accept())
    p.click('#rows tr[data-name="authed.txt"] button.rm')
    message(p, False, "^Deleted /authed\\.txt$")
    p.click("#t-events")
    p.wait_for_function("document.getElementById('evstate').textContent === 'live'")
    assert requests.get(a.url + "/fire", params={"data": "authed"}, auth=("user", "pw")).text == "True"
    p.wait_for_function("document.getElementById('evlog').textContent.includes('authed')")
    # the WebSocket handshake carries the credentials too
    p.click("#t-repl")
    p.click("#rconn")
    p.wait_for_function("document.getElementById('term').textContent.endsWith('Password: ')")
    p.fill("#rin", "pw")
    p.press("#rin", "Enter")
    p.fill("#rin", "6*7")
    p.press("#rin", "Enter")
    p.wait_for_function("/\\n42\\n>>> $/.test(document.getElementById('term').textContent)")
    assert p.errors == []


def test_file_acl_denial_shows_an_error_and_changes_nothing(app, root, page):
    (root / "locked").mkdir()
    (root / "locked" / "keep.txt").write_text("keep\n")
    (root / "hidden").mkdir()
    before = sorted(str(x.relative_to(root)) + ":" + (x.read_text() if x.is_file() else "")
                    for x in root.rglob("*"))
    a = app(*full(root, "acl=1"))
    p = page(a.url)
    wait_row(p, "locked")
    p.click('#rows tr[data-name="locked"] a.n')
    wait_row(p, "keep.txt")
    # upload into a read-only folder
    p.set_input_files("#picker", [{"name": "new.txt", "mimeType": "text/plain", "buffer": b"no\n"}])
    message(p, True, "Upload new.txt: 403")
    # delete a read-only file
    p.once("dialog", lambda d: d.accept())
    p.click('#rows tr[data-name="keep.txt"] button.rm')
    message(p, True, r"DELETE .*/locked/keep\.txt: 403")
    # edit and save a read-only file
    p.click('#rows tr[data-name="keep.txt"] button.ed')
    p.wait_for_selector("#edit:not([hidden])")
    p.fill("#etext", "changed\n")
    p.click("#esave")
    message(p, True, r"PUT .*/locked/keep\.txt: 403")
    p.once("dialog", lambda d: d.accept())   # discard the changes
    p.click("#eclose")
    # mkdir inside it
    p.once("dialog", lambda d: d.accept("sub"))
    p.click("#mkdir")
    message(p, True, r"POST .*/locked/sub/: 403")
    # a folder the acl hides: its listing is 404
    p.goto(a.url + "/admin#/hidden/")
    message(p, True, r"GET /fs/hidden/: 404")
    after = sorted(str(x.relative_to(root)) + ":" + (x.read_text() if x.is_file() else "")
                   for x in root.rglob("*"))
    assert after == before
    assert p.errors == []


def test_screenshot(app, tmp_path, page):
    """A realistic listing; UHTTPD_ADMIN_SCREENSHOT=docs/admin.png keeps it."""
    r = tmp_path / "device"
    for d in ("lib", "www", "data"):
        (r / d).mkdir(parents=True)
    files = {"boot.py": 212, "main.py": 3580, "config.json": 431, "secrets.py": 96,
             "www/index.html": 1834, "data/log.csv": 48213, "lib/sensor.py": 2210}
    for name, n in files.items():
        (r / name).write_bytes((b"# uhttpd device page\n" * (n // 21 + 1))[:n])
    a = app(*full(r))
    p = page(a.url, viewport={"width": 900, "height": 470}, device_scale_factor=1)
    wait_row(p, "main.py")
    # the root as it reads on a board, where fs is '/' (here a temporary folder)
    p.evaluate("document.getElementById('crumbs').firstChild.textContent = '/'")
    out = os.environ.get("UHTTPD_ADMIN_SCREENSHOT") or str(tmp_path / "admin.png")
    p.screenshot(path=out)
    assert pathlib.Path(out).stat().st_size > 1000


def test_demo_enables_the_page(page):
    """examples/demo.py: the page browses examples/www and logs the ticks."""
    www = ROOT / "examples" / "www"
    # unbuffered: readline() must not read ahead past what select() saw
    p = subprocess.Popen([BINARY, "-i", str(ROOT / "examples" / "demo.py"), "--port", "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        url = None
        while url is None:
            r, _, _ = select.select([p.stdout], [], [], 10)
            assert r, "demo did not start"
            line = p.stdout.readline().decode()
            assert line, p.stderr.read().decode()
            m = re.search(r"device page on (http://127\.0\.0\.1:\d+)/admin", line)
            url = m and m.group(1)
        c = requests.get(url + "/admin?config").json()
        assert c == {"fs": str(www), "list": "/fs", "recv": "/upload" + str(www), "delete": True,
                     "events": "/events", "ws": "/"}
        q = page(url)
        wait_row(q, "index.html")
        q.click("#t-events")
        q.wait_for_function("document.getElementById('evlog').textContent.includes('tick')")
        assert q.errors == []
    finally:
        p.kill()
        p.wait(5)
        p.stdout.close()
        p.stdin.close()
        p.stderr.close()
