"""HTTPS and WSS (design.md section 9) against the built micropython, with
real clients: requests and curl with the CA file, openssl s_client,
websocket-client with an SSL context.  Certificates are made here with
openssl: a CA and an ECDSA P-256 server certificate for 127.0.0.1."""
import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests
import websocket

from uhttpd_testlib import APPS, BINARY, start_app, stop_app


def openssl(*args, inp=None):
    r = subprocess.run(["openssl"] + list(args), input=inp, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca = d / "ca.key", d / "ca.crt"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ca_key))
    openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=uhttpd test CA", "-days", "2",
            "-out", str(ca))
    key, csr, crt = d / "srv.key", d / "srv.csr", d / "srv.crt"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(crt))
    other = d / "other.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(other))
    return {"ca": ca, "crt": crt, "key": key, "other_key": other, "dir": d}


@pytest.fixture
def tls_app(pki, tmp_path):
    started = []
    root = tmp_path / "root"
    root.mkdir()

    def run(*opts, crt=None, key=None):
        r = start_app("tls", crt or pki["crt"], key or pki["key"], root, *opts, tmp_path=tmp_path,
                      interactive=any(o.startswith("pwd=") for o in opts))
        r.url = "https://127.0.0.1:%d" % r.port
        r.root = root
        started.append(r)
        return r
    yield run
    for r in started:
        stop_app(r)


def ctx(pki):
    c = ssl.create_default_context(cafile=str(pki["ca"]))
    return c


def tls_sock(r, pki, timeout=10):
    s = socket.create_connection((r.host, r.port), timeout=timeout)
    return ctx(pki).wrap_socket(s, server_hostname="127.0.0.1")


def test_requests_routes_keepalive_and_chunks(tls_app, pki):
    r = tls_app()
    with requests.Session() as s:
        for _ in range(3):
            resp = s.get(r.url + "/hello", verify=str(pki["ca"]), timeout=10)
            assert resp.status_code == 200 and resp.text == "Hello over TLS"
        resp = s.get(r.url + "/chunks?n=100", verify=str(pki["ca"]), timeout=10)
        assert resp.text == "".join("chunk %d;" % i for i in range(100))
        body = os.urandom(200000)
        resp = s.post(r.url + "/echo", data=body, verify=str(pki["ca"]), timeout=10)
        assert resp.content == body


def test_curl_with_the_ca_file(tls_app, pki):
    r = tls_app()
    out = subprocess.run(["curl", "-sS", "--cacert", str(pki["ca"]), r.url + "/hello"],
                         capture_output=True, timeout=30)
    assert out.stdout == b"Hello over TLS", out.stderr


def test_files_range_and_upload_over_tls(tls_app, pki):
    r = tls_app()
    data = os.urandom(3 * 1024 * 1024 + 17)
    (r.root / "big.bin").write_bytes(data)
    v = str(pki["ca"])
    resp = requests.get(r.url + "/files/big.bin", verify=v, timeout=30)
    assert resp.content == data
    resp = requests.get(r.url + "/files/big.bin", headers={"Range": "bytes=1000-1999"}, verify=v, timeout=10)
    assert resp.status_code == 206 and resp.content == data[1000:2000]
    up = os.urandom(2 * 1024 * 1024)
    resp = requests.post(r.url + "/up%s/up.bin" % r.root, data=up, verify=v, timeout=30)
    assert resp.status_code == 201
    assert hashlib.sha256((r.root / "up.bin").read_bytes()).digest() == hashlib.sha256(up).digest()


def test_sse_over_tls(tls_app, pki):
    r = tls_app()
    s = tls_sock(r, pki)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"retry: 3000\n\n" not in buf:
        buf += s.recv(4096)
    assert b"text/event-stream" in buf
    requests.get(r.url + "/send?data=over-tls", verify=str(pki["ca"]), timeout=10)
    while b"data: over-tls\n\n" not in buf:
        buf += s.recv(4096)
    s.close()


def test_wss_webrepl(tls_app, pki):
    r = tls_app("pwd=secret")
    ws = websocket.create_connection("wss://127.0.0.1:%d/" % r.port, timeout=10,
                                     sslopt={"ca_certs": str(pki["ca"])})
    out = ""
    while "Password: " not in out:
        out += ws.recv()
    ws.send("secret\r")
    while "WebREPL connected" not in out:
        out += ws.recv()
    ws.close()


def s_client(port, *args, inp=b"Q\n", timeout=20):
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                          input=inp, capture_output=True, timeout=timeout)


def test_openssl_tls12_and_session_resumption(tls_app, pki, tmp_path):
    r = tls_app()
    sess = tmp_path / "sess.pem"
    out = s_client(r.port, "-tls1_2", "-CAfile", str(pki["ca"]), "-sess_out", str(sess))
    text = out.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in text and "TLSv1.2" in text
    out = s_client(r.port, "-tls1_2", "-CAfile", str(pki["ca"]), "-sess_in", str(sess))
    assert "Reused, TLSv1.2" in out.stdout.decode(errors="replace")


@pytest.mark.parametrize("curves,name", [
    # X25519 is preferred; an ECDSA P-256 certificate needs the client to
    # accept P-256 too in TLS 1.2 (RFC 8422), as every real client does
    ("X25519:prime256v1", "X25519"),
    ("prime256v1:X25519", "X25519"),
    ("prime256v1", "ECDH, prime256v1"),
])
def test_each_curve(tls_app, pki, curves, name):
    r = tls_app()
    out = s_client(r.port, "-tls1_2", "-curves", curves, "-CAfile", str(pki["ca"]))
    assert "Server Temp Key: " + name in out.stdout.decode(errors="replace")


def test_secp521r1_alone_is_refused_cleanly(tls_app, pki):
    r = tls_app()
    out = s_client(r.port, "-tls1_2", "-curves", "secp521r1", "-CAfile", str(pki["ca"]))
    assert "Server Temp Key" not in out.stdout.decode(errors="replace")
    assert requests.get(r.url + "/hello", verify=str(pki["ca"]), timeout=10).status_code == 200


def test_plain_http_to_the_tls_port_gets_a_plain_400(tls_app, pki):
    r = tls_app()
    out = r.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:80]
    assert b"Connection: close" in out
    assert requests.get(r.url + "/hello", verify=str(pki["ca"]), timeout=10).status_code == 200


def closed_without_reply(r, data):
    try:
        return r.raw(data, timeout=5)
    except ConnectionResetError:
        return b""


def test_garbage_and_truncated_handshakes_are_closed(tls_app, pki):
    r = tls_app()
    # garbage that is neither TLS nor HTTP: closed without a reply
    assert closed_without_reply(r, b"\x00\x01\x02garbage\r\n\r\n") == b""
    # a record header that claims a ClientHello, then nonsense: closed,
    # at most with a TLS alert
    assert closed_without_reply(r, b"\x16\x03\x01\x00\x40" + os.urandom(64))[:1] in (b"", b"\x15")
    # a truncated ClientHello and a close
    s = r.connect()
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01")
    s.close()
    assert requests.get(r.url + "/hello", verify=str(pki["ca"]), timeout=10).status_code == 200


def test_stalled_handshake_is_cut_at_timeout_while_others_are_served(tls_app, pki):
    r = tls_app("timeout=1", "max_conns=4")
    stalled = []
    for _ in range(2):
        s = r.connect()
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01")   # half a ClientHello
        stalled.append(s)
    t0 = time.monotonic()
    for _ in range(5):
        assert requests.get(r.url + "/hello", verify=str(pki["ca"]), timeout=5).status_code == 200
    for s in stalled:
        s.settimeout(5)
        assert s.recv(100) == b""   # closed by the server
        s.close()
    assert time.monotonic() - t0 < 4


def test_tls_cert_and_key_given_as_bytes(tls_app, pki):
    r = tls_app("bytes=1")
    assert requests.get(r.url + "/hello", verify=str(pki["ca"]), timeout=10).text == "Hello over TLS"


@pytest.mark.parametrize("case,needle", [
    ("missing_cert", "cannot be read"),
    ("key_mismatch", "does not match"),
    ("cert_is_key", "certificate"),
])
def test_bad_cert_or_key_raises_a_clear_error(pki, tmp_path, case, needle):
    crt, key = pki["crt"], pki["key"]
    if case == "missing_cert":
        crt = tmp_path / "nope.crt"
    elif case == "key_mismatch":
        key = pki["other_key"]
    elif case == "cert_is_key":
        crt = pki["key"]
    proc = subprocess.run([BINARY, str(APPS / "tls.py"), str(crt), str(key), str(tmp_path)],
                          capture_output=True, timeout=30,
                          env=dict(os.environ, MICROPYPATH="%s:.frozen" % APPS))
    out = proc.stdout.decode()
    assert out.startswith("ERROR"), (out, proc.stderr)
    assert needle in out, out


def test_many_clients_at_once(tls_app, pki):
    r = tls_app("max_conns=8")
    errors = []

    def client():
        try:
            with requests.Session() as s:
                for _ in range(5):
                    assert s.get(r.url + "/hello", verify=str(pki["ca"]), timeout=20).status_code in (200, 503)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=client) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
