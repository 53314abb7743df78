# Test app: a VfsPosix with a non-empty root mounted at /sd (as an SD card
# would be on a board) and the receiver writing only there.
# argv: root=<host dir to mount>.  Prints READY <port>.
import sys
import time
import os
import uhttpd

opts = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    opts[k] = v

os.mount(os.VfsPosix(opts["root"]), "/sd")
srv = uhttpd.Server(0, host="127.0.0.1", timeout=2)   # ext_path defaults to /sd
srv.receive(True, "/up", extonly=True, delete=True)
srv.serve("/get", "/sd")
print("READY", srv.port())
try:
    while True:
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
