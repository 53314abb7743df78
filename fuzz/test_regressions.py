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
