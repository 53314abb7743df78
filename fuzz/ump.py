"""Python-side helpers around the cffi build of the multipart parser."""
from build_ffi_multipart import load

ffi, lib = load()

HCAP = 1024
GUARD = b"\xa5" * 16          # after the header buffer: must never change
E400 = lib.UH_E400_BAD_REQUEST
NEED_MORE, PART_BEGIN, DATA, PART_END, DONE = (lib.UH_MP_NEED_MORE, lib.UH_MP_PART_BEGIN, lib.UH_MP_DATA,
                                               lib.UH_MP_PART_END, lib.UH_MP_DONE)


class Part:
    def __init__(self, name, filename, content_type, headers):
        self.name = name
        self.filename = filename          # None when absent
        self.content_type = content_type
        self.headers = headers            # [(name, value)] as bytes
        self.data = b""
        self.ended = False

    def key(self):
        return (self.name, self.filename, self.content_type, self.data)

    def __repr__(self):
        return "Part(%r, %r, %r, %d bytes)" % (self.name, self.filename, self.content_type, len(self.data))


stats = {}           # of the last run(): bytes served from the state, DATA events


def new(ctype, hcap=HCAP):
    """A parser state (and its header buffer, kept alive with it)."""
    mp = ffi.new("uh_mp_t *")
    hbuf = ffi.new("char[]", hcap + len(GUARD))
    ffi.memmove(hbuf + hcap, GUARD, len(GUARD))
    rc = lib.uh_mp_init(mp, ctype, len(ctype), hbuf, hcap)
    return rc, (mp, hbuf, hcap)


def headers_of(span):
    blk = ffi.new("uh_span_t *")
    blk.ptr, blk.len = span.ptr, span.len
    n, v = ffi.new("uh_span_t *"), ffi.new("uh_span_t *")
    out = []
    while lib.uh_mp_header_next(blk, n, v):
        out.append((ffi.buffer(n.ptr, n.len)[:], ffi.buffer(v.ptr, v.len)[:]))
    return out


def run(ctype, pieces, hcap=HCAP):
    """Feed pieces (a list of bytes) then finish.  Returns (rc, parts, trace):
    rc is DONE or E400 (or the init error).  Checks on every call: used <=
    len, NEED_MORE consumes all, data spans lie inside the input piece or the
    state, the state stays inside its bounds."""
    rc, (mp, hbuf, hcap) = new(ctype, hcap)
    if rc != 0:
        return rc, [], []
    parts = []
    trace = []
    stats["held"] = stats["data_events"] = 0
    ev = ffi.new("uh_mp_event_t *")
    used = ffi.new("size_t *")
    mp_lo = int(ffi.cast("uintptr_t", mp))
    mp_hi = mp_lo + ffi.sizeof("uh_mp_t")
    hb_lo = int(ffi.cast("uintptr_t", hbuf))
    hb_hi = hb_lo + hcap

    def inside(span, lo, hi):
        a = int(ffi.cast("uintptr_t", span.ptr))
        return lo <= a and a + span.len <= hi

    done = False
    for piece in pieces + [None]:
        if piece is None:
            r = lib.uh_mp_finish(mp)
            trace.append(("finish", r))
            if r != DONE:
                return r, parts, trace
            break
        # the input at the very end of its own allocation
        buf = ffi.new("char[]", max(1, len(piece)))
        ffi.memmove(buf, piece, len(piece))
        b_lo = int(ffi.cast("uintptr_t", buf))
        off = 0
        calls = 0
        while True:
            calls += 1
            assert calls <= 4 * len(piece) + 8, "no progress"
            r = lib.uh_mp_feed(mp, buf + off, len(piece) - off, used, ev)
            assert used[0] <= len(piece) - off
            assert mp.hlen <= hcap and mp.m <= mp.dlen + 1 and mp.dlen <= 74 and mp.line <= mp.hlen
            assert ffi.buffer(hbuf + hcap, len(GUARD))[:] == GUARD
            trace.append((r, used[0]))
            off += used[0]
            if r == NEED_MORE:
                assert off == len(piece)
                break
            if r < 0:
                assert r == E400
                return r, parts, trace
            if r == PART_BEGIN:
                assert not done
                assert not parts or parts[-1].ended
                for s in (ev.name, ev.headers) + ((ev.filename,) if ev.has_filename else ()):
                    assert s.len == 0 or inside(s, hb_lo, hb_hi)
                fn = ffi.buffer(ev.filename.ptr, ev.filename.len)[:] if ev.has_filename else None
                if not ev.has_filename:
                    assert ev.filename.ptr == ffi.NULL and ev.filename.len == 0
                ct = ffi.buffer(ev.content_type.ptr, ev.content_type.len)[:] if ev.content_type.len else b""
                parts.append(Part(ffi.buffer(ev.name.ptr, ev.name.len)[:], fn, ct, headers_of(ev.headers)))
            elif r == DATA:
                assert parts and not parts[-1].ended and ev.data.len > 0
                assert inside(ev.data, b_lo, b_lo + len(piece)) or inside(ev.data, mp_lo, mp_hi)
                parts[-1].data += ffi.buffer(ev.data.ptr, ev.data.len)[:]
                if inside(ev.data, mp_lo, mp_hi):
                    stats["held"] += ev.data.len
                stats["data_events"] += 1
            elif r == PART_END:
                assert parts and not parts[-1].ended
                parts[-1].ended = True
            elif r == DONE:
                assert not parts or parts[-1].ended
                if done:
                    assert off == len(piece)          # the epilogue is swallowed whole
                done = True
                if off == len(piece):
                    break
            else:
                raise AssertionError("unknown event %r" % r)
    return DONE, parts, trace


def parse(ctype, body, cuts=(), hcap=HCAP):
    """Parse body split at the given cut positions."""
    pieces = []
    last = 0
    for c in sorted(set(cuts)):
        if 0 < c < len(body):
            pieces.append(body[last:c])
            last = c
    pieces.append(body[last:])
    return run(ctype, pieces, hcap)
