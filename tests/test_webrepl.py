"""WebSocket REPL: MicroPython's WebREPL protocol over uhttpd, against the
interactive REPL of the built binary (stdin is a pipe nobody writes to:
no key is ever pressed on the terminal)."""
import select
import socket
import struct
import subprocess
import time

import pytest
import requests
import websocket

from uhttpd_testlib import BINARY, APPS, sanitizer_report


class Repl:
    def __init__(self, pwd, timeout=5, interactive=True):
        cmd = [BINARY] + (["-i"] if interactive else []) + [str(APPS / "repl.py"), pwd or "-", str(timeout)]
        if not interactive:
            cmd.append("loop")
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline()
        assert line.startswith(b"READY"), line + self.proc.stderr.read(2000)
        self.port = int(line.split()[1])
        self.url = "ws://127.0.0.1:%d/" % self.port

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        err = self.proc.stderr.read().decode(errors="replace")
        assert not sanitizer_report(err), err


@pytest.fixture
def repl():
    made = []

    def make(pwd="secret", **kw):
        r = Repl(pwd, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def read_until(ws, needle, timeout=5):
    out = ""
    deadline = time.monotonic() + timeout
    ws.settimeout(timeout)
    while needle not in out:
        assert time.monotonic() < deadline, "no %r in %r" % (needle, out)
        data = ws.recv()
        out += data if isinstance(data, str) else data.decode(errors="replace")
    return out


def login(url, pwd="secret"):
    ws = websocket.create_connection(url, timeout=5)
    assert read_until(ws, "Password: ").endswith("Password: ")
    ws.send(pwd + "\r")
    return ws


def test_right_password_and_evaluate(repl):
    r = repl()
    ws = login(r.url)
    read_until(ws, "WebREPL connected\r\n>>> ")
    ws.send("1+1\r")
    out = read_until(ws, "\n>>> ")
    assert "2" in out.split("\r\n", 1)[1]
    ws.send("print(6*7)\r")
    assert "42" in read_until(ws, "42")
    ws.close()


def attempt(url):
    """Try an upgrade: (101, ws) or (status, headers)."""
    try:
        return 101, websocket.create_connection(url, timeout=5)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code, {k.lower(): v for k, v in (e.resp_headers or {}).items()}


def wait_closed(ws, timeout=5):
    ws.settimeout(timeout)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while True:
            if ws.recv() in ("", b""):
                raise websocket.WebSocketConnectionClosedException()


def retry_after_then_login(url, pwd="secret"):
    status, headers = attempt(url)
    assert status == 503, status
    wait = int(headers["retry-after"])
    time.sleep(wait)   # the back-off is the behaviour under test
    ws = login(url, pwd)
    return wait, ws


def test_wrong_password_denied_closed_and_backed_off(repl):
    r = repl()
    ws = login(r.url, "wrong")
    assert "Access denied" in read_until(ws, "Access denied")
    wait_closed(ws)
    # the next try within the back-off is refused with Retry-After: 1
    wait, ws2 = retry_after_then_login(r.url)
    assert wait == 1
    read_until(ws2, "WebREPL connected")
    ws2.close()


def test_back_off_doubles_after_each_wrong_password(repl):
    r = repl()
    waits = []
    for _ in range(3):
        status, res = attempt(r.url)
        if status == 503:
            waits.append(int(res["retry-after"]))
            time.sleep(waits[-1])
            status, res = attempt(r.url)
        assert status == 101
        read_until(res, "Password: ")
        res.send("wrong\r")
        wait_closed(res)
    assert waits == [1, 2]
    assert attempt(r.url)[1]["retry-after"] == "4"


def test_right_password_resets_the_back_off(repl):
    r = repl()
    ws = login(r.url, "wrong")
    wait_closed(ws)
    wait, ws2 = retry_after_then_login(r.url)
    read_until(ws2, "WebREPL connected")
    ws2.close()
    deadline = time.monotonic() + 5
    while True:   # the session ends when the REPL notices the close
        status, res = attempt(r.url)
        if status == 101:
            break
        assert status == 503 and "retry-after" in res and time.monotonic() < deadline
        time.sleep(0.05)
    read_until(res, "Password: ")
    res.close()


def test_guessing_is_slowed_to_a_few_tries(repl):
    # 3 seconds of guessing: 1 + 1 (after 1 s) + maybe 1 (after 2 s more);
    # before the back-off it was about 1,000 per second
    r = repl()
    tries = 0
    end = time.monotonic() + 3
    while time.monotonic() < end:
        status, res = attempt(r.url)
        if status != 101:
            time.sleep(0.05)
            continue
        tries += 1
        read_until(res, "Password: ")
        res.send("guess%d\r" % tries)
        wait_closed(res)
    assert 1 <= tries <= 3


def test_client_that_never_logs_in_is_cut_at_timeout(repl):
    r = repl(timeout=1)
    ws = websocket.create_connection(r.url, timeout=5)
    read_until(ws, "Password: ")
    t0 = time.monotonic()
    wait_closed(ws, timeout=5)
    assert time.monotonic() - t0 < 4
    # the REPL slot is free again (after the back-off the cut counts as)
    wait, ws2 = retry_after_then_login(r.url)
    read_until(ws2, "WebREPL connected")
    ws2.close()


def test_dupterm_slot_taken_by_someone_else_gets_503(repl):
    # e.g. the built-in WebREPL holds os.dupterm: never steal it
    r = repl(interactive=False)
    assert requests.get("http://127.0.0.1:%d/take?on=1" % r.port, timeout=5).text == "ok"
    status, res = attempt(r.url)
    assert status == 503
    assert requests.get("http://127.0.0.1:%d/take" % r.port, timeout=5).text == "ok"
    status, ws = attempt(r.url)
    assert status == 101
    read_until(ws, "Password: ")
    ws.close()


def test_second_session_refused_then_allowed(repl):
    r = repl()
    ws = login(r.url)
    read_until(ws, ">>> ")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(r.url, timeout=5)
    assert e.value.status_code == 503
    ws.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            ws2 = login(r.url)
            break
        except websocket.WebSocketBadStatusException:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    read_until(ws2, "WebREPL connected")
    ws2.close()


def test_plain_get_falls_through(repl):
    r = repl()
    resp = requests.get("http://127.0.0.1:%d/" % r.port)
    assert resp.status_code == 200 and resp.text == "plain GET on /"


def test_no_password_opens_at_once(repl):
    r = repl(None)
    ws = websocket.create_connection(r.url, timeout=5)
    ws.send("3*3\r")
    assert "9" in read_until(ws, "9")
    ws.close()


# ---- the binary file protocol (82-byte "WA" header) ---------------------------

def wa_header(op, size, name):
    name = name.encode()
    return struct.pack("<2sBBQLH64s", b"WA", op, 0, 0, size, len(name), name)


def recv_bin(ws):
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            return data


def test_put_then_get_round_trip(repl, tmp_path):
    r = repl()
    ws = login(r.url)
    read_until(ws, ">>> ")
    import os
    payload = os.urandom(3000)
    target = "/tmp/uhttpd-webrepl-%d.bin" % os.getpid()   # names are at most 64 bytes
    ws.send_binary(wa_header(1, len(payload), target))
    assert recv_bin(ws) == b"WB\x00\x00"
    for i in range(0, len(payload), 1024):
        ws.send_binary(payload[i:i + 1024])
    assert recv_bin(ws) == b"WB\x00\x00"
    assert open(target, "rb").read() == payload
    ws.send_binary(wa_header(2, 0, target))
    assert recv_bin(ws) == b"WB\x00\x00"
    got = b""
    while True:
        ws.send_binary(b"\x00")
        chunk = recv_bin(ws)
        (n,) = struct.unpack("<H", chunk[:2])
        data = chunk[2:]
        while len(data) < n:
            data += recv_bin(ws)
        if n == 0:
            break
        got += data
    assert recv_bin(ws) == b"WB\x00\x00"
    assert got == payload
    os.remove(target)
    # GET_VER
    ws.send_binary(wa_header(3, 0, ""))
    assert recv_bin(ws) == bytes([1, 25, 0])
    ws.close()


def test_webrepl_cli_handshake_unmasked_frames(repl):
    """What webrepl_cli.py sends: a non-standard key and unmasked frames."""
    r = repl()
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: echo.websocket.org\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    buf = b""
    while b"Password: " not in buf:
        buf += s.recv(100)
    s.sendall(b"\x81\x07secret\r")   # unmasked text frame
    while b"WebREPL connected" not in buf:
        buf += s.recv(100)
    s.sendall(b"\x81\x04" + b"5+5\r")
    while b"10" not in buf:
        buf += s.recv(100)
    s.close()


def test_password_rules():
    p = subprocess.run([BINARY, "-c", "import uhttpd\ns = uhttpd.Server(0, host='127.0.0.1')\n"
                        "try:\n  s.ws('/', 'x' * 10)\nexcept ValueError as e:\n  print('ValueError', e)\n"
                        "s.ws('/r', 'ok')\ntry:\n  s.ws('/again', 'ok')\nexcept OSError as e:\n  print('OSError', e)\n"
                        "s.close()"], capture_output=True, text=True, timeout=20)
    assert "ValueError WebREPL passwords are 1 to 9 characters" in p.stdout
    assert "OSError uhttpd: a REPL url is already registered" in p.stdout


def test_webrepl_cli_derived_client(repl, tmp_path):
    """PyPI's `webrepl` (a packaged copy of MicroPython's webrepl_cli.py
    client code: key "foo", unmasked frames): version, put, get, a command."""
    webrepl_client = pytest.importorskip("webrepl")
    import os
    r = repl()
    c = webrepl_client.Webrepl(host="127.0.0.1", port=r.port, password="secret")
    try:
        assert tuple(c.get_ver()) == (1, 25, 0)
        src = tmp_path / "src.bin"
        src.write_bytes(os.urandom(5000))
        remote = "/tmp/uhttpd-cli-%d.bin" % os.getpid()
        c.put_file(str(src), remote)
        assert open(remote, "rb").read() == src.read_bytes()
        dst = tmp_path / "dst.bin"
        c.get_file(remote, str(dst))
        assert dst.read_bytes() == src.read_bytes()
        os.remove(remote)
        out = c.sendcmd("print(7*6)")
        assert b"42" in out
    finally:
        c.disconnect()
