#!/usr/bin/env python3
"""uhttpd benchmark: uhttpd, Microdot 2.7 (same micropython binary) and nginx
(one worker) side by side in one run.  Servers are pinned to CPU 0, load
generators (wrk, ab, curl, this script) to CPU 1.  Prints a markdown report
and writes it to bench/results.md.  Numbers are measured, never asserted.

    python3 bench/bench.py --binary build/unix/micropython [--quick] [--json FILE]
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
    def __init__(self, name, cmd, port=None, ready_line=False, cwd=None):
        self.name = name
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
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
        self.url = "http://127.0.0.1:%d" % self.port

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


# ---- report ------------------------------------------------------------------------

def fmt(v, nd=0):
    if v is None:
        return "–"
    return ("{:,.%df}" % nd).format(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "build" / "unix" / "micropython"))
    ap.add_argument("--quick", action="store_true", help="shorter runs (2 s per point)")
    ap.add_argument("--json", help="also dump raw numbers to this file")
    ap.add_argument("--only", choices=["core", "mem", "files", "sse", "forms"], action="append")
    a = ap.parse_args()
    secs = 2 if a.quick else 5
    binary = os.path.abspath(a.binary)
    for tool in ("wrk", "ab", "nginx", "curl", "taskset"):
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
    md = microdot_dir()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
               "micropython": sh([binary, "-c", "import sys; print(sys.version)"]).stdout.strip(),
               "nginx": sh(["nginx", "-v"]).stderr.strip(),
               "wrk": sh(["wrk", "-v"]).stdout.split("\n")[0].strip(), "microdot": "2.7.0"}
    servers = {}
    only = set(a.only or ["core", "mem", "files", "sse", "forms"])
    try:
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
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

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
    return "\n".join(L)


if __name__ == "__main__":
    main()
