"""Server-Sent Events: requests (stream) and raw sockets."""
import socket
import time

import pytest
import requests


def open_stream(r):
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    h, _, rest = head.partition(b"\r\n\r\n")
    return s, h, rest


def read_until(s, buf, needle, timeout=5):
    s.settimeout(timeout)
    while needle not in buf:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    return buf


def wait_listeners(r, n, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        k = int(requests.get(r.url + "/listeners").text)
        if k == n:
            return
        assert time.monotonic() < deadline, "listeners: %d, want %d" % (k, n)
        time.sleep(0.02)


def test_stream_headers_and_events(app):
    r = app("sse", "events=2")
    s, head, rest = open_stream(r)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: text/event-stream" in head
    assert b"Cache-Control: no-cache" in head
    assert b"Content-Length" not in head and b"chunked" not in head
    wait_listeners(r, 1)
    assert requests.get(r.url + "/send?data=one").text == "True"
    buf = read_until(s, rest, b"data: one\n\n")
    assert b"data: one\n\n" in buf
    assert requests.get(r.url + "/send?data=a%5Cnb%5Cnc&event=multi").text == "True"
    buf = read_until(s, buf, b"data: c\n\n")
    assert b"event: multi\ndata: a\ndata: b\ndata: c\n\n" in buf
    s.close()


def test_requests_stream(app):
    r = app("sse", "events=2")
    with requests.get(r.url + "/events", stream=True, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        wait_listeners(r, 1)
        requests.get(r.url + "/send?data=via-requests&event=greet")
        lines = []
        for line in resp.iter_lines(chunk_size=1):
            lines.append(line)
            if line == b"data: via-requests":
                break
        assert b"event: greet" in lines


def test_dispatch_without_listeners_is_false(app):
    r = app("sse", "events=2")
    assert requests.get(r.url + "/send?data=x").text == "False"


def test_too_many_listeners_503(app):
    r = app("sse", "events=2")
    a, _, _ = open_stream(r)
    b, _, _ = open_stream(r)
    wait_listeners(r, 2)
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    out = s.recv(4096)
    assert out.startswith(b"HTTP/1.1 503")
    s.close()
    # SSE listeners do not eat the HTTP connection slots
    assert requests.get(r.url + "/listeners").text == "2"
    a.close()
    wait_listeners(r, 1)
    c, h, _ = open_stream(r)
    assert h.startswith(b"HTTP/1.1 200")
    b.close()
    c.close()


def test_slot_freed_after_disconnect(app):
    r = app("sse", "events=1")
    a, _, _ = open_stream(r)
    wait_listeners(r, 1)
    a.close()
    wait_listeners(r, 0)
    b, h, _ = open_stream(r)
    assert h.startswith(b"HTTP/1.1 200")
    b.close()


def test_dead_listener_found_by_ping(app):
    r = app("sse", "events=1", "ping=0.2")
    a, _, rest = open_stream(r)
    wait_listeners(r, 1)
    buf = read_until(a, rest, b": ping\n\n", timeout=3)
    assert b": ping" in buf
    # vanish without a FIN reaching the server's reader: shutdown(RD) only,
    # then reset on the next write (the ping) frees the slot
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    a.close()   # RST
    wait_listeners(r, 0, timeout=3)


def test_slow_reader_dropped_dispatch_never_blocks(app):
    r = app("sse", "events=2", "queue=2048")

    def listener(rcvbuf):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", r.port))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        return s
    slow = listener(2048)          # can hold ~10 KB between kernel and queue
    fast = listener(1024 * 1024)   # can hold all of it without reading yet
    wait_listeners(r, 2)
    # 1,500 events (about 40 KB) dispatched from a handler while neither
    # listener reads: dispatch() must not wait for anybody
    us = int(requests.get(r.url + "/timed?n=1500", timeout=5).text)
    wait_listeners(r, 1)          # the slow reader was dropped
    assert requests.get(r.url + "/send?data=after").text == "True"
    data = read_until(fast, b"", b"data: after\n\n", timeout=10)
    assert b"data: event number 0\n" in data and b"data: event number 1499\n" in data
    assert b"data: after\n\n" in data
    slow.close()
    fast.close()
    print("1500 dispatches: %d us" % us)


def test_dispatch_latency_bounded(app):
    r = app("sse", "events=1")
    s, _, rest = open_stream(r)
    wait_listeners(r, 1)
    worst = 0
    for i in range(20):
        t = time.monotonic()
        requests.get(r.url + "/send?data=ping%d" % i)
        rest = read_until(s, rest, b"data: ping%d\n\n" % i)
        worst = max(worst, time.monotonic() - t)
    assert worst < 0.5
    s.close()
