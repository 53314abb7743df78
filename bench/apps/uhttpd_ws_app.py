# WebSocket benchmark app for uhttpd.  argv: [ws_queue bytes, 0 = default]
# /echo: echo (8 clients), /bc: broadcast listeners (8 clients), /mem: heap
# in use, /count: open /bc clients, /fire?n=N&len=L: the MAIN thread calls
# broadcast("/bc", <L chars>) N times; /result: "<µs in the N calls> <clients
# reached by the last call>".  Prints READY <port> <heap of the two
# websocket() calls>.
import sys
import gc
import time
import _thread
import uhttpd

wsq = int(sys.argv[1]) if len(sys.argv) > 1 else 0
gc.collect()
heap0 = gc.mem_alloc()
srv = uhttpd.Server(0, host="127.0.0.1", max_conns=8, routes=8, ws_queue=wsq or None)
gc.collect()
h1 = gc.mem_alloc()


def echo(ws, msg):
    ws.send(msg)


def nothing(ws, msg):
    pass


live = [0]


def opened(ws):
    live[0] += 1


def closed(ws, code):
    live[0] -= 1


srv.websocket("/echo", echo, clients=8)
srv.websocket("/bc", nothing, clients=8, on_open=opened, on_close=closed)
gc.collect()
heap_ws = gc.mem_alloc() - h1

fire = [0, 64]
result = [b"0 0"]
go = _thread.allocate_lock()
go.acquire()


def mem(req):
    gc.collect()
    req.write(str(gc.mem_alloc() - heap0), mime="text/plain")


def count(req):
    req.write(str(live[0]), mime="text/plain")


def trigger(req):
    fire[0] = int(req.query("n") or b"1000")
    fire[1] = int(req.query("len") or b"64")
    go.release()
    req.write("ok")


def res(req):
    req.write(result[0])


srv.route("/mem", uhttpd.GET, mem)
srv.route("/count", uhttpd.GET, count)
srv.route("/fire", uhttpd.GET, trigger)
srv.route("/result", uhttpd.GET, res)
print("READY", srv.port(), heap_ws)
while True:
    go.acquire()          # blocks (GIL released) until /fire
    n, msg = fire[0], "x" * fire[1]
    # broadcast from the MAIN thread: never waits on the network
    t = time.ticks_us()
    for i in range(n):
        got = srv.broadcast("/bc", msg)
    us = time.ticks_diff(time.ticks_us(), t)
    result[0] = ("%d %d" % (us, got)).encode()
