# Benchmark app for uhttpd.  argv: www_dir upload_dir [max_conns] [events] [files: 0 = none]
import sys
import gc
import time
import uhttpd

www, updir = sys.argv[1], sys.argv[2]
max_conns = int(sys.argv[3]) if len(sys.argv) > 3 else 64
gc.collect()
heap0 = gc.mem_alloc()
events = int(sys.argv[4]) if len(sys.argv) > 4 else 3
# max_body: a 16 MiB file as multipart/form-data is a little over 16 MiB
srv = uhttpd.Server(0, host="127.0.0.1", max_conns=max_conns, events=events, routes=12,
                    max_body=64 * 1024 * 1024)
gc.collect()
heap_server = gc.mem_alloc() - heap0


def hello(req):
    req.write(b"Hello, World!", mime="text/plain")


def mem(req):
    gc.collect()
    req.write("%d %d" % (gc.mem_alloc() - heap0, heap_server), mime="text/plain")


fire = [0]


def trigger(req):
    fire[0] = int(req.query("n") or b"1000")
    req.write("ok")


result = [b""]


def res(req):
    req.write(result[0])


def form(req):
    f = req.form()
    req.write("%s %s %s %s" % (f["user"], f["pwd"], f["remember"], f["next"]), mime="text/plain")


srv.route("/", uhttpd.GET, hello)
srv.route("/form", uhttpd.POST, form)
srv.route("/mem", uhttpd.GET, mem)
srv.route("/fire", uhttpd.GET, trigger)
srv.route("/result", uhttpd.GET, res)
if events:
    srv.event("/events")
if len(sys.argv) <= 5 or sys.argv[5] != "0":
    srv.serve("/files", www)
    srv.receive(True, "/up")
gc.collect()
heap_files = gc.mem_alloc() - heap0
print("READY", srv.port(), heap_server, heap_files)
while True:
    if fire[0]:
        n = fire[0]
        fire[0] = 0
        # dispatch from the MAIN thread: never blocks on the network
        t = time.ticks_us()
        for i in range(n):
            srv.dispatch("event %d" % i)
        worst = time.ticks_diff(time.ticks_us(), t)
        result[0] = str(worst).encode()
    time.sleep_ms(1)
