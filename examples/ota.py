# Over-the-air firmware update through uhttpd.
#
#   curl --data-binary @micropython.bin \
#        -H "X-SHA256: $(sha256sum micropython.bin | cut -d' ' -f1)" \
#        http://<board>/ota
#
# micropython.bin is the application image (build-<BOARD>/micropython.bin,
# or the .app-bin download); firmware.bin also holds the bootloader and the
# partition table and must not go into an OTA slot.
#
# The image streams straight into the next OTA partition (4 KiB at a time:
# it never has to fit in RAM); the partition becomes the boot partition only
# when the SHA-256 of what was written matches the one the client sent.
# Replies: 200 (switched; reset to boot it), 400 (no/invalid X-SHA256),
# 409 (hash mismatch: nothing switched), 411, 413 (larger than the
# partition), 500 (flash error).
#
# On ESP32 it uses esp32.Partition.  On the unix host build the same code
# runs against FilePartition, a file-backed stand-in with the same API.
import hashlib
import uhttpd

BLOCK = 4096


class FilePartition:
    """Host stand-in for esp32.Partition: a file of `size` bytes per
    partition ("ota_0", "ota_1") and a boot marker file."""

    def __init__(self, base, label="ota_0", size=256 * 1024):
        self.base = base
        self.label = label
        self.size = size
        path = self._path()
        try:
            open(path, "rb").close()
        except OSError:
            with open(path, "wb") as f:
                f.write(b"\xff" * size)

    def _path(self):
        return "%s/%s.bin" % (self.base, self.label)

    def get_next_update(self):
        return FilePartition(self.base, "ota_1" if self.label == "ota_0" else "ota_0", self.size)

    def ioctl(self, op, arg):
        if op == 4:   # block count
            return self.size // BLOCK
        if op == 5:   # block size
            return BLOCK
        return 0

    def writeblocks(self, block, buf):
        with open(self._path(), "r+b") as f:
            f.seek(block * BLOCK)
            f.write(buf)

    def readblocks(self, block, buf):
        with open(self._path(), "rb") as f:
            f.seek(block * BLOCK)
            f.readinto(buf)

    def set_boot(self):
        with open(self.base + "/boot", "w") as f:
            f.write(self.label)

    def info(self):
        return (0, 0, 0, self.size, self.label, False)


def running_partition(base=None):
    try:
        import esp32
        return esp32.Partition(esp32.Partition.RUNNING)
    except ImportError:
        return FilePartition(base or "/tmp/uhttpd-ota")


def ota_handler(running):
    buf = bytearray(BLOCK)

    def handler(req):
        want = req.header("x-sha256")
        if want is None or len(want) != 64:
            return req.write("X-SHA256: <64 hex digits> required\n", status=400, mime="text/plain")
        want = want.decode().lower()
        n = req.length()
        if not n:   # None (chunked) or 0
            return req.write("Content-Length required\n", status=411, mime="text/plain")
        target = running.get_next_update()
        if n > target.ioctl(4, 0) * BLOCK:
            return req.write("image larger than the partition\n", status=413, mime="text/plain")
        h = hashlib.sha256()
        block = 0
        got = 0
        while got < n:
            # fill a whole block (the last one padded with 0xff)
            k = 0
            while k < BLOCK and got < n:
                r = req.readinto(memoryview(buf)[k:min(BLOCK, k + n - got)])
                if not r:
                    return req.write("short body\n", status=400, mime="text/plain")
                k += r
                got += r
            h.update(memoryview(buf)[:k])
            for i in range(k, BLOCK):
                buf[i] = 0xFF
            target.writeblocks(block, buf)
            block += 1
        digest = h.digest()   # MicroPython: digest() finalises the hash
        have = "".join("%02x" % b for b in digest)
        if have != want:
            return req.write("sha256 mismatch: got %s\n" % have, status=409, mime="text/plain")
        # read it back before switching: what is on flash must hash the same
        h2 = hashlib.sha256()
        left = n
        for b in range(block):
            target.readblocks(b, buf)
            h2.update(memoryview(buf)[:min(BLOCK, left)])
            left -= BLOCK
        if h2.digest() != digest:
            return req.write("verify failed\n", status=500, mime="text/plain")
        target.set_boot()
        req.write("ok: %d bytes, next boot from %s\n" % (n, target.info()[4]), mime="text/plain")

    return handler


def main(port=8080, base=None, host="0.0.0.0"):
    srv = uhttpd.Server(port, host=host)
    srv.route("/ota", uhttpd.POST, ota_handler(running_partition(base)))
    return srv


if __name__ == "__main__":
    import sys
    import time
    base = sys.argv[1] if len(sys.argv) > 1 else "/tmp/uhttpd-ota"
    try:
        import os
        os.mkdir(base)
    except OSError:
        pass
    srv = main(0 if "--port0" in sys.argv else 8080, base, "127.0.0.1")
    print("READY", srv.port())
    while True:
        time.sleep(1)
