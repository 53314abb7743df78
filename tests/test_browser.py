"""The demo page in headless Chromium (Debian's chromium, driven by
Playwright for Python; no browser download): the live event log fills from
EventSource, the WebREPL terminal evaluates 1+1, and the application
WebSockets work: a slider moved in one page moves in another, the echo box
echoes.  Over http and https (ws:// and wss://)."""
import pathlib
import re
import select
import shutil
import subprocess
import tempfile

import pytest

from uhttpd_testlib import BINARY, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def selfsigned(d):
    key, crt = d / "demo.key", d / "demo.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1", "-days", "2",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture(params=["http", "https"])
def demo(request, tmp_path):
    args = [BINARY, "-i", str(ROOT / "examples" / "demo.py"), "--port", "0", "--password", "demo"]
    if request.param == "https":
        args += ["--tls"] + [str(p) for p in selfsigned(tmp_path)]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = None
    while url is None:
        r, _, _ = select.select([p.stdout], [], [], 10)
        assert r, "demo did not start"
        line = p.stdout.readline().decode()
        assert line, p.stderr.read().decode()
        m = re.search(r"(https?://127\.0\.0\.1:\d+/)", line)
        if m:
            url = m.group(1)
    assert url.startswith(request.param + "://")
    yield url
    p.kill()
    p.wait(5)


def chromium(pw):
    # `make test` installs both (tools/setup-deps.sh test, tests/requirements.txt)
    assert pathlib.Path(CHROMIUM).exists(), "Debian's chromium is missing: tools/setup-deps.sh test"
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[   # a fresh, empty profile
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--ignore-certificate-errors"])


def test_page_events_and_repl(demo):
    # over HTTPS too: the page, EventSource and the wss:// terminal
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        browser = chromium(pw)
        try:
            page = browser.new_page()
            page.goto(demo)
            # dispatched events arrive in the page (a tick every second)
            page.wait_for_function("document.querySelectorAll('#events li').length >= 2", timeout=10000)
            assert "tick" in page.inner_text("#events")
            # the terminal logs in and evaluates 1+1
            page.fill("#pwd", "demo")
            page.click("#connect")
            page.wait_for_function("document.getElementById('term').textContent.includes('WebREPL connected')",
                                   timeout=10000)
            page.wait_for_selector("#cmd:not([disabled])")
            page.fill("#cmd", "1+1")
            page.press("#cmd", "Enter")
            page.wait_for_function("/\\n2\\n/.test(document.getElementById('term').textContent)", timeout=10000)
            page.screenshot(path=str(pathlib.Path(tempfile.gettempdir()) / "uhttpd-demo.png"))
        finally:
            browser.close()


def test_page_live_slider_and_echo(demo):
    """Two pages: the slider moved in one moves in the other (the server
    broadcasts it), then back the other way; the echo box echoes."""
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        browser = chromium(pw)
        try:
            a, b = browser.new_page(), browser.new_page()
            for p in (a, b):
                p.goto(demo)
                p.wait_for_function("document.getElementById('slstate').textContent === '(live)'",
                                    timeout=10000)
                p.wait_for_function("document.getElementById('echostate').textContent === '(live)'",
                                    timeout=10000)
            for src, dst, value in ((a, b, "73"), (b, a, "12"), (a, b, "100")):
                src.fill("#slider", value)
                dst.wait_for_function("document.getElementById('slider').value === '%s'"
                                      " && document.getElementById('slval').textContent === '%s'"
                                      % (value, value), timeout=10000)
                assert src.input_value("#slider") == value
            # a page opened now starts at the current value
            c = browser.new_page()
            c.goto(demo)
            c.wait_for_function("document.getElementById('slval').textContent === '100'", timeout=10000)
            assert c.input_value("#slider") == "100"
            # the echo box, by button and by Enter
            a.fill("#echoin", "hello, κόσμε")
            a.click("#echosend")
            a.wait_for_function("document.getElementById('echoout').textContent === 'hello, κόσμε'",
                                timeout=10000)
            b.fill("#echoin", "by enter")
            b.press("#echoin", "Enter")
            b.wait_for_function("document.getElementById('echoout').textContent === 'by enter'",
                                timeout=10000)
            assert a.inner_text("#echoout") == "hello, κόσμε"   # each page has its own echo
            a.screenshot(path=str(pathlib.Path(tempfile.gettempdir()) / "uhttpd-demo-live.png"))
        finally:
            browser.close()
