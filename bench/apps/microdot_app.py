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
from microdot.multipart import FormDataIter, FileUpload

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


# multipart uploads, Microdot's streaming way: FormDataIter + FileUpload.save.
# ?buf=N sets FormDataIter.buffer_size (default 256 bytes; save() reads the
# class attribute, so it is set for the request; the app is single-threaded)


@app.post("/mp/<path:path>")
async def mp_upload(request, path):
    FormDataIter.buffer_size = int(request.args.get("buf", "256"))
    stored = []
    async for name, value in FormDataIter(request):
        if isinstance(value, FileUpload):
            await value.save("/" + path + value.filename)
            stored.append(value.filename)
    return str(stored), 201


@app.post("/form")
async def form(request):
    f = request.form
    return "%s %s %s %s" % (f["user"], f["pwd"], f["remember"], f["next"]), 200, {"Content-Type": "text/plain"}


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
