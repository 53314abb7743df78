# Benchmark app for uhttpd over HTTPS.  argv: cert key www_dir upload_dir
# [max_conns].  Prints READY <port>.  The main program is a loop doing
# sleep_ms(1) that records the worst gap between its iterations (GET /lat
# returns it in microseconds; /lat?reset=1 returns it and starts afresh).
import sys
import gc
import time
import uhttpd

cert, key, www, updir = sys.argv[1:5]
max_conns = int(sys.argv[5]) if len(sys.argv) > 5 else 64
gc.collect()
heap0 = gc.mem_alloc()
srv = uhttpd.Server(0, host="127.0.0.1", tls=(cert, key), max_conns=max_conns, events=0,
                    routes=8)


def hello(req):
    req.write(b"Hello, World!", mime="text/plain")


def mem(req):
    gc.collect()
    req.write("%d" % (gc.mem_alloc() - heap0), mime="text/plain")


worst = [0, 0]   # worst gap (us), iterations


def lat(req):
    req.write("%d %d" % (worst[0], worst[1]), mime="text/plain")
    if req.query("reset"):
        worst[0] = 0
        worst[1] = 0


srv.route("/", uhttpd.GET, hello)
srv.route("/mem", uhttpd.GET, mem)
srv.route("/lat", uhttpd.GET, lat)
srv.serve("/files", www)
srv.receive(True, "/up")
gc.collect()
print("READY", srv.port())
last = time.ticks_us()
while True:
    time.sleep_ms(1)
    now = time.ticks_us()
    gap = time.ticks_diff(now, last)
    last = now
    if gap > worst[0]:
        worst[0] = gap
    worst[1] += 1
