#!/usr/bin/env python3
"""Soak and chaos run for uhttpd (`make soak`).

Starts the built unix micropython with bench/apps/soak.py (one Server with
max_conns=8, events=3, Python routes, serve() + receive(delete=True) on a
temporary directory, SSE dispatched every ~50 ms, the WebREPL on '/') and
throws mixed load at it for --seconds (default 600, or $SOAK_SECONDS):
routes, 404s, downloads checked by hash, uploads with unique names (and two
threads uploading one shared name), clients that vanish mid-head, mid-body
and mid-response, tricklers (1 byte every 2-3 s on a head and on an upload
body), SSE listeners that never read, WebREPL logins with wrong passwords
and now and then the right one running a statement.

At the end, once the server is idle again, it checks the files on disk
directly and reports requests by kind and status, errors by kind, files
verified, leftover temporaries, MicroPython heap (gc.collect() then
mem_free/mem_alloc), file descriptors and threads (/proc/<pid>) at start and
end, and whether the server still answers.  The report goes to stdout and,
as markdown, to --out (bench/soak.md).

Exit status 1 when a correctness target fails: a file that does not hold
what it should (hash mismatch, a completed upload missing, a vanished upload
that left a file or damaged the old one), a leftover temporary (*.uhtmp*),
a download/echo/stream body that differs, the server not answering at the
end (or dead), a crash or sanitizer report, or descriptors above the start
count by more than --fd-tolerance once idle.  Timings, heap and thread
counts are reported, never asserted.
"""
import argparse
import collections
import datetime
import hashlib
import os
import pathlib
import platform
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import requests
import websocket

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = ROOT / "bench" / "apps" / "soak.py"
PWD = "soakpw"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Segmentation fault", "SUMMARY: UndefinedBehaviorSanitizer")
# worker kind -> threads (override with --workers kind=n,...)
WORKERS = collections.OrderedDict([
    ("get", 2), ("notfound", 1), ("download", 2), ("upload", 2), ("echo", 1),
    ("shared", 2), ("vanish", 1), ("trickle-head", 2), ("trickle-body", 2),
    ("sse-mute", 2), ("sse-read", 1), ("repl", 1),
])
WWW = {"empty.txt": 0, "small.txt": 100, "page.html": 4095, "block.bin": 4096,
       "mid.bin": 65543, "big.bin": 1 << 20}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def is_reply(status):
    """An HTTP status (200, "503 (max_conns)"), not an outcome label."""
    return isinstance(status, int) or str(status)[:3].isdigit()


def classify(e):
    """Short name for a client-side failure."""
    if isinstance(e, (requests.Timeout, socket.timeout, TimeoutError,
                      websocket.WebSocketTimeoutException)):
        return "timeout"
    t = repr(e)
    for needle, name in (("ConnectionRefused", "refused"), ("Connection refused", "refused"),
                         ("ConnectionReset", "reset"), ("reset by peer", "reset"),
                         ("BrokenPipe", "broken pipe"), ("Broken pipe", "broken pipe"),
                         ("RemoteDisconnected", "closed, no reply"),
                         ("closed connection without response", "closed, no reply"),
                         ("IncompleteRead", "short body"), ("ChunkedEncodingError", "short body"),
                         ("timed out", "timeout"), ("Read timed out", "timeout"),
                         ("WebSocketConnectionClosed", "closed, no reply")):
        if needle in t:
            return name
    return type(e).__name__


class Stopping(Exception):
    """The run is over: leave the current exchange."""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.req = collections.Counter()     # (kind, status) -> n
        self.err = collections.Counter()     # (kind, error) -> n
        self.misc = collections.Counter()
        self.holds = collections.defaultdict(list)   # trickler kind -> [(seconds, how it ended)]
        self.failures = collections.Counter()   # correctness failure -> times seen
        self.bugs = 0

    def status(self, kind, code, body=b""):
        """Count a reply; a 503 is labelled by the limit that sent it."""
        if code == 503:
            body = body if isinstance(body, bytes) else body.encode(errors="replace")
            if b"REPL" in body:
                code = "503 (REPL session active)"
            elif b"event listeners" in body:
                code = "503 (events full)"
            else:
                code = "503 (max_conns)"
        with self.lock:
            self.req[(kind, code)] += 1
            if code == 408 or str(code).startswith("503"):
                self.err[(kind, str(code))] += 1

    def reply(self, kind, r):
        self.status(kind, r.status_code, r.content if r.status_code == 503 else b"")

    def error(self, kind, e):
        name = e if isinstance(e, str) else classify(e)
        with self.lock:
            self.req[(kind, "error")] += 1
            self.err[(kind, name)] += 1

    def count(self, what, n=1):
        with self.lock:
            self.misc[what] += n

    def fail(self, cat, msg):
        """A correctness failure; cat is "file" (what is on disk) or "body"
        (a reply that differs from what was sent or served)."""
        with self.lock:
            if msg in self.failures or len(self.failures) < 200:
                self.failures[msg] += 1
            self.misc["failures"] += 1
            self.misc["failures: " + cat] += 1

    def hold(self, kind, seconds, how):
        with self.lock:
            self.holds[kind].append((seconds, how))


class Expect:
    """What each path under the upload dir must hold at the end.  A path
    maps to (acceptable sha256 set, absent allowed).  Every path but the
    shared one has a single owner thread, so updates never race."""

    def __init__(self):
        self.lock = threading.Lock()
        self.paths = {}

    def set(self, path, ok, absent_ok):
        with self.lock:
            self.paths[path] = (set(ok), absent_ok)

    def widen(self, path, h):
        """An attempt whose outcome is unknown: its body or the old state."""
        with self.lock:
            ok, absent = self.paths.get(path, (set(), True))
            self.paths[path] = (ok | {h}, absent)

    def get(self, path):
        with self.lock:
            return self.paths.get(path, (set(), True))


def rst_close(s):
    """Vanish abruptly: RST instead of FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def vanish(s, rng):
    if rng.random() < 0.5:
        rst_close(s)
    else:
        s.close()


def read_status(s, timeout):
    """Read the status line of a reply on a raw socket; an error reply is
    read to its end.  Returns (code or None on EOF, bytes read)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n" not in data and len(data) < 256:
        b = s.recv(256 - len(data))
        if not b:
            break
        data += b
    if not (data.startswith(b"HTTP/1.") and len(data) >= 12):
        return None, data
    code = int(data[9:12])
    if code >= 300:
        try:
            while len(data) < 4096:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        except OSError:
            pass
    return code, data


def peer_closed(s, seconds=2.0):
    """Drain what is buffered for up to `seconds`: True if the peer has
    closed (EOF or reset), False if it is still sending or silent."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            if not s.recv(65536):
                return True
    except socket.timeout:
        pass
    except OSError:
        return True
    return False


class Soak:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.expect = Expect()
        self.stop = threading.Event()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="uhttpd-soak-"))
        self.root = self.tmp / "fs"           # served and written by the server
        self.www = self.root / "www"
        self.updir = self.root / "up"
        self.www.mkdir(parents=True)
        self.updir.mkdir()
        rng = random.Random(args.seed)
        self.www_hash = {}
        for name, size in WWW.items():
            data = bytes(rng.getrandbits(8) for _ in range(size)) if size < 5000 else os.urandom(size)
            (self.www / name).write_bytes(data)
            self.www_hash[name] = (sha(data), data)
        self.shared_path = str(self.updir / "shared.bin")
        self.proc = None
        self.samples = []
        self.died_at = None

    # ---- the app process -------------------------------------------------
    def start(self):
        self.out_log = open(self.tmp / "app.stdout", "wb")
        self.err_path = self.tmp / "app.stderr"
        err = open(self.err_path, "wb")
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen"
        cmd = [self.args.binary, "-i", str(APP), str(self.root), PWD, str(self.args.timeout)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=err, env=env, cwd=str(self.tmp))
        err.close()
        ready = threading.Event()
        port = []

        def drain():
            # the REPL echoes to stdout: keep the pipe empty or the REPL blocks
            for line in iter(self.proc.stdout.readline, b""):
                self.out_log.write(line)
                if not ready.is_set() and line.startswith(b"READY "):
                    port.append(int(line.split()[1]))
                    ready.set()
            self.out_log.flush()
        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(30) or self.proc.poll() is not None:
            self.proc.kill()
            raise SystemExit("soak: app did not start:\n" + self.err_path.read_text(errors="replace")[-3000:])
        self.pid = self.proc.pid
        self.port = port[0]
        self.base = "http://127.0.0.1:%d" % self.port
        self.ws_url = "ws://127.0.0.1:%d/" % self.port

    def fds(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return None

    def threads(self):
        try:
            return len(os.listdir("/proc/%d/task" % self.pid))
        except OSError:
            return None

    def settled_fds(self, target=None, wait=10.0):
        """Descriptor count once it stops changing for a second (or reaches
        target), polling up to `wait` seconds.  Returns (count, seconds)."""
        t0 = time.monotonic()
        last, since = self.fds(), time.monotonic()
        while time.monotonic() - t0 < wait:
            time.sleep(0.2)
            n = self.fds()
            if n is None:
                return None, time.monotonic() - t0
            if target is not None and n <= target:
                # a little longer: connections may still be closing
                time.sleep(0.3)
                return self.fds(), time.monotonic() - t0
            if n != last:
                last, since = n, time.monotonic()
            elif target is None and time.monotonic() - since >= 1.0:
                return n, time.monotonic() - t0
        return self.fds(), time.monotonic() - t0

    def mem(self, tries=5):
        """gc.collect(), then the heap figures, from the app's /mem route."""
        for i in range(tries):
            try:
                r = requests.get(self.base + "/mem", headers={"Connection": "close"}, timeout=10)
                if r.status_code == 200:
                    free, alloc, listeners, ticks = (int(x) for x in r.text.split())
                    return {"free": free, "alloc": alloc, "listeners": listeners, "ticks": ticks}
            except requests.RequestException:
                if i == tries - 1:
                    raise
            time.sleep(1)
        raise ValueError("/mem answered %d" % r.status_code)

    def answering(self):
        try:
            r = requests.get(self.base + "/", headers={"Connection": "close"}, timeout=10)
            return r.status_code == 200 and r.content == b"hello soak\n"
        except requests.RequestException:
            return False

    def snapshot(self):
        m = self.mem()
        fds, _ = self.settled_fds()
        return {"heap_free": m["free"], "heap_alloc": m["alloc"], "listeners": m["listeners"],
                "fds": fds, "threads": self.threads(), "ticks": m["ticks"]}

    # ---- workers -----------------------------------------------------------
    def sleep(self, seconds):
        return self.stop.wait(seconds)

    def url(self, path):
        return self.base + path

    def w_get(self, wid, rng):
        s = requests.Session()
        close = {"Connection": "close"} if wid % 2 else {}
        while not self.stop.is_set():
            try:
                p = rng.random()
                if p < 0.6:
                    r = s.get(self.url("/"), headers=close, timeout=(5, 15))
                    self.stats.reply("GET /", r)
                    if r.status_code == 200 and r.content != b"hello soak\n":
                        self.stats.fail("body", "GET / body %r" % r.content[:80])
                elif p < 0.9:
                    n = rng.randrange(0, 300)
                    r = s.get(self.url("/stream?n=%d" % n), headers=close, timeout=(5, 15))
                    self.stats.reply("GET /stream (send_chunk)", r)
                    if r.status_code == 200:
                        want = "".join("chunk %d %s\n" % (i, "x" * (i % 97)) for i in range(n))
                        if r.text != want:
                            self.stats.fail("body", "stream n=%d: %d bytes, want %d" % (n, len(r.text), len(want)))
                else:
                    r = s.get(self.url("/files/www/"), headers=close, timeout=(5, 15))
                    self.stats.reply("GET listing", r)
                    if r.status_code == 200:
                        names = {e["path"] for e in r.json()["list"]}
                        if not set(WWW) <= names:
                            self.stats.fail("body", "listing lacks %s" % (set(WWW) - names))
            except requests.RequestException as e:
                self.stats.error("GET /", e)
                s = requests.Session()

    def w_notfound(self, wid, rng):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                if rng.random() < 0.5:
                    r = s.get(self.url("/nope-%d" % rng.randrange(1 << 30)), timeout=(5, 15))
                else:
                    r = s.get(self.url("/files/www/missing-%d.txt" % rng.randrange(1 << 30)), timeout=(5, 15))
                self.stats.reply("404s", r)
                if r.status_code not in (404, 408, 503):
                    self.stats.fail("body", "404 wanted, got %d" % r.status_code)
            except requests.RequestException as e:
                self.stats.error("404s", e)
                s = requests.Session()

    def w_download(self, wid, rng):
        s = requests.Session()
        names = sorted(WWW)
        while not self.stop.is_set():
            name = rng.choice(names)
            h, data = self.www_hash[name]
            try:
                if rng.random() < 0.2 and len(data) > 10:
                    a = rng.randrange(len(data))
                    b = rng.randrange(a, len(data))
                    r = s.get(self.url("/files/www/" + name), headers={"Range": "bytes=%d-%d" % (a, b)},
                              timeout=(5, 30))
                    self.stats.reply("download (Range)", r)
                    if r.status_code == 206 and r.content != data[a:b + 1]:
                        self.stats.fail("body", "range %s %d-%d differs" % (name, a, b))
                else:
                    r = s.get(self.url("/files/www/" + name), timeout=(5, 30))
                    self.stats.reply("download", r)
                    if r.status_code == 200:
                        if sha(r.content) != h:
                            self.stats.fail("body", "download %s: hash differs (%d bytes)" % (name, len(r.content)))
                        else:
                            self.stats.count("downloads verified")
            except requests.RequestException as e:
                self.stats.error("download", e)
                s = requests.Session()

    def body(self, rng, big=True):
        p = rng.random()
        if p < 0.7 or not big:
            n = rng.randrange(0, 16384)
        elif p < 0.95:
            n = rng.randrange(16384, 262144)
        else:
            n = rng.randrange(262144, 2 << 20)
        return os.urandom(n)

    @staticmethod
    def chunks(data, rng):
        def gen():
            i = 0
            while i < len(data):
                n = rng.randrange(1, 65536)
                yield data[i:i + n]
                i += n
        return gen()

    def upload(self, s, kind, path, data, rng, replace=False):
        """POST data to the receiver; returns the status or None (unknown)."""
        h = sha(data)
        chunked = rng.random() < 0.2
        try:
            r = s.post(self.url("/up" + path), data=self.chunks(data, rng) if chunked else data,
                       timeout=(5, 30))
        except requests.RequestException as e:
            self.stats.error(kind, e)
            self.expect.widen(path, h)
            return None
        self.stats.reply(kind, r)
        if r.status_code in (200, 201):
            if r.status_code != (200 if replace else 201):
                self.stats.count("upload: %d where %d was due" % (r.status_code, 200 if replace else 201))
            self.expect.set(path, {h}, False)
            self.stats.count("uploads completed")
        elif r.status_code in (400, 408, 411, 413, 503):
            pass      # refused: the old state (or no file) must remain
        else:
            self.expect.widen(path, h)
        return r.status_code

    def verify_file(self, path, counter="files verified", cat="file"):
        """Check one path on disk against its expectation; True if fine.
        The file is read first: a body that can be there was recorded
        before it was sent."""
        try:
            data = pathlib.Path(path).read_bytes()
        except FileNotFoundError:
            data = None
        ok, absent_ok = self.expect.get(path)
        if data is None:
            if absent_ok:
                return True
            self.stats.fail(cat, "%s missing (a completed upload)" % self.rel(path))
            return False
        if sha(data) in ok:
            self.stats.count(counter)
            return True
        self.stats.fail(cat, "%s holds bytes that match no body sent (or it should be absent)"
                        % self.rel(path))
        self.stats.count("files mismatched" if cat == "file" else "shared name mismatched")
        return False

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def w_upload(self, wid, rng):
        s = requests.Session()
        own = collections.deque()        # completed paths, oldest first
        n = 0
        while not self.stop.is_set():
            if own and rng.random() < 0.15:
                path = own[-1]
                if self.upload(s, "upload (replace)", path, self.body(rng), rng, replace=True) is None:
                    own.pop()          # outcome unknown: leave that path alone
                continue
            n += 1
            path = str(self.updir / ("u%d-%d.bin" % (wid, n)))
            self.expect.set(path, set(), True)
            st = self.upload(s, "upload", path, self.body(rng), rng)
            if st in (200, 201):
                own.append(path)
            if len(own) > 6:
                path = own.popleft()
                self.verify_file(path)
                try:
                    r = s.delete(self.url("/up" + path), timeout=(5, 15))
                    self.stats.reply("DELETE", r)
                    if r.status_code == 204:
                        self.expect.set(path, set(), True)
                        if os.path.exists(path):
                            self.stats.fail("file", "%s still there after 204" % self.rel(path))
                except requests.RequestException as e:
                    self.stats.error("DELETE", e)
                    ok, _ = self.expect.get(path)
                    self.expect.set(path, ok, True)

    def w_shared(self, wid, rng):
        """Two threads upload the same name at once: the file must always be
        one whole body (design 7: uploads are atomic under concurrency)."""
        s = requests.Session()
        path = self.shared_path
        while not self.stop.is_set():
            data = os.urandom(rng.randrange(1024, 131072))
            h = sha(data)
            self.expect.widen(path, h)
            try:
                r = s.post(self.url("/up" + path), data=data, timeout=(5, 30))
                self.stats.reply("upload (shared name)", r)
                if r.status_code in (200, 201):
                    with self.expect.lock:
                        ok, _ = self.expect.paths[path]
                        self.expect.paths[path] = (ok, False)
                    self.stats.count("uploads completed")
            except requests.RequestException as e:
                self.stats.error("upload (shared name)", e)
            # while the other thread may be uploading: the name must hold a
            # whole body (rename is atomic; a shared temporary is not)
            self.verify_file(path, "shared name read whole", "shared")

    def w_echo(self, wid, rng):
        s = requests.Session()
        while not self.stop.is_set():
            data = self.body(rng, big=False) if rng.random() < 0.7 else os.urandom(rng.randrange(8192, 65536))
            chunked = rng.random() < 0.2
            try:
                r = s.post(self.url("/echo"), data=self.chunks(data, rng) if chunked else data,
                           timeout=(5, 30))
                self.stats.reply("POST /echo (reads body)", r)
                if r.status_code == 200 and r.text != "%s %d" % (sha(data), len(data)):
                    self.stats.fail("body", "echo of %d bytes: %r" % (len(data), r.text[:100]))
            except requests.RequestException as e:
                self.stats.error("POST /echo (reads body)", e)
                s = requests.Session()

    def connect(self, timeout=5.0, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", self.port))
        except OSError:
            s.close()
            raise
        return s

    def w_vanish(self, wid, rng):
        victims = []                      # completed uploads of this worker
        n = 0
        while not self.stop.is_set():
            what = rng.choice(("head", "head", "upload", "upload", "upload-existing", "upload-chunked",
                               "download", "echo", "reply"))
            kind = "vanish mid-" + {"head": "head", "upload": "upload", "upload-existing": "upload",
                                     "upload-chunked": "upload", "download": "response",
                                     "echo": "body (route)", "reply": "response"}[what]
            n += 1
            try:
                if what == "head":
                    req = b"GET /files/www/small.txt HTTP/1.1\r\nHost: soak\r\nUser-Agent: vanish\r\n\r\n"
                    s = self.connect()
                    s.sendall(req[:rng.randrange(1, len(req) - 1)])
                    self.sleep(rng.random() * 0.5)
                    vanish(s, rng)
                elif what.startswith("upload"):
                    if what == "upload-existing":
                        if len(victims) < 3:
                            path = str(self.updir / ("v%d-%d.bin" % (wid, n)))
                            self.expect.set(path, set(), True)
                            if self.upload(requests, "upload", path, os.urandom(rng.randrange(1, 50000)),
                                           rng) in (200, 201):
                                victims.append(path)
                            continue
                        path = rng.choice(victims)      # its old content must survive
                    else:
                        path = str(self.updir / ("v%d-%d.bin" % (wid, n)))
                        self.expect.set(path, set(), True)     # must never appear
                    total = rng.randrange(2, 300000)
                    data = os.urandom(total)
                    s = self.connect()
                    if what == "upload-chunked":
                        s.sendall(b"POST /up%s HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  % path.encode())
                        sent = 0
                        while sent < total - 1 and rng.random() < 0.8:
                            k = rng.randrange(1, total - sent)
                            s.sendall(b"%x\r\n%s\r\n" % (k, data[sent:sent + k]))
                            sent += k
                        s.sendall(b"%x\r\n" % (total - sent) + data[sent:sent + rng.randrange(0, total - sent)])
                    else:
                        s.sendall(b"POST /up%s HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n"
                                  % (path.encode(), total))
                        s.sendall(data[:rng.randrange(0, total)])
                    self.sleep(rng.random())
                    vanish(s, rng)
                elif what == "download":
                    s = self.connect()
                    s.sendall(b"GET /files/www/big.bin HTTP/1.1\r\nHost: soak\r\n\r\n")
                    want, got = rng.randrange(1, 200000), 0
                    while got < want:
                        b = s.recv(65536)
                        if not b:
                            break
                        got += len(b)
                    vanish(s, rng)
                elif what == "echo":
                    total = rng.randrange(2, 100000)
                    s = self.connect()
                    s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n" % total)
                    s.sendall(os.urandom(rng.randrange(0, total)))
                    self.sleep(rng.random() * 0.5)
                    vanish(s, rng)
                else:   # the whole request, then gone before the reply is read
                    s = self.connect()
                    s.sendall(b"GET /stream?n=2000 HTTP/1.1\r\nHost: soak\r\n\r\n")
                    rst_close(s)
                self.stats.status(kind, "vanished")
            except OSError as e:
                self.stats.error(kind, e)

    def trickle(self, kind, wid, rng):
        """Send `head` at once (may be empty), then one byte every 2-3 s of
        an endless header or body, until the server answers or closes."""
        n = 0
        while not self.stop.is_set():
            n += 1
            if kind == "trickle-body":
                path = str(self.updir / ("t%d-%d.bin" % (wid, n)))
                self.expect.set(path, set(), True)      # never completes: must never appear
                first = (b"POST /up%s HTTP/1.1\r\nHost: soak\r\nContent-Length: 1048576\r\n\r\n"
                         % path.encode())
            else:
                first = b""
            slow = (b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"a" * 4096) if kind == "trickle-head" \
                else os.urandom(1048575)
            try:
                s = self.connect()
            except OSError as e:
                self.stats.error(kind, e)
                self.sleep(1)
                continue
            t0 = time.monotonic()
            how = None
            try:
                if first:
                    s.sendall(first)
                i = 0
                while not self.stop.is_set() and how is None:
                    s.send(slow[i:i + 1])
                    i += 1
                    end = time.monotonic() + rng.uniform(2.0, 3.0)
                    while how is None and not self.stop.is_set() and time.monotonic() < end:
                        r, _, _ = select.select([s], [], [], min(0.25, max(0, end - time.monotonic())))
                        if r:
                            code, data = read_status(s, 2)
                            self.stats.status(kind, code or "closed", data)
                            how = str(code) if code else "closed"
            except OSError as e:
                self.stats.error(kind, e)
                how = classify(e)
            held = time.monotonic() - t0
            if how is None:
                how = "still open at the end"
                self.stats.status(kind, "held to the end")
            self.stats.hold(kind, held, how)
            rst_close(s)
            self.sleep(rng.uniform(0.5, 1.5))

    def w_trickle_head(self, wid, rng):
        self.trickle("trickle-head", wid, rng)

    def w_trickle_body(self, wid, rng):
        self.trickle("trickle-body", wid, rng)

    def w_sse_mute(self, wid, rng):
        """SSE listener that reads the status line and then never reads."""
        while not self.stop.is_set():
            try:
                s = self.connect(rcvbuf=4096)
            except OSError as e:
                self.stats.error("SSE never reads", e)
                self.sleep(1)
                continue
            try:
                s.sendall(b"GET /events HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n\r\n")
                code, data = read_status(s, 5)
                self.stats.status("SSE never reads", code or "closed", data)
                if code == 200:
                    t0 = time.monotonic()
                    self.sleep(rng.uniform(10, 40))
                    # only now look: did the server drop the listener?
                    how = "dropped by the server" if peer_closed(s) else \
                        "still connected at the end" if self.stop.is_set() else "still connected"
                    self.stats.hold("SSE never reads", time.monotonic() - t0, how)
                else:
                    self.sleep(1)
            except OSError as e:
                self.stats.error("SSE never reads", e)
            vanish(s, rng)

    def w_sse_read(self, wid, rng):
        last = 0
        while not self.stop.is_set():
            try:
                with requests.get(self.url("/events"), stream=True, timeout=(5, 10)) as r:
                    self.stats.reply("SSE reader", r)
                    if r.status_code == 200:
                        got = 0
                        for line in r.iter_lines():
                            if line.startswith(b"data: tick "):
                                k = int(line.split()[2])
                                if k <= last:
                                    self.stats.fail("body", "SSE tick %d after %d" % (k, last))
                                last = k
                                got += 1
                                if got >= rng.randrange(1, 20) or self.stop.is_set():
                                    break
                        self.stats.count("SSE events received", got)
            except (requests.RequestException, ValueError) as e:
                self.stats.error("SSE reader", e)
            self.sleep(rng.uniform(0.2, 2))

    def ws_until(self, ws, needle, seconds):
        out = ""
        deadline = time.monotonic() + seconds
        ws.settimeout(0.5)
        while needle not in out:
            if self.stop.is_set():
                raise Stopping()
            if time.monotonic() > deadline:
                raise TimeoutError("no %r in %r" % (needle, out[-200:]))
            try:
                d = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if d in ("", b""):
                raise websocket.WebSocketConnectionClosedException("closed after %r" % out[-200:])
            out += d if isinstance(d, str) else d.decode(errors="replace")
        return out

    def w_repl(self, wid, rng):
        """Mostly wrong passwords; every fifth login the right one runs a
        statement.  Waits up to 45 s for each step: after wrong passwords
        the server may make the next attempt wait (design 7, up to 30 s)."""
        i = 0
        while not self.stop.is_set():
            i += 1
            right = i % 5 == 0
            kind = "REPL login (right pwd)" if right else "REPL login (wrong pwd)"
            ws = None
            t0 = time.monotonic()
            try:
                ws = websocket.create_connection(self.ws_url, timeout=5)
                self.ws_until(ws, "Password: ", 45)
                ws.send((PWD if right else "wrong") + "\r")
                if right:
                    self.ws_until(ws, ">>> ", 45)
                    ws.send("print(6*7)\r")
                    self.ws_until(ws, "42", 10)
                    self.stats.status(kind, "statement ran")
                else:
                    self.ws_until(ws, "Access denied", 45)
                    try:   # then the server closes
                        self.ws_until(ws, "\x00never", 10)
                    except TimeoutError:
                        self.stats.status(kind, "denied, still open after 10 s")
                    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                        self.stats.status(kind, "denied")
                self.stats.hold(kind, time.monotonic() - t0, "done")
            except websocket.WebSocketBadStatusException as e:
                self.stats.status(kind, e.status_code, getattr(e, "resp_body", None) or b"")
            except Stopping:
                pass
            except (websocket.WebSocketException, OSError) as e:
                self.stats.error(kind, e)
            finally:
                if ws is not None:
                    try:
                        ws.close(timeout=1)
                    except Exception:
                        pass
            self.sleep(rng.uniform(1, 2))

    # ---- the run ---------------------------------------------------------
    def run_worker(self, kind, wid):
        rng = random.Random("%d-%s-%d" % (self.args.seed, kind, wid))
        fn = getattr(self, "w_" + kind.replace("-", "_"))
        while not self.stop.is_set():
            try:
                fn(wid, rng)
            except Exception:
                # a driver bug: show it once, keep the load going
                with self.stats.lock:
                    self.stats.bugs += 1
                    first = self.stats.bugs == 1
                if first:
                    traceback.print_exc()
                self.sleep(0.5)

    def warm_up(self):
        """One of each kind, so that lazy one-off allocations (imports, the
        REPL's first session) happen before the start snapshot."""
        close = {"Connection": "close"}
        requests.get(self.url("/"), headers=close, timeout=10)
        requests.get(self.url("/stream?n=3"), headers=close, timeout=10)
        requests.get(self.url("/files/www/"), headers=close, timeout=10)
        requests.get(self.url("/files/www/small.txt"), headers=close, timeout=10)
        requests.get(self.url("/nope"), headers=close, timeout=10)
        requests.post(self.url("/echo"), data=b"x" * 10000, headers=close, timeout=10)
        p = str(self.updir / "warmup.bin")
        requests.post(self.url("/up" + p), data=b"w" * 1000, headers=close, timeout=10)
        requests.delete(self.url("/up" + p), headers=close, timeout=10)
        with requests.get(self.url("/events"), stream=True, headers=close, timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    break
        ws = websocket.create_connection(self.ws_url, timeout=10)
        self.ws_until(ws, "Password: ", 10)
        ws.send(PWD + "\r")
        self.ws_until(ws, ">>> ", 10)
        ws.send("print(6*7)\r")
        self.ws_until(ws, "42", 10)
        ws.close()

    def run(self):
        a = self.args
        self.start()
        self.initial = {"fds": self.fds(), "threads": self.threads()}
        self.warm_up()
        time.sleep(0.5)
        self.start_snap = self.snapshot()
        print("soak: pid %d port %d, %d s; start: heap free %d alloc %d, fds %s, threads %s"
              % (self.pid, self.port, a.seconds, self.start_snap["heap_free"], self.start_snap["heap_alloc"],
                 self.start_snap["fds"], self.start_snap["threads"]), flush=True)
        threads = []
        for kind, n in a.workers.items():
            for wid in range(n):
                t = threading.Thread(target=self.run_worker, args=(kind, wid), daemon=True,
                                     name="%s-%d" % (kind, wid))
                t.start()
                threads.append(t)
        t0 = time.monotonic()
        next_report = t0 + a.progress
        while time.monotonic() - t0 < a.seconds:
            time.sleep(0.5)
            if self.proc.poll() is not None:
                self.died_at = time.monotonic() - t0
                print("soak: the server process died after %.1f s (status %s)"
                      % (self.died_at, self.proc.returncode), flush=True)
                break
            if time.monotonic() >= next_report:
                next_report += a.progress
                self.samples.append((time.monotonic() - t0, self.fds(), self.threads()))
                with self.stats.lock:
                    served = sum(v for (k, s), v in self.stats.req.items() if is_reply(s))
                    errs = sum(self.stats.err.values())
                print("soak: %4.0f s  replies %d  errors (503, 408, resets...) %d  fds %s  threads %s  failures %d"
                      % (time.monotonic() - t0, served, errs, self.samples[-1][1], self.samples[-1][2],
                         self.stats.misc["failures"]), flush=True)
        self.elapsed = time.monotonic() - t0
        self.stop.set()
        t1 = time.monotonic()
        for t in threads:
            t.join(max(0.1, 60 - (time.monotonic() - t1)))
        self.stuck = [t.name for t in threads if t.is_alive()]
        return self.finish()

    def finish(self):
        a = self.args
        res = {"stuck": self.stuck}
        alive = self.proc.poll() is None
        if alive:
            # idle again: every client is gone; wait for the server to let go
            idle_fds, res["idle_wait"] = self.settled_fds(self.start_snap["fds"], wait=3 * a.timeout + 20)
            try:
                self.end_snap = self.snapshot()
            except (requests.RequestException, ValueError) as e:
                self.end_snap = {"fds": self.fds(), "threads": self.threads(), "error": classify(e)}
            res["answering"] = self.answering()
            fds, _ = self.settled_fds(self.start_snap["fds"], wait=10)
            self.end_snap["fds"] = fds
        else:
            self.end_snap = {}
            res["answering"] = False
            res["idle_wait"] = 0
        # files, read from disk directly
        for path in sorted(self.expect.paths):
            self.verify_file(path, cat="shared" if path == self.shared_path else "file")
        res["temporaries"] = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                                    if ".uhtmp" in p.name)
        known = set(self.expect.paths) | {str(self.www / n) for n in WWW}
        res["unexpected"] = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                                   if p.is_file() and str(p) not in known and ".uhtmp" not in p.name)
        # stop the app: EOF on stdin ends the REPL
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        res["exit"] = self.proc.returncode
        err = self.err_path.read_text(errors="replace")
        res["sanitizer"] = [m for m in SANITIZER_MARKS if m in err]
        res["tracebacks"] = err.count("Traceback")
        res["stderr_tail"] = err[-2000:]
        return res

    # ---- report ----------------------------------------------------------
    def report(self, res):
        a = self.args
        st, s0, s1 = self.stats, self.start_snap, self.end_snap
        fd_ok = s1.get("fds") is not None and s0["fds"] is not None and s1["fds"] <= s0["fds"] + a.fd_tolerance
        checks = [
            ("every completed upload holds its body (sha256), no vanished upload left a file or hurt the old one",
             st.misc["failures: file"] == 0, True),
            ("one name uploaded by two clients at once always holds one whole body (read during the run "
             "and at the end)", st.misc["failures: shared"] == 0, True),
            ("downloads, Range replies, echo, send_chunk and SSE bodies as sent", st.misc["failures: body"] == 0,
             True),
            ("no temporary (*.uhtmp*) left", not res["temporaries"], True),
            ("server answering at the end", res["answering"] and self.died_at is None, True),
            ("no crash or sanitizer report", not res["sanitizer"] and self.died_at is None, True),
            ("descriptors back to the start count (+%d) once idle" % a.fd_tolerance, fd_ok, True),
            ("heap (mem_alloc after gc.collect) back where it started (+%d B)" % a.heap_tolerance,
             bool(s1.get("heap_alloc")) and s1["heap_alloc"] <= s0["heap_alloc"] + a.heap_tolerance, False),
            ("threads back where they started", s1.get("threads") == s0["threads"], False),
            ("no SSE listener left", s1.get("listeners") == 0, False),
            ("no trickler held a slot longer than 3 x timeout",
             all(h <= 3 * a.timeout for k in ("trickle-head", "trickle-body") for h, _ in st.holds.get(k, [])),
             False),
        ]
        L = []
        now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        try:
            ver = subprocess.run([a.binary, "-c", "import sys; print(sys.version)"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            ver = "?"
        served = sum(v for (k, s), v in st.req.items() if is_reply(s))
        L.append("Soak run %s, %.0f s on %d CPUs (`%s`), MicroPython `%s`; Server(max_conns=8, events=3, "
                 "timeout=%g), workers: %s."
                 % (now, self.elapsed, os.cpu_count() or 0, platform.machine(), ver, a.timeout,
                    ", ".join("%s %d" % kv for kv in a.workers.items())))
        L.append("")
        L.append("**Targets** (correctness ones decide the exit status; the others are reported)")
        L.append("")
        L.append("| target | met | decides exit |")
        L.append("|---|---|---|")
        for name, ok, hard in checks:
            L.append("| %s | %s | %s |" % (name, "yes" if ok else "**NO**", "yes" if hard else "no"))
        L.append("")
        L.append("**Requests by kind and status** (%d HTTP replies received; `error`: no reply, see the "
                 "errors; `vanished`: the client left on purpose)" % served)
        L.append("")
        kinds = sorted({k for k, _ in st.req})
        L.append("| kind | replies / outcomes |")
        L.append("|---|---|")
        for k in kinds:
            items = sorted(((s, v) for (kk, s), v in st.req.items() if kk == k), key=lambda x: str(x[0]))
            L.append("| %s | %s |" % (k, ", ".join("%s: %d" % (s, v) for s, v in items)))
        L.append("")
        L.append("**Errors by kind** (client side: 503/408 replies, refused, reset, timeouts, ...)")
        L.append("")
        errs = collections.Counter()
        for (k, e), v in st.err.items():
            errs[e] += v
        L.append("| error | count | where |")
        L.append("|---|---|---|")
        for e, v in errs.most_common():
            where = sorted(((k, vv) for (k, ee), vv in st.err.items() if ee == e), key=lambda x: -x[1])
            L.append("| %s | %d | %s |" % (e, v, ", ".join("%s %d" % kv for kv in where[:6])))
        if not errs:
            L.append("| none | 0 | |")
        L.append("")
        L.append("`reset` and `closed, no reply`: the server closed the connection under a request (an idle "
                 "keep-alive connection closed to make room at max_conns, or a 503 closed before the "
                 "request was read); the clients do not retry.")
        L.append("")
        L.append("**Slow clients** (tricklers send 1 byte every 2-3 s: how long the server let one "
                 "connection live; SSE listeners that never read; WebREPL logins, connect to verdict)")
        L.append("")
        L.append("| kind | connections | longest held (s) | median (s) | how they ended |")
        L.append("|---|---|---|---|---|")
        for k in ("trickle-head", "trickle-body", "SSE never reads", "REPL login (wrong pwd)",
                  "REPL login (right pwd)"):
            hs = st.holds.get(k, [])
            if not hs:
                continue
            secs = sorted(h for h, _ in hs)
            ends = collections.Counter(how for _, how in hs)
            L.append("| %s | %d | %.1f | %.1f | %s |" % (k, len(hs), secs[-1], secs[len(secs) // 2],
                                                       ", ".join("%s %d" % kv for kv in ends.most_common())))
        L.append("")
        L.append("**Process** (heap: gc.collect() then mem_free/mem_alloc via a route; fds and threads "
                 "from /proc/<pid>)")
        L.append("")
        L.append("| | start | end |")
        L.append("|---|---|---|")
        L.append("| MicroPython heap free (B) | %s | %s |" % (s0["heap_free"], s1.get("heap_free", "-")))
        L.append("| MicroPython heap allocated (B) | %s | %s |" % (s0["heap_alloc"], s1.get("heap_alloc", "-")))
        L.append("| open file descriptors | %s (%s before warm-up) | %s (idle after %.1f s) |"
                 % (s0["fds"], self.initial["fds"], s1.get("fds", "-"), res["idle_wait"]))
        L.append("| threads | %s | %s |" % (s0["threads"], s1.get("threads", "-")))
        L.append("| SSE listeners | %s | %s |" % (s0["listeners"], s1.get("listeners", "-")))
        L.append("| SSE events dispatched | %s | %s |" % (s0["ticks"], s1.get("ticks", "-")))
        if self.samples:
            L.append("| fds / threads during the run (min-max) | %s-%s / %s-%s | |" % (
                min(x[1] or 0 for x in self.samples), max(x[1] or 0 for x in self.samples),
                min(x[2] or 0 for x in self.samples), max(x[2] or 0 for x in self.samples)))
        L.append("")
        L.append("**Files**: %d verified by sha256 from disk (%d mismatched; the shared name read whole "
                 "%d times, %d times not), %d uploads completed, "
                 "%d downloads verified, %d SSE events received by readers; leftover temporaries: %s; "
                 "files nobody uploaded: %s; server answering at the end: %s; exit status %s, "
                 "%d tracebacks on stderr."
                 % (st.misc["files verified"], st.misc["files mismatched"], st.misc["shared name read whole"],
                    st.misc["failures: shared"],
                    st.misc["uploads completed"],
                    st.misc["downloads verified"], st.misc["SSE events received"],
                    ", ".join(res["temporaries"][:10]) or "none", ", ".join(res["unexpected"][:10]) or "none",
                    "yes" if res["answering"] else "**no**", res["exit"], res["tracebacks"]))
        notes = [k for k in st.misc if k.startswith("upload:")]
        for k in notes:
            L.append("- %s: %d" % (k, st.misc[k]))
        if self.died_at is not None:
            L.append("- the server process died after %.1f s" % self.died_at)
        if res["stuck"]:
            L.append("- driver threads still busy at the end: %s" % ", ".join(res["stuck"]))
        if st.bugs:
            L.append("- driver exceptions (bugs in the driver, traceback on stderr): %d" % st.bugs)
        if st.failures:
            L.append("")
            L.append("**Failures** (%d in all; distinct ones with the times seen)" % st.misc["failures"])
            L.append("")
            for f, v in st.failures.most_common(20):
                L.append("- %s: %d" % (f.replace("|", "\\|"), v))
        if res["sanitizer"]:
            L.append("")
            L.append("**stderr** of the server:")
            L.append("")
            L.append("```")
            L.append(res["stderr_tail"])
            L.append("```")
        text = "\n".join(L) + "\n"
        failed = [name for name, ok, hard in checks if hard and not ok]
        return text, failed


def parse_workers(spec):
    w = collections.OrderedDict(WORKERS)
    for item in filter(None, (spec or "").split(",")):
        k, _, v = item.partition("=")
        if k not in w:
            raise SystemExit("soak: unknown worker kind %r (%s)" % (k, ", ".join(w)))
        w[k] = int(v)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 600))
    ap.add_argument("--binary", default=os.environ.get("UHTTPD_BINARY",
                                                       str(ROOT / "build" / "unix" / "micropython")))
    ap.add_argument("--out", default=str(ROOT / "bench" / "soak.md"), help="markdown report ('' for none)")
    ap.add_argument("--timeout", type=float, default=5, help="Server(timeout=...) in seconds")
    ap.add_argument("--fd-tolerance", type=int, default=2)
    ap.add_argument("--heap-tolerance", type=int, default=1024, help="bytes (reported, never decides)")
    ap.add_argument("--workers", help="threads per kind, e.g. get=4,repl=0 (kinds: %s)" % ", ".join(WORKERS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--progress", type=float, default=10, help="seconds between progress lines")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.workers = parse_workers(args.workers)
    soak = Soak(args)
    try:
        res = soak.run()
        text, failed = soak.report(res)
    finally:
        if soak.proc is not None and soak.proc.poll() is None:
            soak.proc.kill()
        if args.keep:
            print("soak: kept %s" % soak.tmp)
        else:
            shutil.rmtree(soak.tmp, ignore_errors=True)
    print()
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text("# Soak run\n\nWritten by `make soak` (tools/soak.py); "
                                          "numbers are measured, never asserted.\n\n" + text)
    if failed:
        print("soak: FAILED: " + "; ".join(failed))
        return 1
    print("soak: all correctness targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
