"""Replay every input libFuzzer ever saved (fuzz/regressions/) and the seed
corpus through the cffi build: no crash, and a valid result."""
import pathlib

import pytest

from uhp import lib, parse, decode_chunked, url_decode, path_normalize, ERRORS

HERE = pathlib.Path(__file__).resolve().parent
CASES = sorted(p for d in ("regressions", "corpus") for p in (HERE / d).iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("path", CASES, ids=[p.parent.name + "/" + p.name for p in CASES])
def test_replay(path):
    data = path.read_bytes()
    rc, _ = parse(data)
    assert rc == lib.UH_PARTIAL or rc in ERRORS or 0 < rc <= len(data)
    decode_chunked(data)
    decode_chunked(data, [data[i:i + 1] for i in range(len(data))])
    url_decode(data)
    path_normalize(data)


# native/uh_wsframe.c: the libFuzzer target's seeds and saved crashes
# (byte 0: configuration, byte 1: split seed, then the stream).
WS_CASES = sorted(p for d in ("regressions_wsframe", "corpus_wsframe") for p in (HERE / d).iterdir()
                  if not p.name.startswith("."))


@pytest.mark.parametrize("path", WS_CASES, ids=[p.parent.name + "/" + p.name for p in WS_CASES])
def test_replay_wsframe(path):
    from uhws import parse, split_at
    data = path.read_bytes()
    if len(data) < 2:
        return
    cfg = {"require_mask": data[0] & 1, "check_utf8": (data[0] >> 1) & 1,
           "max_msg": (0, 125, 4096, 70000)[(data[0] >> 2) & 3]}
    s = data[2:]
    whole = parse(s, **cfg)
    assert parse(s, [s[i:i + 1] for i in range(len(s))], **cfg) == whole
    assert parse(s, split_at(s, range(0, len(s), 1 + data[1] % 13)), **cfg) == whole
