"""A raw WebSocket client for the tests (test_ws_conformance.py,
test_websocket.py): byte-exact client frames (masked as RFC 6455 asks, or
deliberately wrong) and every server frame checked on the way in
(unmasked, RSV 0, the shortest length form)."""
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY_OP, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def frame(op, payload=b"", fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | op])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    stream = (key * (len(payload) // 4 + 1))[:len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(payload), "big") \
        if payload else b""
    return head + key + masked


def close_frame(code=None, reason=b""):
    return frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


class Raw:
    """A WebSocket client on a plain socket: byte-exact frames out, every
    server frame checked on the way in."""

    def __init__(self, port, path="/echo", key=b"dGhlIHNhbXBsZSBub25jZQ==", extra=b"", timeout=10,
                 after=b"", rcvbuf=None):
        """extra: more header lines; after: bytes sent in the same packet
        as the handshake; rcvbuf: a small SO_RCVBUF (a client slow to read)."""
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if key is None:
            key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n%s"
                       % (path.encode(), port, key, extra, after))
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.s.recv(4096)
            assert b, "closed during the handshake: %r" % head
            head += b
        self.head, _, self.buf = head.partition(b"\r\n\r\n")
        self.status = int(self.head.split(b" ", 2)[1])
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            lines = self.head.lower().split(b"\r\n")
            assert b"sec-websocket-accept: " + accept.lower() in lines, self.head
            assert b"upgrade: websocket" in lines

    def send(self, data):
        """Send; a server that has failed the connection may reset it while
        the rest is still going out (the close frame it sent must still
        arrive: it half-closes and drains before it closes)."""
        try:
            self.s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_pieces(self, pieces):
        for p in pieces:
            self.send(p)

    def _read(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("connection closed after %r" % self.buf[:40])
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        """(fin, opcode, payload) of the next server frame, checked."""
        b0, b1 = self._read(2)
        assert b0 & 0x70 == 0, "server frame with RSV bits"
        assert b1 & 0x80 == 0, "server frames must not be masked (RFC 6455 5.1)"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
            assert n >= 126, "non-minimal 16-bit length"
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
            assert n >= 65536 and not n >> 63, "non-minimal or invalid 64-bit length"
        op = b0 & 0x0F
        if op & 8:
            assert b0 & 0x80 and n <= 125, "bad control frame from the server"
        return bool(b0 & 0x80), op, self._read(n)

    def recv_message(self):
        """(opcode, payload) of the next data message (fragments joined);
        control frames in between fail the test."""
        fin, op, data = self.recv_frame()
        assert op in (TEXT, BINARY_OP), (op, data[:40])
        while not fin:
            fin, cop, more = self.recv_frame()
            assert cop == CONT, cop
            data += more
        if op == TEXT:
            data.decode("utf-8")
        return op, data

    def expect_close(self, code, reply=True):
        """The next frame is a close with `code` (None: empty or 1000);
        answer it, then the server closes the TCP connection."""
        fin, op, data = self.recv_frame()
        assert op == CLOSE, (op, data[:60])
        got = struct.unpack("!H", data[:2])[0] if data else None
        if code is None:
            assert got in (None, 1000), got
        else:
            assert got == code, (got, data[2:])
        data[2:].decode("utf-8")
        if reply:
            try:
                self.s.sendall(close_frame(got if got else None))
            except OSError:
                pass
        self.expect_eof()
        return got

    def expect_eof(self):
        """The server closes the TCP connection; nothing but EOF follows."""
        try:
            rest = self.buf + self.s.recv(65536)
            while True:
                b = self.s.recv(65536)
                if not b:
                    break
                rest += b
        except ConnectionResetError:
            rest = self.buf
        assert rest == b"", "data after the close: %r" % rest[:80]
        self.close()

    def close(self):
        self.s.close()
