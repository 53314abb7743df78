"""Application WebSockets (design.md section 10) on the wire: RFC 6455
conformance modelled on the Autobahn|Testsuite, sections 1-7 and 9, each
test named after its Autobahn case, against tests/apps/wsecho.py (an echo
at /echo, clients=4, max_msg=65536).

Two clients: a raw socket that writes byte-exact frames (masked as the RFC
asks, or deliberately wrong) and checks every frame the server sends
(unmasked, RSV 0, shortest length form), and wsproto as a strict peer for
the ordinary cases (it fails on any malformed server frame).  The parser
itself is pinned case by case in fuzz/test_wsframe_vectors.py.

What the server must do, beyond Autobahn: unmasked client frames get 1002,
a message over max_msg 1009 (as soon as the frame header says so), invalid
UTF-8 1007 (on the offending byte), a close is answered with the peer's
code (1000 when it sent none) and the server then closes the TCP
connection; more than `clients` WebSockets get 503 before the upgrade;
garbage, oversized frames and clients that vanish mid-frame never stop the
server from serving the next client.
"""
import json
import socket
import struct

import pytest
import requests

from uhttpd_testlib import start_app, stop_app
from wsraw import BINARY_OP, CLOSE, CONT, PING, PONG, TEXT, Raw, close_frame, frame  # noqa: F401

MAX_MSG = 65536
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"   # "κόσμε" as Autobahn spells it


# ---- frames, client side (frame, close_frame, Raw: tests/wsraw.py)

def chops(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def fragments(op, payload):
    """One frame per byte (Autobahn's "fragments of 1 octet")."""
    n = len(payload)
    return b"".join(frame(op if i == 0 else CONT, payload[i:i + 1], fin=i == n - 1) for i in range(n))


class Strict:
    """wsproto as a strict peer: every server frame is validated by it."""

    def __init__(self, port, path="/echo"):
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(self.ws.send(Request(host="127.0.0.1:%d" % port, target=path)))
        self.pending = []
        ev = self.next()
        self.accepted = type(ev).__name__ == "AcceptConnection"
        self.handshake = ev

    def next(self):
        while not self.pending:
            data = self.s.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
            if not data and not self.pending:
                raise EOFError
        return self.pending.pop(0)

    def send(self, event):
        self.s.sendall(self.ws.send(event))

    def message(self):
        """The next whole message (str or bytes), its parts joined."""
        from wsproto.events import Message
        parts = []
        while True:
            ev = self.next()
            assert isinstance(ev, Message), ev
            parts.append(ev.data)
            if ev.message_finished:
                return type(parts[0])().join(parts)

    def close(self, code=1000):
        from wsproto.events import CloseConnection
        self.send(CloseConnection(code=code))
        ev = self.next()
        assert isinstance(ev, CloseConnection), ev
        self.s.close()
        return ev.code


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    r = start_app("wsecho", "clients=4", "max_msg=%d" % MAX_MSG, tmp_path=tmp_path_factory.mktemp("wsecho"))
    yield r
    stop_app(r)


@pytest.fixture
def fresh(app):
    """A server of its own, for tests that count clients or callbacks."""
    return lambda *args: app("wsecho", *args)


def stats(r):
    return json.loads(requests.get(r.url + "/stats", timeout=5).text)


def wait_stats(r, pred, what):
    """Poll the app until pred(stats) holds (the server thread updates the
    counters; a few ms on loopback)."""
    import time
    deadline = time.monotonic() + 10
    while True:
        st = stats(r)
        if pred(st):
            return st
        assert time.monotonic() < deadline, "%s: %r" % (what, st)
        time.sleep(0.01)


def serving(r):
    """The server still echoes for a new client."""
    c = Raw(r.port)
    assert c.status == 101
    c.send(frame(TEXT, b"still here"))
    assert c.recv_message() == (TEXT, b"still here")
    c.send(close_frame(1000))
    c.expect_close(1000, reply=False)


def run(srv, data, pieces=None):
    c = Raw(srv.port)
    assert c.status == 101, c.head
    if pieces:
        assert b"".join(pieces) == data
        c.send_pieces(pieces)
    else:
        c.send(data)
    return c


# ---- 1 Framing

SIZES = [0, 125, 126, 127, 128, 65535, 65536]


@pytest.mark.parametrize("case,op,n", [("1.1.%d" % i, TEXT, n) for i, n in enumerate(SIZES, 1)]
                         + [("1.2.%d" % i, BINARY_OP, n) for i, n in enumerate(SIZES, 1)])
def test_1_framing(srv, case, op, n):
    payload = (b"*" if op == TEXT else b"\xfe") * n
    c = run(srv, frame(op, payload))
    assert c.recv_message() == (op, payload)
    c.send(close_frame(1000))
    c.expect_close(1000, reply=False)


@pytest.mark.parametrize("case,op", [("1.1.8", TEXT), ("1.2.8", BINARY_OP)])
def test_1_x_8_chops(srv, case, op):
    payload = (b"*" if op == TEXT else b"\xfe") * 65536
    f = frame(op, payload)
    c = run(srv, f, chops(f, 997))
    assert c.recv_message() == (op, payload)
    c.close()


# ---- 2 Pings and pongs

@pytest.mark.parametrize("case,payload", [
    ("2.1", b""), ("2.2", b"Hello, world!"), ("2.3", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"),
    ("2.4", b"\xfe" * 125)])
def test_2_ping_pong(srv, case, payload):
    c = run(srv, frame(PING, payload))
    assert c.recv_frame() == (True, PONG, payload)
    c.close()


def test_2_5_ping_over_125_is_1002(srv):
    c = run(srv, frame(PING, b"\xfe" * 126))
    c.expect_close(1002)


def test_2_6_ping_125_in_octets(srv):
    f = frame(PING, b"\xfe" * 125)
    c = run(srv, f, chops(f, 1))
    assert c.recv_frame() == (True, PONG, b"\xfe" * 125)
    c.close()


@pytest.mark.parametrize("case,payload", [("2.7", b""), ("2.8", b"unsolicited pong payload")])
def test_2_unsolicited_pong_is_ignored(srv, case, payload):
    c = run(srv, frame(PONG, payload) + frame(TEXT, b"after"))
    assert c.recv_message() == (TEXT, b"after")
    c.close()


def test_2_9_pong_then_ping(srv):
    c = run(srv, frame(PONG, b"unsolicited pong payload") + frame(PING, b"ping payload"))
    assert c.recv_frame() == (True, PONG, b"ping payload")
    c.close()


@pytest.mark.parametrize("case,octets", [("2.10", False), ("2.11", True)])
def test_2_ten_pings(srv, case, octets):
    f = b"".join(frame(PING, b"payload-%d" % i) for i in range(10))
    c = run(srv, f, chops(f, 1) if octets else None)
    for i in range(10):
        assert c.recv_frame() == (True, PONG, b"payload-%d" % i)
    c.close()


# ---- 3 Reserved bits

HELLO = frame(TEXT, b"Hello, world!")


@pytest.mark.parametrize("case,valid_first,data", [
    ("3.1", False, frame(TEXT, b"Hello, world!", rsv=1)),
    ("3.2", True, frame(TEXT, b"Hello, world!", rsv=2) + frame(PING)),
    ("3.3", True, frame(TEXT, b"Hello, world!", rsv=3) + frame(PING)),
    ("3.4", True, frame(TEXT, b"Hello, world!", rsv=4) + frame(PING)),
    ("3.5", False, frame(BINARY_OP, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5)),
    ("3.6", False, frame(PING, b"Hello, world!", rsv=6)),
    ("3.7", False, frame(CLOSE, b"\x03\xe8", rsv=7)),
])
def test_3_reserved_bits_are_1002(srv, case, valid_first, data):
    data = (HELLO if valid_first else b"") + data
    c = run(srv, data, chops(data, 1) if case == "3.4" else None)
    if valid_first:
        assert c.recv_message() == (TEXT, b"Hello, world!")
    c.expect_close(1002)


# ---- 4 Opcodes

@pytest.mark.parametrize("case,op,valid_first,payload", [
    ("4.1.1", 3, False, b""), ("4.1.2", 4, False, b"reserved opcode payload"),
    ("4.1.3", 5, True, b""), ("4.1.4", 6, True, b"reserved opcode payload"),
    ("4.1.5", 7, True, b"reserved opcode payload"),
    ("4.2.1", 11, False, b""), ("4.2.2", 12, False, b"reserved opcode payload"),
    ("4.2.3", 13, True, b""), ("4.2.4", 14, True, b"reserved opcode payload"),
    ("4.2.5", 15, True, b"reserved opcode payload"),
])
def test_4_reserved_opcodes_are_1002(srv, case, op, valid_first, payload):
    data = (HELLO if valid_first else b"") + frame(op, payload) + frame(PING)
    c = run(srv, data, chops(data, 1) if case in ("4.1.5", "4.2.5") else None)
    if valid_first:
        assert c.recv_message() == (TEXT, b"Hello, world!")
    c.expect_close(1002)


# ---- 5 Fragmentation

F1, F2 = frame(TEXT, b"fragment1", fin=False), frame(CONT, b"fragment2")
PONGME = frame(PING, b"pongme!")


@pytest.mark.parametrize("case,op", [("5.1", PING), ("5.2", PONG)])
def test_5_fragmented_control_is_1002(srv, case, op):
    c = run(srv, frame(op, b"fragment1", fin=False) + frame(CONT, b"fragment2"))
    c.expect_close(1002)


@pytest.mark.parametrize("case,how", [("5.3", "whole"), ("5.4", "frames"), ("5.5", "octets")])
def test_5_text_in_two_fragments(srv, case, how):
    data = F1 + F2
    pieces = {"whole": None, "frames": [F1, F2], "octets": chops(data, 1)}[how]
    c = run(srv, data, pieces)
    assert c.recv_message() == (TEXT, b"fragment1fragment2")
    c.close()


@pytest.mark.parametrize("case,how", [("5.6", "whole"), ("5.7", "frames"), ("5.8", "octets")])
def test_5_ping_between_fragments(srv, case, how):
    data = F1 + PONGME + F2
    pieces = {"whole": None, "frames": [F1, PONGME, F2], "octets": chops(data, 1)}[how]
    c = run(srv, data, pieces)
    assert c.recv_frame() == (True, PONG, b"pongme!")
    assert c.recv_message() == (TEXT, b"fragment1fragment2")
    c.close()


@pytest.mark.parametrize("case,fin,how", [
    ("5.9", True, "whole"), ("5.10", True, "frames"), ("5.11", True, "octets"),
    ("5.12", False, "whole"), ("5.13", False, "frames"), ("5.14", False, "octets")])
def test_5_continuation_without_message_is_1002(srv, case, fin, how):
    first = frame(CONT, b"non-continuation payload", fin=fin)
    data = first + HELLO
    pieces = {"whole": None, "frames": [first, HELLO], "octets": chops(data, 1)}[how]
    c = run(srv, data, pieces)
    c.expect_close(1002)


def test_5_15_continuation_after_a_complete_message(srv):
    c = run(srv, F1 + F2 + frame(CONT, b"fragment3", fin=False) + frame(TEXT, b"fragment4"))
    assert c.recv_message() == (TEXT, b"fragment1fragment2")
    c.expect_close(1002)


@pytest.mark.parametrize("case,fin", [("5.16", False), ("5.17", True)])
def test_5_continuation_first_is_1002(srv, case, fin):
    r = frame(CONT, b"fragment1", fin=fin) + frame(TEXT, b"fragment2", fin=False) + frame(CONT, b"fragment3")
    c = run(srv, r + r)
    c.expect_close(1002)


def test_5_18_new_message_inside_a_fragmented_one(srv):
    c = run(srv, F1 + frame(TEXT, b"fragment2"))
    c.expect_close(1002)


@pytest.mark.parametrize("case,octets", [("5.19", False), ("5.20", True)])
def test_5_five_fragments_two_pings(srv, case, octets):
    data = (frame(TEXT, b"fragment1", fin=False) + frame(CONT, b"fragment2", fin=False)
            + frame(PING, b"pongme 1!") + frame(CONT, b"fragment3", fin=False) + frame(PING, b"pongme 2!")
            + frame(CONT, b"fragment4", fin=False) + frame(CONT, b"fragment5"))
    c = run(srv, data, chops(data, 1) if octets else None)
    assert c.recv_frame() == (True, PONG, b"pongme 1!")
    assert c.recv_frame() == (True, PONG, b"pongme 2!")
    assert c.recv_message() == (TEXT, b"fragment1fragment2fragment3fragment4fragment5")
    c.close()


# ---- 6 UTF-8

@pytest.mark.parametrize("case,data,want", [
    ("6.1.1", frame(TEXT), b""),
    ("6.1.2", frame(TEXT, fin=False) + frame(CONT, fin=False) + frame(CONT), b""),
    ("6.1.3", frame(TEXT, fin=False) + frame(CONT, b"middle frame payload", fin=False) + frame(CONT),
     b"middle frame payload"),
    ("6.2.1", frame(TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode()), "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("6.2.2", frame(TEXT, "Hello-µ@ßö".encode(), fin=False) + frame(CONT, "äüàá-UTF-8!!".encode()),
     "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("6.2.3", fragments(TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode()), "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("6.2.4", fragments(TEXT, KOSME), KOSME),
])
def test_6_valid_utf8_echoes(srv, case, data, want):
    c = run(srv, data)
    assert c.recv_message() == (TEXT, want)
    c.close()


BAD = KOSME + b"\xed\xa0\x80edited"


@pytest.mark.parametrize("case,data", [("6.3.1", frame(TEXT, BAD)), ("6.3.2", fragments(TEXT, BAD))])
def test_6_3_invalid_utf8_is_1007(srv, case, data):
    c = run(srv, data)
    c.expect_close(1007)


def test_6_4_1_fail_fast_on_a_fragment(srv):
    """The frame that makes the text invalid fails the connection at once:
    the third fragment is never sent."""
    c = run(srv, frame(TEXT, KOSME, fin=False) + frame(CONT, b"\xf4\x90\x80\x80", fin=False))
    c.expect_close(1007)


def test_6_4_2_fail_fast_on_the_octet(srv):
    allb = KOSME + b"\xf4\x90\x80\x80edited"
    c = run(srv, frame(TEXT, allb[:12], fin=False) + frame(CONT, allb[12:13], fin=False))
    c.expect_close(1007)


@pytest.mark.parametrize("case,octets", [("6.4.3", False), ("6.4.4", True)])
def test_6_4_fail_fast_inside_one_frame(srv, case, octets):
    """Only part of one frame is sent, up to the invalid byte: the server
    fails before the frame is complete."""
    allb = KOSME + b"\xf4\x90\x80\x80edited"
    f = frame(TEXT, allb)
    part = f[:len(f) - len(allb) + 13]   # header + payload up to and including \x90
    c = run(srv, part, chops(part, 1) if octets else None)
    c.expect_close(1007)


def utf8_cases():
    """Autobahn 6.5-6.23 (Markus Kuhn's decoder stress test): a sample of
    each group, valid and invalid."""
    return [
        ("6.5.1", b"hello\x24world"), ("6.5.4", b"hello\xf0\xa4\xad\xa2world"), ("6.5.5", KOSME),
        ("6.6.2", KOSME[:2]), ("6.6.3", KOSME[:3]), ("6.6.11", KOSME),
        ("6.7.1", b"\x00"), ("6.7.4", b"\xf0\x90\x80\x80"), ("6.8.1", b"\xf8\x88\x80\x80\x80"),
        ("6.9.4", b"\xf4\x8f\xbf\xbf"), ("6.10.1", b"\xf7\xbf\xbf\xbf"),
        ("6.11.1", b"\xed\x9f\xbf"), ("6.11.5", b"\xf4\x90\x80\x80"),
        ("6.12.1", b"\x80"), ("6.12.8", bytes(range(0x80, 0xbf))),
        ("6.13.1", b"".join(bytes([c, 0x20]) for c in range(0xc0, 0xdf))),
        ("6.14.2", b"\xe0\x80"), ("6.14.7", b"\xef\xbf"), ("6.16.3", b"\xfe\xfe\xff\xff"),
        ("6.17.1", b"\xc0\xaf"), ("6.18.2", b"\xe0\x9f\xbf"), ("6.19.3", b"\xf0\x80\x80\x80"),
        ("6.20.1", b"\xed\xa0\x80"), ("6.20.7", b"\xed\xbf\xbf"), ("6.21.1", b"\xed\xa0\x80\xed\xb0\x80"),
        ("6.22.1", b"\xef\xbf\xbe"), ("6.22.34", b"\xf4\x8f\xbf\xbf"), ("6.23.5", b"\xef\xbf\xbd"),
    ]


def valid_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.mark.parametrize("case,payload", utf8_cases(), ids=[u[0] for u in utf8_cases()])
def test_6_utf8_table(srv, case, payload):
    c = run(srv, frame(TEXT, payload))
    if valid_utf8(payload):
        assert c.recv_message() == (TEXT, payload)
        c.close()
    else:
        c.expect_close(1007)


@pytest.mark.parametrize("cut", range(1, 4))
def test_6_x_sequence_split_across_fragments(srv, cut):
    """A 4-byte character split between fragments at every byte."""
    ch = "😀".encode()
    c = run(srv, frame(TEXT, b"a" + ch[:cut], fin=False) + frame(CONT, ch[cut:] + b"z"))
    assert c.recv_message() == (TEXT, b"a" + ch + b"z")
    c.close()


# ---- 7 Close handling

def test_7_1_1_message_then_close(srv):
    c = run(srv, HELLO + close_frame(1000))
    assert c.recv_message() == (TEXT, b"Hello, world!")
    c.expect_close(1000, reply=False)


@pytest.mark.parametrize("case,after", [
    ("7.1.2", close_frame(1000)), ("7.1.3", frame(PING)), ("7.1.4", HELLO)])
def test_7_nothing_after_close(srv, case, after):
    """After the close handshake the server answers nothing more: one close
    frame back, then the TCP connection ends."""
    c = run(srv, close_frame(1000) + after)
    c.expect_close(1000, reply=False)


def test_7_1_5_close_inside_a_fragmented_message(srv):
    c = run(srv, frame(TEXT, b"fragment1", fin=False) + close_frame(1000) + frame(CONT, b"fragment2"))
    c.expect_close(1000, reply=False)


def test_7_1_6_large_message_ping_close(srv):
    big = b"BAsd7&jh23" * 6553
    c = run(srv, frame(TEXT, big) + frame(PING, b"ping") + close_frame(1000))
    assert c.recv_message() == (TEXT, big)
    assert c.recv_frame() == (True, PONG, b"ping")
    c.expect_close(1000, reply=False)


@pytest.mark.parametrize("case,data,code", [
    ("7.3.1", close_frame(), None),
    ("7.3.2", frame(CLOSE, b"a"), 1002),
    ("7.3.3", close_frame(1000), 1000),
    ("7.3.4", close_frame(1000, b"Hello World!"), 1000),
    ("7.3.5", close_frame(1000, b"*" * 123), 1000),
    ("7.3.6", close_frame(1000, b"*" * 124), 1002),
    ("7.5.1", close_frame(1000, BAD), 1007),
])
def test_7_close_payloads(srv, case, data, code):
    c = run(srv, data)
    c.expect_close(code, reply=False)


VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]


@pytest.mark.parametrize("case,code", [("7.7.%d" % i, c) for i, c in enumerate(VALID, 1)])
def test_7_7_valid_codes_are_echoed(srv, case, code):
    c = run(srv, close_frame(code))
    c.expect_close(code, reply=False)


@pytest.mark.parametrize("case,code", [("7.9.%d" % i, c) for i, c in enumerate(INVALID, 1)]
                         + [("7.13.1", 5000), ("7.13.2", 65535)])
def test_7_invalid_codes_are_1002(srv, case, code):
    c = run(srv, close_frame(code))
    c.expect_close(1002, reply=False)


def test_7_server_initiated_close(fresh):
    """ws.close(code) sends a close frame; the client's answer ends it and
    on_close sees the code."""
    r = fresh()
    c = Raw(r.port)
    i = wait_stats(r, lambda st: len(st["open"]) == 1, "on_open")["open"][0]
    assert requests.get(r.url + "/close?id=%d&code=4001" % i, timeout=5).text == "ok"
    c.expect_close(4001, reply=True)
    wait_stats(r, lambda st: [i, 4001] in st["closed"], "on_close")


# ---- 9 Limits and many messages (max_msg = 65536)

@pytest.mark.parametrize("case,op,n,ok", [
    ("9.1.1", TEXT, MAX_MSG, True), ("9.2.1", BINARY_OP, MAX_MSG, True),
    ("9.x-limit-minus-1", BINARY_OP, MAX_MSG - 1, True),
    ("9.x-limit-plus-1", BINARY_OP, MAX_MSG + 1, False),
    ("9.1.2-over", TEXT, 4 * MAX_MSG, False), ("9.2.2-over", BINARY_OP, 4 * MAX_MSG, False),
])
def test_9_message_size(srv, case, op, n, ok):
    payload = (b"*" if op == TEXT else b"\xfe") * n
    c = run(srv, frame(op, payload))
    if ok:
        assert c.recv_message() == (op, payload)
        c.close()
    else:
        c.expect_close(1009)


def test_9_x_fragments_over_the_limit_are_1009(srv):
    """The total of the fragments counts: limit ok, limit + 1 refused."""
    half = MAX_MSG // 2
    c = run(srv, frame(BINARY_OP, b"a" * half, fin=False) + frame(CONT, b"b" * half))
    assert c.recv_message() == (BINARY_OP, b"a" * half + b"b" * half)
    c.send(frame(BINARY_OP, b"a" * half, fin=False) + frame(CONT, b"b" * (half + 1)))
    c.expect_close(1009)


def test_9_x_length_header_alone_is_1009(srv):
    """A header announcing 2^40 bytes fails at once; no payload is awaited."""
    c = run(srv, frame(BINARY_OP, b"", length=1 << 40))
    c.expect_close(1009)


def test_9_x_length_top_bit_is_1002(srv):
    c = run(srv, frame(BINARY_OP, b"", length=1 << 63))
    c.expect_close(1002)


@pytest.mark.parametrize("case,op,fs", [("9.3.%d" % i, TEXT, fs) for i, fs in
                                        enumerate([64, 256, 1024, 4096, 16384, 65536], 1)]
                         + [("9.4.%d" % i, BINARY_OP, fs) for i, fs in
                            enumerate([64, 256, 1024, 4096, 16384, 65536], 1)])
def test_9_fragmented_message(srv, case, op, fs):
    payload = (b"*" if op == TEXT else b"\xfe") * MAX_MSG
    data = b"".join(frame(op if o == 0 else CONT, payload[o:o + fs], fin=o + fs >= MAX_MSG)
                    for o in range(0, MAX_MSG, fs))
    c = run(srv, data)
    assert c.recv_message() == (op, payload)
    c.close()


@pytest.mark.parametrize("case,op,cs", [("9.5.%d" % i, TEXT, cs) for i, cs in
                                        enumerate([64, 128, 256, 512, 1024, 2048], 1)]
                         + [("9.6.%d" % i, BINARY_OP, cs) for i, cs in
                            enumerate([64, 128, 256, 512, 1024, 2048], 1)])
def test_9_message_in_chops(srv, case, op, cs):
    payload = (b"*" if op == TEXT else b"\xfe") * MAX_MSG
    f = frame(op, payload)
    c = run(srv, f, chops(f, cs))
    assert c.recv_message() == (op, payload)
    c.close()


@pytest.mark.parametrize("case,op,n", [("9.7.%d" % i, TEXT, n) for i, n in enumerate([0, 16, 64, 256, 1024, 4096], 1)]
                         + [("9.8.%d" % i, BINARY_OP, n) for i, n in enumerate([0, 16, 64, 256, 1024, 4096], 1)])
def test_9_thousand_round_trips(srv, case, op, n):
    payload = (b"*" if op == TEXT else b"\xfe") * n
    c = run(srv, b"")
    for _ in range(1000):
        c.send(frame(op, payload))
        assert c.recv_message() == (op, payload)
    c.send(close_frame(1000))
    c.expect_close(1000, reply=False)


# ---- the strict peer (wsproto) and an ordinary client (websockets)

def test_wsproto_echo_and_close(srv):
    from wsproto.events import BytesMessage, Ping, Pong, TextMessage
    w = Strict(srv.port)
    assert w.accepted, w.handshake
    for text in ["", "x", "κόσμε" * 40, "€" * 21845 + "a"]:
        w.send(TextMessage(data=text))
        assert w.message() == text
    for n in (0, 125, 126, 65535, 65536):
        w.send(BytesMessage(data=b"\x00" * n))
        assert w.message() == b"\x00" * n
    # a fragmented message with a ping in between
    w.send(TextMessage(data="frag", message_finished=False))
    w.send(Ping(payload=b"between"))
    w.send(TextMessage(data="ment", message_finished=True))
    ev = w.next()
    assert isinstance(ev, Pong) and ev.payload == b"between"
    assert w.message() == "fragment"
    assert w.close(1000) == 1000


def test_websockets_client(srv):
    from websockets.sync.client import connect
    with connect("ws://127.0.0.1:%d/echo" % srv.port, open_timeout=10, close_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=10) == b"\x00\x01"
        ws.ping(b"p").wait(10)
        ws.close(code=4321)
        assert ws.close_code == 4321


# ---- handshake and bad input

def test_unmasked_client_frame_is_1002(srv):
    c = run(srv, frame(TEXT, b"not masked", mask=False))
    c.expect_close(1002)
    serving(srv)


def test_garbage_after_upgrade(srv):
    c = run(srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # 'G' = RSV bits and a reserved opcode
    c.expect_close(1002)
    serving(srv)


def test_random_garbage_never_stops_the_server(srv):
    import random
    rnd = random.Random(6455)
    for _ in range(20):
        c = run(srv, bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))))
        c.s.shutdown(socket.SHUT_WR)   # the server may be waiting inside a frame: EOF ends it
        try:
            while True:
                c.recv_frame()         # whatever comes back is well-formed
        except (EOFError, ConnectionResetError):
            pass
        c.close()
    serving(srv)


def test_client_vanishes_mid_frame(fresh):
    r = fresh()
    c = Raw(r.port)
    f = frame(BINARY_OP, b"z" * 1000)
    c.send(f[:500])
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
    c.close()
    st = wait_stats(r, lambda st: st["closed"], "on_close after the client vanished")
    assert st["closed"][0][1] == 1006
    serving(r)


def test_stalled_client_does_not_block_another(srv):
    """A client stuck in the middle of a frame: another is served."""
    stuck = Raw(srv.port)
    stuck.send(frame(BINARY_OP, b"z" * 1000)[:300])
    other = Raw(srv.port)
    other.send(frame(TEXT, b"me first"))
    assert other.recv_message() == (TEXT, b"me first")
    other.close()
    stuck.close()


def test_over_clients_is_503_before_the_upgrade(fresh):
    r = fresh("clients=2")
    a, b = Raw(r.port), Raw(r.port)
    assert a.status == b.status == 101
    c = Raw(r.port)
    assert c.status == 503, c.head
    c.close()
    a.send(close_frame(1000))
    a.expect_close(1000, reply=False)
    wait_stats(r, lambda st: len(st["open"]) == 1, "slot freed")
    d = Raw(r.port)
    assert d.status == 101
    d.send(frame(TEXT, b"in"))
    assert d.recv_message() == (TEXT, b"in")


def test_websocket_clients_are_not_http_connections(fresh):
    """clients counts WebSockets, not max_conns: with max_conns=2, three
    WebSockets and a plain request are all served."""
    r = fresh("clients=3", "max_conns=2")
    socks = [Raw(r.port) for _ in range(3)]
    assert [s.status for s in socks] == [101] * 3
    assert requests.get(r.url + "/stats", timeout=5).status_code == 200
    for i, s in enumerate(socks):
        s.send(frame(TEXT, b"n%d" % i))
        assert s.recv_message() == (TEXT, b"n%d" % i)


@pytest.mark.parametrize("name,req", [
    ("no-key", b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n"),
    ("version-8", b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"),
    ("post", b"POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"),
    ("plain-get", b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
])
def test_bad_handshake_is_refused(srv, name, req):
    """No 101 without a complete, version-13 upgrade request (RFC 6455 4.2.1)."""
    s = srv.connect(timeout=10)
    s.sendall(req)
    out = b""
    while b"\r\n\r\n" not in out:
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    status = int(out.split(b" ", 2)[1])
    assert 400 <= status < 500, out[:200]
    if name == "version-8":
        assert b"sec-websocket-version: 13" in out.lower()
    serving(srv)


def test_callbacks_and_ids(fresh):
    r = fresh()
    a, b = Raw(r.port), Raw(r.port)
    st = wait_stats(r, lambda st: len(st["open"]) == 2, "on_open twice")
    ia, ib = st["open"]
    assert ia != ib and all(isinstance(i, int) for i in (ia, ib))
    a.send(close_frame(1001))
    a.expect_close(1001, reply=False)
    b.send(frame(PING, b"x"))        # a protocol error afterwards: on_close sees 1002
    b.recv_frame()
    b.send(frame(TEXT, b"x", rsv=1))
    b.expect_close(1002)
    st = wait_stats(r, lambda st: len(st["closed"]) == 2, "on_close twice")
    assert sorted(code for _, code in st["closed"]) == [1001, 1002]
    assert st["open"] == [] and st["opened"] == 2


def test_broadcast(fresh):
    r = fresh()
    assert requests.get(r.url + "/broadcast?data=nobody", timeout=5).text == "0"
    a, b = Raw(r.port), Raw(r.port)
    wait_stats(r, lambda st: len(st["open"]) == 2, "two clients")
    assert requests.get(r.url + "/broadcast?data=hi", timeout=5).text == "2"
    assert a.recv_message() == (TEXT, b"hi") and b.recv_message() == (TEXT, b"hi")
    assert requests.get(r.url + "/broadcast?data=raw&bin=1", timeout=5).text == "2"
    assert a.recv_message() == (BINARY_OP, b"raw") and b.recv_message() == (BINARY_OP, b"raw")


def test_send_from_the_main_thread(fresh):
    r = fresh()
    a = Raw(r.port)
    i = wait_stats(r, lambda st: len(st["open"]) == 1, "on_open")["open"][0]
    assert requests.get(r.url + "/later?id=%d&data=from-main" % i, timeout=5).text == "queued"
    assert a.recv_message() == (TEXT, b"from-main")
