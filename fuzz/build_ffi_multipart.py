"""cffi (API mode) build of native/uh_multipart.c, the sibling of
build_ffi.py: the very file the firmware compiles, no copy, no #ifdef.  The
declarations come from native/uh_parse.h (its types) and
native/uh_multipart.h, preprocessor lines stripped, so they cannot drift.

    python3 fuzz/build_ffi_multipart.py   # builds fuzz/_build/_uh_multipart*.so
"""
import pathlib
import sys

from build_ffi import BUILD, NATIVE, cdef_from_header

SOURCES = [NATIVE / "uh_multipart.c", NATIVE / "uh_parse.c"]
HEADERS = [NATIVE / "uh_parse.h", NATIVE / "uh_multipart.h"]


def build():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("\n".join(cdef_from_header(h.name) for h in HEADERS))
    ffi.set_source("_uh_multipart", '#include "uh_multipart.h"\n',
                   sources=[str(s) for s in SOURCES], include_dirs=[str(NATIVE)],
                   extra_compile_args=["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
    BUILD.mkdir(exist_ok=True)
    return ffi.compile(tmpdir=str(BUILD), verbose=False)


def stale():
    libs = list(BUILD.glob("_uh_multipart*.so"))
    if not libs:
        return True
    built = min(p.stat().st_mtime for p in libs)
    return any(p.stat().st_mtime > built for p in SOURCES + HEADERS + [pathlib.Path(__file__)])


def load():
    """Build if needed, then import the module."""
    if stale():
        build()
    if str(BUILD) not in sys.path:
        sys.path.insert(0, str(BUILD))
    import _uh_multipart
    return _uh_multipart.ffi, _uh_multipart.lib


if __name__ == "__main__":
    print(build())
