"""cffi (API mode) builds of the pure-C files of native/: the very files the
firmware compiles, no copy, no #ifdef.  The declarations come from each
header itself (preprocessor lines stripped), so they cannot drift.

    python3 fuzz/build_ffi.py      # builds fuzz/_build/_uh_parse*.so and _uh_wsframe*.so

Modules: `_uh_parse` (native/uh_parse.c: HTTP parser, chunked decoder,
helpers) and `_uh_wsframe` (native/uh_wsframe.c: WebSocket frames).
"""
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
NATIVE = HERE.parent / "native"
BUILD = HERE / "_build"

# module name -> (header, C source)
MODULES = {
    "_uh_parse": ("uh_parse.h", "uh_parse.c"),
    "_uh_wsframe": ("uh_wsframe.h", "uh_wsframe.c"),
}


def cdef_from_header(header="uh_parse.h"):
    text = (NATIVE / header).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines)


def build(name="_uh_parse"):
    import cffi
    header, source = MODULES[name]
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header(header))
    ffi.set_source(name, '#include "%s"\n' % header,
                   sources=[str(NATIVE / source)], include_dirs=[str(NATIVE)],
                   extra_compile_args=["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
    BUILD.mkdir(exist_ok=True)
    return ffi.compile(tmpdir=str(BUILD), verbose=False)


def stale(name="_uh_parse"):
    libs = list(BUILD.glob(name + ".*.so")) + list(BUILD.glob(name + ".so"))
    if not libs:
        return True
    built = min(p.stat().st_mtime for p in libs)
    srcs = [NATIVE / f for f in MODULES[name]] + [pathlib.Path(__file__)]
    return any(p.stat().st_mtime > built for p in srcs)


def load(name="_uh_parse"):
    """Build if needed, then import the module; returns (ffi, lib)."""
    if stale(name):
        build(name)
    if str(BUILD) not in sys.path:
        sys.path.insert(0, str(BUILD))
    mod = __import__(name)
    return mod.ffi, mod.lib


if __name__ == "__main__":
    for n in sys.argv[1:] or MODULES:
        print(build(n))
