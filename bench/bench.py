#!/usr/bin/env python3
"""uhttpd benchmark: uhttpd, Microdot 2.7 (same micropython binary) and nginx
(one worker) side by side in one run.  Servers are pinned to CPU 0, load
generators (wrk, ab, curl, this script) to CPU 1.  Prints a markdown report
and writes it to bench/results.md.  Numbers are measured, never asserted.
The "tls" section puts uhttpd over HTTPS beside a bare mbedTLS loop
(tls_bare.c) and nginx (see tls_section); the "ws" section puts uhttpd's
application WebSockets beside Microdot's with_websocket and a trivial C
echo server, with one C client (ws_load.c) for all (see ws_section).

    python3 bench/bench.py --binary build/unix/micropython [--quick] [--json FILE]
        [--only core|mem|files|sse|tls|ws ...]
"""
import argparse
import json
import os
import pathlib
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "_build"
SECTIONS = ["core", "mem", "files", "sse", "forms", "tls", "ws"]
LAST = BUILD / "last.json"      # the raw numbers of the last run, per section
SERVER_CPU = "0"
CLIENT_CPU = "1"


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: %s" % proc.args)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not listen on %d" % port)


class Server:
    def __init__(self, name, cmd, port=None, ready_line=False, cwd=None, env=None, scheme="http"):
        self.name = name
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, start_new_session=True,
                                     env=env)
        self.extra = []
        if ready_line:
            line = self.proc.stdout.readline().decode()
            if not line.startswith("READY"):
                raise RuntimeError("%s: %r %s" % (name, line, self.proc.stderr.read(2000)))
            parts = line.split()
            self.port = int(parts[1]) if port is None else port
            self.extra = parts[2:]
        else:
            self.port = port
        wait_port(self.port, self.proc)
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


# ---- peers -------------------------------------------------------------------

def microdot_dir():
    d = BUILD / "microdot-2.7"
    if not (d / "microdot" / "microdot.py").exists():
        tmp = pathlib.Path(tempfile.mkdtemp())
        r = sh([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), "microdot==2.7.*"])
        if r.returncode:
            raise RuntimeError("pip download microdot failed: %s" % r.stderr)
        whl = next(tmp.glob("microdot-*.whl"))
        d.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if n.startswith("microdot/") and n.endswith(".py"):
                    z.extract(n, d)
    return d


def nginx_conf(port, www, dav):
    d = BUILD / "nginx"
    (d / "logs").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text("""
daemon off;
master_process on;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path %(d)s/tmp;
    proxy_temp_path %(d)s/tmp;
    fastcgi_temp_path %(d)s/tmp;
    uwsgi_temp_path %(d)s/tmp;
    scgi_temp_path %(d)s/tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:%(port)d;
        location = / { default_type text/plain; return 200 'Hello, World!'; }
        location /files/ { alias %(www)s/; }
        location /up/ { alias %(dav)s/; dav_methods PUT; create_full_put_path on; }
    }
}
""" % {"d": d, "port": port, "www": www, "dav": dav})
    return conf


# ---- measurements ---------------------------------------------------------------

def wrk(url, conns, secs, script=None):
    extra = ["-s", str(script)] if script else []
    r = sh(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--latency"] + extra + [url])
    out = r.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % p, out)
        if not m:
            return None
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat(50), "p99_ms": lat(99),
            "non2xx": int(errs.group(1)) if errs else 0, "socket_errors": sockerr.group(1) if sockerr else ""}


def ab(url, conns, n):
    r = sh(["taskset", "-c", CLIENT_CPU, "ab", "-q", "-n", str(n), "-c", str(conns), "-s", "10", url])
    m = re.search(r"Requests per second:\s+([\d.]+)", r.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", r.stdout)
    p50 = re.search(r"\s50%\s+(\d+)", r.stdout)
    p99 = re.search(r"\s99%\s+(\d+)", r.stdout)
    return {"rps": float(m.group(1)) if m else 0.0, "failed": int(failed.group(1)) if failed else -1,
            "p50_ms": int(p50.group(1)) if p50 else None, "p99_ms": int(p99.group(1)) if p99 else None}


def curl_speed(args, reps):
    speeds = []
    for _ in range(reps):
        r = sh(["taskset", "-c", CLIENT_CPU, "curl", "-s", "--max-time", "60", "-o", "/dev/null", "-w",
                "%{speed_download} %{speed_upload} %{http_code}"] + args)
        d, u, code = r.stdout.split()
        speeds.append((float(d), float(u), code))
    return speeds


FORM_BODY = "user=zo%C3%AB&pwd=s3cr3t%21&remember=on&next=%2Fhome%3Ftab%3D1"


def form_script():
    """wrk script: keep-alive POSTs of a small urlencoded form."""
    p = BUILD / "form_post.lua"
    p.write_text('wrk.method = "POST"\nwrk.body = "%s"\n'
                 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' % FORM_BODY)
    return p


def cpu_ms(pid):
    """CPU time (user + system) a process used so far, in ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def forms_bench(servers, www, up, reps, secs):
    """16 MiB as a multipart upload (curl -F) against the raw upload (curl -T)
    on the same uhttpd, and against Microdot's multipart (FormDataIter,
    FileUpload.save); small urlencoded posts read with req.form() /
    request.form.  Every upload is checked on disk afterwards."""
    import hashlib
    big = www / "f16m.bin"
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    out = {}
    for name in ("uhttpd", "microdot"):
        srv = servers[name]
        r = {"codes": [], "stored_ok": True}
        # uhttpd: raw and multipart; Microdot: multipart with its default
        # 256-byte buffer and with 16 KiB (uhttpd's file_block)
        kinds = ("raw16m", "mp16m") if name == "uhttpd" else ("mp16m", "mp16m_16k")
        speeds = {k: [] for k in kinds}
        cpu = {k: [] for k in kinds}     # the server's CPU time per upload: robust on a busy machine
        for i in range(reps):
            for k in kinds:
                c0 = cpu_ms(srv.proc.pid)
                # Expect: off for all: Microdot does not answer 100-continue
                # (curl would wait a second before sending)
                if k == "raw16m":
                    sp = curl_speed(["-H", "Expect:", "-T", str(big), srv.url + "/up%s/raw%d.bin" % (up, i)], 1)
                    speeds[k].append(sp[0][1])
                    cpu[k].append(cpu_ms(srv.proc.pid) - c0)
                    r["codes"].append(sp[0][2])
                    continue
                d = up / ("%s-%s-%d" % (name, k, i))
                d.mkdir()
                os.chmod(d, 0o777)
                if name == "uhttpd":
                    url = srv.url + "/up%s/" % d
                else:
                    url = srv.url + "/mp%s/?buf=%d" % (d, 16384 if k == "mp16m_16k" else 256)
                sp = curl_speed(["-H", "Expect:", "-F", "note=bench", "-F", "f=@%s;filename=m.bin" % big, url], 1)
                speeds[k].append(sp[0][1])
                cpu[k].append(cpu_ms(srv.proc.pid) - c0)
                r["codes"].append(sp[0][2])
                f = d / "m.bin"
                r["stored_ok"] &= f.exists() and hashlib.sha256(f.read_bytes()).hexdigest() == want
                shutil.rmtree(d, ignore_errors=True)
        for k in kinds:
            r[k] = mib(median(speeds[k]))
            r[k + "_cpu_ms"] = sum(cpu[k]) / len(cpu[k])   # mean: /proc counts 10 ms ticks
        import urllib.request
        rq = urllib.request.Request(srv.url + "/form", data=FORM_BODY.encode(), method="POST",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(rq, timeout=5) as resp:
            r["form_reply"] = resp.read().decode()     # the parsed fields, echoed
        r["form_wrk8"] = wrk(srv.url + "/form", 8, secs, form_script())
        r["form_wrk1"] = wrk(srv.url + "/form", 1, secs, form_script())
        out[name] = r
    return out


def mib(v):
    return v / (1024 * 1024)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0


def get(url, timeout=5):
    import urllib.request
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def heap_idle(srv, n):
    """Heap after n idle keep-alive connections (each served one request)."""
    for _ in range(3):   # warm-up: the /mem path itself allocated once
        get(srv.url + "/mem")
    base = int(get(srv.url + "/mem").split()[0])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        socks.append(s)
    try:
        during = int(get(srv.url + "/mem").split()[0])
    finally:
        for s in socks:
            s.close()
    return base, during


def burst(srv, n=2000):
    """n simultaneous connection attempts; is the server alive and serving?"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 512)), hard))
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", srv.port))
        socks.append(s)
    time.sleep(0.5)  # let the server work through the backlog
    for s in socks:
        try:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
    import selectors
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + 10
    got = {"200": 0, "503": 0, "other": 0, "none": 0}
    pending = set(socks)
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                b = s.recv(64)
            except OSError:
                b = b""
            k = b[9:12].decode(errors="replace") if b.startswith(b"HTTP/") else ""
            got[k if k in ("200", "503") else ("other" if b else "none")] += 1
            pending.discard(s)
            sel.unregister(s)
    got["none"] += len(pending)
    for s in socks:
        s.close()
    alive = srv.alive()
    serving = False
    if alive:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                get(srv.url + "/", timeout=3)
                serving = True
                break
            except Exception:
                time.sleep(0.2)
    return {"alive": alive and srv.alive(), "serving": serving, **got}


def sse_bench(srv, n=1000, listeners=3):
    """Trigger n dispatches, time until every listener got the last one."""
    socks = []
    for _ in range(listeners):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        socks.append(s)
    time.sleep(0.3)   # the listeners' heads are answered; not a measurement
    last = ("data: event %d\n" % (n - 1)).encode()
    done = [None] * listeners
    counts = [0] * listeners

    def reader(i, s):
        buf = b""
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                return
            if not b:
                return
            buf = buf[-64:] + b
            counts[i] += b.count(b"data: event ")
            if last in buf:
                done[i] = time.perf_counter()
                return
    ths = [threading.Thread(target=reader, args=(i, s)) for i, s in enumerate(socks)]
    for t in ths:
        t.start()
    t0 = time.perf_counter()
    get(srv.url + "/fire?n=%d" % n)
    for t in ths:
        t.join(20)
    for s in socks:
        s.close()
    if any(d is None for d in done):
        return {"ms": None, "events_per_s": None, "delivered": counts}
    ms = (max(done) - t0) * 1000
    return {"ms": ms, "events_per_s": n * listeners / (ms / 1000), "delivered": counts}


# ---- TLS ------------------------------------------------------------------------
# One ECDSA P-256 certificate for every server; TLS 1.2 (mbedTLS 2.28 on the
# host has no TLS 1.3 server) and one cipher suite for all clients, so the
# servers do the same work: X25519 key exchange, ECDSA signature,
# AES-128-GCM records.
TLS_CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"
# ESP32 record buffers (the board's generated sdkconfig.h:
# CONFIG_MBEDTLS_SSL_IN_CONTENT_LEN / _OUT_CONTENT_LEN, ASYMMETRIC_CONTENT_LEN
# set, DYNAMIC_BUFFER not set)
ESP32_IN_CONTENT, ESP32_OUT_CONTENT = 16384, 4096

sys.path.insert(0, str(HERE))
import tls_bench  # noqa: E402  (make_cert, build_harness, harness_mem, s_time, cpu_ticks)


def nginx_tls_conf(port, www, dav, crt, key):
    d = BUILD / "nginx-tls"
    (d / "logs").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text("""
daemon off;
master_process on;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path %(d)s/tmp;
    proxy_temp_path %(d)s/tmp;
    fastcgi_temp_path %(d)s/tmp;
    uwsgi_temp_path %(d)s/tmp;
    scgi_temp_path %(d)s/tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_session_tickets on;
        ssl_session_cache shared:S:1m;
        location = / { default_type text/plain; return 200 'Hello, World!'; }
        location /files/ { alias %(www)s/; }
        location /up/ { alias %(dav)s/; dav_methods PUT; create_full_put_path on; }
    }
}
""" % {"d": d, "port": port, "www": www, "dav": dav, "crt": crt, "key": key})
    return conf


def tls_build(work):
    """Certificate, the tls_bare harness (plain and counting), the C heap
    shim, and the host mbedTLS record sizes."""
    crt, key = tls_bench.make_cert(work)
    exe, mem = tls_bench.build_harness(work)
    shim = work / "cmem_shim.so"
    r = sh(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(HERE / "cmem_shim.c")])
    if r.returncode:
        raise RuntimeError("cmem_shim: %s" % r.stderr)
    probe = work / "mbedtls_lens.c"
    probe.write_text('#include <stdio.h>\n#include "mbedtls/version.h"\n#include "mbedtls/ssl.h"\n'
                     'int main(void) { printf("%d %d %s\\n", (int)MBEDTLS_SSL_IN_CONTENT_LEN, '
                     '(int)MBEDTLS_SSL_OUT_CONTENT_LEN, MBEDTLS_VERSION_STRING); return 0; }\n')
    r = sh(["gcc", "-o", str(work / "mbedtls_lens"), str(probe)])
    lens = sh([str(work / "mbedtls_lens")]).stdout.split() if r.returncode == 0 else ["16384", "16384", "?"]
    speed = work / "tls_cipher_speed"
    r = sh(["gcc", "-std=c99", "-O2", "-o", str(speed), str(HERE / "tls_cipher_speed.c"), "-lmbedcrypto"])
    if r.returncode:
        raise RuntimeError("tls_cipher_speed: %s" % r.stderr)
    return {"crt": crt, "key": key, "exe": exe, "mem": mem, "shim": shim, "speed": speed,
            "host_in": int(lens[0]), "host_out": int(lens[1]), "mbedtls": lens[2]}


def cipher_ceiling(speed):
    """AES-128-GCM on 16 KiB records on the server core, MiB/s: mbedTLS
    (bench/tls_cipher_speed.c) and OpenSSL (`openssl speed`), seal and open."""
    out = {}
    m = re.search(r"seal (\d+) open (\d+)", sh(["taskset", "-c", SERVER_CPU, str(speed), "1"]).stdout)
    out["mbedtls_seal"], out["mbedtls_open"] = (float(m.group(1)), float(m.group(2))) if m else (None, None)
    for k, extra in (("openssl_seal", []), ("openssl_open", ["-decrypt"])):
        r = sh(["taskset", "-c", SERVER_CPU, "openssl", "speed"] + extra + ["-evp", "aes-128-gcm", "-bytes",
                                                                          "16384", "-seconds", "1"])
        m = re.search(r"(?m)^AES-128-GCM\s+([\d.]+)k", r.stdout)
        out[k] = float(m.group(1)) * 1000 / (1024 * 1024) if m else None
    return out


def cmem(path):
    """(bytes in use, peak, allocations) of a process running cmem_shim."""
    import struct
    with open(path, "rb") as f:
        return struct.unpack("=qqq", f.read(24))


def cmem_reset_peak(path):
    import struct
    cur = cmem(path)[0]
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("=q", cur))


def cmem_settle(path, timeout=3.0):
    """The C heap once it stops moving (the server finished the last close)."""
    last = cmem(path)[0]
    deadline = time.monotonic() + timeout
    stable = 0
    while time.monotonic() < deadline and stable < 3:
        time.sleep(0.03)
        cur = cmem(path)[0]
        stable = stable + 1 if cur == last else 0
        last = cur
    return last


def tls_ctx(crt):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(crt))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS_CIPHER)
    return ctx


def tls_request(port, ctx, path, keep=False, timeout=20):
    """One HTTPS GET on a new connection (a full handshake): the body, or
    (socket, body) with keep=True (the connection stays open, idle)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        t = ctx.wrap_socket(s, server_hostname="localhost")
    except BaseException:
        s.close()
        raise
    try:
        t.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                   % (path, "" if keep else "Connection: close\r\n")).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = t.recv(4096)
            if not b:
                raise OSError("closed before the reply head")
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(body) < n:
            b = t.recv(65536)
            if not b:
                raise OSError("closed inside the body")
            body += b
    except BaseException:
        t.close()
        raise
    if keep:
        return t, body
    t.close()
    return body


def tls_storm(port, ctx, conns, secs):
    """conns threads, each making full handshakes (GET /, close) back to
    back for secs: {handshakes, errors}."""
    stop = time.monotonic() + secs
    done, errs = [0] * conns, [0] * conns
    bar = threading.Barrier(conns)

    def worker(i):
        bar.wait()
        while time.monotonic() < stop:
            try:
                tls_request(port, ctx, "/")
                done[i] += 1
            except Exception:
                errs[i] += 1
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(secs + 60)
    return {"handshakes": sum(done), "errors": sum(errs), "seconds": secs}


def curl_tls(crt):
    return ["taskset", "-c", CLIENT_CPU, "curl", "-s", "--max-time", "120", "--cacert", str(crt),
            "--tls-max", "1.2", "--ciphers", TLS_CIPHER]


def tls_download(url, crt, n):
    """n downloads of url by one curl on one connection: the median speed of
    the ones that reused it (keep-alive), and how many did."""
    args = curl_tls(crt) + ["-w", "%{speed_download} %{num_connects} %{http_code}\\n"]
    for _ in range(n):
        args += ["-o", "/dev/null", url]
    r = sh(args)
    reused, codes = [], set()
    for line in r.stdout.split("\n"):
        if line.strip():
            sp, nc, code = line.split()
            codes.add(code)
            if nc == "0":
                reused.append(float(sp))
    return {"mibs": mib(median(reused)) if reused else None, "reused": len(reused), "n": n,
            "codes": sorted(codes)}


def tls_upload(url, crt, path):
    r = sh(curl_tls(crt) + ["-o", "/dev/null", "-w", "%{speed_upload} %{http_code}", "-T", str(path), url])
    sp, code = r.stdout.split()
    return float(sp), code


def tls_section(binary, work, www, up, secs, quick):
    """HTTPS: uhttpd (the MicroPython server), the uh_tls C loop, the bare
    blocking mbedTLS loop and nginx with one certificate: handshakes; then
    uhttpd and nginx: a keep-alive download and an upload; uhttpd's main
    program during 50 concurrent handshakes; and, in a second uhttpd with
    cmem_shim preloaded, the MicroPython and C heap per TLS connection."""
    b = tls_build(work)
    crt, key = b["crt"], b["key"]
    out = {"cipher": TLS_CIPHER, "mbedtls": b["mbedtls"], "host_in": b["host_in"],
           "host_out": b["host_out"]}
    out["harness_mem"] = tls_bench.harness_mem(b["mem"], crt, key)
    out["ceiling"] = cipher_ceiling(b["speed"])
    app = str(HERE / "apps" / "uhttpd_tls_app.py")
    servers = {}
    try:
        servers["uhttpd"] = Server("uhttpd-tls", [binary, app, str(crt), str(key), str(www), str(up)],
                                   ready_line=True, scheme="https")
        servers["uh_tls loop"] = Server("tls_bare", [str(b["exe"]), "--cert", str(crt), "--key", str(key)],
                                        ready_line=True, scheme="https")
        servers["bare mbedTLS"] = Server("tls_bare --bare", [str(b["exe"]), "--bare", "--cert", str(crt),
                                                             "--key", str(key)], ready_line=True, scheme="https")
        nport = free_port()
        servers["nginx"] = Server("nginx-tls", ["nginx", "-c", str(nginx_tls_conf(nport, www, up, crt, key)),
                                                "-p", str(BUILD / "nginx-tls")], port=nport, scheme="https")

        # handshakes: openssl s_time, 2 clients, servers in turns, best of the rounds
        hz = os.sysconf("SC_CLK_TCK")
        hs = {name: {"full": 0.0, "resumed": 0.0, "full_cpu": 0.0, "resumed_cpu": 0.0} for name in servers}
        rounds = 1 if quick else 3
        for _ in range(rounds):
            for mode, k in (("-new", "full"), ("-reuse", "resumed")):
                for name, srv in servers.items():
                    c0 = tls_bench.cpu_ticks(srv.proc.pid)
                    rate, n = tls_bench.s_time(srv.port, mode, secs, 2, cipher=TLS_CIPHER)
                    cpu = (tls_bench.cpu_ticks(srv.proc.pid) - c0) / hz
                    hs[name][k] = max(hs[name][k], rate)
                    hs[name][k + "_cpu"] = max(hs[name][k + "_cpu"], n / cpu if cpu > 0 else 0)
        out["handshakes"] = hs
        out["s_time"] = {"clients": 2, "seconds": secs, "rounds": rounds}

        # files over TLS, uhttpd and nginx taking turns; per round the median
        # of the transfers, the best round counts (as for the handshakes)
        reps = 3
        files = {name: {"down1m": None, "up16m": 0.0, "up_codes": set()} for name in ("uhttpd", "nginx")}
        for _ in range(rounds):
            for name, f in files.items():
                srv = servers[name]
                d = tls_download(srv.url + "/files/f1m.bin", crt, 4 if quick else 10)
                if f["down1m"] is None or (d["mibs"] or 0) > (f["down1m"]["mibs"] or 0):
                    f["down1m"] = d
                upl = []
                for i in range(reps):
                    target = "/up%s/t%d.bin" % (up, i) if name == "uhttpd" else "/up/t%d.bin" % i
                    sp, code = tls_upload(srv.url + target, crt, www / "f16m.bin")
                    upl.append(sp)
                    f["up_codes"].add(code)
                f["up16m"] = max(f["up16m"], mib(median(upl)))
        for f in files.values():
            f["up_codes"] = sorted(f["up_codes"])
        out["files"] = files

        # the main program during 50 concurrent handshakes
        ctx = tls_ctx(crt)
        port = servers["uhttpd"].port
        tls_request(port, ctx, "/lat?reset=1")
        time.sleep(2)
        idle = int(tls_request(port, ctx, "/lat?reset=1").split()[0])
        storm = tls_storm(port, ctx, 50, 3 if quick else 5)
        worst, iters = (int(x) for x in tls_request(port, ctx, "/lat?reset=1").split())
        out["latency"] = {"idle_worst_us": idle, "storm_worst_us": worst, "storm_iterations": iters,
                          **storm}
    finally:
        for s in servers.values():
            s.stop()

    # memory: a separate uhttpd with the C heap shim preloaded
    cm = work / "cmem.bin"
    env = dict(os.environ, LD_PRELOAD=str(b["shim"]), UH_CMEM_FILE=str(cm))
    srv = Server("uhttpd-tls-cmem", [binary, app, str(crt), str(key), str(www), str(up)], ready_line=True,
                 env=env, scheme="https")
    socks = []
    try:
        ctx = tls_ctx(crt)
        port = srv.port
        for _ in range(24):     # session cache and first-use allocations
            tls_request(port, ctx, "/")
        for _ in range(3):
            tls_request(port, ctx, "/mem")
        n = 30
        base_c = cmem_settle(cm)
        base_mp = int(tls_request(port, ctx, "/mem"))
        for _ in range(n):
            socks.append(tls_request(port, ctx, "/", keep=True)[0])
        idle_c = cmem_settle(cm)
        during_mp = int(tls_request(port, ctx, "/mem"))
        for s in socks:
            s.close()
        socks = []
        base1 = cmem_settle(cm)
        cmem_reset_peak(cm)
        s1 = tls_request(port, ctx, "/", keep=True)[0]
        est1 = cmem_settle(cm)
        peak1 = cmem(cm)[1]
        s1.close()
        base2 = cmem_settle(cm)
        cmem_reset_peak(cm)
        storm = tls_storm(port, ctx, 50, 2)
        peak50 = cmem(cm)[1]
        out["mem"] = {"n": n, "mp_growth": during_mp - base_mp, "c_idle_per_conn": (idle_c - base_c) / n,
                      "c_established_one": est1 - base1, "c_peak_one": peak1 - base1,
                      "c_peak_storm50": peak50 - base2, "storm_handshakes": storm["handshakes"],
                      "c_server_total": base_c}
    finally:
        for s in socks:
            s.close()
        srv.stop()
    return out


# ---- WebSockets --------------------------------------------------------------------
# One client for every server: bench/ws_load.c (C, poll, TCP_NODELAY, frames
# masked once).  Echo: 32-byte text messages, each client with one message in
# flight.  Broadcast: 1,000 messages of 64 bytes to 8 clients, from the
# trigger to the last frame read by all of them.
WS_ECHO_LEN = 32
WS_BCAST_LEN = 64
WS_BCAST_N = 1000
WS_CLIENTS = 8
# uhttpd's queue for the broadcast burst: 1,000 frames of 66 bytes per client
# are queued faster than the server thread (on the same CPU) sends them
WS_BIG_QUEUE = 72 * 1024
WS_KEY_HEAD = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def ws_build(work):
    exe = work / "ws_load"
    r = sh(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(HERE / "ws_load.c")])
    if r.returncode:
        raise RuntimeError("ws_load: %s" % r.stderr)
    return exe


def cpu_s(pid):
    """CPU seconds (user + system, all threads) of pid so far: /proc stat,
    like the TLS section.  (schedstat's runtime would leave out the softirq
    time of loopback TCP that the sender's send() pays.)"""
    return tls_bench.cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def ws_load(args, timeout=120):
    """Run ws_load on the client CPU: its key=value line as numbers."""
    r = sh(["taskset", "-c", CLIENT_CPU] + [str(x) for x in args], timeout=timeout)
    kv = {}
    for x in r.stdout.split():
        k, _, v = x.partition("=")
        if v:
            kv[k] = float(v)
    if r.returncode or not kv:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    return kv


def ws_echo(exe, srv, clients, secs):
    """Round trips/s, latency and the server's CPU time per round trip."""
    c0 = cpu_s(srv.proc.pid)
    t0 = time.perf_counter()
    r = ws_load([exe, "echo", srv.port, "/echo", clients, secs, WS_ECHO_LEN])
    wall = time.perf_counter() - t0
    cpu = cpu_s(srv.proc.pid) - c0
    if r.get("all"):
        r["cpu_us_per_rt"] = cpu * 1e6 / r["all"]
        r["cpu_share"] = cpu / wall
    return r


def ws_wait_count(srv, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(get(srv.url + "/count")) == want:
            return True
        time.sleep(0.02)
    return False


def ws_bcast(exe, srv):
    """1,000 broadcasts to 8 clients: ms until all delivered, and the
    server's own time in its broadcast loop (/result: µs, clients reached)."""
    ws_wait_count(srv, 0)     # the previous round's clients are gone
    r = ws_load([exe, "bcast", srv.port, "/bc", WS_CLIENTS, WS_BCAST_N, WS_BCAST_LEN,
                 "/fire?n=%d&len=%d" % (WS_BCAST_N, WS_BCAST_LEN), "/count"])
    us, reached = get(srv.url + "/result").split()
    r["loop_us"] = int(us)
    r["reached_last"] = int(reached)
    return r


def ws_bcast_key(r):
    """Order of broadcast results: complete deliveries first, then faster."""
    return (r.get("got") != WS_BCAST_N, r.get("ms", float("inf")))


def ws_open_raw(port, path="/echo"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((WS_KEY_HEAD % path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(1024)
        if not b:
            raise OSError("closed during the handshake")
        buf += b
    if not buf.startswith(b"HTTP/1.1 101"):
        raise OSError("no upgrade: %r" % buf[:40])
    # one message and its echo: the connection is fully set up in the server
    s.sendall(b"\x81\x82\x00\x00\x00\x00hi")
    got = buf.partition(b"\r\n\r\n")[2]
    while len(got) < 4:
        b = s.recv(64)
        if not b:
            raise OSError("closed before the echo")
        got += b
    return s


def ws_heap_settle(srv, timeout=3.0):
    last = int(get(srv.url + "/mem"))
    deadline = time.monotonic() + timeout
    stable = 0
    while time.monotonic() < deadline and stable < 3:
        time.sleep(0.05)
        cur = int(get(srv.url + "/mem"))
        stable = stable + 1 if cur == last else 0
        last = cur
    return last


def ws_mem(srv, n=WS_CLIENTS):
    """MicroPython heap with n WebSockets open on /echo against none (after
    one was opened, used and closed: first-use allocations are out)."""
    for _ in range(2):
        ws_open_raw(srv.port).close()
    base = ws_heap_settle(srv)
    socks = [ws_open_raw(srv.port) for _ in range(n)]
    try:
        during = ws_heap_settle(srv)
    finally:
        for s in socks:
            s.close()
    after = ws_heap_settle(srv)
    return {"n": n, "base": base, "during": during, "per_ws": (during - base) / n, "after_delta": after - base}


def ws_section(binary, work, md, secs, quick, binary32=None):
    """Application WebSockets: uhttpd beside Microdot's with_websocket on the
    same binary and a trivial C echo server (ws_load bare, the ceiling of
    this client and loopback); servers on CPU 0, ws_load on CPU 1; each
    number is the best of the rounds, the servers taking turns.  binary32:
    a 32-bit build for the heap per open WebSocket there too."""
    exe = ws_build(work)
    app = str(HERE / "apps" / "uhttpd_ws_app.py")
    servers = {}
    out = {"echo_len": WS_ECHO_LEN, "bcast_len": WS_BCAST_LEN, "bcast_n": WS_BCAST_N, "clients": WS_CLIENTS,
           "big_queue": WS_BIG_QUEUE, "seconds": secs}
    try:
        servers["uhttpd"] = Server("uhttpd-ws", [binary, app], ready_line=True)
        out["uhttpd_heap_websocket"] = int(servers["uhttpd"].extra[0])
        servers["uhttpd-bigq"] = Server("uhttpd-ws-bigq", [binary, app, str(WS_BIG_QUEUE)], ready_line=True)
        mport = free_port()
        servers["microdot"] = Server("microdot-ws", [binary, str(HERE / "apps" / "microdot_ws_app.py"), str(md),
                                                     str(mport)], port=mport)
        servers["bare"] = Server("ws-bare", [str(exe), "bare", "0"], ready_line=True)
        rounds = 1 if quick else 3
        echo = {name: {} for name in ("uhttpd", "microdot", "bare")}
        bcast = {name: None for name in ("uhttpd-bigq", "uhttpd", "microdot")}
        for _ in range(rounds):
            for name in echo:
                for c in (1, WS_CLIENTS):
                    r = ws_echo(exe, servers[name], c, secs)
                    k = "c%d" % c
                    if k not in echo[name] or r.get("rps", 0) > echo[name][k].get("rps", 0):
                        echo[name][k] = r
            for name in bcast:
                r = ws_bcast(exe, servers[name])
                if bcast[name] is None or ws_bcast_key(r) < ws_bcast_key(bcast[name]):
                    bcast[name] = r
        out["echo"] = echo
        out["bcast"] = bcast
        out["mem"] = {name: ws_mem(servers[name]) for name in ("uhttpd", "microdot")}
        out["alive"] = {name: srv.alive() for name, srv in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
    if binary32:
        # the heap per open WebSocket on a 32-bit build (as on ESP32)
        servers = {}
        try:
            servers["uhttpd"] = Server("uhttpd-ws-32", [binary32, app], ready_line=True)
            mport = free_port()
            servers["microdot"] = Server("microdot-ws-32", [binary32, str(HERE / "apps" / "microdot_ws_app.py"),
                                                            str(md), str(mport)], port=mport)
            out["mem32"] = {name: ws_mem(srv) for name, srv in servers.items()}
            out["mem32"]["uhttpd_heap_websocket"] = int(servers["uhttpd"].extra[0])
        finally:
            for s in servers.values():
                s.stop()
    return out


# ---- report ------------------------------------------------------------------------

def fmt(v, nd=0):
    if v is None:
        return "–"
    return ("{:,.%df}" % nd).format(v)


def start_plain(servers, results, binary, www, up, md):
    """uhttpd, Microdot and nginx over plain HTTP."""
    servers["uhttpd"] = Server("uhttpd", [binary, str(HERE / "apps" / "uhttpd_app.py"), str(www), str(up)],
                               ready_line=True)
    results["uhttpd_heap_server"] = int(servers["uhttpd"].extra[0])
    results["uhttpd_heap_with_files"] = int(servers["uhttpd"].extra[1])
    mport = free_port()
    servers["microdot"] = Server("microdot", [binary, str(HERE / "apps" / "microdot_app.py"), str(md),
                                              str(www), str(up), str(mport)], port=mport)
    nport = free_port()
    servers["nginx"] = Server("nginx", ["nginx", "-c", str(nginx_conf(nport, www, up)),
                                        "-p", str(BUILD / "nginx")], port=nport)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "build" / "unix" / "micropython"))
    ap.add_argument("--binary32", help="a 32-bit build for the ws section's heap figures (default: "
                                       "build/unix32/micropython when it exists, `make build BITS=32`)")
    ap.add_argument("--quick", action="store_true", help="shorter runs (2 s per point)")
    ap.add_argument("--json", help="also dump raw numbers to this file")
    ap.add_argument("--only", choices=SECTIONS, action="append",
                    help="run these sections only; the report keeps the other sections of the "
                         "last run (bench/_build/last.json)")
    a = ap.parse_args()
    secs = 2 if a.quick else 5
    binary = os.path.abspath(a.binary)
    for tool in ("wrk", "ab", "nginx", "curl", "taskset", "openssl"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            subprocess.run([str(ROOT / "tools" / "setup-deps.sh"), "bench"], check=True)
            break
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    BUILD.mkdir(exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="uhttpd-bench-"))
    os.chmod(work, 0o755)       # nginx's worker runs as an unprivileged user
    www = work / "www"
    www.mkdir(mode=0o755)
    up = work / "up"
    up.mkdir()
    os.chmod(up, 0o777)
    (www / "f1k.bin").write_bytes(os.urandom(1024))
    (www / "f1m.bin").write_bytes(os.urandom(1 << 20))
    (www / "f16m.bin").write_bytes(os.urandom(16 << 20))
    for f in www.iterdir():
        os.chmod(f, 0o644)
    only = set(a.only or SECTIONS)
    plain = bool(only & {"core", "mem", "files", "sse", "forms"})
    md = microdot_dir() if plain or "ws" in only else None
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
               "micropython": sh([binary, "-c", "import sys; print(sys.version)"]).stdout.strip(),
               "nginx": sh(["nginx", "-v"]).stderr.strip(),
               "wrk": sh(["wrk", "-v"]).stdout.split("\n")[0].strip(), "microdot": "2.7.0"}
    servers = {}
    try:
        if plain:
            start_plain(servers, results, binary, www, up, md)
        if "core" in only:
            core = {}
            for name, srv in servers.items():
                core[name] = {}
                for c in (1, 8, 32):
                    core[name]["wrk%d" % c] = wrk(srv.url + "/", c, secs)
                for c in (1, 8, 32):
                    core[name]["ab%d" % c] = ab(srv.url + "/", c, 2000 if a.quick else 5000)
            results["core"] = core

        if "files" in only:
            files = {}
            reps = 3 if a.quick else 5
            for name, srv in servers.items():
                f = {}
                for fn in ("f1m", "f16m"):
                    sp = curl_speed([srv.url + "/files/%s.bin" % fn], reps)
                    f[fn] = mib(median([s[0] for s in sp]))
                upl = []
                for i in range(reps):
                    target = "/up%s/u%d.bin" % (up, i) if name != "nginx" else "/up/u%d.bin" % i
                    sp = curl_speed(["-T", str(www / "f16m.bin"), srv.url + target], 1)
                    upl.append(sp[0][1])
                f["up16m"] = mib(median(upl))
                f["f1k_wrk8"] = wrk(srv.url + "/files/f1k.bin", 8, secs)["rps"]
                files[name] = f
            results["files"] = files

        if "forms" in only:
            results["forms"] = forms_bench(servers, www, up, 3 if a.quick else 9, secs)

        if "sse" in only:
            results["sse"] = {}
            for name in ("uhttpd", "microdot"):
                srv = servers[name]
                results["sse"][name] = sse_bench(srv)
            results["sse_uhttpd_main_dispatch_us"] = int(get(servers["uhttpd"].url + "/result") or 0)

        if "mem" in only:
            mem = {}
            for name in ("uhttpd", "microdot"):
                srv = servers[name]
                base, during = heap_idle(srv, 30)
                mem[name] = {"idle30_heap_delta": during - base}
            # defaults: max_conns=4 (3 idle connections fit)
            d = Server("uhttpd-defaults", [binary, str(HERE / "apps" / "uhttpd_app.py"), str(www), str(up), "4",
                                           "0", "0"], ready_line=True)
            base, during = heap_idle(d, 3)
            mem["uhttpd_defaults"] = {"heap_server": int(d.extra[0]), "idle3_heap_delta": during - base}
            d.stop()
            for name in ("uhttpd", "microdot"):
                mem[name]["burst2000"] = burst(servers[name])
            results["mem"] = mem

        for sv in servers.values():
            sv.stop()
        if "tls" in only:
            results["tls"] = tls_section(binary, work, www, up, secs, a.quick)
        if "ws" in only:
            b32 = a.binary32 or str(ROOT / "build" / "unix32" / "micropython")
            results["ws"] = ws_section(binary, work, md, secs, a.quick, b32 if os.path.exists(b32) else None)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    # sections not run this time keep the numbers (and date) of their last run
    last = {}
    if LAST.exists():
        try:
            last = json.loads(LAST.read_text())
        except ValueError:
            last = {}
    for k in SECTIONS:
        if k in results:
            last[k] = {"date": results["date"], "data": results[k]}
    for k in ("uhttpd_heap_server", "uhttpd_heap_with_files", "sse_uhttpd_main_dispatch_us"):
        if k in results:
            last[k] = results[k]
    LAST.write_text(json.dumps(last, indent=1))
    for k in SECTIONS:
        if k not in results and k in last:
            results[k] = last[k]["data"]
            results.setdefault("older", {})[k] = last[k]["date"]
    for k in ("uhttpd_heap_server", "uhttpd_heap_with_files", "sse_uhttpd_main_dispatch_us"):
        if k not in results and k in last:
            results[k] = last[k]
    report = render(results)
    print(report)
    (HERE / "results.md").write_text(report)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(results, indent=1))


def render(r):
    L = []
    L.append("Measured %s on %d CPUs; servers pinned to CPU %s, load generators to CPU %s. "
             "MicroPython `%s`, Microdot %s, %s, %s." % (r["date"], r["cpus"], SERVER_CPU, CLIENT_CPU,
                                                        r["micropython"], r["microdot"], r["nginx"], r["wrk"]))
    if r.get("older"):
        L.append("")
        L.append("Not run this time, from earlier runs (`--only`): %s."
                 % ", ".join("%s %s" % (k, v) for k, v in sorted(r["older"].items())))
    L.append("")
    if "core" in r:
        c = r["core"]
        L.append("**GET returning 13 bytes** (wrk: keep-alive; ab: one connection per request)")
        L.append("")
        L.append("| clients | uhttpd req/s | Microdot req/s | nginx req/s | uhttpd/Microdot | uhttpd/nginx | "
                 "uhttpd p50 / p99 ms | Microdot p50 / p99 ms | nginx p50 / p99 ms |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for tool in ("wrk", "ab"):
            for n in (1, 8, 32):
                k = "%s%d" % (tool, n)
                u, m, g = c["uhttpd"][k], c["microdot"][k], c["nginx"][k]
                L.append("| %s %d | %s | %s | %s | %.1fx | %.2fx | %s / %s | %s / %s | %s / %s |" % (
                    tool, n, fmt(u["rps"]), fmt(m["rps"]), fmt(g["rps"]),
                    u["rps"] / m["rps"] if m["rps"] else 0, u["rps"] / g["rps"] if g["rps"] else 0,
                    fmt(u["p50_ms"], 2), fmt(u["p99_ms"], 2), fmt(m["p50_ms"], 2), fmt(m["p99_ms"], 2),
                    fmt(g["p50_ms"], 2), fmt(g["p99_ms"], 2)))
        errs = ["%s %s: %s" % (s, k, v.get("non2xx") or v.get("failed") or v.get("socket_errors"))
                for s in c for k, v in c[s].items()
                if v.get("non2xx") or (v.get("failed") or 0) > 0 or v.get("socket_errors")]
        L.append("")
        L.append("Errors: %s" % ("; ".join(errs) if errs else "none"))
        L.append("")
    if "files" in r:
        f = r["files"]
        L.append("**Files** (curl, median of runs; 1 KiB file with wrk, 8 keep-alive clients)")
        L.append("")
        L.append("| | uhttpd | Microdot | nginx | uhttpd/nginx | uhttpd/Microdot |")
        L.append("|---|---|---|---|---|---|")
        for k, label, unit in (("f1m", "download 1 MiB", "MiB/s"), ("f16m", "download 16 MiB", "MiB/s"),
                               ("up16m", "upload 16 MiB (nginx: WebDAV PUT)", "MiB/s"),
                               ("f1k_wrk8", "1 KiB file", "req/s")):
            u, m, g = f["uhttpd"][k], f["microdot"][k], f["nginx"][k]
            L.append("| %s (%s) | %s | %s | %s | %.2fx | %.1fx |" % (label, unit, fmt(u), fmt(m), fmt(g),
                                                                     u / g if g else 0, u / m if m else 0))
        L.append("")
    if "forms" in r:
        f = r["forms"]
        u, m = f["uhttpd"], f["microdot"]
        L.append("**Forms** (curl, median of runs, `Expect:` off for all; form posts with wrk, keep-alive)")
        L.append("")
        L.append("| | uhttpd | Microdot | uhttpd/Microdot |")
        L.append("|---|---|---|---|")
        L.append("| upload 16 MiB, raw body (`curl -T`) (MiB/s; server CPU ms, mean) | %s; %s | – | – |" % (
            fmt(u["raw16m"]), fmt(u["raw16m_cpu_ms"])))
        for k, label in (("mp16m", "default buffer (256 B)"), ("mp16m_16k", "`buffer_size` 16 KiB")):
            L.append("| upload 16 MiB as multipart/form-data (`curl -F`; receiver / FormDataIter + save(), %s) "
                     "(MiB/s; server CPU ms, mean) | %s; %s | %s; %s | %.1fx; %.1fx |" % (
                         label, fmt(u["mp16m"]), fmt(u["mp16m_cpu_ms"]), fmt(m[k]), fmt(m[k + "_cpu_ms"]),
                         u["mp16m"] / m[k] if m[k] else 0,
                         m[k + "_cpu_ms"] / u["mp16m_cpu_ms"] if u["mp16m_cpu_ms"] else 0))
        for k, label in (("form_wrk1", "1 client"), ("form_wrk8", "8 clients")):
            a, b = u[k]["rps"], m[k]["rps"]
            L.append("| urlencoded form posts, `req.form()` / `request.form`, %s (req/s) | %s | %s | %.1fx |" % (
                label, fmt(a), fmt(b), a / b if b else 0))
        L.append("")
        L.append("Multipart upload at %.0f%% of the raw upload's speed on the same server (server CPU "
                 "per upload: %.0f%% of the raw upload's). Uploads stored "
                 "correctly (sha256 on disk): uhttpd %s, Microdot %s; statuses uhttpd %s, Microdot %s; "
                 "non-2xx form replies: uhttpd %d, Microdot %d; a form post echoed: uhttpd `%s`, Microdot `%s`." % (
                     100.0 * u["mp16m"] / u["raw16m"] if u["raw16m"] else 0,
                     100.0 * u["mp16m_cpu_ms"] / u["raw16m_cpu_ms"] if u["raw16m_cpu_ms"] else 0,
                     u["stored_ok"], m["stored_ok"],
                     " ".join(sorted(set(u["codes"]))), " ".join(sorted(set(m["codes"]))),
                     u["form_wrk8"]["non2xx"] + u["form_wrk1"]["non2xx"],
                     m["form_wrk8"]["non2xx"] + m["form_wrk1"]["non2xx"], u["form_reply"], m["form_reply"]))
        L.append("")
    if "sse" in r:
        s = r["sse"]
        L.append("**Server-Sent Events**: 1,000 events to 3 listeners, from trigger to the last event "
                 "received by all three")
        L.append("")
        L.append("| | ms | events/s delivered |")
        L.append("|---|---|---|")
        for name in ("uhttpd", "microdot"):
            L.append("| %s | %s | %s |" % (name, fmt(s[name]["ms"], 1), fmt(s[name]["events_per_s"])))
        if s["uhttpd"]["ms"] and s["microdot"]["ms"]:
            L.append("")
            L.append("uhttpd is %.1fx faster; its main-thread `dispatch()` loop took %s µs for the 1,000 "
                     "calls (it never waits on the network)." % (s["microdot"]["ms"] / s["uhttpd"]["ms"],
                                                                 fmt(r.get("sse_uhttpd_main_dispatch_us"))))
        L.append("")
    if "mem" in r:
        m = r["mem"]
        L.append("**MicroPython heap**")
        L.append("")
        L.append("| | uhttpd | Microdot |")
        L.append("|---|---|---|")
        L.append("| server at rest, defaults (max_conns=4, events=0) | %s B | – |" % fmt(m["uhttpd_defaults"]["heap_server"]))
        L.append("| server at rest, max_conns=64, events=3 | %s B (%s B with serve()+receive(): 16 KiB file block per connection) | – |" % (
            fmt(r["uhttpd_heap_server"]), fmt(r["uhttpd_heap_with_files"])))
        L.append("| growth with 3 idle keep-alive connections (defaults) | %s B | – |" % fmt(
            m["uhttpd_defaults"]["idle3_heap_delta"]))
        L.append("| growth with 30 idle keep-alive connections | %s B | %s B |" % (
            fmt(m["uhttpd"]["idle30_heap_delta"]), fmt(m["microdot"]["idle30_heap_delta"])))
        for name in ("uhttpd", "microdot"):
            b = m[name]["burst2000"]
            L.append("| 2,000 simultaneous connections (%s) | alive=%s serving=%s; 200: %d, 503: %d, other: %d, "
                     "no answer: %d | |" % (name, b["alive"], b["serving"], b["200"], b["503"], b["other"], b["none"])
                     if name == "uhttpd" else
                     "| 2,000 simultaneous connections (Microdot) | | alive=%s serving=%s; 200: %d, other: %d, "
                     "no answer: %d |" % (b["alive"], b["serving"], b["200"], b["other"], b["none"]))
        L.append("")
    if "tls" in r:
        L.extend(render_tls(r["tls"]))
    if "ws" in r:
        L.extend(render_ws(r["ws"]))
    return "\n".join(L)


def pct(a, b):
    return "%.0f%%" % (100.0 * a / b) if a and b else "–"


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "–"


def render_tls(t):
    L = []
    hs = t["handshakes"]
    st = t["s_time"]
    L.append("**HTTPS** (one ECDSA P-256 certificate; TLS 1.2, X25519, %s for every client; "
             "mbedTLS %s; nginx: 1 worker, `ssl_session_tickets on`)" % (t["cipher"], t["mbedtls"]))
    L.append("")
    L.append("Handshakes: `openssl s_time -new` (full) and `-reuse` (resumed, by session ticket), %d "
             "clients, %d s, best of %d rounds, the servers taking turns. Per server CPU-second: "
             "handshakes divided by the CPU time the server process used meanwhile (steadier "
             "on a shared machine)." % (st["clients"], st["seconds"], st["rounds"]))
    L.append("")
    L.append("| server | full/s | resumed/s | full per CPU-s | resumed per CPU-s |")
    L.append("|---|---|---|---|---|")
    labels = {"uhttpd": "uhttpd (MicroPython server)", "uh_tls loop": "uh_tls poll loop in C (tls_bare)",
              "bare mbedTLS": "bare blocking mbedTLS loop (tls_bare --bare)", "nginx": "nginx (OpenSSL)"}
    for name, label in labels.items():
        h = hs[name]
        L.append("| %s | %s | %s | %s | %s |" % (label, fmt(h["full"]), fmt(h["resumed"]),
                                                 fmt(h["full_cpu"]), fmt(h["resumed_cpu"])))
    u, bare, ng = hs["uhttpd"], hs["bare mbedTLS"], hs["nginx"]
    L.append("")
    L.append("uhttpd / bare mbedTLS: full %s (per CPU-s %s); uhttpd / nginx: full %s (per CPU-s %s), "
             "resumed %s (per CPU-s %s)." % (
                 ratio(u["full"], bare["full"]), ratio(u["full_cpu"], bare["full_cpu"]),
                 ratio(u["full"], ng["full"]), ratio(u["full_cpu"], ng["full_cpu"]),
                 ratio(u["resumed"], ng["resumed"]), ratio(u["resumed_cpu"], ng["resumed_cpu"])))
    L.append("")
    f = t["files"]
    L.append("Files over HTTPS (curl `--cacert`, `--tls-max 1.2`; download: one curl fetching the file "
             "%d times on one keep-alive connection, median of the transfers that reused it; upload: "
             "`curl -T`, median of 3; nginx: WebDAV PUT; best of %d rounds, the servers taking turns)"
             % (f["uhttpd"]["down1m"]["n"], st["rounds"]))
    L.append("")
    L.append("| | uhttpd | nginx | uhttpd/nginx |")
    L.append("|---|---|---|---|")
    du, dn = f["uhttpd"]["down1m"], f["nginx"]["down1m"]
    L.append("| download 1 MiB, keep-alive (MiB/s) | %s (%d of %d reused) | %s (%d of %d reused) | %s |" % (
        fmt(du["mibs"]), du["reused"], du["n"], fmt(dn["mibs"]), dn["reused"], dn["n"], ratio(du["mibs"], dn["mibs"])))
    L.append("| upload 16 MiB (MiB/s) | %s | %s | %s |" % (fmt(f["uhttpd"]["up16m"]), fmt(f["nginx"]["up16m"]),
                                                          ratio(f["uhttpd"]["up16m"], f["nginx"]["up16m"])))
    c = t["ceiling"]
    L.append("")
    L.append("The record cipher alone on the server core (AES-128-GCM, 16 KiB records): mbedTLS %s "
             "MiB/s sealing, %s opening; OpenSSL %s / %s. uhttpd reaches %s of mbedTLS's sealing rate "
             "downloading and %s of its opening rate uploading." % (
                 fmt(c["mbedtls_seal"]), fmt(c["mbedtls_open"]), fmt(c["openssl_seal"]), fmt(c["openssl_open"]),
                 pct(du["mibs"], c["mbedtls_seal"]), pct(f["uhttpd"]["up16m"], c["mbedtls_open"])))
    codes = ["%s %s: %s" % (n, k, ",".join(v)) for n in f
             for k, v in (("download", f[n]["down1m"]["codes"]), ("upload", f[n]["up_codes"]))
             if not set(v) <= {"200", "201", "204"}]
    if codes:
        L.append("")
        L.append("HTTP codes: %s" % "; ".join(codes))
    L.append("")
    lat = t["latency"]
    L.append("Main program (a MicroPython loop doing `time.sleep_ms(1)`, worst gap between iterations): "
             "%s ms idle (2 s); **%s ms** while 50 clients made full handshakes back to back for %d s "
             "(%s handshakes, %d errors, %s iterations of the loop)." % (
                 fmt(lat["idle_worst_us"] / 1000, 1), fmt(lat["storm_worst_us"] / 1000, 1), lat["seconds"],
                 fmt(lat["handshakes"]), lat["errors"], fmt(lat["storm_iterations"])))
    L.append("")
    m = t["mem"]
    hm = t["harness_mem"]
    delta = t["host_out"] - ESP32_OUT_CONTENT + t["host_in"] - ESP32_IN_CONTENT
    L.append("Memory per TLS connection (uhttpd measured with `bench/cmem_shim.c` preloaded: it counts "
             "every malloc/calloc/realloc/free of the process, mbedTLS's included, by "
             "`malloc_usable_size`)")
    L.append("")
    L.append("| | host (mbedTLS records %d in / %d out) | ESP32 estimate (%d in / %d out) |" % (
        t["host_in"], t["host_out"], ESP32_IN_CONTENT, ESP32_OUT_CONTENT))
    L.append("|---|---|---|")
    L.append("| MicroPython heap growth, %d idle keep-alive TLS connections | %s B | same code: %s B |" % (
        m["n"], fmt(m["mp_growth"]), fmt(m["mp_growth"])))
    L.append("| C heap per idle TLS connection (%d open) | %s B | ~%s B |" % (
        m["n"], fmt(m["c_idle_per_conn"]), fmt(m["c_idle_per_conn"] - delta)))
    L.append("| C heap of one connection: established / peak during its handshake | %s / %s B | ~%s / ~%s B |" % (
        fmt(m["c_established_one"]), fmt(m["c_peak_one"]), fmt(m["c_established_one"] - delta),
        fmt(m["c_peak_one"] - delta)))
    L.append("| C heap peak, 50 concurrent handshakes (all of them; %s done in 2 s) | %s B | – |" % (
        fmt(m["storm_handshakes"]), fmt(m["c_peak_storm50"])))
    L.append("| uh_tls alone (tls_bare counting harness): server state; new / handshake peak / "
             "established connection | %s B; %s / %s / %s B | |" % (
                 fmt(hm.get("server")), fmt(hm.get("conn_new")), fmt(hm.get("hs_peak")), fmt(hm.get("established"))))
    L.append("")
    L.append("ESP32 estimate: the host figure minus the %s B by which the host's record buffers are "
             "larger (CONFIG_MBEDTLS_SSL_OUT_CONTENT_LEN 4096, IN 16384, no dynamic buffers); the rest "
             "(mbedTLS context, handshake state) is taken as equal, which mbedTLS 3.6 on ESP-IDF only "
             "approximates." % fmt(delta))
    L.append("")
    return L


def render_ws(w):
    L = []
    e, b, m = w["echo"], w["bcast"], w["mem"]
    L.append("**WebSockets** (uhttpd `Server.websocket()`, Microdot 2.7 `with_websocket`, same binary; one C "
             "client for all, `bench/ws_load.c`: poll, TCP_NODELAY, frames masked once; echo: %d-byte text "
             "messages, each client with one in flight, %d s per point; best of the rounds, the servers "
             "taking turns)" % (w["echo_len"], w["seconds"]))
    L.append("")
    L.append("| | uhttpd | Microdot | trivial C echo server | uhttpd/Microdot |")
    L.append("|---|---|---|---|---|")

    def v(name, c, k):
        return e[name].get("c%d" % c, {}).get(k)
    for c in (1, w["clients"]):
        u, md, bare = v("uhttpd", c, "rps"), v("microdot", c, "rps"), v("bare", c, "rps")
        L.append("| echo round trips/s, %d client%s | %s | %s | %s | %s |" % (
            c, "s" if c > 1 else "", fmt(u), fmt(md), fmt(bare), ratio(u, md)))
        L.append("| p50 / p99 µs, %d client%s | %s / %s | %s / %s | %s / %s | |" % (
            c, "s" if c > 1 else "", fmt(v("uhttpd", c, "p50_us")), fmt(v("uhttpd", c, "p99_us")),
            fmt(v("microdot", c, "p50_us")), fmt(v("microdot", c, "p99_us")),
            fmt(v("bare", c, "p50_us")), fmt(v("bare", c, "p99_us"))))
        cu, cm, cb = (v(n, c, "cpu_us_per_rt") for n in ("uhttpd", "microdot", "bare"))
        L.append("| server CPU µs per round trip (CPU busy), %d client%s | %s (%s) | %s (%s) | %s (%s) | %s less CPU |" % (
            c, "s" if c > 1 else "", fmt(cu, 1), pct(v("uhttpd", c, "cpu_share"), 1),
            fmt(cm, 1), pct(v("microdot", c, "cpu_share"), 1), fmt(cb, 1), pct(v("bare", c, "cpu_share"), 1),
            ratio(cm, cu)))
    bu, bm, bd = b["uhttpd-bigq"], b["microdot"], b["uhttpd"]
    L.append("| %s broadcasts of %d B to %d clients: ms until all delivered | %s (ws_queue %d KiB) | %s | – | %s |" % (
        fmt(w["bcast_n"]), w["bcast_len"], w["clients"], fmt(bu.get("ms"), 2), w["big_queue"] // 1024,
        fmt(bm.get("ms"), 2), ratio(bm.get("ms"), bu.get("ms"))))
    L.append("| the same: time in the sending loop (uhttpd: the main thread's %s `broadcast()` calls; "
             "Microdot: %s `await ws.send()`) | %s µs | %s µs | – | |" % (
                 fmt(w["bcast_n"]), fmt(w["bcast_n"] * w["clients"]), fmt(bu.get("loop_us")),
                 fmt(bm.get("loop_us"))))
    L.append("")
    for name, r in (("uhttpd (ws_queue %d KiB)" % (w["big_queue"] // 1024), bu), ("Microdot", bm),
                    ("uhttpd (default ws_queue)", bd)):
        if r.get("error"):
            L.append("%s broadcast: error %s." % (name, r["error"]))
    L.append("Broadcast with the default ws_queue (16 KiB on unix): the %s frames of %d B per client are "
             "queued in %s µs, before the server thread (same CPU) sends any, so the queue holds %s of them; "
             "clients got %s–%s messages, %s of %s were closed with %s (fell behind, by design)." % (
                 fmt(w["bcast_n"]), w["bcast_len"] + 2, fmt(bd.get("loop_us")),
                 fmt(16384 // (w["bcast_len"] + 2)), fmt(bd.get("got")), fmt(bd.get("max")),
                 fmt(bd.get("closed")), w["clients"], "%d" % bd["code"] if bd.get("code") else "–"))
    L.append("")
    per_slot = w["uhttpd_heap_websocket"] / (2 * w["clients"])
    mu, mm = m["uhttpd"], m["microdot"]
    L.append("MicroPython heap (gc.collect(), then mem_alloc)")
    L.append("")
    L.append("| | uhttpd | Microdot |")
    L.append("|---|---|---|")
    L.append("| `websocket()` ×2, %d clients each: per client slot (ws_queue 16 KiB + max_msg 4 KiB + state) "
             "| %s B (%s B per slot) | – |" % (w["clients"], fmt(w["uhttpd_heap_websocket"]), fmt(per_slot)))
    L.append("| growth per open WebSocket (%d open on /echo vs 0) | %s B | %s B |" % (
        mu["n"], fmt(mu["per_ws"], 1), fmt(mm["per_ws"], 1)))
    L.append("| after they closed, against before | %s B | %s B |" % (fmt(mu["after_delta"]), fmt(mm["after_delta"])))
    if w.get("mem32"):
        m32 = w["mem32"]
        L.append("| 32-bit build: `websocket()` ×2 / growth per open WebSocket / after they closed | %s B (%s B "
                 "per slot) / %s B / %s B | – / %s B / %s B |" % (
                     fmt(m32["uhttpd_heap_websocket"]), fmt(m32["uhttpd_heap_websocket"] / (2 * w["clients"])),
                     fmt(m32["uhttpd"]["per_ws"], 1), fmt(m32["uhttpd"]["after_delta"]),
                     fmt(m32["microdot"]["per_ws"], 1), fmt(m32["microdot"]["after_delta"])))
    L.append("")
    c1 = "c1"
    if e["bare"].get(c1, {}).get("rps") and e["uhttpd"].get(c1, {}).get("rps"):
        L.append("One client is bound by loopback wake-ups between the CPUs: the trivial C server makes %s "
                 "round trips/s, uhttpd %s of that; the server CPU per round trip tells the servers apart." % (
                     fmt(e["bare"][c1]["rps"]), pct(e["uhttpd"][c1]["rps"], e["bare"][c1]["rps"])))
        L.append("")
    return L


if __name__ == "__main__":
    main()
