"""Server lifetime: close(), context manager, garbage collection, exit,
several servers, a main thread that is busy or sleeps."""
import subprocess
import time

import requests

from uhttpd_testlib import BINARY, APPS, sanitizer_report


def run(scenario, timeout=30):
    p = subprocess.run([BINARY, str(APPS / "lifetime.py"), scenario], capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()
    assert not sanitizer_report(p.stderr.decode(errors="replace")), p.stderr.decode(errors="replace")
    return dict(line.split(" ", 1) for line in p.stdout.decode().splitlines() if " " in line)


def test_close_frees_port_and_new_server_works():
    out = run("close")
    assert out == {"first": "HTTP/1.1 200 OK", "refused": "True", "second": "HTTP/1.1 200 OK"}


def test_context_manager():
    assert run("with") == {"inside": "HTTP/1.1 200 OK", "refused": "True"}


def test_garbage_collection_stops_server():
    assert run("gc") == {"first": "HTTP/1.1 200 OK", "second": "HTTP/1.1 200 OK", "refused": "True"}


def test_many_servers_sequential_and_parallel():
    out = run("many")
    assert out["two"] == "HTTP/1.1 200 HTTP/1.1 200"


def test_argument_errors():
    out = run("errors")
    assert out["basic-noauth"] == "ValueError"
    assert out["custom-notcallable"] == "ValueError"
    assert out["port"] == "ValueError"
    assert "out of route slots" in out["slots"] and "routes=3" in out["slots"]
    assert out["url"] == "ValueError"
    assert out["methods"] == "ValueError"
    assert out["inuse"] == "OSError"
    assert out["fixed"] == "OSError"
    assert out["preset"] == "HTTP/1.1 200 OK"


def test_interpreter_exit_with_running_server(app):
    t = time.monotonic()
    r = app("lifetime", "exit")
    r.proc.wait(10)
    assert r.proc.returncode == 0
    assert time.monotonic() - t < 10


def test_busy_main_thread_still_served(app):
    r = app("lifetime", "busy")
    with requests.Session() as s:
        for _ in range(20):
            assert s.get(r.url + "/", timeout=5).text == "hi"


def test_sleep_ms_main_thread_fast(app):
    r = app("lifetime", "sleep_ms")
    t = time.monotonic()
    with requests.Session() as s:
        for _ in range(50):
            assert s.get(r.url + "/", timeout=5).text == "hi"
    assert time.monotonic() - t < 5   # not one GIL bounce (~320 ms) per request


def test_close_from_handler(app):
    r = app("basic", "exit_when_closed=1")
    assert requests.get(r.url + "/close").text == "closing"
    r.proc.wait(10)
    assert b"CLOSED" in r.proc.stdout.read()
