# Benchmark app for Microdot 2.7 on the same micropython binary.
# argv: microdot_dir www_dir upload_dir
import sys
sys.path.insert(0, sys.argv[1])
import gc
import asyncio
gc.collect()
heap0 = gc.mem_alloc()
from microdot import Microdot, Request, send_file
from microdot.sse import with_sse

www, updir = sys.argv[2], sys.argv[3]
app = Microdot()
Request.max_content_length = 64 * 1024 * 1024  # allow 16 MiB uploads
Request.max_body_length = 16 * 1024            # larger bodies are streamed
fire = asyncio.Event()
state = {"n": 1000}


@app.route("/")
async def index(request):
    return "Hello, World!", 200, {"Content-Type": "text/plain"}


@app.route("/mem")
async def mem(request):
    gc.collect()
    return "%d 0" % (gc.mem_alloc() - heap0), 200, {"Content-Type": "text/plain"}


@app.route("/files/<path:path>")
async def files(request, path):
    return send_file(www + "/" + path)


@app.route("/up/<path:path>", methods=["POST", "PUT"])
async def upload(request, path):
    left = request.content_length
    with open("/" + path, "wb") as f:
        while left > 0:
            chunk = await request.stream.read(min(16384, left))
            if not chunk:
                break
            f.write(chunk)
            left -= len(chunk)
    return "", 201


@app.route("/fire")
async def trigger(request):
    state["n"] = int(request.args.get("n", "1000"))
    fire.set()
    await asyncio.sleep(0)
    fire.clear()
    return "ok"


@app.route("/events")
@with_sse
async def events(request, sse):
    while True:
        await fire.wait()
        for i in range(state["n"]):
            await sse.send("event %d" % i)
        await asyncio.sleep(0.05)


print("READY", 0)
app.run(host="127.0.0.1", port=int(sys.argv[4]))
