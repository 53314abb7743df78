#!/bin/sh
# Print the path of a MicroPython 1.25.x source tree, fetching it if needed.
#
# $MICROPY_DIR wins when set.  Otherwise the tree comes from Debian's source
# package `micropython` (1.25.0+ds in the trixie suite; apt verifies it
# against the signed .dsc) and is cached under build/micropython-src/.
# Nothing of it is ever committed (build/ is ignored).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
want_series=1.25
check() {
  v=$(sed -n 's/^#define MICROPY_VERSION_MAJOR (*\([0-9]*\))*$/\1/p;s/^#define MICROPY_VERSION_MINOR (*\([0-9]*\))*$/\1/p' "$1/py/mpconfig.h" | paste -sd. -)
  if [ "$v" != "$want_series" ]; then
    echo "fetch-micropython: $1 is MicroPython $v, need $want_series.x" >&2
    exit 1
  fi
}
if [ -n "${MICROPY_DIR:-}" ]; then
  [ -f "$MICROPY_DIR/py/mpconfig.h" ] || { echo "fetch-micropython: MICROPY_DIR=$MICROPY_DIR is not a MicroPython tree" >&2; exit 1; }
  check "$MICROPY_DIR"
  echo "$MICROPY_DIR"; exit 0
fi
cache="$here/build/micropython-src"
if [ -f "$cache/tree/py/mpconfig.h" ]; then
  check "$cache/tree"; echo "$cache/tree"; exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
src=/etc/apt/sources.list.d/uhttpd-micropython-src.sources
if ! apt-cache showsrc micropython 2>/dev/null | grep -q '^Version: 1\.25\.'; then
  if [ ! -f "$src" ]; then
    uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    echo "fetch-micropython: adding deb-src trixie ($uri) for micropython 1.25" >&2
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" | $SUDO tee "$src" >/dev/null
  fi
  $SUDO apt-get update -qq >&2
fi
command -v dpkg-source >/dev/null || { $SUDO apt-get install -y -qq dpkg-dev >&2; }
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
( cd "$cache.tmp" && apt-get source -qq micropython >&2 )
d=$(find "$cache.tmp" -maxdepth 1 -type d -name 'micropython-1.25*' | head -n1)
[ -n "$d" ] || { echo "fetch-micropython: apt-get source gave no micropython-1.25* tree" >&2; exit 1; }
check "$d"
# Frozen builds test for micropython-lib; the +ds repack leaves it empty.
mkdir -p "$d/lib/micropython-lib"; touch "$d/lib/micropython-lib/README.md"
rm -rf "$cache"; mkdir -p "$cache"; mv "$d" "$cache/tree"; rm -rf "$cache.tmp"
echo "$cache/tree"
