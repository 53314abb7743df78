# Test app: the file server and receiver under attack (design.md section 7).
# argv: root=<dir> [acl=1] [fat=1] [max_header=N] [max_conns=N] [timeout=S]
#   root  host directory: <root>/www is served at /fs, /up/<path> receives
#   acl   file_acl denies "/private" and ".../secret.txt" (403), "teapot"
#         (418); every call is logged (GET /acl-log returns and clears it)
#   fat   a FAT file system on a RAM block device at /sd (the ext_path):
#         /sd/www is served at /fat and, with ext=True, at /ext
#   jail  VfsPosix(<root>) mounted at /jail: /jail/www is served at /jfs
import sys
import time
import os
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v
root = opts["root"]


class RAMBlock:
    # the extended block protocol (offsets) as VfsFat and VfsLfs use it
    def __init__(self, n, size=512):
        self.size = size
        self.data = bytearray(n * size)

    def readblocks(self, n, buf, off=0):
        a = n * self.size + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=0):
        a = n * self.size + off
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.size
        if op == 5:
            return self.size
        return 0


def put(path, data):
    with open(path, "w") as f:
        f.write(data)


if opts.get("fat"):
    bdev = RAMBlock(400)   # 200 KiB: fits the 1 MiB heap of a 32-bit build
    os.VfsFat.mkfs(bdev)
    os.mount(os.VfsFat(bdev), "/sd")
    for d in ("/sd/www", "/sd/www/private", "/sd/www/privatedata", "/sd/www/pub"):
        os.mkdir(d)
    put("/sd/www/private/key.txt", "KEY")
    put("/sd/www/privatedata/k.txt", "K")     # 8.3 name PRIVAT~1
    put("/sd/www/secret.txt", "SECRET")
    put("/sd/www/public.txt", "PUBLIC")
    put("/sd/www/pub/index.html", "<h1>pub</h1>")

srv = uhttpd.Server(0, host="127.0.0.1", routes=20,
                    timeout=float(opts.get("timeout", "2")),
                    max_header=int(opts.get("max_header", "2048")),
                    max_conns=int(opts.get("max_conns", "4")),
                    ext_path="/sd")
srv.serve("/fs", root + "/www")
srv.serve("/nodirs", root + "/www", dirs=False)
if opts.get("jail"):
    os.mount(os.VfsPosix(root), "/jail")
    srv.serve("/jfs", "/jail/www")
if opts.get("fat"):
    srv.serve("/fat", "/sd/www")
    srv.serve("/ext", "/www", ext=True)
srv.receive(True, "/up", delete=True)

seen = []
if opts.get("acl"):
    def acl(path):
        seen.append(path)
        if "/private" in path or path.rstrip("/").endswith("/secret.txt"):
            return 403
        if "teapot" in path:
            return 418
        return uhttpd.ACL_RW
    srv.file_acl(acl)


def acl_log(req):
    # ?count=1: just how many (a deep tree's paths do not fit a 32-bit heap twice)
    req.write(str(len(seen)) if req.query("count") else "\n".join(seen), mime="text/plain")
    seen.clear()


def cat(req):
    # the file and its directory as MicroPython's VFS sees them
    p = req.query("p").decode()
    try:
        with open(p, "rb") as f:
            data = f.read()
        listing = sorted(os.listdir(p.rsplit("/", 1)[0] or "/"))
        req.write(data, headers={"X-Dir": "/".join(listing)})
    except OSError as e:
        req.write(str(e), status=404)


srv.route("/acl-log", uhttpd.GET, acl_log)
srv.route("/cat", uhttpd.GET, cat)
print("READY", srv.port())
try:
    while True:
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
