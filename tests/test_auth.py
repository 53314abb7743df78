"""AUTH_BASIC, AUTH_CUSTOM and CORS."""
import pytest
import requests


@pytest.fixture(scope="module")
def basic_auth(tmp_path_factory):
    from uhttpd_testlib import start_app, stop_app
    r = start_app("basic", "auth=basic", tmp_path=tmp_path_factory.mktemp("ba"))
    yield r
    stop_app(r)


@pytest.fixture(scope="module")
def custom_auth(tmp_path_factory):
    from uhttpd_testlib import start_app, stop_app
    r = start_app("basic", "auth=custom", "cors=1", tmp_path=tmp_path_factory.mktemp("ca"))
    yield r
    stop_app(r)


def test_basic_auth_required(basic_auth):
    r = requests.get(basic_auth.url + "/hello")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="uhttpd"'


def test_basic_auth_ok(basic_auth):
    r = requests.get(basic_auth.url + "/hello", auth=("answer", "42"))
    assert r.status_code == 200 and r.text == "Hello, World!"


@pytest.mark.parametrize("cred", [("answer", "43"), ("answer", "4"), ("answe", "42"), ("answer", "420")])
def test_basic_auth_wrong(basic_auth, cred):
    assert requests.get(basic_auth.url + "/hello", auth=cred).status_code == 401


def test_basic_auth_covers_unrouted(basic_auth):
    assert requests.get(basic_auth.url + "/nope").status_code == 401
    assert requests.get(basic_auth.url + "/nope", auth=("answer", "42")).status_code == 404


def test_options_preflight_without_auth(basic_auth):
    r = requests.options(basic_auth.url + "/hello")
    assert r.status_code == 204


def test_custom_auth(custom_auth):
    u = custom_auth.url + "/hello"
    assert requests.get(u).status_code == 401
    assert requests.get(u, headers={"X-Token": "bad"}).status_code == 401
    assert requests.get(u, headers={"X-Token": "good"}).status_code == 200
    assert requests.get(u, headers={"X-Token": "teapot"}).status_code == 418
    assert requests.get(u, headers={"X-Token": "boom"}).status_code == 500
    assert "auth exploded" in custom_auth.log()
    assert requests.get(u, headers={"X-Token": "good"}).status_code == 200


def test_custom_auth_before_routing(custom_auth):
    assert requests.get(custom_auth.url + "/nope").status_code == 401


def test_cors_on_every_reply(custom_auth):
    for r in (requests.get(custom_auth.url + "/hello", headers={"X-Token": "good"}),
              requests.get(custom_auth.url + "/hello"),
              requests.get(custom_auth.url + "/nope", headers={"X-Token": "good"})):
        assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight(custom_auth):
    r = requests.options(custom_auth.url + "/info", headers={
        "Origin": "http://example.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, X-Token"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    assert r.headers["Access-Control-Allow-Headers"] == "Authorization, X-Token"
