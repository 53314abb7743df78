"""cffi (API mode) build of native/uh_parse.c: the very file the firmware
compiles, no copy, no #ifdef.  The declarations come from native/uh_parse.h
itself (preprocessor lines stripped), so they cannot drift.

    python3 fuzz/build_ffi.py      # builds fuzz/_build/_uh_parse*.so
"""
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
NATIVE = HERE.parent / "native"
BUILD = HERE / "_build"


def cdef_from_header(name="uh_parse.h"):
    text = (NATIVE / name).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines)


def build():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header())
    ffi.set_source("_uh_parse", '#include "uh_parse.h"\n',
                   sources=[str(NATIVE / "uh_parse.c")], include_dirs=[str(NATIVE)],
                   extra_compile_args=["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
    BUILD.mkdir(exist_ok=True)
    return ffi.compile(tmpdir=str(BUILD), verbose=False)


def stale():
    libs = list(BUILD.glob("_uh_parse*.so"))
    if not libs:
        return True
    built = min(p.stat().st_mtime for p in libs)
    srcs = [NATIVE / "uh_parse.c", NATIVE / "uh_parse.h", pathlib.Path(__file__)]
    return any(p.stat().st_mtime > built for p in srcs)


def load():
    """Build if needed, then import the module."""
    if stale():
        build()
    if str(BUILD) not in sys.path:
        sys.path.insert(0, str(BUILD))
    import _uh_parse
    return _uh_parse.ffi, _uh_parse.lib


if __name__ == "__main__":
    print(build())
