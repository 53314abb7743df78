# Test app: file server + receiver.  argv: root=<dir> [acl=1] [ram=1] [block=N]
import sys
import time
import os
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v
root = opts["root"]

if opts.get("ram"):
    # a tiny LittleFS on a RAM block device: a real "disk full"
    class RAMBlock:
        def __init__(self, n, size=512):
            self.size = size
            self.data = bytearray(n * size)

        def readblocks(self, n, buf, off=0):
            a = n * self.size + off
            buf[:] = self.data[a:a + len(buf)]

        def writeblocks(self, n, buf, off=None):
            if off is None:
                self.ioctl(6, n)
                off = 0
            a = n * self.size + off
            self.data[a:a + len(buf)] = buf

        def ioctl(self, op, arg):
            if op == 4:
                return len(self.data) // self.size
            if op == 5:
                return self.size
            if op == 6:
                a = arg * self.size
                self.data[a:a + self.size] = b"\xff" * self.size
                return 0

    bdev = RAMBlock(64)
    os.VfsLfs2.mkfs(bdev)
    os.mount(os.VfsLfs2(bdev), "/ram")
    with open("/ram/keep.txt", "w") as f:
        f.write("original content\n")

kw = {}
if "block" in opts:
    kw["file_block"] = int(opts["block"])
if "max_body" in opts:
    kw["max_body"] = int(opts["max_body"])
srv = uhttpd.Server(0, host="127.0.0.1", routes=20, timeout=float(opts.get("timeout", "2")),
                    ext_path=root + "/sd", **kw)
srv.serve("/fs", root + "/www")
srv.serve("/nodirs", root + "/www", dirs=False)
srv.serve("/ext", root + "/www", ext=True)
srv.receive(True, "/up", delete=True)
srv.receive(False, "/upload")
srv.receive(True, "/sdonly", extonly=True)

if opts.get("acl"):
    seen = []

    def acl(path):
        seen.append(path)
        if "private" in path:
            return 403
        if "teapot" in path:
            return 418
        if "readonly" in path:
            return uhttpd.ACL_RO
        if "writeonly" in path:
            return uhttpd.ACL_WO
        if "bogus" in path:
            return "yes"
        return uhttpd.ACL_RW
    srv.file_acl(acl)

    def acl_log(req):
        req.write("\n".join(seen), mime="text/plain")
        seen.clear()
    srv.route("/acl-log", uhttpd.GET, acl_log)

def cat(req):
    p = req.query("p").decode()
    try:
        with open(p, "rb") as f:
            data = f.read()
        listing = sorted(os.listdir(p.rsplit("/", 1)[0] or "/"))
        req.write(data, headers={"X-Dir": ",".join(listing)})
    except OSError as e:
        req.write(str(e), status=404)


srv.route("/cat", uhttpd.GET, cat)
print("READY", srv.port())
try:
    while True:
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
