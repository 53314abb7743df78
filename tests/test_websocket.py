"""Application WebSockets (design.md section 10): the API as a user sees it,
with two ordinary client libraries (websocket-client and `websockets`) and
a raw socket for what they cannot send, against tests/apps/wsapp.py.

Protocol conformance (framing, UTF-8, fragmentation, close payloads) is in
test_ws_conformance.py; this file covers the callbacks and their codes,
ws.id, ws.send from other threads and handlers, broadcast, the limits at
their edges (clients, max_msg, ws_queue), origins, auth, CORS, routing,
wss://, hostile clients, and the heap after many connections.
"""
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
import requests
import websocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as wsx_connect

import wsraw
from uhttpd_testlib import start_app, stop_app
from wsraw import frame

TEXT, BIN, CONT, CLOSE, PING = 1, 2, 0, 8, 9


# ---- the app and its counters

@pytest.fixture
def wsapp(app):
    def run(*opts):
        r = app("wsapp", *opts)
        r.ws = "ws://127.0.0.1:%d" % r.port
        return r
    return run


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One shared server (clients=4, max_msg=4096) for tests that count
    nothing."""
    r = start_app("wsapp", tmp_path=tmp_path_factory.mktemp("wsapp"))
    r.ws = "ws://127.0.0.1:%d" % r.port
    yield r
    stop_app(r)


def get(r, path, **kw):
    return requests.get(r.url + path, timeout=10, **kw)


def stats(r):
    return json.loads(get(r, "/stats").text)


def wait_stats(r, pred, what):
    """Poll the app until pred(stats) holds (the server thread runs the
    callbacks; a few ms on loopback)."""
    deadline = time.monotonic() + 10
    while True:
        st = stats(r)
        if pred(st):
            return st
        assert time.monotonic() < deadline, "%s: %r" % (what, st)
        time.sleep(0.01)


def code_of(st, i):
    """on_close's code for the client with id i (None: not closed yet)."""
    return next((c for j, c in st["closed"] if j == i), None)


# ---- clients

def wc(r, path="/ws", **kw):
    """websocket-client"""
    return websocket.create_connection(r.ws + path, timeout=10, **kw)


def wsx(r, path="/ws", **kw):
    """websockets (sync client; entered, so usable with or without `with`)"""
    return wsx_connect(r.ws + path, open_timeout=10, close_timeout=10, **kw).__enter__()


def whoami(c):
    c.send("whoami")
    reply = c.recv(timeout=10) if hasattr(c, "protocol") else c.recv()
    assert reply.startswith("id "), reply
    return int(reply[3:])


def close_code_seen(c):
    """websocket-client: the code of the server's close frame (it is
    answered), after any data messages."""
    while True:
        op, fr = c.recv_data_frame(control_frame=True)
        if op == CLOSE:
            return struct.unpack("!H", fr.data[:2])[0] if fr.data else None


class Raw(wsraw.Raw):
    """The shared raw client (tests/wsraw.py) on this app's /ws, with a
    fresh key; recv_frame() gives (opcode, payload)."""

    def __init__(self, r, path="/ws", after=b"", rcvbuf=None, extra=b""):
        super().__init__(r.port, path, key=None, extra=extra, after=after, rcvbuf=rcvbuf)

    def recv_frame(self):
        fin, op, data = super().recv_frame()
        return op, data

    def expect_close(self, code):
        op, data = self.recv_frame()
        while op != CLOSE:
            op, data = self.recv_frame()
        got = struct.unpack("!H", data[:2])[0] if data else None
        assert got == code, (got, data)
        self.send(frame(CLOSE, data[:2]))
        self.expect_eof()

    def expect_eof(self):
        try:
            while self.s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        self.s.close()

    def vanish(self, rst=False):
        if rst:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def serving(r):
    """The server still echoes for a new client and answers HTTP."""
    with wsx(r) as c:
        c.send("still here")
        assert c.recv(timeout=10) == "still here"
    assert get(r, "/stats").status_code == 200


# ---- echo with both libraries

def test_echo_text_and_binary_websocket_client(srv):
    c = wc(srv)
    for text in ["", "hello", "κόσμε € 𝄞" * 50, "x" * 4096]:
        c.send(text)
        assert c.recv() == text
    for data in [b"", b"\x00\xff" * 7, os.urandom(4096)]:
        c.send_binary(data)
        assert c.recv() == data
    c.close()


def test_echo_text_and_binary_websockets(srv):
    with wsx(srv) as c:
        for text in ["", "hello", "κόσμε € 𝄞" * 50, "y" * 4096]:
            c.send(text)
            assert c.recv(timeout=10) == text
        for data in [b"", b"\x00\xff" * 7, os.urandom(4096)]:
            c.send(data)
            assert c.recv(timeout=10) == data
        # a fragmented message is one message for the callback
        c.send(iter(["frag", "men", "ted"]))
        assert c.recv(timeout=10) == "fragmented"


# ---- on_open / on_close and their codes

@pytest.mark.parametrize("code", [1000, 1001, 4000])
def test_client_close_codes_reach_on_close(wsapp, code):
    r = wsapp()
    a = wc(r)
    ia = whoami(a)
    b = wsx(r)
    ib = whoami(b)
    assert sorted(stats(r)["open"]) == sorted([ia, ib])
    a.close(status=code)
    assert struct.unpack("!H", a.close_frame.data[:2])[0] == code   # the server echoes the code
    b.close(code=code)
    assert b.close_code == code and b.protocol.close_rcvd.code == code
    st = wait_stats(r, lambda st: len(st["closed"]) == 2, "on_close twice")
    assert code_of(st, ia) == code and code_of(st, ib) == code
    assert st["open"] == [] and st["opened"] == 2


@pytest.mark.parametrize("how", ["fin", "rst", "websocket-client-shutdown"])
def test_vanished_client_is_1006(wsapp, how):
    r = wsapp()
    if how == "websocket-client-shutdown":
        c = wc(r)
        i = whoami(c)
        c.shutdown()   # the socket closes, no close frame
    else:
        c = Raw(r)
        c.send(frame(TEXT, b"whoami"))
        i = int(c.recv_frame()[1][3:])
        c.vanish(rst=how == "rst")
    st = wait_stats(r, lambda st: code_of(st, i) is not None, "on_close after the client vanished")
    assert code_of(st, i) == 1006
    serving(r)


@pytest.mark.parametrize("where", ["callback", "handler"])
@pytest.mark.parametrize("code", [1000, 1008, 4001])
def test_server_close_code_reaches_the_client(wsapp, where, code):
    r = wsapp()
    a = wc(r)
    ia = whoami(a)
    b = wsx(r)
    ib = whoami(b)
    for c, i in ((a, ia), (b, ib)):
        if where == "callback":
            c.send("close %d" % code)
        else:
            assert get(r, "/close?id=%d&code=%d" % (i, code)).text == "ok"
    assert close_code_seen(a) == code
    with pytest.raises(ConnectionClosed) as e:
        b.recv(timeout=10)
    assert e.value.rcvd.code == code
    st = wait_stats(r, lambda st: len(st["closed"]) == 2, "on_close twice")
    assert code_of(st, ia) == code and code_of(st, ib) == code


def test_close_frame_without_a_code_is_echoed_1000_reported_1005(wsapp):
    r = wsapp()
    c = Raw(r)
    c.send(frame(TEXT, b"whoami"))
    i = int(c.recv_frame()[1][3:])
    c.send(frame(CLOSE))
    op, data = c.recv_frame()
    assert op == CLOSE and data[:2] == struct.pack("!H", 1000)
    c.expect_eof()
    st = wait_stats(r, lambda st: code_of(st, i) is not None, "on_close")
    assert code_of(st, i) == 1005


@pytest.mark.parametrize("code,ok", [(999, False), (1003, True), (1004, False), (1005, False), (1006, False),
                                     (1007, True), (1014, True), (1015, False), (2999, False), (3000, True),
                                     (4999, True), (5000, False)])
def test_ws_close_code_edges(wsapp, code, ok):
    """ws.close(code) takes the codes an endpoint may send (RFC 6455 7.4,
    IANA registry): others are a ValueError in the callback (printed), and
    the connection goes on."""
    r = wsapp()
    c = wc(r)
    c.send("close %d" % code)
    if ok:
        assert close_code_seen(c) == code
    else:
        c.send("still open")
        assert c.recv() == "still open"
        assert "close code must be" in r.log()
        c.close()


def test_a_callback_that_raises_is_printed_and_the_connection_goes_on(srv):
    c = wc(srv)
    c.send("raise")
    c.send("after")
    assert c.recv() == "after"
    assert "a callback that raises, on purpose" in srv.log()
    c.close()


def test_server_stop_is_1001(wsapp):
    r = wsapp()
    a = wc(r)
    whoami(a)
    b = wsx(r)
    whoami(b)
    assert get(r, "/stop").text == "stopping"
    assert close_code_seen(a) == 1001
    with pytest.raises(ConnectionClosed) as e:
        b.recv(timeout=10)
    assert e.value.rcvd.code == 1001


def test_ids_are_unique_and_match_on_open(wsapp):
    r = wsapp()
    seen = []
    for _ in range(3):
        cs = [wc(r) for _ in range(4)]
        ids = [whoami(c) for c in cs]
        assert sorted(stats(r)["open"]) == sorted(ids)
        seen += ids
        for c in cs:
            c.close()
        wait_stats(r, lambda st: st["open"] == [], "all closed")
    assert len(set(seen)) == len(seen) == 12   # never reused, even by the same slot
    assert all(isinstance(i, int) and i > 0 for i in seen)


def test_a_kept_object_stays_closed_when_its_slot_serves_another(wsapp):
    r = wsapp("clients=1")
    a = wc(r)
    ia = whoami(a)
    assert get(r, "/open?id=%d" % ia).text == "True"
    a.close()
    wait_stats(r, lambda st: code_of(st, ia) == 1000, "a closed")
    assert get(r, "/open?id=%d" % ia).text == "False"
    b = wc(r)    # the same (only) slot
    ib = whoami(b)
    assert ib != ia
    assert get(r, "/send?id=%d&data=for-a" % ia).text == "False"   # the old object: closed
    assert get(r, "/send?id=%d&data=for-b" % ib).text == "True"
    assert b.recv() == "for-b"
    b.close()


# ---- ws.send from elsewhere

def test_send_from_the_main_thread_and_from_handlers(wsapp):
    r = wsapp()
    a = wc(r)
    ia = whoami(a)
    b = wsx(r)
    ib = whoami(b)
    # from the main program's thread
    assert get(r, "/later?id=%d&data=from-main" % ia).text == "queued"
    assert a.recv() == "from-main"
    assert get(r, "/later?id=%d&data=bytes-from-main&bin=1" % ib).text == "queued"
    assert b.recv(timeout=10) == b"bytes-from-main"
    # from an HTTP handler (the server thread, another connection)
    assert get(r, "/send?id=%d&data=from-a-route" % ib).text == "True"
    assert b.recv(timeout=10) == "from-a-route"
    assert get(r, "/send?id=%d&data=raw&bin=1" % ia).text == "True"
    assert a.recv() == b"raw"
    # from another client's message callback
    a.send("to %d hello b" % ib)
    assert a.recv() == "sent True"
    assert b.recv(timeout=10) == "hello b"
    b.send("to %d hello a" % ia)
    assert b.recv(timeout=10) == "sent True"
    assert a.recv() == "hello a"
    a.close()
    b.close()


# ---- broadcast

def test_broadcast_counts_0_1_n(wsapp):
    r = wsapp("clients=4")
    assert get(r, "/broadcast?data=nobody").text == "0"
    a = wc(r)
    whoami(a)
    assert get(r, "/broadcast?data=one").text == "1"
    assert a.recv() == "one"
    others = [wsx(r), wsx(r), wc(r)]
    for c in others:
        whoami(c)
    assert get(r, "/broadcast?data=all").text == "4"
    assert get(r, "/broadcast?data=bin&bin=1").text == "4"
    for c in [a] + others:
        assert (c.recv(timeout=10) if hasattr(c, "protocol") else c.recv()) == "all"
        assert (c.recv(timeout=10) if hasattr(c, "protocol") else c.recv()) == b"bin"
    others[0].close()
    wait_stats(r, lambda st: len(st["open"]) == 3, "one closed")
    assert get(r, "/broadcast?data=three").text == "3"
    # another url's clients are not counted; an unknown url has none
    assert get(r, "/broadcast?data=x&url=/only").text == "0"
    assert get(r, "/broadcast?data=x&url=/nowhere").text == "0"
    o = wc(r, "/only")
    assert get(r, "/broadcast?data=only&url=/only").text == "1"
    assert o.recv() == "only"


def test_broadcast_larger_than_the_queue_raises_and_closes_nobody(wsapp):
    # ws_queue=4096, max_msg=1000: the queue holds 4096 bytes
    r = wsapp("ws_queue=4096", "max_msg=1000")
    a = wc(r)
    whoami(a)
    resp = get(r, "/broadcast?data=z&times=5000")
    assert resp.status_code == 500
    assert "ValueError" in r.log()
    assert get(r, "/broadcast?data=z&times=4000").text == "1"
    assert a.recv() == "z" * 4000
    a.send("still open")
    assert a.recv() == "still open"


# ---- limits at their edges

def test_clients_limit(wsapp):
    r = wsapp("clients=3")
    cs = [wc(r), wsx(r)]                          # limit - 1
    cs.append(wc(r))                              # limit
    ids = [whoami(c) for c in cs]
    with pytest.raises(websocket.WebSocketBadStatusException) as e:   # limit + 1
        wc(r)
    assert e.value.status_code == 503
    with pytest.raises(InvalidStatus) as e2:
        wsx(r)
    assert e2.value.response.status_code == 503
    assert e2.value.response.headers.get("Retry-After")
    # the refused ones never reached on_open; plain HTTP still works
    st = stats(r)
    assert st["opened"] == 3 and sorted(st["open"]) == sorted(ids)
    cs[1].close()
    wait_stats(r, lambda st: len(st["open"]) == 2, "the slot freed")
    d = wc(r)
    d.send("the freed slot")
    assert d.recv() == "the freed slot"
    for c in (cs[0], cs[2]):
        c.send("still")
        assert c.recv() == "still"


@pytest.mark.parametrize("n,ok", [(999, True), (1000, True), (1001, False)])
def test_max_msg_edges(wsapp, n, ok):
    r = wsapp("max_msg=1000")
    # binary in one frame (websocket-client), text in one frame (websockets),
    # and fragmented (websocket-client, 3 frames)
    a = wc(r)
    a.send_binary(b"\xab" * n)
    if ok:
        assert a.recv() == b"\xab" * n
    else:
        assert close_code_seen(a) == 1009
    with wsx(r) as b:
        b.send("t" * n)
        if ok:
            assert b.recv(timeout=10) == "t" * n
        else:
            with pytest.raises(ConnectionClosed) as e:
                b.recv(timeout=10)
            assert e.value.rcvd.code == 1009
    c = wc(r)
    third = n // 3
    c.send_frame(websocket.ABNF.create_frame("f" * third, websocket.ABNF.OPCODE_TEXT, 0))
    c.send_frame(websocket.ABNF.create_frame("f" * third, websocket.ABNF.OPCODE_CONT, 0))
    c.send_frame(websocket.ABNF.create_frame("f" * (n - 2 * third), websocket.ABNF.OPCODE_CONT, 1))
    if ok:
        assert c.recv() == "f" * n
    else:
        assert close_code_seen(c) == 1009
    if not ok:
        st = wait_stats(r, lambda st: len(st["closed"]) == 3, "three closed")
        assert [code for _, code in st["closed"]] == [1009] * 3
    serving(r)


def test_frame_length_over_the_limit_is_1009_at_once(wsapp):
    r = wsapp("max_msg=1000")
    for n in (1001, 65536, 1 << 40):
        c = Raw(r)
        c.send(_header_only(BIN, n))   # no payload follows: the header is enough
        c.expect_close(1009)
    c = Raw(r)
    c.send(b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"mask")   # the 64-bit length's top bit
    c.expect_close(1002)
    serving(r)


def _header_only(op, n):
    """A masked frame header announcing n payload bytes, and its key."""
    head = bytes([0x80 | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"MASK"


def flood_reader(c, out, wsx_client):
    """Read numbered messages, acknowledge each, until "end"."""
    got = []
    try:
        while True:
            m = c.recv(timeout=30) if wsx_client else c.recv()
            if m == "end":
                break
            got.append(int(m[:8]))
            c.send("ack %d" % got[-1])
    except Exception as e:   # noqa: BLE001 - reported by the test
        out["error"] = repr(e)
    out["got"] = got


def test_client_that_never_reads_is_1008_and_others_get_everything(wsapp):
    """A client that stops reading while the app broadcasts: once its queue
    (ws_queue) and its socket are full it is closed with 1008; the two
    clients that read get every message, in order.  The app paces itself
    on the readers' acknowledgements (3 messages ahead at most), so only
    the stalled client can fall behind, however slow this machine is."""
    r = wsapp("ws_queue=16384", "max_msg=4096")
    stuck = Raw(r, rcvbuf=4096)
    stuck.send(frame(TEXT, b"whoami"))
    i_stuck = int(stuck.recv_frame()[1][3:])
    a = wc(r)
    b = wsx(r)
    ia, ib = whoami(a), whoami(b)
    outs = [{}, {}]
    threads = [threading.Thread(target=flood_reader, args=(a, outs[0], False)),
               threading.Thread(target=flood_reader, args=(b, outs[1], True))]
    for t in threads:
        t.start()
    # 4000-byte messages; at most 8 MB (the host's loopback socket alone
    # takes about 3 MB before it pushes back; lwIP's 5.7 KB in STRICT)
    assert get(r, "/flood?n=2000&size=4000&extra=100&window=3&readers=%d,%d" % (ia, ib)).text == "started"
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    fl = json.loads(get(r, "/flood").text)
    assert fl["done"] and fl["first"] == 3, fl
    assert fl["dropped_at"] is not None, "the stalled client was never dropped: %r" % fl
    assert fl["sent"] == fl["dropped_at"] + 100
    assert fl["counts"][-1][1] == 2, fl["counts"]
    for o in outs:
        assert "error" not in o, o
        assert o["got"] == list(range(fl["sent"])), "a reader missed messages"
    # the stalled client, reading at last: a prefix of the messages in
    # order (what was queued behind the close is dropped), then 1008
    seqs = []
    while True:
        op, data = stuck.recv_frame()
        if op == CLOSE:
            assert struct.unpack("!H", data[:2])[0] == 1008
            break
        assert op == TEXT
        seqs.append(int(data[:8]))
    assert seqs == list(range(len(seqs))) and len(seqs) <= fl["dropped_at"]
    st = wait_stats(r, lambda st: code_of(st, i_stuck) is not None, "on_close of the stalled client")
    assert code_of(st, i_stuck) == 1008
    assert code_of(st, ia) is None and code_of(st, ib) is None
    a.send("after")
    assert a.recv() == "after"
    print("flood: %d messages of 4000 B, the stalled client dropped at %d, it had read %d"
          % (fl["sent"], fl["dropped_at"], len(seqs)))


# ---- who may connect

def test_origins(wsapp):
    r = wsapp("origins=http://good.example,https://also.example")
    c = wc(r, origin="http://good.example")
    c.send("o")
    assert c.recv() == "o"
    with wsx(r, origin="https://also.example") as d:
        d.send("o2")
        assert d.recv(timeout=10) == "o2"
    for kw in ({"origin": "http://evil.example"}, {"origin": "http://good.example.evil"},
               {"origin": "HTTP://GOOD.EXAMPLE"}, {"suppress_origin": True}):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            wc(r, **kw)
        assert e.value.status_code == 403, kw
    with pytest.raises(InvalidStatus) as e2:
        wsx(r, origin="http://evil.example")
    assert e2.value.response.status_code == 403
    assert stats(r)["opened"] == 2   # the refused ones never reached on_open


def test_auth_basic_on_the_upgrade(wsapp):
    r = wsapp("acl=basic")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        wc(r)
    assert e.value.status_code == 401
    assert b"Basic" in str(e.value.resp_headers.get("www-authenticate", "")).encode()
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        wc(r, header=["Authorization: Basic d3Jvbmc6cA=="])
    assert e.value.status_code == 401
    with pytest.raises(InvalidStatus) as e2:
        wsx(r)
    assert e2.value.response.status_code == 401
    c = wc(r, header=["Authorization: Basic dTpw"])
    c.send("in")
    assert c.recv() == "in"
    with wsx(r, additional_headers={"Authorization": "Basic dTpw"}) as d:
        d.send("in too")
        assert d.recv(timeout=10) == "in too"
    c.close()


def test_auth_custom_on_the_upgrade(wsapp):
    r = wsapp("acl=custom")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        wc(r)
    assert e.value.status_code == 401
    with pytest.raises(InvalidStatus) as e2:
        wsx(r, additional_headers={"X-Token": "wrong"})
    assert e2.value.response.status_code == 403
    c = wc(r, header=["X-Token: let-me-in"])
    c.send("custom")
    assert c.recv() == "custom"
    with wsx(r, additional_headers={"X-Token": "let-me-in"}) as d:
        d.send("custom too")
        assert d.recv(timeout=10) == "custom too"
    c.close()


def test_cors(wsapp):
    r = wsapp("cors=1")
    c = wc(r)
    assert c.getheaders().get("access-control-allow-origin") == "*"
    c.close()
    resp = requests.options(r.url + "/ws", headers={"Origin": "http://x.example",
                                                    "Access-Control-Request-Method": "GET"}, timeout=10)
    assert resp.status_code == 204
    assert "GET" in resp.headers["Allow"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # without cors the 101 has no such header
    r2 = wsapp()
    c2 = wc(r2)
    assert "access-control-allow-origin" not in c2.getheaders()
    c2.close()


def test_plain_get_falls_through(srv):
    resp = get(srv, "/ws")          # a route of its own at the same url
    assert resp.status_code == 200 and resp.text == "plain GET"
    assert get(srv, "/only").status_code == 404   # nothing else at that url
    c = wc(srv, "/only")              # while an upgrade there works
    c.send("only")
    assert c.recv() == "only"
    c.close()


# ---- wss://

def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("wspki")
    ca_key, ca, key, csr, crt, ext = (d / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt",
                                                      "ext.cnf"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ca_key))
    openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=uhttpd ws test CA", "-days", "2",
            "-out", str(ca))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return {"ca": str(ca), "crt": str(crt), "key": str(key)}


def test_wss_with_both_libraries(wsapp, pki):
    r = wsapp("cert=" + pki["crt"], "key=" + pki["key"])
    url = "wss://127.0.0.1:%d/ws" % r.port
    a = websocket.create_connection(url, timeout=10, sslopt={"ca_certs": pki["ca"]})
    ctx = ssl.create_default_context(cafile=pki["ca"])
    b = wsx_connect(url, ssl=ctx, open_timeout=10, close_timeout=10).__enter__()
    ia, ib = whoami(a), whoami(b)
    big = os.urandom(4096)
    a.send_binary(big)
    assert a.recv() == big
    b.send("κόσμε" * 100)
    assert b.recv(timeout=10) == "κόσμε" * 100
    assert requests.get("https://127.0.0.1:%d/broadcast?data=both" % r.port, verify=pki["ca"],
                        timeout=10).text == "2"
    assert a.recv() == "both" and b.recv(timeout=10) == "both"
    assert requests.get("https://127.0.0.1:%d/close?id=%d&code=4002" % (r.port, ia), verify=pki["ca"],
                        timeout=10).text == "ok"
    assert close_code_seen(a) == 4002
    b.close(code=4000)
    assert b.protocol.close_rcvd.code == 4000
    st = json.loads(requests.get("https://127.0.0.1:%d/stats" % r.port, verify=pki["ca"], timeout=10).text)
    deadline = time.monotonic() + 10
    while len(st["closed"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
        st = json.loads(requests.get("https://127.0.0.1:%d/stats" % r.port, verify=pki["ca"], timeout=10).text)
    assert code_of(st, ia) == 4002 and code_of(st, ib) == 4000
    # a plain ws:// client on the TLS port gets nothing but a 400
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection("ws://127.0.0.1:%d/ws" % r.port, timeout=10)


# ---- hostile clients

def test_frames_with_the_handshake_are_delivered(wsapp):
    r = wsapp()
    c = Raw(r, after=frame(TEXT, b"early") + frame(BIN, b"\x01\x02"))
    assert c.recv_frame() == (TEXT, b"early")
    assert c.recv_frame() == (BIN, b"\x01\x02")
    c.send(frame(CLOSE, struct.pack("!H", 1000)))
    c.expect_close(1000)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",     # a second request: RSV bits, reserved opcode
    b"\x81\x05hello",                          # unmasked
    b"\x8f\x80MASK",                           # reserved control opcode
])
@pytest.mark.parametrize("with_handshake", [True, False])
def test_garbage_after_the_upgrade_is_1002(wsapp, garbage, with_handshake):
    r = wsapp()
    if with_handshake:
        c = Raw(r, after=frame(TEXT, b"ok") + garbage)
    else:
        c = Raw(r)
        c.send(frame(TEXT, b"ok"))
        c.send(garbage)
    assert c.recv_frame() == (TEXT, b"ok")
    c.expect_close(1002)
    st = wait_stats(r, lambda st: st["closed"], "on_close")
    assert st["closed"][0][1] == 1002
    serving(r)


@pytest.mark.parametrize("cut", [1, 2, 6, 300])
@pytest.mark.parametrize("rst", [False, True])
def test_client_vanishes_mid_frame(wsapp, cut, rst):
    r = wsapp()
    c = Raw(r)
    c.send(frame(BIN, b"z" * 1000)[:cut])
    c.vanish(rst=rst)
    st = wait_stats(r, lambda st: st["closed"], "on_close after the client vanished")
    assert st["closed"][0][1] == 1006 and st["msgs"] == 0
    serving(r)


def test_client_vanishes_mid_handshake_and_while_being_sent_to(wsapp):
    r = wsapp("max_msg=65536", "ws_queue=65536")
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConn")
    s.close()
    c = Raw(r, rcvbuf=4096)
    c.send(frame(TEXT, b"whoami"))
    i = int(c.recv_frame()[1][3:])
    for _ in range(8):   # the server has data queued for a client that resets
        assert get(r, "/send?id=%d&data=q&times=8000" % i).text == "True"
    c.vanish(rst=True)
    st = wait_stats(r, lambda st: code_of(st, i) is not None, "on_close")
    assert code_of(st, i) == 1006 and st["opened"] == 1
    serving(r)


# ---- memory

def test_heap_is_flat_after_200_connections(wsapp):
    r = wsapp()

    def cycles(n):
        for k in range(n):
            c = wc(r)
            c.send("cycle %d" % k)
            assert c.recv() == "cycle %d" % k
            c.close()
        wait_stats(r, lambda st: st["open"] == [], "all closed")

    cycles(80)    # the app's bounded lists are full, every slot has served
    int(get(r, "/mem").text)
    before = int(get(r, "/mem").text)
    cycles(200)
    int(get(r, "/mem").text)
    after = int(get(r, "/mem").text)
    print("heap: %d B before, %d B after 200 connect/echo/close cycles (%+d B)"
          % (before, after, after - before))
    assert abs(after - before) <= 512, (before, after)
