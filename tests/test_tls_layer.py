"""native/uh_tls.c on its own: bench/tls_bare.c (a small poll() HTTPS server
over uh_tls, no MicroPython) is compiled here with gcc -Wall -Wextra -Werror,
plainly and under ASan+UBSan, and checked with real clients (curl, openssl
s_client, CPython's ssl) and certificates made by openssl in the test."""
import os
import pathlib
import re
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from uhttpd_testlib import sanitizer_report

ROOT = pathlib.Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"
HARNESS = ROOT / "bench" / "tls_bare.c"
CFLAGS = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I" + str(NATIVE)]
LIBS = ["-lmbedtls", "-lmbedx509", "-lmbedcrypto"]
TIMEOUT_MS = 1000          # idle limit of the harness in the stall tests (else 5 s)


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def openssl(*args, inp=None):
    r = run(["openssl"] + list(args), input=inp)
    assert r.returncode == 0, r.stderr.decode()
    return r


# ---- build and certificates ----------------------------------------------------

@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    for tool in ("gcc", "openssl", "curl"):
        assert shutil.which(tool), "%s missing: run tools/setup-deps.sh test" % tool
    d = tmp_path_factory.mktemp("tlsbuild")
    srcs = [str(HARNESS), str(NATIVE / "uh_tls.c")]
    out = {}
    variants = {
        "plain": [],
        "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined"],
    }
    if pathlib.Path("/usr/lib/i386-linux-gnu/libmbedtls.so").exists():
        # ESP32 is 32-bit: the same tests on an i386 build (tools/setup-deps.sh
        # build32 installs libmbedtls-dev:i386)
        variants["m32"] = ["-m32"] + variants["asan"]
    for name, extra in variants.items():
        exe = d / ("tls_bare_" + name)
        r = run(["gcc"] + CFLAGS + extra + srcs + ["-o", str(exe)] + LIBS)
        assert r.returncode == 0, r.stderr.decode()
        out[name] = exe
    # allocation counting: static mbedTLS with calloc/malloc/free wrapped
    exe = d / "tls_bare_mem"
    r = run(["gcc"] + CFLAGS + ["-DUH_BARE_MEMSTATS"] + srcs + ["-o", str(exe),
            "-Wl,--wrap=calloc,--wrap=malloc,--wrap=realloc,--wrap=free",
            "-Wl,-Bstatic"] + LIBS + ["-Wl,-Bdynamic"])
    assert r.returncode == 0, r.stderr.decode()
    out["mem"] = exe
    return out


def test_uh_tls_compiles_alone_strict_and_32bit(tmp_path):
    """The pure file: C99, pedantic, no MicroPython header, 64 and 32 bit."""
    for bits in ("-m64", "-m32"):
        r = run(["gcc", bits, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror",
                 "-Wshadow", "-Wconversion", "-Wno-sign-conversion", "-I" + str(NATIVE),
                 "-c", str(NATIVE / "uh_tls.c"), "-o", str(tmp_path / "t.o")])
        assert r.returncode == 0, (bits, r.stderr.decode())
    # UH_TLS=0 leaves an empty unit (a port without mbedTLS)
    r = run(["gcc", "-DUH_TLS=0", "-Wall", "-Werror", "-I" + str(NATIVE), "-c",
             str(NATIVE / "uh_tls.c"), "-o", str(tmp_path / "t0.o")])
    assert r.returncode == 0, r.stderr.decode()
    r = run(["nm", str(tmp_path / "t0.o")])
    assert b"uh_tls" not in r.stdout
    text = (NATIVE / "uh_tls.c").read_text() + (NATIVE / "uh_tls.h").read_text()
    assert not re.search(r'#include\s+"py/', text)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    san = "subjectAltName=DNS:localhost,IP:127.0.0.1"

    def selfsigned(name, keyargs):
        key, crt = d / (name + ".key"), d / (name + ".crt")
        openssl("genpkey", *keyargs, "-out", str(key))
        openssl("req", "-x509", "-new", "-key", str(key), "-subj", "/CN=localhost",
                "-addext", san, "-days", "2", "-out", str(crt))
        return crt, key

    c = {}
    c["ec"] = selfsigned("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    c["rsa"] = selfsigned("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    c["ec2"] = selfsigned("ec2", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    # DER forms, a password-protected key, PEM with a trailing NUL
    der_crt, der_key = d / "ec.der.crt", d / "ec.der.key"
    openssl("x509", "-in", str(c["ec"][0]), "-outform", "DER", "-out", str(der_crt))
    openssl("pkey", "-in", str(c["ec"][1]), "-outform", "DER", "-out", str(der_key))
    c["ec_der"] = (der_crt, der_key)
    enc = d / "ec.enc.key"
    openssl("pkey", "-in", str(c["ec"][1]), "-aes256", "-passout", "pass:secret", "-out", str(enc))
    c["ec_enc"] = enc
    nul_crt, nul_key = d / "ec.nul.crt", d / "ec.nul.key"
    nul_crt.write_bytes(c["ec"][0].read_bytes() + b"\0")
    nul_key.write_bytes(c["ec"][1].read_bytes() + b"\0")
    c["ec_nul"] = (nul_crt, nul_key)
    c["dir"] = d
    return c


class Harness:
    def __init__(self, exe, crt, key, tmp, timeout_ms=5000, extra=()):
        self.errpath = tmp / ("harness-%d.stderr" % time.monotonic_ns())
        with open(self.errpath, "wb") as err:
            env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=0",
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
            self.proc = subprocess.Popen([str(exe), "--cert", str(crt), "--key", str(key),
                                          "--timeout-ms", str(timeout_ms)] + list(extra),
                                         stdout=subprocess.PIPE, stderr=err, env=env,
                                         bufsize=0)
        self.first = ""                 # READY, after "MEM server=..." if counting
        self.mem = ""
        for _ in range(3):
            line = self.readline(20)
            if line.startswith("MEM "):
                self.mem = line.strip()
                continue
            self.first = line
            break
        if not self.first.startswith("READY "):
            self.stop()
            raise RuntimeError("harness: %r %s" % (self.first, self.log()))
        self.port = int(self.first.split()[1])

    def readline(self, timeout=10):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().decode() if r else ""

    def log(self):
        return self.errpath.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()
        bad = sanitizer_report(self.log())
        assert not bad, self.log()[-4000:]


def start_error(exe, crt, key):
    """Run the harness with a bad cert/key: its 'ERROR <message>' line."""
    r = run([str(exe), "--cert", str(crt), "--key", str(key)])
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    line = r.stdout.decode().strip()
    assert line.startswith("ERROR "), line
    return line[6:]


@pytest.fixture(params=["plain", "asan", "m32"])
def server(request, builds, certs, tmp_path):
    """The harness with the ECDSA P-256 certificate; also the RSA one on demand."""
    if request.param not in builds:
        pytest.skip("no i386 mbedTLS (tools/setup-deps.sh build32)")
    started = []

    def start(kind="ec", **kw):
        crt, key = certs[kind]
        h = Harness(builds[request.param], crt, key, tmp_path, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        assert h.alive(), "harness died:\n" + h.log()[-4000:]
        h.stop()


# ---- clients ---------------------------------------------------------------------

def tls_ctx(certs, kind="ec"):
    ctx = ssl.create_default_context(cafile=str(certs[kind][0]))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_connect(h, certs, kind="ec", timeout=10):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=timeout)
    return tls_ctx(certs, kind).wrap_socket(s, server_hostname="localhost")


def read_response(s):
    """One HTTP/1.1 response with Content-Length: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "closed before the head: %r" % buf
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    body = bytearray(rest)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    n = int(hdrs["content-length"])
    while len(body) < n:
        b = s.recv(1 << 20)
        assert b, "closed after %d of %d body bytes" % (len(body), n)
        body += b
    assert len(body) == n
    return status, hdrs, bytes(body)


def pattern(n):
    return bytes(i % 251 for i in range(251)) * (n // 251) + bytes(range(n % 251))


def s_client(port, *args, inp=b"", timeout=20):
    return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-servername", "localhost"] + list(args), input=inp, timeout=timeout)


# ---- behaviour -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_curl_gets_pages_over_keepalive(server, certs, kind):
    h = server(kind)
    url = "https://localhost:%d" % h.port
    r = run(["curl", "-sS", "-v", "--cacert", str(certs[kind][0]),
             "--resolve", "localhost:%d:127.0.0.1" % h.port, url + "/", url + "/stream/70000"])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hello, tls\n" + pattern(70000)
    err = r.stderr.decode()
    assert "Re-using existing connection" in err          # keep-alive over TLS
    assert "ALPN: server accepted http/1.1" in err
    assert "TLSv1.2" in err or "TLSv1.3" in err


@pytest.mark.parametrize("n", [0, 1, 16383, 16384, 16385, 3 * 16384 + 7, 5 * 1024 * 1024])
def test_stream_sizes_around_the_record_limit(server, certs, n):
    """uh_tls_send takes at most one record (16384 bytes here) per call."""
    h = server()
    with tls_connect(h, certs) as s:
        s.sendall(b"GET /stream/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        st, _, body = read_response(s)
        assert st == 200 and body == pattern(n)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # still in step
        assert read_response(s)[2] == b"hello, tls\n"


def test_slow_reader_forces_want_write_retries(server, certs):
    """A reader that lags makes the server's sends return WANT_WRITE many
    times: every byte must still arrive once, in order (the retry rule)."""
    h = server()
    n = 8 * 1024 * 1024
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", h.port))
    with tls_ctx(certs).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /stream/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        body = buf.split(b"\r\n\r\n", 1)[1]
        chunks = [body]
        got = len(body)
        i = 0
        while got < n:
            b = s.recv(3000)
            assert b
            chunks.append(b)
            got += len(b)
            i += 1
            if i % 200 == 0:
                time.sleep(0.01)   # lag on purpose: the server must wait for POLLOUT
        assert b"".join(chunks) == pattern(n)


def test_pipelined_requests_in_one_record(server, certs):
    h = server()
    with tls_connect(h, certs) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /nope HTTP/1.1\r\n\r\n")
        for want in (200, 200, 200, 404):
            assert read_response(s)[0] == want


def test_http10_and_connection_close_end_the_connection(server, certs):
    h = server()
    for req in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"):
        with tls_connect(h, certs) as s:
            s.sendall(req)
            st, hdrs, body = read_response(s)
            assert st == 200 and hdrs["connection"] == "close"
            assert s.recv(100) == b""       # close_notify, then EOF


def test_openssl_tls12_and_session_resumption(server, certs, tmp_path):
    """Resumption by ticket (RFC 5077) and by session ID (the cache)."""
    h = server()
    for mode, extra in (("ticket", []), ("session id", ["-no_ticket"])):
        sess = tmp_path / ("sess-%s.pem" % mode.replace(" ", ""))
        r = s_client(h.port, "-tls1_2", "-CAfile", str(certs["ec"][0]), "-sess_out", str(sess),
                     *extra)
        out = r.stdout.decode()
        assert "New, TLSv1.2" in out and "Verify return code: 0 (ok)" in out, out
        for _ in range(2):
            r = s_client(h.port, "-tls1_2", "-CAfile", str(certs["ec"][0]), "-sess_in",
                         str(sess), *extra)
            assert "Reused, TLSv1.2" in r.stdout.decode(), (mode, r.stdout.decode())


@pytest.mark.parametrize("kind,curves,temp", [
    ("ec", "X25519:prime256v1", "X25519"),
    ("ec", "prime256v1", "prime256v1"),
    ("ec", "secp521r1:secp384r1:X25519:prime256v1", "X25519"),    # ours first
    ("ec", "secp521r1:prime256v1", "prime256v1"),                 # never 521
    ("rsa", "X25519", "X25519"),
    ("rsa", "prime256v1", "prime256v1"),
])
def test_key_exchange_curves(server, certs, kind, curves, temp):
    h = server(kind)
    r = s_client(h.port, "-tls1_2", "-curves", curves, "-CAfile", str(certs[kind][0]))
    out = r.stdout.decode()
    assert re.search(r"Server Temp Key: (ECDH, )?%s" % temp, out), out
    assert "Verify return code: 0 (ok)" in out


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_only_unsupported_curves_refused_cleanly(server, certs, kind):
    h = server(kind)
    for curves in ("secp521r1", "secp384r1:secp521r1"):
        r = s_client(h.port, "-tls1_2", "-curves", curves)
        assert r.returncode != 0
        assert b"handshake failure" in r.stderr, r.stderr.decode()
    with tls_connect(h, certs, kind) as s:      # and the server goes on
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_response(s)[0] == 200


def test_versions_and_alpn(server, certs):
    h = server()
    r = s_client(h.port, "-tls1_1")
    assert r.returncode != 0 and b"protocol version" in r.stderr
    r = s_client(h.port, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in r.stdout.decode()
    r = s_client(h.port, "-alpn", "h2")                     # no common protocol
    assert r.returncode != 0 and b"no application protocol" in r.stderr
    r = s_client(h.port)                                    # what a default client gets
    out = r.stdout.decode()
    proto = re.search(r"Protocol *: (TLSv1\.[23])", out)
    assert proto, out                                       # 1.3 where mbedTLS has it
    if proto.group(1) == "TLSv1.2":
        assert re.search(r"Cipher is ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20)", out), out


def test_plain_http_on_the_tls_port_gets_400(server, certs):
    h = server()
    for req in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /up HTTP/1.1\r\nContent-Length: 65536\r\n\r\n" + b"x" * 65536,
                b"G"):
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(req)
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        s.close()
        assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out
        assert b"Connection: close" in out
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d/" % h.port])
    assert r.stdout == b"400"


def client_hello():
    """The first flight of a real TLS client, as bytes."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def closed_within(s, seconds):
    """Wait for the server to close s; the elapsed time (fails past seconds)."""
    t0 = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail("server did not close within %.1f s" % seconds)
    return time.monotonic() - t0


def test_garbage_and_truncated_handshakes_do_not_disturb_others(server, certs):
    h = server(timeout_ms=TIMEOUT_MS)
    good = tls_connect(h, certs)
    good.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert read_response(good)[0] == 200
    hello = client_hello()
    assert hello[0] == 0x16 and len(hello) > 100
    bad_inputs = [
        b"\x00\x01\x02\x03" * 64,                            # not HTTP, not TLS
        b"\x16\x02\x00",                                     # handshake, bad version
        b"\x16\x03\x01\x00\x05hello",                        # record with junk inside
        b"\x16\x03\x01\xff\xff" + b"A" * 300,                # record length over the limit
        hello[:5] + bytes(len(hello) - 5),                   # right size, zeroed body
        b"\x17\x03\x03\x00\x10" + b"B" * 16,                 # application data first
    ]
    for data in bad_inputs:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(data)
        closed_within(s, TIMEOUT_MS / 1000 + 3)
        s.close()
    # stalled handshakes: half a ClientHello, a full one then silence; they
    # are closed by the timeout while the good client keeps being served
    stalled = []
    for data in (hello[: len(hello) // 2], hello, hello[:1]):
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(data)
        stalled.append(s)
    for _ in range(3):
        good.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_response(good)[0] == 200
    for s in stalled:
        closed_within(s, TIMEOUT_MS / 1000 + 3)
        s.close()
    good.close()            # idle as long as the stalled ones: timed out too
    good = tls_connect(h, certs)
    # clients that vanish mid-handshake or mid-response
    for data in (hello[:100], hello):
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(data)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()                                           # RST
    v = tls_connect(h, certs)
    v.sendall(b"GET /stream/%d HTTP/1.1\r\n\r\n" % (64 << 20))
    v.recv(100)
    v.close()
    good.sendall(b"GET /stream/100000 HTTP/1.1\r\n\r\n")
    assert read_response(good)[2] == pattern(100000)
    good.close()
    assert h.alive()


def test_many_concurrent_clients(server, certs):
    h = server()
    errors = []

    def client(i):
        try:
            with tls_connect(h, certs) as s:
                for j in range(4):
                    n = 1000 * i + j
                    s.sendall(b"GET /stream/%d HTTP/1.1\r\n\r\n" % n)
                    if read_response(s)[2] != pattern(n):
                        errors.append((i, j))
        except Exception as e:  # noqa: BLE001 (collected, asserted below)
            errors.append((i, repr(e)))

    ts = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors


@pytest.mark.parametrize("form", ["ec_der", "ec_nul"])
def test_der_and_nul_terminated_pem_load(builds, certs, tmp_path, form):
    crt, key = certs[form]
    h = Harness(builds["asan"], crt, key, tmp_path)
    try:
        with tls_connect(h, certs) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert read_response(s)[0] == 200
    finally:
        h.stop()


def test_bad_certificate_and_key_give_clear_errors(builds, certs):
    exe = builds["asan"]
    d = certs["dir"]
    ec_crt, ec_key = certs["ec"]
    rsa_crt, rsa_key = certs["rsa"]
    empty = d / "empty"
    empty.write_bytes(b"")
    junk = d / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cut = d / "cut.crt"
    cut.write_bytes(ec_crt.read_bytes()[:200])
    cases = [
        (empty, ec_key, r"^TLS certificate is empty$"),
        (ec_crt, empty, r"^TLS key is empty$"),
        (junk, ec_key, r"^TLS certificate: not a valid PEM or DER X\.509 certificate \(mbedTLS"),
        (cut, ec_key, r"^TLS certificate: not a valid"),
        (ec_key, ec_crt, r"^TLS certificate: this is a private key.*swapped"),
        (ec_crt, ec_crt, r"^TLS key: this is a certificate.*swapped"),
        (ec_crt, junk, r"^TLS key: "),
        (ec_crt, certs["ec2"][1], r"^TLS key does not match the certificate$"),
        (ec_crt, rsa_key, r"^TLS key does not match the certificate$"),
        (rsa_crt, ec_key, r"^TLS key does not match the certificate$"),
        (ec_crt, certs["ec_enc"], r"^TLS key: it is encrypted with a password"),
    ]
    for crt, key, want in cases:
        msg = start_error(exe, crt, key)
        assert re.search(want, msg), (crt.name, key.name, msg)


def test_memory_per_connection_and_no_leak(builds, certs, tmp_path):
    """Counts every allocation (calloc/malloc/free wrapped over the static
    mbedTLS).  Prints the figures; asserts only shape and no growth."""
    crt, key = certs["ec"]
    h = Harness(builds["mem"], crt, key, tmp_path, extra=())
    try:
        url = "https://localhost:%d/" % h.port
        totals, first = [], None
        for i in range(40):          # more than the session cache holds (16)
            r = run(["curl", "-sS", "--cacert", str(crt),
                     "--resolve", "localhost:%d:127.0.0.1" % h.port, url])
            assert r.stdout == b"hello, tls\n"
            lines = []
            while not (lines and lines[-1].startswith("MEM closed")):
                ln = h.readline()
                assert ln, "no MEM line"
                lines.append(ln.strip())
            txt = " ".join(lines)
            if first is None:
                first = txt
            totals.append(int(re.search(r"closed total=(\d+)", txt).group(1)))
        conn_new = int(re.search(r"conn_new=(\d+)", first).group(1))
        peak = int(re.search(r"hs_peak=(\d+)", first).group(1))
        est = int(re.search(r"established=(\d+)", first).group(1))
        print("\nTLS memory (bytes): %s; per connection: conn_new=%d hs_peak=%d "
              "established=%d; process total after 40 connections=%d"
              % (h.mem, conn_new, peak, est, totals[-1]))
        assert 0 < conn_new < peak and 0 < est < peak
        assert len(set(totals[-10:])) == 1, totals      # steady: nothing leaks
    finally:
        h.stop()


def test_micropython_build_has_tls_ssl_hashlib(builds, certs, tmp_path):
    """The built micropython has `tls`, `hashlib.sha1/sha256`, `cryptolib`
    and the frozen `ssl` (boards/unix-uhttpd/ssl.py) from the same mbedTLS:
    its ssl client verifies the harness's certificate and fetches a page."""
    from uhttpd_testlib import BINARY
    h = Harness(builds["plain"], *certs["ec"], tmp_path)
    script = tmp_path / "client.py"
    script.write_text("""
import binascii, hashlib, socket, ssl, tls, cryptolib
print(binascii.hexlify(hashlib.sha1(b"abc").digest()).decode())
print(binascii.hexlify(hashlib.sha256(b"abc").digest()).decode()[:16])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cafile=%r)
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
ss = ctx.wrap_socket(s, server_hostname="localhost")
ss.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
data = b""
while True:
    b = ss.read(512)
    if not b:
        break
    data += b
ss.close()
print(data.split(b"\\r\\n")[0].decode(), data.endswith(b"hello, tls\\n"))
""" % (str(certs["ec"][0]), h.port))
    try:
        r = run([BINARY, str(script)], timeout=30)
    finally:
        h.stop()
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    assert r.stdout.decode().split("\n")[:3] == [
        "a9993e364706816aba3e25717850c26c9cd0d89d", "ba7816bf8f01cfea",
        "HTTP/1.1 200 OK True"]


def test_mutated_client_hellos_never_hurt_the_server(server, certs):
    """A real ClientHello with random bytes changed, cut short or extended,
    each on its own connection (then EOF): every one ends in a close, and
    the server (under ASan/UBSan in two of the builds) serves on."""
    import random
    h = server()
    rnd = random.Random(1234)
    hello = client_hello()
    for i in range(300):
        m = bytearray(hello)
        for _ in range(rnd.randint(1, 8)):
            m[rnd.randrange(len(m))] = rnd.randrange(256)
        if i % 3 == 1:
            m = m[: rnd.randrange(1, len(m))]
        elif i % 3 == 2:
            m += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 600)))
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        try:
            s.sendall(bytes(m))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass                # the server closed first: fine
        closed_within(s, 10)
        s.close()
    with tls_connect(h, certs) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_response(s)[0] == 200
