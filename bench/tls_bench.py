#!/usr/bin/env python3
"""TLS handshakes per second: bench/tls_bare.c over native/uh_tls.c (the
poll loop uhttpd will use), the same harness's --bare mode (the plainest
blocking mbedTLS server) and nginx (one worker, ssl_session_tickets on),
all with one ECDSA P-256 certificate, TLS 1.2, X25519.  Servers run on
CPU 0, `openssl s_time` clients on CPU 1.  Full handshakes (-new) and
resumed ones (-reuse, by session ticket); each row is the best of
--rounds, the servers taking turns.  Also prints the per-connection memory of uh_tls.  Numbers are
measured, never asserted.  The machine is shared, so handshakes per
second of server CPU time are given too: they vary far less with load.

    python3 bench/tls_bench.py [--seconds 5] [--clients 2] [--rounds 2]
"""
import argparse
import os
import pathlib
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_CPU, CLIENT_CPU = "0", "1"


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (cmd, r.stderr))
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: %s" % proc.args)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("no listener on %d" % port)


def start(cmd, port=None):
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, bufsize=0)
    if port is None:
        r, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline().decode() if r else ""
        while line.startswith("MEM "):
            line = p.stdout.readline().decode()
        if not line.startswith("READY "):
            p.kill()
            raise RuntimeError("%s: %r" % (cmd, line))
        port = int(line.split()[1])
    wait_port(port, p)
    return p, port


def cpu_ticks(pid):
    """utime+stime of pid and its children (nginx's worker), clock ticks."""
    total = 0
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d.name) == pid or int(f[1]) == pid:
            total += int(f[11]) + int(f[12])
    return total


def s_time(port, mode, seconds, clients, cipher=None):
    """(connections/s summed over the clients, connections made)."""
    extra = ["-cipher", cipher] if cipher else []
    procs = [subprocess.Popen(["taskset", "-c", CLIENT_CPU, "openssl", "s_time", "-connect",
                               "127.0.0.1:%d" % port, mode, "-tls1_2", "-time", str(seconds),
                               "-www", "/"] + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(clients)]
    total, count = 0.0, 0
    for p in procs:
        out, err = p.communicate(seconds + 30)
        m = re.findall(r"(\d+) connections in ([\d.]+) real seconds", out)
        if not m:
            raise RuntimeError("s_time: %s %s" % (out[-500:], err[-500:]))
        n, t = m[-1]
        total += int(n) / float(t)
        count += int(n)
    return total, count


NGINX = """
daemon off;
master_process on;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(d)s;
    proxy_temp_path %(d)s;
    fastcgi_temp_path %(d)s;
    uwsgi_temp_path %(d)s;
    scgi_temp_path %(d)s;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_session_tickets on;
        ssl_session_cache shared:S:1m;
        location = / { default_type text/plain; return 200 'hello, tls\n'; }
    }
}
"""


def make_cert(work):
    """One self-signed ECDSA P-256 certificate (CN and SAN localhost,
    127.0.0.1) for every server: (crt, key) paths."""
    crt, key = work / "ec.crt", work / "ec.key"
    sh(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(key)])
    sh(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2", "-out", str(crt)])
    return crt, key


def build_harness(work):
    """bench/tls_bare.c over native/uh_tls.c: (plain build, allocation
    counting build)."""
    src = [str(HERE / "tls_bare.c"), str(ROOT / "native" / "uh_tls.c")]
    inc = "-I" + str(ROOT / "native")
    exe, mem = work / "tls_bare", work / "tls_bare_mem"
    libs = ["-lmbedtls", "-lmbedx509", "-lmbedcrypto"]
    sh(["gcc", "-std=c99", "-O2", inc] + src + ["-o", str(exe)] + libs)
    sh(["gcc", "-std=c99", "-O2", "-DUH_BARE_MEMSTATS", inc] + src + ["-o", str(mem),
       "-Wl,--wrap=calloc,--wrap=malloc,--wrap=realloc,--wrap=free", "-Wl,-Bstatic"] + libs
       + ["-Wl,-Bdynamic"])
    return exe, mem


def harness_mem(mem, crt, key):
    """One HTTPS request to the counting harness: its "MEM server=..." line
    and the per-connection lines, as {name: bytes}."""
    p = subprocess.Popen([str(mem), "--cert", str(crt), "--key", str(key)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        server_line = p.stdout.readline().decode().strip()
        port = int(p.stdout.readline().split()[1])
        sh(["curl", "-s", "--cacert", str(crt), "https://127.0.0.1:%d/" % port])
        lines = [server_line]
        while not lines[-1].startswith("MEM closed"):
            line = p.stdout.readline().decode().strip()
            if not line:
                raise RuntimeError("tls_bare_mem: no MEM closed line")
            lines.append(line)
    finally:
        p.kill()
        p.wait()
    out = {}
    for line in lines:
        for k, v in re.findall(r"(\w+)=(\d+)", line):
            out[k] = int(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for tool in ("gcc", "openssl", "taskset", "nginx"):
        if not shutil.which(tool):
            sys.exit("%s missing: tools/setup-deps.sh bench" % tool)
    work = pathlib.Path(tempfile.mkdtemp(prefix="tls_bench."))
    crt, key = make_cert(work)
    exe, mem = build_harness(work)
    memstats = harness_mem(mem, crt, key)

    nport = free_port()
    (work / "nginx.conf").write_text(NGINX % {"d": work, "port": nport, "crt": crt, "key": key})
    servers = {
        "uh_tls poll loop (tls_bare)": lambda: start([str(exe), "--cert", str(crt), "--key",
                                                       str(key)]),
        "bare mbedTLS (tls_bare --bare)": lambda: start([str(exe), "--bare", "--cert", str(crt),
                                                         "--key", str(key)]),
        "nginx 1 worker": lambda: start(["nginx", "-c", str(work / "nginx.conf"), "-p",
                                         str(work)], port=nport),
    }
    # all three up at once, measured in turns, so that a busy moment of the
    # (shared) machine does not fall on one server only; best of the rounds
    running = {}
    try:
        for name, mk in servers.items():
            running[name] = mk()
        hz = os.sysconf("SC_CLK_TCK")
        res = {name: [0.0, 0.0, 0.0, 0.0] for name in servers}
        for _ in range(a.rounds):
            for i, mode in enumerate(("-new", "-reuse")):
                for name, (proc, port) in running.items():
                    c0 = cpu_ticks(proc.pid)
                    rate, n = s_time(port, mode, a.seconds, a.clients)
                    cpu = (cpu_ticks(proc.pid) - c0) / hz
                    res[name][i] = max(res[name][i], rate)
                    res[name][2 + i] = max(res[name][2 + i], n / cpu if cpu > 0 else 0)
    finally:
        for proc, _ in running.values():
            proc.terminate()    # SIGTERM: nginx's master also stops its worker
            proc.wait(10)
    out = ["| server | full handshakes/s | resumed handshakes/s | full per server CPU-s "
           "| resumed per server CPU-s |", "|---|---:|---:|---:|---:|"]
    for name, (f, r, fc, rc) in res.items():
        out.append("| %s | %.0f | %.0f | %.0f | %.0f |" % (name, f, r, fc, rc))
    ref = res["nginx 1 worker"]
    u = res["uh_tls poll loop (tls_bare)"]
    out.append("")
    out.append("uh_tls / nginx: full %.2f, resumed %.2f; per server CPU-second: full %.2f, "
               "resumed %.2f  (openssl s_time -tls1_2, %d clients, %d s, best of %d; "
               "ECDSA P-256, X25519)" % (u[0] / ref[0], u[1] / ref[1], u[2] / ref[2],
                                         u[3] / ref[3], a.clients, a.seconds, a.rounds))
    out.append("uh_tls memory (bytes, every allocation counted): %s"
               % ", ".join("%s=%d" % kv for kv in memstats.items()))
    print("\n".join(out))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
