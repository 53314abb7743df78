#!/usr/bin/env python3
"""Footprint report: code size of native/ objects (64-bit and 32-bit host
builds, and every native/*.c compiled for Xtensa against the ESP32 headers
by tools/esp32-check.sh), the frozen module's bytecode, and the MicroPython
heap a server holds at rest and per connection.  Prints a markdown table
(pasted into the README).

    python3 tools/footprint.py   (after make build, make build BITS=32 and
                                  tools/esp32-check.sh)

The Xtensa rows are Debian's xtensa-lx106-elf-gcc output assembled by its
assembler: lx106 code (call0 ABI) compiled with ESP-IDF's flags and headers,
an estimate of the ESP32's (windowed ABI) code size, not a measurement of it.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CONFIGS = [
    ("defaults (max_conns=4, max_header=2048, body_buffer=8192)", "{}", False),
    ("defaults + serve()/receive() (file_block 16 KiB per connection)", "{}", True),
    ("ESP32 defaults: max_header=1024, body_buffer=2048, file_block=2048, with files",
     "{'max_header': 1024, 'body_buffer': 2048, 'file_block': 2048}", True),
    ("board-sized: max_conns=2, max_header=1024, body_buffer=1024, file_block=2048, with files",
     "{'max_conns': 2, 'max_header': 1024, 'body_buffer': 1024, 'file_block': 2048}", True),
    ("events=3 (8 KiB queue per listener)", "{'events': 3}", False),
]

# one fresh interpreter per measurement: nothing of an earlier server lingers
RAM_SCRIPT = r'''
import gc, socket, uhttpd
def heap():
    gc.collect(); gc.collect()
    return gc.mem_alloc()
def hello(req): req.write("hi")
h0 = heap()
s = uhttpd.Server(0, host="127.0.0.1", **%(kw)s)
s.route("/", uhttpd.GET, hello)
if %(files)s:
    s.serve("/f", "/tmp")
    s.receive(True, "/up")
h1 = heap()
socks = []
for i in range(3):
    c = socket.socket()
    c.connect(socket.getaddrinfo("127.0.0.1", s.port())[0][-1])
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.recv(100)
    socks.append(c)
h2 = heap()
print("RAM", h1 - h0, (h2 - h1) // 3)
for c in socks:
    c.close()
s.close()
'''


def size(tool, obj):
    out = subprocess.run([tool, str(obj)], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return int(out[0]), int(out[1]), int(out[2])


def main():
    rows = []
    for flavour, label in (("unix", "x86-64"), ("unix32", "i386")):
        d = ROOT / "build" / flavour / "native"
        if not d.exists():
            continue
        for o in sorted(d.glob("*.o")):
            rows.append((label, o.name, size("size", o)))
    xtensa = ROOT / "build" / "esp32-check" / "obj"
    if xtensa.exists():
        for o in sorted(xtensa.glob("*.o")):
            rows.append(("Xtensa (lx106 code)", o.name, size("xtensa-lx106-elf-size", o)))
    print("| build | object | text | data | bss |")
    print("|---|---|---|---|---|")
    totals = {}
    for b, name, (t, d, z) in rows:
        print("| %s | %s | %d | %d | %d |" % (b, name, t, d, z))
        totals.setdefault(b, [0, 0, 0])
        totals[b] = [totals[b][0] + t, totals[b][1] + d, totals[b][2] + z]
    for b, (t, d, z) in totals.items():
        print("| %s | **total native/** | **%d** | %d | %d |" % (b, t, d, z))
    fz = ROOT / "build" / "unix" / "frozen_mpy"
    for m in sorted(q.stem + ".mpy" for q in (ROOT / "frozen").glob("*.py")):
        p = fz / m
        if p.exists():
            print("| frozen | %s (bytecode) | %d | | |" % (m, p.stat().st_size))
    print()
    print("| MicroPython heap held by a server | at rest, 64-bit | per idle connection (incl. the script's own 3 client sockets) | at rest, i386 |")
    print("|---|---|---|---|")
    for label, kw, files in CONFIGS:
        vals = []
        for flavour in ("unix", "unix32"):
            binary = ROOT / "build" / flavour / "micropython"
            if not binary.exists():
                vals.append(("–", "–"))
                continue
            r = subprocess.run([str(binary), "-c", RAM_SCRIPT % {"kw": kw, "files": files}],
                               capture_output=True, text=True, timeout=60)
            m = re.search(r"RAM (-?\d+) (-?\d+)", r.stdout)
            vals.append(m.groups() if m else ("?", "?"))
            if r.returncode:
                print(r.stderr, file=sys.stderr)
        print("| %s | %s B | %s B | %s B |" % (label, vals[0][0], vals[0][1], vals[1][0]))


if __name__ == "__main__":
    main()
