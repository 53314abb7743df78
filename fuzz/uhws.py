"""Python-side helpers around the cffi build of native/uh_wsframe.c, and a
small frame builder (the client side, which the C file does not need)."""
import os
import struct

from build_ffi import load

ffi, lib = load("_uh_wsframe")

TEXT, BINARY, CONT = lib.UH_WS_OP_TEXT, lib.UH_WS_OP_BINARY, lib.UH_WS_OP_CONT
CLOSE, PING, PONG = lib.UH_WS_OP_CLOSE, lib.UH_WS_OP_PING, lib.UH_WS_OP_PONG
ERROR_CODES = {1002, 1007, 1009}


def frame(op, payload=b"", fin=True, mask=True, rsv=0, length=None, form=None):
    """One client frame.  mask: True (random key), a 4-byte key, or False.
    length: the length to declare (default len(payload)); form: force the
    7/16/64-bit length form (non-minimal encodings)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | op
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    key = os.urandom(4) if mask is True else (mask or b"")
    mbit = 0x80 if key else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    return head + key + (mask_bytes(payload, key) if key else payload)


def mask_bytes(payload, key):
    """XOR with the repeated 4-byte key (section 5.3), fast for megabytes."""
    if not payload:
        return b""
    stream = (key * (len(payload) // 4 + 1))[:len(payload)]
    n = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return n.to_bytes(len(payload), "big")


def close_frame(code=None, reason=b"", mask=True):
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(CLOSE, payload, mask=mask)


class Parser:
    """One uh_wsp_t with its own message buffer."""

    def __init__(self, max_msg=1 << 16, require_mask=1, check_utf8=1):
        self.p = ffi.new("uh_wsp_t *")
        self.buf = ffi.new("uint8_t[]", max(1, max_msg))
        self.p.msg = self.buf if max_msg else ffi.NULL
        self.p.max_msg = max_msg
        self.p.require_mask = require_mask
        self.p.check_utf8 = check_utf8
        self.done = False

    def event(self, ev):
        p = self.p
        if ev == lib.UH_WS_EV_MESSAGE:
            assert p.opcode in (TEXT, BINARY) and p.msg_len <= p.max_msg
            return ("message", p.opcode, bytes(ffi.buffer(p.msg, p.msg_len)) if p.msg_len else b"")
        if ev in (lib.UH_WS_EV_PING, lib.UH_WS_EV_PONG):
            assert p.ctrl_len <= 125
            name = "ping" if ev == lib.UH_WS_EV_PING else "pong"
            return (name, bytes(p.ctrl[0:p.ctrl_len]))
        if ev == lib.UH_WS_EV_CLOSE:
            assert p.ctrl_len <= 123
            return ("close", p.code, bytes(p.ctrl[0:p.ctrl_len]))
        assert ev == lib.UH_WS_EV_ERROR, ev
        assert p.code in ERROR_CODES and p.why != ffi.NULL
        return ("error", p.code, ffi.string(p.why).decode())

    def feed(self, data):
        """Feed one slice; returns the events it produced.  The slice sits at
        the very end of its own allocation."""
        out = []
        buf = ffi.new("uint8_t[]", max(1, len(data)))
        ffi.memmove(buf, data, len(data))
        used = ffi.new("size_t *")
        off = 0
        while not self.done:
            ev = lib.uh_wsp_feed(self.p, buf + off, len(data) - off, used)
            assert used[0] <= len(data) - off
            off += used[0]
            if ev == lib.UH_WS_EV_NEED_MORE:
                assert off == len(data)
                break
            out.append(self.event(ev))
            if ev in (lib.UH_WS_EV_CLOSE, lib.UH_WS_EV_ERROR):
                self.done = True
                # sticky: the same event again, nothing consumed
                ev2 = lib.uh_wsp_feed(self.p, buf, len(data), used)
                assert ev2 == ev and used[0] == 0 and self.event(ev2) == out[-1]
            elif off == len(data):
                break
        return out


def parse(data, pieces=None, **kw):
    """Events for data fed whole, or as the given pieces."""
    p = Parser(**kw)
    out = []
    for piece in (pieces if pieces is not None else [data]):
        out += p.feed(piece)
    return out


def split_at(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def utf8_check(pieces):
    """(index of the first bad byte or None, complete) over the pieces."""
    st = ffi.new("uh_utf8_t *")
    off = 0
    for piece in pieces:
        buf = ffi.new("uint8_t[]", max(1, len(piece)))
        ffi.memmove(buf, piece, len(piece))
        k = lib.uh_utf8_feed(st, buf, len(piece))
        assert k <= len(piece)
        if k < len(piece):
            assert not lib.uh_utf8_done(st)
            assert lib.uh_utf8_feed(st, buf, len(piece)) == 0
            return off + k, False
        off += len(piece)
    return None, bool(lib.uh_utf8_done(st))


def header(op, fin, n):
    out = ffi.new("uint8_t[10]")
    k = lib.uh_ws_header(out, op, fin, n)
    return bytes(out[0:k])


def server_close(code, reason=b""):
    out = ffi.new("uint8_t[127]")
    k = lib.uh_ws_close_frame(out, code, reason, len(reason))
    return bytes(out[0:k])
