"""examples/ota.py: stream a firmware image into the next (file-backed)
OTA partition; switch only when the SHA-256 matches."""
import hashlib
import os
import pathlib
import subprocess

import pytest
import requests

from uhttpd_testlib import BINARY, start_app, stop_app

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def ota(tmp_path):
    import select
    import time
    proc = subprocess.Popen([BINARY, str(EXAMPLES / "ota.py"), str(tmp_path), "--port0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    deadline = time.monotonic() + 10
    port = None
    while time.monotonic() < deadline and port is None:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            line = proc.stdout.readline()
            if line.startswith(b"READY"):
                port = int(line.split()[1])
            elif not line:
                break
    assert port, proc.stderr.read()
    yield "http://127.0.0.1:%d/ota" % port, tmp_path
    proc.kill()
    proc.wait()


def test_ota_upload_switches_boot(ota):
    url, base = ota
    image = os.urandom(100 * 1024 + 123)
    r = requests.post(url, data=image, headers={"X-SHA256": hashlib.sha256(image).hexdigest()})
    assert r.status_code == 200, r.text
    part = (base / "ota_1.bin").read_bytes()
    assert part[:len(image)] == image
    assert part[len(image):len(image) + 4096 - (len(image) % 4096)] == b"\xff" * (4096 - len(image) % 4096)
    assert (base / "boot").read_text() == "ota_1"


def test_ota_wrong_hash_does_not_switch(ota):
    url, base = ota
    image = os.urandom(50000)
    r = requests.post(url, data=image, headers={"X-SHA256": hashlib.sha256(b"other").hexdigest()})
    assert r.status_code == 409
    assert not (base / "boot").exists()


def test_ota_needs_hash_and_fits(ota):
    url, base = ota
    assert requests.post(url, data=b"x" * 10).status_code == 400
    big = b"y" * (300 * 1024)
    r = requests.post(url, data=big, headers={"X-SHA256": hashlib.sha256(big).hexdigest()})
    assert r.status_code == 413
    assert not (base / "boot").exists()
