# Soak app for tools/soak.py: one server with everything on it.
# Run as `micropython -i soak.py <root> <pwd> [timeout]`: the script sets up
# the server and a dispatcher thread, prints "READY <port>", then the main
# thread drops into the REPL (waiting on a stdin nobody writes to), which is
# what the WebREPL session drives.  SSE dispatch therefore runs in a second
# thread every ~50 ms (dispatch() may be called from any thread).
import sys
import gc
import time
import _thread
import hashlib
import binascii
import uhttpd

root, pwd = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5

srv = uhttpd.Server(0, host="127.0.0.1", max_conns=8, events=3, routes=16,
                    timeout=timeout, event_ping=5)
srv.ws("/", pwd)
ticks = [0]   # events dispatched so far


def hello(req):
    req.write(b"hello soak\n", mime="text/plain")


def mem(req):
    # gc.collect() first so that free/alloc are the live heap, not garbage
    gc.collect()
    req.write("%d %d %d %d" % (gc.mem_free(), gc.mem_alloc(), srv._core.listeners(), ticks[0]),
              mime="text/plain", headers={"Cache-Control": "no-store"})


buf = bytearray(2048)


def echo(req):
    # reads the whole body in blocks (no body-sized allocation) and answers
    # "<sha256 hex> <length>"; a client that vanishes mid-body ends it
    h = hashlib.sha256()
    n = 0
    mv = memoryview(buf)
    try:
        while True:
            r = req.readinto(buf)
            if not r:
                break
            h.update(mv[:r])
            n += r
    except OSError:
        return
    req.write("%s %d" % (binascii.hexlify(h.digest()).decode(), n), mime="text/plain")


def stream(req):
    # n chunks "chunk <i> " + 'x' * (i % 97): the driver rebuilds and compares
    n = int(req.query("n") or b"10")
    for i in range(n):
        req.send_chunk("chunk %d %s\n" % (i, "x" * (i % 97)), mime="text/plain")
    req.send_chunk(None)


srv.route("/", uhttpd.GET, hello)
srv.route("/mem", uhttpd.GET, mem)
srv.route("/echo", uhttpd.POST, echo)
srv.route("/stream", uhttpd.GET, stream)
srv.event("/events")
srv.serve("/files", root)
srv.receive(True, "/up", delete=True)

PAD = "p" * 200


def pump():
    # the "main loop" of a board program: an event every ~50 ms
    n = 0
    while True:
        n += 1
        srv.dispatch("tick %d %s" % (n, PAD), "tick" if n % 10 == 0 else None)
        ticks[0] = n
        time.sleep_ms(50)


_thread.start_new_thread(pump, ())
gc.collect()
print("READY", srv.port())
