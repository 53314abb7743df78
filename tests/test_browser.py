"""The demo page in headless Chromium (Debian's chromium, driven by
Playwright for Python; no browser download): the live event log fills from
EventSource, and the WebREPL terminal evaluates 1+1."""
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


def test_page_events_and_repl(demo):
    # over HTTPS too: the page, EventSource and the wss:// terminal
    # `make test` installs both (tools/setup-deps.sh test, tests/requirements.txt)
    from playwright import sync_api
    assert pathlib.Path(CHROMIUM).exists(), "Debian's chromium is missing: tools/setup-deps.sh test"
    with sync_api.sync_playwright() as pw:   # launch() uses a fresh, empty profile
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--ignore-certificate-errors"])
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
