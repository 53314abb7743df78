# WebSocket benchmark app for Microdot 2.7 (microdot.websocket) on the same
# micropython binary; the same urls as uhttpd_ws_app.py.
# argv: microdot_dir port
import sys
sys.path.insert(0, sys.argv[1])
import gc
import time
gc.collect()
heap0 = gc.mem_alloc()
from microdot import Microdot
from microdot.websocket import with_websocket

app = Microdot()
clients = []
result = ["0 0"]


@app.route("/echo")
@with_websocket
async def echo(request, ws):
    while True:
        msg = await ws.receive()
        await ws.send(msg)


@app.route("/bc")
@with_websocket
async def bc(request, ws):
    clients.append(ws)
    try:
        while True:
            await ws.receive()
    finally:
        clients.remove(ws)


@app.route("/mem")
async def mem(request):
    gc.collect()
    return str(gc.mem_alloc() - heap0), 200, {"Content-Type": "text/plain"}


@app.route("/count")
async def count(request):
    return str(len(clients)), 200, {"Content-Type": "text/plain"}


@app.route("/fire")
async def fire(request):
    # Microdot has no broadcast: loop over the sockets
    n = int(request.args.get("n", "1000"))
    msg = "x" * int(request.args.get("len", "64"))
    t = time.ticks_us()
    for i in range(n):
        for ws in clients:
            await ws.send(msg)
    result[0] = "%d %d" % (time.ticks_diff(time.ticks_us(), t), len(clients))
    return "ok"


@app.route("/result")
async def res(request):
    return result[0]


app.run(host="127.0.0.1", port=int(sys.argv[2]))
