"""Core server: routes, Request API, statuses, keep-alive, pipelining."""
import json
import socket
import threading
import time

import pytest
import requests


def test_hello_get(basic):
    r = requests.get(basic.url + "/hello")
    assert r.status_code == 200
    assert r.text == "Hello, World!"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Length"] == "13"


def test_request_api_fields(basic):
    r = requests.get(basic.url + "/info?a=1&b=x%20y&flag&a=2&c=d+e", headers={"User-Agent": "t/1"})
    d = r.json()
    assert d["method"] == 1  # uhttpd.GET
    assert d["uri"] == "/info?a=1&b=x%20y&flag&a=2&c=d+e"
    assert d["path"] == "/info"
    assert d["length"] == 0
    assert d["q_a"] == "1"          # first match
    assert d["q_b"] == "x y"        # percent-decoded, key given as bytes
    assert d["q_missing"] is None
    assert d["qs"] == {"a": "2", "b": "x y", "flag": True, "c": "d e"}  # last wins
    assert d["ua"] == "t/1"
    assert d["server_ok"] is True


def test_post_method_flag_and_length(basic):
    r = requests.post(basic.url + "/info", data=b"12345")
    d = r.json()
    assert d["method"] == 2 and d["length"] == 5


def test_path_is_percent_decoded_and_normalised(basic):
    r = requests.get(basic.url + "/w/a%20b/./c/../d")
    assert r.text == "wild:/w/a b/d"


def test_wildcard_routes_in_order(basic):
    assert requests.get(basic.url + "/w/x/y/end").text == "wild:/w/x/y/end"
    assert requests.get(basic.url + "/w/anything/deep").text == "wild:/w/anything/deep"


def test_read_body_content_length(basic):
    body = bytes(range(256)) * 40
    r = requests.post(basic.url + "/echo", data=body)
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["X-Len"] == str(len(body))


def test_read_with_len(basic):
    r = requests.post(basic.url + "/echo?n=4", data=b"abcdefgh")
    assert r.content == b"abcd"


def test_read_body_chunked(basic):
    def gen():
        for i in range(50):
            yield (b"%03d-" % i) * 50
    r = requests.post(basic.url + "/echo", data=gen())
    assert r.content == b"".join((b"%03d-" % i) * 50 for i in range(50))


def test_readinto_small_buffer(basic):
    body = b"0123456789" * 1000
    h = 0
    for b in body:
        h = (h * 31 + b) & 0xFFFFFFFF
    r = requests.post(basic.url + "/readinto", data=body)
    total, parts, got = map(int, r.text.split())
    assert total == len(body) and got == h and parts >= len(body) // 7


def test_send_chunk(basic):
    r = requests.get(basic.url + "/chunks?n=4")
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.headers["X-Chunked"] == "yes"
    assert r.text == "chunk0;chunk1;chunk2;chunk3;"


def test_send_chunk_large(basic):
    r = requests.get(basic.url + "/bigchunk")
    assert r.content == b"x" * 5000 + b"yyy"


def test_send_chunk_http10_is_close_delimited(basic):
    out = basic.raw(b"GET /chunks?n=2 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"chunk0;chunk1;"


def test_send_raw(basic):
    out = basic.raw(b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out == b"HTTP/1.1 299 Custom\r\nContent-Length: 3\r\nX-Raw: 1\r\n\r\nraw"


def test_status_int_and_string(basic):
    r = requests.get(basic.url + "/status/int")
    assert r.status_code == 410 and r.reason == "Gone"
    r = requests.get(basic.url + "/status/str")
    assert r.status_code == 418 and r.reason == "I'm a teapot"
    assert r.headers["Content-Type"] == "text/x-tea"


def test_default_mime_is_html(basic):
    r = requests.get(basic.url + "/double")
    assert r.headers["Content-Type"] == "text/html"
    assert r.text == "one"


def test_no_response_is_204(basic):
    r = requests.get(basic.url + "/nothing")
    assert r.status_code == 204 and r.content == b""


def test_handler_exception_500_and_server_survives(basic):
    r = requests.get(basic.url + "/boom")
    assert r.status_code == 500
    assert requests.get(basic.url + "/hello").status_code == 200
    assert "handler exploded" in basic.log()


def test_exception_after_started_reply_closes(basic):
    data = basic.raw(b"GET /boom2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")   # never pretends to be complete
    assert requests.get(basic.url + "/hello").status_code == 200


def test_write_then_chunk_raises(basic):
    r = requests.get(basic.url + "/mix")
    assert r.text == "araised"


def test_header_injection_rejected(basic):
    r = requests.get(basic.url + "/badheader")
    assert r.text == "rejected"
    assert "Injected" not in r.headers


def test_404(basic):
    r = requests.get(basic.url + "/nope")
    assert r.status_code == 404


def test_405_with_allow(basic):
    r = requests.get(basic.url + "/postonly")
    assert r.status_code == 405
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allow == {"POST", "DELETE", "OPTIONS"}


def test_methods_on_one_url(basic):
    assert requests.post(basic.url + "/postonly").text == "posted"
    assert requests.delete(basic.url + "/postonly").text == "deleted"
    assert requests.get(basic.url + "/multi").text == "multi 1"
    assert requests.post(basic.url + "/multi").text == "multi 2"
    assert requests.delete(basic.url + "/multi").text == "multi 4"


def test_put_patch_405_where_url_matches_else_404(basic):
    assert requests.put(basic.url + "/hello").status_code == 405
    assert requests.patch(basic.url + "/hello").status_code == 405
    assert requests.put(basic.url + "/nowhere").status_code == 404


def test_unknown_method_501(basic):
    out = basic.raw(b"BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501")


def test_head_on_get_route(basic):
    r = requests.head(basic.url + "/hello")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "13"
    assert r.content == b""


def test_options_allow(basic):
    r = requests.options(basic.url + "/info")
    assert r.status_code == 204
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allow == {"GET", "HEAD", "POST", "OPTIONS"}
    assert "Access-Control-Allow-Origin" not in r.headers


def test_options_unknown_url_404(basic):
    assert requests.options(basic.url + "/nope").status_code == 404


def test_allow_cors_per_reply(basic):
    r = requests.get(basic.url + "/cors1")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    r = requests.get(basic.url + "/hello")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_big_response(basic):
    r = requests.get(basic.url + "/big?n=300000")
    assert r.content == b"z" * 300000


# ---- keep-alive, pipelining, HTTP/1.0 -------------------------------------

def _read_responses(sock, n, timeout=5):
    """Parse n Content-Length/chunked responses from a raw socket."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            b = sock.recv(65536)
            if not b:
                return out, buf
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        if b"content-length" in hdrs:
            n_body = int(hdrs[b"content-length"])
            while len(rest) < n_body:
                b = sock.recv(65536)
                if not b:
                    break
                rest += b
            out.append((lines[0], hdrs, rest[:n_body]))
            buf = rest[n_body:]
        elif hdrs.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in rest:
                    rest += sock.recv(65536)
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(rest) < size + 2:
                    rest += sock.recv(65536)
                body += rest[:size]
                rest = rest[size + 2:]
                if size == 0:
                    break
            out.append((lines[0], hdrs, body))
            buf = rest
        else:
            out.append((lines[0], hdrs, rest))
            buf = b""
    return out, buf


def test_keep_alive_many_requests_one_connection(basic):
    s = basic.connect()
    for i in range(20):
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        res, rest = _read_responses(s, 1)
        assert res[0][0] == b"HTTP/1.1 200 OK"
        assert res[0][2] == b"Hello, World!"
        assert rest == b""
    s.close()


def test_pipelining(basic):
    s = basic.connect()
    reqs = (b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nIGNR"
            b"GET /chunks?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.sendall(reqs)
    res, _ = _read_responses(s, 6)
    s.close()
    bodies = [r[2] for r in res]
    assert bodies == [b"Hello, World!", b"abcde", b"xyz", b"ignored", b"chunk0;chunk1;", b"Hello, World!"]
    assert res[5][1][b"connection"] == b"close"


def test_pipelining_byte_by_byte(basic):
    s = basic.connect()
    reqs = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    for i in range(len(reqs)):
        s.sendall(reqs[i:i + 1])
    res, _ = _read_responses(s, 2)
    s.close()
    assert [r[2] for r in res] == [b"abc", b"Hello, World!"]


def test_unread_body_within_body_buffer_keeps_the_connection(app):
    # a body the handler does not read is skipped when it was received
    # whole (it fits body_buffer); the next request on the connection works
    r = app("basic", "body_buffer=1000")
    for size in (999, 1000):
        s = r.connect()
        body = b"q" * size
        s.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + body)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        res, _ = _read_responses(s, 2)
        s.close()
        assert [x[2] for x in res] == [b"ignored", b"Hello, World!"], size


def test_unread_body_over_body_buffer_closes_without_waiting(app):
    # limit + 1: the server never waits for a body nobody reads; the reply
    # goes out and the connection closes
    r = app("basic", "body_buffer=1000")
    s = r.connect()
    s.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"q" * 10)
    res, _ = _read_responses(s, 1)
    s.close()
    assert res[0][2] == b"ignored"
    assert res[0][1][b"connection"] == b"close"


def test_http10_answered_as_10_and_closed(basic):
    out = basic.raw(b"GET /hello HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.0 200 OK\r\n")
    assert out.endswith(b"Hello, World!")


def test_http10_keep_alive(basic):
    s = basic.connect()
    for _ in range(3):
        s.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        res, _ = _read_responses(s, 1)
        assert res[0][0] == b"HTTP/1.0 200 OK"
        assert res[0][1][b"connection"] == b"keep-alive"
    s.close()


def test_expect_100_continue(basic):
    s = basic.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    s.settimeout(5)
    got = s.recv(4096)
    assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"data")
    res, _ = _read_responses(s, 1)
    assert res[0][2] == b"data"
    s.close()


def test_expect_100_continue_error_is_final_at_once(basic):
    s = basic.connect()
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    res, _ = _read_responses(s, 1)
    assert res[0][0].startswith(b"HTTP/1.1 404")
    s.close()


def test_curl_expect_continue_upload(basic, tmp_path):
    import subprocess
    f = tmp_path / "up.bin"
    f.write_bytes(b"k" * 200000)
    out = subprocess.run(["curl", "-sv", "-H", "Expect: 100-continue", "--data-binary", "@%s" % f,
                          basic.url + "/echo", "-o", str(tmp_path / "down.bin")],
                         capture_output=True, check=True)
    # curl got the interim 100 (it would otherwise wait a second and send anyway)
    assert b"< HTTP/1.1 100 Continue" in out.stderr
    assert (tmp_path / "down.bin").read_bytes() == f.read_bytes()


# ---- concurrency ----------------------------------------------------------

def test_slow_client_does_not_block_others(basic):
    slow = basic.connect()
    slow.sendall(b"GET /hello HTTP/1.1\r\nHo")    # and then nothing
    # each request must be answered well before the server would give up on
    # the slow one (5 s): a blocked loop fails these timeouts
    for _ in range(5):
        assert requests.get(basic.url + "/hello", timeout=2).status_code == 200
    slow.close()


def test_concurrent_clients(basic):
    errors = []

    def worker():
        try:
            with requests.Session() as s:
                for _ in range(30):
                    r = s.get(basic.url + "/hello", timeout=5)
                    assert r.text == "Hello, World!"
        except Exception as e:  # noqa
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_garbage_bytes_then_still_serving(basic):
    import random
    rnd = random.Random(1234)
    for i in range(30):
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        try:
            out = basic.raw(junk + b"\r\n\r\n", timeout=2)
        except (ConnectionResetError, BrokenPipeError):
            continue
        if out:
            assert out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 5"), out[:40]
    assert requests.get(basic.url + "/hello").status_code == 200
    assert basic.alive()


def test_heap_does_not_grow_with_requests(basic):
    """design.md section 5: a soak of many requests leaves the heap where it was."""
    with requests.Session() as s:
        for _ in range(200):      # warm-up: every code path allocated once
            s.get(basic.url + "/hello")
            s.post(basic.url + "/echo", data=b"abc")
        before = int(s.get(basic.url + "/mem").text)
        for i in range(3000):
            s.get(basic.url + "/hello")
            if i % 10 == 0:
                s.post(basic.url + "/echo", data=b"abc" * 10)
                s.get(basic.url + "/nope")
        after = int(s.get(basic.url + "/mem").text)
    assert after - before < 2048, (before, after)


def test_heap_per_idle_connection_is_zero(basic):
    """Buffers are allocated at start: idle connections cost no heap."""
    before = int(requests.get(basic.url + "/mem").text)
    socks = []
    for _ in range(3):
        s = basic.connect()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        socks.append(s)
    out = basic.raw(b"GET /mem HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    during = int(out.split(b"\r\n\r\n", 1)[1])
    for s in socks:
        s.close()
    assert during - before < 512, (before, during)
