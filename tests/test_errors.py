"""Every malformed or over-limit request gets the right status; the server
keeps serving afterwards."""
import socket
import time

import pytest
import requests


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from uhttpd_testlib import start_app, stop_app
    r = start_app("basic", "max_header=512", "max_body=1000", "timeout=1", "max_conns=3",
                  tmp_path=tmp_path_factory.mktemp("small"))
    yield r
    stop_app(r)


def status_of(out):
    assert out.startswith(b"HTTP/1."), out[:60]
    return int(out.split(b" ", 2)[1])


MALFORMED = [
    ("garbage request line", b"HELLO\r\n\r\n", 400),
    ("bare LF", b"GET /hello HTTP/1.1\nHost: x\n\n", 400),
    ("no host in 1.1", b"GET /hello HTTP/1.1\r\n\r\n", 400),
    ("two hosts", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("space before colon", b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("obs-fold", b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("NUL in header", b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("bad content-length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n", 400),
    ("negative content-length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("duplicate content-length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ("CL and TE", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("unknown transfer coding", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("HTTP/2.0", b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("unknown method", b"FOO /hello HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    ("relative target", b"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("path above root", b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad percent escape", b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("percent NUL", b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
]


@pytest.mark.parametrize("name,data,status", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(basic, name, data, status):
    out = basic.raw(data)
    assert status_of(out) == status
    assert b"Connection: close" in out
    assert requests.get(basic.url + "/hello").status_code == 200


def test_414_request_line_too_long(small):
    out = small.raw(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == 414


def test_431_headers_too_large(small):
    out = small.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1000 + b"\r\n\r\n")
    assert status_of(out) == 431


def test_431_too_many_headers(basic):
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    out = basic.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n")
    assert status_of(out) == 431


def test_413_declared_body_too_large(small):
    out = small.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert status_of(out) == 413


def test_413_chunked_body_too_large(small):
    body = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    out = small.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert status_of(out) == 413


def test_body_at_limit_ok(small):
    r = requests.post(small.url + "/echo", data=b"m" * 1000)
    assert r.status_code == 200 and len(r.content) == 1000


def test_413_for_huge_content_length(basic):
    out = basic.raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
    assert status_of(out) == 413


def test_no_length_means_empty_body(basic):
    s = basic.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    out = s.recv(4096)
    s.close()
    assert status_of(out) == 200 and out.endswith(b"\r\n\r\n")


def test_408_slow_head(small):
    s = small.connect()
    s.sendall(b"GET /hello HTTP/1.1\r\n")
    s.settimeout(5)
    t = time.monotonic()
    out = s.recv(4096)
    assert status_of(out) == 408
    assert 0.8 < time.monotonic() - t < 3
    s.close()


def test_idle_keepalive_closed_after_timeout(small):
    s = small.connect()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    s.recv(4096)
    t = time.monotonic()
    assert s.recv(4096) == b""   # closed by the server
    assert 0.8 < time.monotonic() - t < 3
    s.close()


def test_body_timeout_408(small):
    s = small.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    s.settimeout(5)
    out = s.recv(4096)
    assert status_of(out) == 408
    s.close()
    assert requests.get(small.url + "/hello").status_code == 200


def test_client_disconnect_mid_body(small):
    s = small.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\nabc")
    s.close()
    assert requests.get(small.url + "/hello").status_code == 200
    assert "Traceback" not in small.log()


def test_over_max_conns_oldest_idle_closed(small):
    socks = []
    for _ in range(3):
        s = small.connect()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        socks.append(s)
    # all 3 slots idle keep-alive: a 4th client gets served, the oldest closed
    r = requests.get(small.url + "/hello", timeout=3)
    assert r.status_code == 200
    socks[0].settimeout(3)
    assert socks[0].recv(10) == b""
    for s in socks:
        s.close()


def test_over_max_conns_busy_gets_503(small):
    socks = []
    for _ in range(3):
        s = small.connect()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")   # busy: head in progress
        socks.append(s)
    time.sleep(0.05) if False else None
    out = small.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == 503
    for s in socks:
        s.close()
    # slots come back once those connections are gone
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if requests.get(small.url + "/hello").status_code == 200:
            break
    else:
        pytest.fail("server did not recover")


def test_connection_burst_survives(basic):
    """2,000 simultaneous connection attempts: the server stays alive and serving."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks = []
    for _ in range(min(2000, want - 100)):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", basic.port))
            socks.append(s)
        except OSError:
            break
    for s in socks:
        s.close()
    # the burst's connections drain (EOF) and the server serves again
    deadline = time.monotonic() + 5
    while requests.get(basic.url + "/hello", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "server did not recover after the burst"
    for _ in range(3):
        assert requests.get(basic.url + "/hello", timeout=5).status_code == 200
    assert basic.alive()
