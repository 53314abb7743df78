"""WebSocket REPL: MicroPython's WebREPL protocol over uhttpd, against the
interactive REPL of the built binary (stdin is a pipe nobody writes to:
no key is ever pressed on the terminal)."""
import os
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


# ---- the native WebREPL stream (native/uh_ws.c) -------------------------------
# A raw WebSocket client: masked or unmasked frames (webrepl_cli.py sends
# unmasked ones), split wherever a test wants, and a reader of server frames.

MAX_MSG = 4096     # UH_REPL_MAX_MSG: the longest client message


def frame(op, payload=b"", mask=True, fin=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | op])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


class RawWS:
    def __init__(self, port, key=b"foo", mask=True):
        self.mask = mask
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                       b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            assert d, self.buf
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])

    def send(self, op, payload=b"", **kw):
        kw.setdefault("mask", self.mask)
        self.s.sendall(frame(op, payload, **kw))

    def text(self, t):
        self.send(0x1, t.encode() if isinstance(t, str) else t)

    def binary(self, b):
        self.send(0x2, b)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError(self.buf)
            self.buf += d

    def recv_frame(self):
        """(opcode, payload) of the next server frame (never masked)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b0 & 0x80 and not b1 & 0x80, self.buf[:2]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        data, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, data

    def until(self, needle):
        out = b""
        needle = needle.encode() if isinstance(needle, str) else needle
        while needle not in out:
            op, data = self.recv_frame()
            if op == 0xA:
                continue      # a pong
            assert op == 0x1, (op, data, out)
            out += data
        return out.decode(errors="replace")

    def recv_bin(self):
        while True:
            op, data = self.recv_frame()
            if op == 0x2:
                return data
            assert op == 0x1, (op, data)

    def close_code(self):
        """Read to the server's close frame: its code (None if empty); then
        the server closes the connection."""
        while True:
            op, data = self.recv_frame()
            if op == 0x8:
                break
        self.s.settimeout(5)
        assert self.s.recv(1) == b""
        return struct.unpack(">H", data[:2])[0] if data else None

    def login(self, pwd="secret"):
        assert self.status == 101
        self.until("Password: ")
        self.text(pwd + "\r")
        self.until("WebREPL connected\r\n>>> ")
        return self

    def close(self):
        self.s.close()


def raw_session(r, mask=True, deadline=5):
    """A logged-in raw session; waits while the previous one winds down."""
    end = time.monotonic() + deadline
    while True:
        ws = RawWS(r.port, mask=mask)
        if ws.status == 101:
            return ws.login()
        ws.close()
        assert time.monotonic() < end, ws.status
        time.sleep(0.05)


def evaluates(ws, expr, want):
    ws.text(expr + "\r")
    assert want in ws.until(want)


def test_builtin_webrepl_password_untouched(repl):
    """ws(pwd) never calls _webrepl.password(): the built-in WebREPL keeps
    the password the app gave it ('builtin'), before and after uhttpd logins."""
    r = repl()
    base = "http://127.0.0.1:%d/builtin?pw=" % r.port
    assert requests.get(base + "builtin", timeout=5).text == "\r\nWebREPL connected\r\n>>> "
    ws = login(r.url)                      # uhttpd's own password
    read_until(ws, "WebREPL connected")
    ws.send("1+1\r")
    read_until(ws, "2")
    assert requests.get(base + "builtin", timeout=5).text == "\r\nWebREPL connected\r\n>>> "
    assert requests.get(base + "secret", timeout=5).text == "\r\nAccess denied\r\n"
    ws.close()


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_masked_and_unmasked_client_frames(repl, mask):
    r = repl()
    ws = RawWS(r.port, mask=mask).login()
    evaluates(ws, "6*7", "42")
    ws.send(0x9, b"are you there")               # ping: a pong with its payload
    while True:
        op, data = ws.recv_frame()
        if op == 0xA:
            break
    assert data == b"are you there"
    # a fragmented message (a ping between the fragments)
    ws.send(0x1, b"3*", fin=False)
    ws.send(0x9, b"")
    ws.send(0x0, b"11\r")
    assert "33" in ws.until("33")
    ws.binary(wa_header(3, 0, ""))
    assert ws.recv_bin() == bytes([1, 25, 0])
    ws.send(0x8, struct.pack(">H", 1000) + b"bye")   # close: echoed, the end
    assert ws.close_code() == 1000
    raw_session(r).close()                        # the slot is free again


def test_password_in_pieces_and_command_in_the_same_frame(repl):
    r = repl()
    ws = RawWS(r.port)
    ws.until("Password: ")
    ws.text("sec")
    ws.binary(b"r")            # upstream takes password bytes from any frame
    ws.text("et\r5*5\r")       # the rest of the frame is REPL input
    out = ws.until("25")
    assert "WebREPL connected" in out
    ws.close()


def test_ping_before_login_and_empty_close(repl):
    r = repl()
    ws = RawWS(r.port)
    ws.until("Password: ")
    ws.send(0x9, b"x")
    assert ws.recv_frame() == (0xA, b"x")
    ws.send(0x8, b"")
    assert ws.close_code() is None
    ws.close()


def test_every_byte_in_its_own_segment(repl):
    """Frames split at every byte: login, a command, a PUT and a GET."""
    r = repl()
    ws = RawWS(r.port)
    ws.until("Password: ")

    def trickle(data):
        for i in range(len(data)):
            ws.s.sendall(data[i:i + 1])

    trickle(frame(0x1, b"secret\r"))
    ws.until("WebREPL connected")
    trickle(frame(0x1, b"7*7\r", mask=False))
    assert "49" in ws.until("49")
    payload = os.urandom(300)
    target = "/tmp/uhttpd-trickle-%d.bin" % os.getpid()
    trickle(frame(0x2, wa_header(1, len(payload), target)[:10]))   # as webrepl_cli
    trickle(frame(0x2, wa_header(1, len(payload), target)[10:]))
    assert ws.recv_bin() == b"WB\x00\x00"
    trickle(frame(0x2, payload))
    assert ws.recv_bin() == b"WB\x00\x00"
    assert open(target, "rb").read() == payload
    trickle(frame(0x2, wa_header(2, 0, target)))
    assert ws.recv_bin() == b"WB\x00\x00"
    got = b""
    while True:
        trickle(frame(0x2, b"\x00"))
        chunk = ws.recv_bin()
        (n,) = struct.unpack("<H", chunk[:2])
        assert len(chunk) == 2 + n and n <= 256
        if n == 0:
            break
        got += chunk[2:]
    assert ws.recv_bin() == b"WB\x00\x00"
    assert got == payload
    os.remove(target)
    ws.close()


def get_file(ws, name):
    """GET: (open status, data, final status)."""
    ws.binary(wa_header(2, 0, name))
    st = ws.recv_bin()
    if st != b"WB\x00\x00":
        return st, None, None
    got = b""
    while True:
        ws.binary(b"\x00")
        chunk = ws.recv_bin()
        (n,) = struct.unpack("<H", chunk[:2])
        if n == 0:
            break
        got += chunk[2:]
    return st, got, ws.recv_bin()


def test_file_errors_are_reported_and_the_session_continues(repl, tmp_path):
    r = repl()
    ws = raw_session(r)
    # a missing file: ENOENT at once, no chunk
    assert get_file(ws, "/tmp/uhttpd-no-such-file-%d" % os.getpid()) == (b"WB\x02\x00", None, None)
    evaluates(ws, "2+3", "5")
    # a directory opens on VfsPosix, its read fails: 0-length chunk, EISDIR
    assert get_file(ws, str(tmp_path)) == (b"WB\x00\x00", b"", b"WB\x15\x00")
    # PUT into a missing directory: ENOENT at once; no data follows
    ws.binary(wa_header(1, 10, "/tmp/uhttpd-no-such-dir-%d/x" % os.getpid()))
    assert ws.recv_bin() == b"WB\x02\x00"
    # a write error: the data is received, the error (ENOSPC) reported at the end
    ws.binary(wa_header(1, 3000, "/dev/full"))
    assert ws.recv_bin() == b"WB\x00\x00"
    for i in range(0, 3000, 1000):
        ws.binary(os.urandom(1000))
    assert ws.recv_bin() == b"WB\x1c\x00"
    # bad requests: EINVAL (22), and the next request is understood
    bad = [b"XA" + wa_header(3, 0, "")[2:],                         # signature
           wa_header(9, 0, "x"),                                     # op
           wa_header(2, 0, "x")[:16] + struct.pack("<H", 65) + b"x" * 64,   # name length
           wa_header(2, 0, "")]                                      # empty name
    for b in bad:
        ws.binary(b)
        assert ws.recv_bin() == b"WB\x16\x00", b
    ws.binary(wa_header(3, 0, ""))
    assert ws.recv_bin() == bytes([1, 25, 0])
    evaluates(ws, "4+4", "8")
    ws.close()


def test_pypi_client_get_of_missing_file_fails_instead_of_hanging(repl, tmp_path):
    webrepl_client = pytest.importorskip("webrepl")
    r = repl()
    c = webrepl_client.Webrepl(host="127.0.0.1", port=r.port, password="secret")
    try:
        with pytest.raises(AssertionError):    # its check of the "WB" status
            c.get_file("/tmp/uhttpd-no-such-file-%d" % os.getpid(), str(tmp_path / "x"))
        assert tuple(c.get_ver()) == (1, 25, 0)
    finally:
        c.disconnect()


def test_message_size_limit_edges(repl):
    r = repl()
    ws = raw_session(r)
    target = "/tmp/uhttpd-limit-%d.bin" % os.getpid()
    a, b = os.urandom(MAX_MSG - 1), os.urandom(MAX_MSG)
    ws.binary(wa_header(1, len(a) + len(b) + 1, target))
    assert ws.recv_bin() == b"WB\x00\x00"
    ws.binary(a)                       # limit - 1
    ws.binary(b)                       # limit
    ws.send(0x2, b"z", fin=False)      # fragments count together: 1 byte
    ws.send(0x0, b"")
    assert ws.recv_bin() == b"WB\x00\x00"
    assert open(target, "rb").read() == a + b + b"z"
    os.remove(target)
    ws.binary(os.urandom(MAX_MSG + 1))   # limit + 1: close 1009
    assert ws.close_code() == 1009
    raw_session(r).close()


GARBAGE = {
    "rsv bits": (frame(0x1, b"x", rsv=0x40), 1002),
    "reserved opcode": (frame(0x3, b"x"), 1002),
    "fragmented ping": (frame(0x9, b"x", fin=False), 1002),
    "long ping": (frame(0x9, b"x" * 126), 1002),
    "continuation first": (frame(0x0, b"x"), 1002),
    "64-bit length top bit": (bytes([0x82, 0xFF]) + b"\x80" + b"\0" * 7, 1002),
    "huge length": (bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 40), 1009),
    "bad close code": (frame(0x8, struct.pack(">H", 999)), 1002),
    "1-byte close": (frame(0x8, b"x"), 1002),
}


def test_garbage_frames_end_the_session_not_the_process(repl):
    r = repl()
    for name, (data, code) in GARBAGE.items():
        ws = raw_session(r)
        ws.s.sendall(data)
        assert ws.close_code() == code, name
    # random file-protocol bytes after login: EINVAL statuses, no crash
    ws = raw_session(r)
    junk = os.urandom(82 * 40)     # 40 requests, in frames cut anywhere
    cuts = sorted(set([0, len(junk)] + [int.from_bytes(os.urandom(2), "big") % len(junk) for _ in range(15)]))
    for a, b in zip(cuts, cuts[1:]):
        ws.binary(junk[a:b])
    for i in range(40):
        assert ws.recv_bin() == b"WB\x16\x00"
    evaluates(ws, "9*9", "81")
    ws.close()
    # random bytes before login (they cannot reach the REPL): whatever they
    # parse as, the session ends, the process lives on, the REPL comes back
    for i in range(2):
        while True:
            status, res = attempt(r.url)
            if status == 101:
                break
            time.sleep(int(res["retry-after"]))   # the back-off is the behaviour
        res.sock.sendall(os.urandom(300))
        res.close()
        assert requests.get("http://127.0.0.1:%d/" % r.port, timeout=5).status_code == 200
    while True:
        status, res = attempt(r.url)
        if status == 101:
            break
        time.sleep(int(res["retry-after"]))
    read_until(res, "Password: ")
    res.send("secret\r")
    read_until(res, "WebREPL connected")
    res.close()


def test_output_of_two_threads_never_interleaves_inside_a_frame(repl):
    """The main program and a handler in the server thread write at once:
    every frame the client reads is whole (one lock for the socket)."""
    import threading
    r = repl()
    ws = raw_session(r)
    ws.text("import sys, time\r")
    t = threading.Thread(target=lambda: [requests.get("http://127.0.0.1:%d/say?n=300" % r.port, timeout=20)
                                         for _ in range(3)])
    # one write per line; the empty line ends the block
    ws.text("for i in range(2000): _ = sys.stdout.write('repl-line %d\\n' % i); time.sleep_ms(i % 2)\r\r")
    out = ws.until("repl-line 0\n")    # the echo (a frame per key) is over
    t.start()
    out += ws.until("repl-line 1999")
    t.join()
    ws.text("'E'+'ND'\r")
    out += ws.until("'END'")
    lines = [ln.replace(">>> ", "") for ln in out.splitlines() if "-line " in ln and "write(" not in ln]
    assert [ln for ln in lines if ln.startswith("repl-line")] == ["repl-line %d" % i for i in range(2000)]
    assert [ln for ln in lines if ln.startswith("handler-line")] == ["handler-line %d" % i for i in range(300)] * 3
    assert len(lines) == 2900, [ln for ln in lines if not ln.startswith(("repl-line ", "handler-line "))]
    first = lines.index("handler-line 0")
    assert "repl-line 1999" in lines[first:], "the two threads did not write at the same time"
    ws.close()


def test_clients_that_vanish_mid_transfer_leave_nothing_open(repl):
    r = repl()
    src = "/tmp/uhttpd-vanish-%d.bin" % os.getpid()      # names are at most 64 bytes
    part = "/tmp/uhttpd-vanish-part-%d.bin" % os.getpid()
    with open(src, "wb") as f:
        f.write(os.urandom(20000))
    def open_files():
        d = "/proc/%d/fd" % r.proc.pid
        return [os.readlink(os.path.join(d, n)) for n in os.listdir(d)]

    with open(part, "wb") as f:
        f.write(b"the old file")
    for i in range(3):
        ws = raw_session(r)
        ws.binary(wa_header(1, 10000, part))                         # PUT, partly sent
        assert ws.recv_bin() == b"WB\x00\x00"
        ws.binary(os.urandom(3000))
        ws.close()
        ws = raw_session(r)
        ws.binary(wa_header(2, 0, src))                              # GET, one chunk read
        assert ws.recv_bin() == b"WB\x00\x00"
        ws.binary(b"\x00")
        assert len(ws.recv_bin()) == 258
        ws.close()
    # a new session starts only once the old one let go of dupterm, which
    # is after its file was closed
    evaluates(raw_session(r), "1+2", "3")
    assert not [f for f in open_files() if "uhttpd-vanish" in f]
    # a cut-off PUT writes a temporary: the old file stays whole and no
    # temporary is left
    with open(part, "rb") as f:
        assert f.read() == b"the old file"
    assert not [n for n in os.listdir("/tmp") if n.startswith("uhttpd-vanish-part-%d" % os.getpid())
                and n != os.path.basename(part)]
    os.remove(src)
    os.remove(part)
