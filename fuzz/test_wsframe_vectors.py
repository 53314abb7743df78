"""Table-driven vectors for the WebSocket frame parser (native/uh_wsframe.c),
named after the Autobahn|Testsuite cases they follow (sections 1-7 and 9;
section 9 scaled to the parser's max_msg).  The server-level twins are in
tests/test_ws_conformance.py.

Every case runs whole, as the pieces it names (Autobahn's "chops"), split
at every byte boundary, byte by byte, and for every prefix (whose events
must be a prefix of the whole's: the parser never looks ahead).  Cases with
fail_at also pin where the parser fails: the error appears exactly when the
byte at that offset arrives ("fail fast").
"""
import random

import pytest

from uhws import (BINARY, CLOSE, CONT, PING, PONG, TEXT, close_frame, frame, header, lib,
                  parse, server_close, split_at, utf8_check)

M = ("message",)


class Case:
    def __init__(self, name, data, events, pieces=None, fail_at=None, **kw):
        self.name, self.data, self.events = name, data, events
        self.pieces, self.fail_at, self.kw = pieces, fail_at, kw


def msg(op, payload):
    return ("message", op, payload)


def err(code, why=None):
    return ("error", code, why)


def chops(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def same(got, want):
    """Events equal; an expected error matches by code (and by `why`
    substring when the table gives one)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if w[0] == "error":
            if g[0] != "error" or g[1] != w[1] or (w[2] and w[2] not in g[2]):
                return False
        elif g != w:
            return False
    return True


CASES = []
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"   # "κόσμε", omicron with oxia U+1F79


def case(*a, **kw):
    CASES.append(Case(*a, **kw))


# ---- 1 Framing: text (1.1.x) and binary (1.2.x) of every length class
for i, n in enumerate([0, 125, 126, 127, 128, 65535, 65536], 1):
    case("1.1.%d" % i, frame(TEXT, b"*" * n), [msg(TEXT, b"*" * n)])
    case("1.2.%d" % i, frame(BINARY, b"\xfe" * n), [msg(BINARY, b"\xfe" * n)])
_f = frame(TEXT, b"*" * 65536)
case("1.1.8", _f, [msg(TEXT, b"*" * 65536)], pieces=chops(_f, 997))
_f = frame(BINARY, b"\xfe" * 65536)
case("1.2.8", _f, [msg(BINARY, b"\xfe" * 65536)], pieces=chops(_f, 997))

# ---- 2 Pings and pongs
case("2.1", frame(PING), [("ping", b"")])
case("2.2", frame(PING, b"Hello, world!"), [("ping", b"Hello, world!")])
case("2.3", frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), [("ping", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")])
case("2.4", frame(PING, b"\xfe" * 125), [("ping", b"\xfe" * 125)])
case("2.5", frame(PING, b"\xfe" * 126), [err(1002, "control frame over 125")], fail_at=1)
_f = frame(PING, b"\xfe" * 125)
case("2.6", _f, [("ping", b"\xfe" * 125)], pieces=chops(_f, 1))
case("2.7", frame(PONG), [("pong", b"")])
case("2.8", frame(PONG, b"unsolicited pong payload"), [("pong", b"unsolicited pong payload")])
case("2.9", frame(PONG, b"unsolicited pong payload") + frame(PING, b"ping payload"),
     [("pong", b"unsolicited pong payload"), ("ping", b"ping payload")])
_f = b"".join(frame(PING, b"payload-%d" % i) for i in range(10))
case("2.10", _f, [("ping", b"payload-%d" % i) for i in range(10)])
case("2.11", _f, [("ping", b"payload-%d" % i) for i in range(10)], pieces=chops(_f, 1))
case("2.x-close-126-code", bytes([0x89, 0xFE, 0, 5]) + b"\0" * 4 + b"hello",
     [err(1002, "control frame over 125")], fail_at=1)

# ---- 3 Reserved bits (no extension negotiated)
_hello = frame(TEXT, b"Hello, world!")
case("3.1", frame(TEXT, b"Hello, world!", rsv=1), [err(1002, "reserved bits")], fail_at=0)
case("3.2", _hello + frame(TEXT, b"Hello, world!", rsv=2) + frame(PING),
     [msg(TEXT, b"Hello, world!"), err(1002, "reserved bits")], fail_at=len(_hello))
case("3.3", _hello + frame(TEXT, b"Hello, world!", rsv=3) + frame(PING),
     [msg(TEXT, b"Hello, world!"), err(1002, "reserved bits")], fail_at=len(_hello))
_f = _hello + frame(TEXT, b"Hello, world!", rsv=4) + frame(PING)
case("3.4", _f, [msg(TEXT, b"Hello, world!"), err(1002, "reserved bits")], pieces=chops(_f, 1),
     fail_at=len(_hello))
case("3.5", frame(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5), [err(1002, "reserved bits")], fail_at=0)
case("3.6", frame(PING, b"Hello, world!", rsv=6), [err(1002, "reserved bits")], fail_at=0)
case("3.7", frame(CLOSE, b"\x03\xe8", rsv=7), [err(1002, "reserved bits")], fail_at=0)

# ---- 4 Opcodes
case("4.1.1", frame(3), [err(1002, "reserved opcode")], fail_at=0)
case("4.1.2", frame(4, b"reserved opcode payload"), [err(1002, "reserved opcode")], fail_at=0)
case("4.1.3", _hello + frame(5) + frame(PING), [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")],
     fail_at=len(_hello))
case("4.1.4", _hello + frame(6, b"reserved opcode payload") + frame(PING),
     [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")], fail_at=len(_hello))
_f = _hello + frame(7, b"reserved opcode payload") + frame(PING)
case("4.1.5", _f, [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")], pieces=chops(_f, 1))
case("4.2.1", frame(11), [err(1002, "reserved opcode")], fail_at=0)
case("4.2.2", frame(12, b"reserved opcode payload"), [err(1002, "reserved opcode")], fail_at=0)
case("4.2.3", _hello + frame(13) + frame(PING), [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")])
case("4.2.4", _hello + frame(14, b"reserved opcode payload") + frame(PING),
     [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")])
_f = _hello + frame(15, b"reserved opcode payload") + frame(PING)
case("4.2.5", _f, [msg(TEXT, b"Hello, world!"), err(1002, "reserved opcode")], pieces=chops(_f, 1))

# ---- 5 Fragmentation
case("5.1", frame(PING, b"fragment1", fin=False) + frame(CONT, b"fragment2"),
     [err(1002, "fragmented control")], fail_at=0)
case("5.2", frame(PONG, b"fragment1", fin=False) + frame(CONT, b"fragment2"),
     [err(1002, "fragmented control")], fail_at=0)
_a, _b = frame(TEXT, b"fragment1", fin=False), frame(CONT, b"fragment2")
case("5.3", _a + _b, [msg(TEXT, b"fragment1fragment2")])
case("5.4", _a + _b, [msg(TEXT, b"fragment1fragment2")], pieces=[_a, _b])
case("5.5", _a + _b, [msg(TEXT, b"fragment1fragment2")], pieces=chops(_a + _b, 1))
_p = frame(PING, b"pongme!")
case("5.6", _a + _p + _b, [("ping", b"pongme!"), msg(TEXT, b"fragment1fragment2")])
case("5.7", _a + _p + _b, [("ping", b"pongme!"), msg(TEXT, b"fragment1fragment2")], pieces=[_a, _p, _b])
case("5.8", _a + _p + _b, [("ping", b"pongme!"), msg(TEXT, b"fragment1fragment2")],
     pieces=chops(_a + _p + _b, 1))
_f = frame(CONT, b"non-continuation payload") + _hello
case("5.9", _f, [err(1002, "continuation without")], fail_at=0)
case("5.10", _f, [err(1002, "continuation without")], pieces=[_f[:-len(_hello)], _hello])
case("5.11", _f, [err(1002, "continuation without")], pieces=chops(_f, 1))
_f = frame(CONT, b"non-continuation payload", fin=False) + _hello
case("5.12", _f, [err(1002, "continuation without")], fail_at=0)
case("5.13", _f, [err(1002, "continuation without")], pieces=[_f[:-len(_hello)], _hello])
case("5.14", _f, [err(1002, "continuation without")], pieces=chops(_f, 1))
_f = _a + _b + frame(CONT, b"fragment3", fin=False) + frame(TEXT, b"fragment4")
case("5.15", _f, [msg(TEXT, b"fragment1fragment2"), err(1002, "continuation without")],
     fail_at=len(_a + _b))
_r = frame(CONT, b"fragment1", fin=False) + frame(TEXT, b"fragment2", fin=False) + frame(CONT, b"fragment3")
case("5.16", _r + _r, [err(1002, "continuation without")], fail_at=0)
_r = frame(CONT, b"fragment1") + frame(TEXT, b"fragment2", fin=False) + frame(CONT, b"fragment3")
case("5.17", _r + _r, [err(1002, "continuation without")], fail_at=0)
case("5.18", _a + frame(TEXT, b"fragment2"), [err(1002, "new message inside")], fail_at=len(_a))
_f = (frame(TEXT, b"fragment1", fin=False) + frame(CONT, b"fragment2", fin=False) + frame(PING, b"pongme 1!")
      + frame(CONT, b"fragment3", fin=False) + frame(PING, b"pongme 2!") + frame(CONT, b"fragment4", fin=False)
      + frame(CONT, b"fragment5"))
_e = [("ping", b"pongme 1!"), ("ping", b"pongme 2!"), msg(TEXT, b"fragment1fragment2fragment3fragment4fragment5")]
case("5.19", _f, _e)
case("5.20", _f, _e, pieces=chops(_f, 1))

# ---- 6 UTF-8 handling
case("6.1.1", frame(TEXT), [msg(TEXT, b"")])
case("6.1.2", frame(TEXT, fin=False) + frame(CONT, fin=False) + frame(CONT), [msg(TEXT, b"")])
case("6.1.3", frame(TEXT, fin=False) + frame(CONT, b"middle frame payload", fin=False) + frame(CONT),
     [msg(TEXT, b"middle frame payload")])
_u = "Hello-µ@ßöäüàá-UTF-8!!".encode()
case("6.2.1", frame(TEXT, _u), [msg(TEXT, _u)])
_cut = len("Hello-µ@ßö".encode())
case("6.2.2", frame(TEXT, _u[:_cut], fin=False) + frame(CONT, _u[_cut:]), [msg(TEXT, _u)])


def fragments(op, payload):
    """One frame per byte (Autobahn's "fragments of 1 octet")."""
    n = len(payload)
    return b"".join(frame(op if i == 0 else CONT, payload[i:i + 1], fin=i == n - 1) for i in range(n))


case("6.2.3", fragments(TEXT, _u), [msg(TEXT, _u)])
_k = KOSME
case("6.2.4", fragments(TEXT, _k), [msg(TEXT, _k)])
_bad = _k + b"\xed\xa0\x80edited"
case("6.3.1", frame(TEXT, _bad), [err(1007)])
case("6.3.2", fragments(TEXT, _bad), [err(1007)])
# 6.4.x: fail fast, on the byte that makes the text invalid
_p1, _p2, _p3 = _k, b"\xf4\x90\x80\x80", b"edited"
_f1 = frame(TEXT, _p1, fin=False)
case("6.4.1", _f1 + frame(CONT, _p2, fin=False) + frame(CONT, _p3), [err(1007)],
     fail_at=len(_f1) + 6 + 1)
_all = _p1 + _p2 + _p3
_f1 = frame(TEXT, _all[:12], fin=False)
case("6.4.2", _f1 + frame(CONT, _all[12:13], fin=False) + frame(CONT, _all[13:]), [err(1007)],
     fail_at=len(_f1) + 6)
_f = frame(TEXT, _all)
_h = len(_f) - len(_all)
case("6.4.3", _f, [err(1007)], pieces=[_f[:_h + 11], _f[_h + 11:_h + 15], _f[_h + 15:]], fail_at=_h + 12)
case("6.4.4", _f, [err(1007)], pieces=chops(_f, 1), fail_at=_h + 12)


def utf8_table():
    """Markus Kuhn's UTF-8 decoder stress test, grouped as Autobahn's 6.5 to
    6.23 (the sequence numbers follow its case list)."""
    k = KOSME
    groups = [
        [b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
         b"hello\xf0\xa4\xad\xa2world", k],
        [k[:i] for i in range(1, len(k) + 1)],
        [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"],
        [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"],
        [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"],
        [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"],
        [b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80"],
        [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
         b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xbf))],
        [b"".join(bytes([c, 0x20]) for c in range(a, b))
         for a, b in [(0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd)]],
    ]
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
               b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    groups += [missing, [b"".join(missing)], [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"]]
    groups.append([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
                   b"\xfc\x80\x80\x80\x80\xaf"])
    groups.append([b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",
                   b"\xfc\x83\xbf\xbf\xbf\xbf"])
    groups.append([b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
                   b"\xfc\x80\x80\x80\x80\x80"])
    hi = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"]
    lo = [b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    groups.append(hi + lo)
    groups.append([h + l for h in hi for l in (b"\xed\xb0\x80", b"\xed\xbf\xbf")])
    nonchars = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]
    for z1 in b"\xf0\xf1\xf2\xf3\xf4":
        for z2 in b"\x8f\x9f\xaf\xbf":
            if z1 == 0xf4 and z2 != 0x8f:
                continue
            for z3 in b"\xbe\xbf":
                zz = bytes([z1, z2, 0xbf, z3])
                if zz[:2] != b"\xf0\x8f":
                    nonchars.append(zz)
    groups.append(nonchars)
    groups.append([bytes([0xef, 0xbf, c]) for c in range(0xb9, 0xc0)])
    for gi, group in enumerate(groups, 5):
        for j, payload in enumerate(group, 1):
            yield "6.%d.%d" % (gi, j), payload


def valid_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


UTF8 = list(utf8_table())
for _name, _pl in UTF8:
    case(_name, frame(TEXT, _pl), [msg(TEXT, _pl) if valid_utf8(_pl) else err(1007)])

# ---- 7 Close handling
case("7.1.1", _hello + close_frame(1000), [msg(TEXT, b"Hello, world!"), ("close", 1000, b"")])
case("7.1.2", close_frame(1000) + close_frame(1000), [("close", 1000, b"")])
case("7.1.3", close_frame(1000) + frame(PING), [("close", 1000, b"")])
case("7.1.4", close_frame(1000) + _hello, [("close", 1000, b"")])
case("7.1.5", frame(TEXT, b"fragment1", fin=False) + close_frame(1000) + frame(CONT, b"fragment2"),
     [("close", 1000, b"")])
_big = b"BAsd7&jh23" * 6554
case("7.1.6", frame(TEXT, _big) + frame(PING, b"ping") + close_frame(1000),
     [msg(TEXT, _big), ("ping", b"ping"), ("close", 1000, b"")], max_msg=len(_big))
case("7.3.1", close_frame(), [("close", 1005, b"")])
case("7.3.2", frame(CLOSE, b"a"), [err(1002, "1-byte")], fail_at=1)
case("7.3.3", close_frame(1000), [("close", 1000, b"")])
case("7.3.4", close_frame(1000, b"Hello World!"), [("close", 1000, b"Hello World!")])
case("7.3.5", close_frame(1000, b"*" * 123), [("close", 1000, b"*" * 123)])
case("7.3.6", close_frame(1000, b"*" * 124), [err(1002, "control frame over 125")], fail_at=1)
case("7.5.1", close_frame(1000, _bad), [err(1007, "close reason")])
for _i, _c in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
    case("7.7.%d" % _i, close_frame(_c), [("close", _c, b"")])
for _c in (1012, 1013, 1014):
    case("7.7.x-iana-%d" % _c, close_frame(_c), [("close", _c, b"")])
for _i, _c in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
    case("7.9.%d" % _i, close_frame(_c), [err(1002, "invalid close code")])
case("7.9.x-1015", close_frame(1015), [err(1002, "invalid close code")])
case("7.13.1", close_frame(5000), [err(1002, "invalid close code")])
case("7.13.2", close_frame(65535), [err(1002, "invalid close code")])

# ---- 9 Limits (scaled: max_msg is the limit; 9.x.1 at 64 KiB, 9.x.2 at 256 KiB, 9.x.3 at 1 MiB)
for _i, _n in enumerate([1 << 16, 1 << 18, 1 << 20], 1):
    case("9.1.%d" % _i, frame(TEXT, b"*" * _n), [msg(TEXT, b"*" * _n)], max_msg=_n)
    case("9.2.%d" % _i, frame(BINARY, b"\xfe" * _n), [msg(BINARY, b"\xfe" * _n)], max_msg=_n)
    case("9.1.%d-over" % _i, frame(TEXT, b"*" * (_n + 1)), [err(1009)], max_msg=_n)
    case("9.2.%d-over" % _i, frame(BINARY, b"\xfe" * (_n + 1)), [err(1009)], max_msg=_n)
_N = 1 << 18
for _i, _fs in enumerate([64, 256, 1024, 4096, 16384, 65536, _N], 1):
    for _sec, _op, _fill in (("9.3", TEXT, b"*"), ("9.4", BINARY, b"\xfe")):
        _pl = _fill * _N
        _frames = b"".join(frame(_op if o == 0 else CONT, _pl[o:o + _fs], fin=o + _fs >= _N)
                           for o in range(0, _N, _fs))
        case("%s.%d" % (_sec, _i), _frames, [msg(_op, _pl)], max_msg=_N)
for _i, _cs in enumerate([64, 128, 256, 512, 1024, 2048], 1):
    for _sec, _op, _fill in (("9.5", TEXT, b"*"), ("9.6", BINARY, b"\xfe")):
        _f = frame(_op, _fill * _N)
        case("%s.%d" % (_sec, _i), _f, [msg(_op, _fill * _N)], pieces=chops(_f, _cs), max_msg=_N)
for _i, _n in enumerate([0, 16, 64, 256, 1024, 4096], 1):
    for _sec, _op, _fill in (("9.7", TEXT, b"*"), ("9.8", BINARY, b"\xfe")):
        case("%s.%d" % (_sec, _i), b"".join(frame(_op, _fill * _n) for _ in range(1000)),
             [msg(_op, _fill * _n)] * 1000, max_msg=4096)

# limits at their edges: max_msg - 1, max_msg, max_msg + 1, whole and fragmented
for _n in (0, 1, 125, 126, 65535, 65536):
    for _d in (-1, 0, 1):
        if _n + _d < 0:
            continue
        _pl = b"x" * (_n + _d)
        _want = [msg(BINARY, _pl)] if _d <= 0 else [err(1009, "too big")]
        case("9.x-limit-%d%+d" % (_n, _d), frame(BINARY, _pl), _want, max_msg=_n,
             fail_at=len(frame(BINARY, _pl, mask=False)) - len(_pl) - 1 if _d > 0 else None)
        _half = len(_pl) // 2
        _ff = frame(BINARY, _pl[:_half], fin=False) + frame(CONT, _pl[_half:])
        case("9.x-limit-frag-%d%+d" % (_n, _d), _ff, _want, max_msg=_n)
case("9.x-len64-top-bit", frame(BINARY, b"", length=1 << 63), [err(1002, "top bit")], fail_at=2)
case("9.x-len64-max", frame(BINARY, b"", length=(1 << 63) - 1), [err(1009)], fail_at=9)
case("9.x-len64-unmasked-huge", frame(BINARY, b"", length=1 << 40, mask=False), [err(1002, "unmasked")],
     fail_at=1)

# ---- beyond Autobahn: lenient mode, non-minimal lengths, UTF-8 checks off
case("x.nonminimal-16", frame(BINARY, b"abc", form=16), [msg(BINARY, b"abc")])
case("x.nonminimal-64", frame(TEXT, b"abc", form=64), [msg(TEXT, b"abc")])
case("x.unmasked-strict", frame(TEXT, b"hi", mask=False), [err(1002, "unmasked")], fail_at=1)
case("x.unmasked-lenient", frame(TEXT, b"hi", mask=False) + frame(BINARY, b"\x00", mask=True)
     + frame(PING, b"p", mask=False), [msg(TEXT, b"hi"), msg(BINARY, b"\x00"), ("ping", b"p")],
     require_mask=0)
case("x.utf8-unchecked", frame(TEXT, b"\xff\xfe") + close_frame(1000, b"\xff"),
     [msg(TEXT, b"\xff\xfe"), ("close", 1000, b"\xff")], check_utf8=0)
case("x.max-msg-0", frame(TEXT) + frame(BINARY, b"x"), [msg(TEXT, b""), err(1009)], max_msg=0)
case("x.pong-inside-message", frame(BINARY, b"a", fin=False) + frame(PONG, b"z") + frame(CONT, b"b", fin=False)
     + frame(PING) + frame(CONT, b"c"), [("pong", b"z"), ("ping", b""), msg(BINARY, b"abc")])
case("x.close-inside-message-reason", frame(TEXT, b"\xe2", fin=False) + close_frame(1001, "ü".encode()),
     [("close", 1001, "ü".encode())])
case("x.text-ends-mid-sequence", frame(TEXT, b"ok\xe2\x82"), [err(1007, "ends inside")])
case("x.text-fragment-ends-mid-sequence", frame(TEXT, b"\xe2\x82", fin=False) + frame(CONT, b"\xac"),
     [msg(TEXT, "€".encode())])


def events_prefix(got, want):
    return same(got, want[:len(got)])


def check(c, data, pieces, want):
    assert same(parse(data, pieces, **c.kw), want), c.name


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_vector(c):
    got = parse(c.data, **c.kw)
    assert same(got, c.events), (got[:4], c.events[:4])
    if c.pieces is not None:
        assert b"".join(c.pieces) == c.data
        check(c, c.data, c.pieces, c.events)
    n = len(c.data)
    small = n <= 4096
    cuts = range(1, n) if small else random.Random(n).sample(range(1, n), 40)
    for cut in cuts:
        check(c, c.data, [c.data[:cut], c.data[cut:]], c.events)
    if small:
        check(c, c.data, chops(c.data, 1), c.events)
        first_error = None
        for k in range(n + 1):
            ev = parse(c.data[:k], **c.kw)
            assert events_prefix(ev, c.events), (k, ev)
            if first_error is None and ev and ev[-1][0] == "error":
                first_error = k
        if c.fail_at is not None:
            assert first_error == c.fail_at + 1
    else:
        rnd = random.Random(n + 1)
        check(c, c.data, split_at(c.data, rnd.sample(range(1, n), 30)), c.events)


@pytest.mark.parametrize("name,payload", UTF8, ids=[u[0] for u in UTF8])
def test_utf8_split_across_fragments(name, payload):
    """6.x sequences split into two fragments at every byte: the same
    verdict as whole, the failure on the same byte."""
    want = [msg(TEXT, payload)] if valid_utf8(payload) else [err(1007)]
    for cut in range(len(payload) + 1):
        data = frame(TEXT, payload[:cut], fin=False) + frame(CONT, payload[cut:])
        assert same(parse(data), want), cut
    bad, done = utf8_check([payload])
    assert done == valid_utf8(payload)


# ---- builders
@pytest.mark.parametrize("n,want", [
    (0, b"\x82\x00"), (125, b"\x82\x7d"), (126, b"\x82\x7e\x00\x7e"), (65535, b"\x82\x7e\xff\xff"),
    (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ((1 << 63) - 1, b"\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"),
    (1 << 63, b""),
])
def test_header_lengths(n, want):
    assert header(BINARY, 1, n) == want


def test_header_opcodes_and_fin():
    assert header(TEXT, 0, 3) == b"\x01\x03"
    assert header(CONT, 1, 3) == b"\x80\x03"
    assert header(PING, 1, 125) == b"\x89\x7d"
    assert header(PONG, 1, 0) == b"\x8a\x00"
    assert header(PING, 1, 126) == b""          # control frames: <= 125 bytes
    assert header(CLOSE, 0, 2) == b""           # and never fragmented
    for op in (3, 7, 11, 15, -1, 16):
        assert header(op, 1, 1) == b""


def test_server_frames_parse_back():
    """What the server builds, a lenient parser (servers do not mask) reads."""
    for n in (0, 1, 125, 126, 65535, 65536):
        data = header(BINARY, 1, n) + b"y" * n
        assert parse(data, require_mask=0, max_msg=n) == [msg(BINARY, b"y" * n)]


@pytest.mark.parametrize("code,reason,want", [
    (1000, b"", b"\x88\x02\x03\xe8"),
    (1002, b"protocol", b"\x88\x0a\x03\xeaprotocol"),
    (0, b"ignored", b"\x88\x00"),
    (1000, b"*" * 123, b"\x88\x7d\x03\xe8" + b"*" * 123),
    (1000, b"*" * 124, b"\x88\x7d\x03\xe8" + b"*" * 123),
    # cut at a character boundary: 122 bytes + a 2-byte char straddling 123
    (1009, b"*" * 122 + "é".encode(), b"\x88\x7c\x03\xf1" + b"*" * 122),
    (1009, b"*" * 121 + "é".encode() + b"*", b"\x88\x7d\x03\xf1" + b"*" * 121 + "é".encode()),
    (1009, b"*" * 121 + "€".encode(), b"\x88\x7b\x03\xf1" + b"*" * 121),
])
def test_close_frame(code, reason, want):
    out = server_close(code, reason)
    assert out == want
    ev = parse(out, require_mask=0)
    assert ev == [("close", code or 1005, out[4:])]


def test_close_code_table():
    ok = {c for c in range(0, 70000) if lib.uh_ws_close_code_ok(c)}
    assert ok == set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
