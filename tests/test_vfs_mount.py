"""Uploads onto a VfsPosix mounted at /sd (design.md section 7, last rule).

MicroPython 1.25's VfsPosix.rename() builds both paths in one buffer when
the VFS root is not empty (micropython issue #7389), so the receiver's
rename of its temporary file over the target fails (201 becomes 500) or
silently does nothing (a replace answers 200 but keeps the old content and
leaves the temporary behind).  The build applies the upstream fix
(boards/unix-uhttpd/patches/0001-*.patch); these tests fail without it.
"""
import pytest
import requests


@pytest.fixture
def sd(app, tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    return app("vfsmount", "root=%s" % card), card


def test_upload_create_then_replace(sd):
    srv, card = sd
    r = requests.post(srv.url + "/up/sd/x.txt", data=b"first body")
    assert r.status_code == 201, r.text
    assert (card / "x.txt").read_bytes() == b"first body"
    assert sorted(p.name for p in card.iterdir()) == ["x.txt"]    # no temporary left

    r = requests.post(srv.url + "/up/sd/x.txt", data=b"second")
    assert r.status_code == 200, r.text
    assert (card / "x.txt").read_bytes() == b"second"
    assert sorted(p.name for p in card.iterdir()) == ["x.txt"]
    # and read back through the mounted VFS
    assert requests.get(srv.url + "/get/x.txt").content == b"second"


def test_upload_large_into_subdirectory(sd):
    srv, card = sd
    body = bytes(range(256)) * 1024          # 256 KiB: many file blocks
    r = requests.put(srv.url + "/up/sd/a/b/big.bin", data=body)
    assert r.status_code == 201, r.text
    assert (card / "a" / "b" / "big.bin").read_bytes() == body
    assert sorted(p.name for p in (card / "a" / "b").iterdir()) == ["big.bin"]


def test_extonly_and_delete_on_the_mount(sd):
    srv, card = sd
    r = requests.post(srv.url + "/up/tmp/outside.txt", data=b"no")
    assert r.status_code == 403
    r = requests.post(srv.url + "/up/sd/gone.txt", data=b"bye")
    assert r.status_code == 201
    r = requests.delete(srv.url + "/up/sd/gone.txt")
    assert r.status_code == 204
    assert list(card.iterdir()) == []
