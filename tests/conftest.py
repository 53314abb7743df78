"""Fixtures (helpers in uhttpd_testlib.py: both this folder and fuzz/ have a
conftest.py, so test modules import helpers from a uniquely named module)."""
import pytest

from uhttpd_testlib import start_app, stop_app  # noqa: F401


@pytest.fixture
def app(tmp_path):
    """app(name, *args) -> Running; stopped at teardown."""
    started = []

    def run(name, *args, **kw):
        r = start_app(name, *args, tmp_path=tmp_path, **kw)
        started.append(r)
        return r

    yield run
    for r in started:
        stop_app(r)


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    r = start_app("basic", tmp_path=tmp_path_factory.mktemp("basic"))
    yield r
    stop_app(r)
