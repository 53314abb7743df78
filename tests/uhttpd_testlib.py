"""Helpers: start the built unix micropython with an app script on an
ephemeral loopback port and talk to it with real clients."""
import os
import pathlib
import select
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = os.path.abspath(os.environ.get("UHTTPD_BINARY", str(ROOT / "build" / "unix" / "micropython")))
APPS = pathlib.Path(__file__).resolve().parent / "apps"


class Running:
    def __init__(self, proc, port, logpath):
        self.proc = proc
        self.port = port
        self.host = "127.0.0.1"
        self.url = "http://127.0.0.1:%d" % port
        self.logpath = logpath

    def log(self):
        return pathlib.Path(self.logpath).read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def raw(self, data, timeout=5.0, read_until_close=True):
        """Send raw bytes, return everything received until close/timeout."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                out += b
                if not read_until_close:
                    break
            return out
        finally:
            s.close()

    def connect(self, timeout=5.0):
        return socket.create_connection((self.host, self.port), timeout=timeout)


def start_app(app, *args, env=None, tmp_path=None, heapsize=None, timeout=20.0, interactive=False):
    """Run tests/apps/<app>.py; it prints 'READY <port>' once serving.
    interactive: run it with -i (the REPL follows the script, reading a
    pipe nobody writes to), as the WebREPL needs on unix."""
    script = APPS / (app + ".py")
    cmd = [BINARY]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    if interactive:
        cmd.append("-i")
    cmd += [str(script)] + [str(a) for a in args]
    logdir = tmp_path or pathlib.Path(os.environ.get("TMPDIR", "/tmp"))
    logpath = str(pathlib.Path(logdir) / ("%s-%d.stderr" % (app, time.monotonic_ns())))
    errf = open(logpath, "wb")
    e = dict(os.environ)
    e["MICROPYPATH"] = str(APPS) + ":.frozen"
    if env:
        e.update(env)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=e,
                            stdin=subprocess.PIPE if interactive else None, cwd=str(logdir))
    errf.close()
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            ch = proc.stdout.readline()
            if not ch:
                break
            line = ch
            if line.startswith(b"READY "):
                return Running(proc, int(line.split()[1]), logpath)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("app %s did not start: %r\n%s" % (app, line, open(logpath).read()))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Segmentation fault", "SUMMARY: UndefinedBehaviorSanitizer",
                   "lwIP rule broken")   # the STRICT=1 build (native/uh_io.c)


def sanitizer_report(text):
    return [m for m in SANITIZER_MARKS if m in text]


def stop_app(r):
    if r.proc.poll() is None:
        r.proc.kill()
    r.proc.wait(5)
    if r.proc.stdout:
        r.proc.stdout.close()
    bad = sanitizer_report(r.log())
    assert not bad, "sanitizer/crash report in %s:\n%s" % (r.logpath, r.log()[-4000:])


