# Lifetime scenarios; each prints lines the test checks, then READY <port>
# where a client is expected to talk to the final server.
import sys
import gc
import time
import socket
import uhttpd

scenario = sys.argv[1]


def hello(req):
    req.write("hi")


def get(port, path="/"):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.send(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    out = b""
    while True:
        b = s.recv(512)
        if not b:
            break
        out += b
    s.close()
    return out


def refused(port):
    s = socket.socket()
    try:
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        return False
    except OSError:
        return True
    finally:
        s.close()


if scenario == "close":
    srv = uhttpd.Server(0, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    port = srv.port()
    print("first", get(port).split(b"\r\n")[0].decode())
    srv.close()
    srv.close()  # idempotent
    print("refused", refused(port))
    srv2 = uhttpd.Server(port, host="127.0.0.1")
    srv2.route("/", uhttpd.GET, hello)
    print("second", get(port).split(b"\r\n")[0].decode())
    srv2.close()
elif scenario == "with":
    with uhttpd.Server(0, host="127.0.0.1") as srv:
        srv.route("/", uhttpd.GET, hello)
        port = srv.port()
        print("inside", get(port).split(b"\r\n")[0].decode())
    print("refused", refused(port))
elif scenario == "gc":
    srv = uhttpd.Server(0, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    port = srv.port()
    print("first", get(port).split(b"\r\n")[0].decode())
    srv = None
    gc.collect()
    # the port is free again: a new server binds it (waits for the stop)
    srv = uhttpd.Server(port, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    print("second", get(port).split(b"\r\n")[0].decode())
    srv.close()
    # and after a GC alone the old port stops answering
    srv = uhttpd.Server(0, host="127.0.0.1")
    port = srv.port()
    srv = None
    gc.collect()
    t = time.ticks_ms()
    while not refused(port) and time.ticks_diff(time.ticks_ms(), t) < 3000:
        time.sleep_ms(10)
    print("refused", refused(port))
elif scenario == "many":
    for i in range(30):
        s = uhttpd.Server(0, host="127.0.0.1")
        s.route("/", uhttpd.GET, hello)
        assert get(s.port()).startswith(b"HTTP/1.1 200")
        s.close()
    a = uhttpd.Server(0, host="127.0.0.1")
    b = uhttpd.Server(0, host="127.0.0.1")
    a.route("/", uhttpd.GET, hello)
    b.route("/", uhttpd.GET, hello)
    print("two", get(a.port())[:12].decode(), get(b.port())[:12].decode())
    a.close()
    b.close()
    gc.collect()
    print("ok")
elif scenario == "exit":
    srv = uhttpd.Server(0, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    print("READY", srv.port())
    # the script ends here; the interpreter must exit promptly
elif scenario == "busy":
    # main thread in a busy loop: the server still answers (GIL bounce)
    srv = uhttpd.Server(0, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    print("READY", srv.port())
    n = 0
    t = time.time()
    while time.time() - t < 30:
        n += 1
elif scenario == "sleep_ms":
    srv = uhttpd.Server(0, host="127.0.0.1")
    srv.route("/", uhttpd.GET, hello)
    print("READY", srv.port())
    while True:
        time.sleep_ms(10)
elif scenario == "errors":
    try:
        uhttpd.Server(0, acl=uhttpd.AUTH_BASIC)
    except ValueError as e:
        print("basic-noauth", "ValueError")
    try:
        uhttpd.Server(0, acl=uhttpd.AUTH_CUSTOM, auth=b"x")
    except ValueError as e:
        print("custom-notcallable", "ValueError")
    try:
        uhttpd.Server(70000)
    except ValueError:
        print("port", "ValueError")
    s = uhttpd.Server(0, host="127.0.0.1", routes=3)
    s.route("/a", uhttpd.GET, hello)
    try:
        s.route("/b", uhttpd.GET | uhttpd.POST, hello)
    except OSError as e:
        print("slots", str(e))
    s.route("/b", uhttpd.GET, hello)
    try:
        s.route("c", uhttpd.GET, hello)
    except ValueError:
        print("url", "ValueError")
    try:
        s.route("/c", 1024, hello)
    except ValueError:
        print("methods", "ValueError")
    try:
        uhttpd.Server(s.port(), host="127.0.0.1")
    except OSError as e:
        print("inuse", "OSError")
    s.close()
    t = uhttpd.Server(0, host="127.0.0.1", routes=[("/x", uhttpd.GET, hello), ("/y", uhttpd.GET | uhttpd.POST, hello)])
    try:
        t.route("/z", uhttpd.GET, hello)
    except OSError:
        print("fixed", "OSError")
    print("preset", get(t.port(), "/y")[:15].decode())
    t.close()
