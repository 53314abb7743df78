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


@pytest.fixture
def demo():
    p = subprocess.Popen([BINARY, "-i", str(ROOT / "examples" / "demo.py"), "--port", "0", "--password", "demo"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = None
    while url is None:
        r, _, _ = select.select([p.stdout], [], [], 10)
        assert r, "demo did not start"
        line = p.stdout.readline().decode()
        assert line, p.stderr.read().decode()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if m:
            url = m.group(1)
    yield url
    p.kill()
    p.wait(5)


def test_page_events_and_repl(demo):
    # `make test` installs both (tools/setup-deps.sh test, tests/requirements.txt)
    from playwright import sync_api
    assert pathlib.Path(CHROMIUM).exists(), "Debian's chromium is missing: tools/setup-deps.sh test"
    with sync_api.sync_playwright() as pw:   # launch() uses a fresh, empty profile
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
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
