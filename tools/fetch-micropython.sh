#!/bin/sh
# Print the path of a MicroPython 1.25.x source tree, fetching it if needed.
#
# $MICROPY_DIR wins when set.  Otherwise the tree comes from Debian's source
# package `micropython` (1.25.0+ds in the trixie suite; apt verifies it
# against the signed .dsc) and is cached under build/micropython-src/.
# Nothing of it is ever committed (build/ is ignored).
#
# The patches in boards/unix-uhttpd/patches/ (upstream fixes, each with a
# header saying where it comes from) are applied to the fetched tree, and
# to a cached tree that lacks them; build/micropython-src/patches.applied
# records "<sha256>  <name>" per applied patch.  A recorded patch that
# changed or went away makes the tree be fetched afresh.  A $MICROPY_DIR
# tree is never modified: a missing fix only gets a warning.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
want_series=1.25
patches="$here/boards/unix-uhttpd/patches"
check() {
  v=$(sed -n 's/^#define MICROPY_VERSION_MAJOR (*\([0-9]*\))*$/\1/p;s/^#define MICROPY_VERSION_MINOR (*\([0-9]*\))*$/\1/p' "$1/py/mpconfig.h" | paste -sd. -)
  if [ "$v" != "$want_series" ]; then
    echo "fetch-micropython: $1 is MicroPython $v, need $want_series.x" >&2
    exit 1
  fi
}
# applied TREE PATCH: true when the tree already holds the change
applied() {
  patch -p1 -R --dry-run -s -f -d "$1" <"$2" >/dev/null 2>&1
}
# apply_patches TREE STAMP: apply each patch not recorded in STAMP
apply_patches() {
  for p in "$patches"/*.patch; do
    [ -f "$p" ] || continue
    sum=$(sha256sum "$p" | cut -d' ' -f1)
    name=$(basename "$p")
    grep -qxF "$sum  $name" "$2" 2>/dev/null && continue
    if applied "$1" "$p"; then
      echo "fetch-micropython: $name is already in $1" >&2
    elif patch -p1 -N --dry-run -s -f -d "$1" <"$p" >/dev/null 2>&1; then
      echo "fetch-micropython: applying $name" >&2
      patch -p1 -N -s -f --no-backup-if-mismatch -d "$1" <"$p" >&2
    else
      echo "fetch-micropython: $name does not apply to $1" >&2
      patch -p1 -N --dry-run -f -d "$1" <"$p" >&2 || true
      exit 1
    fi
    echo "$sum  $name" >>"$2"
  done
}
# stale STAMP: true when STAMP records a patch that changed or went away
stale() {
  [ -f "$1" ] || return 1
  while read -r sum name; do
    [ -f "$patches/$name" ] || return 0
    [ "$(sha256sum "$patches/$name" | cut -d' ' -f1)" = "$sum" ] || return 0
  done <"$1"
  return 1
}
if [ -n "${MICROPY_DIR:-}" ]; then
  [ -f "$MICROPY_DIR/py/mpconfig.h" ] || { echo "fetch-micropython: MICROPY_DIR=$MICROPY_DIR is not a MicroPython tree" >&2; exit 1; }
  check "$MICROPY_DIR"
  for p in "$patches"/*.patch; do
    [ -f "$p" ] || continue
    applied "$MICROPY_DIR" "$p" && continue
    subject=$(sed -n 's/^Subject: \[PATCH\] //p' "$p" | head -n1)
    echo "fetch-micropython: WARNING: MICROPY_DIR=$MICROPY_DIR lacks $(basename "$p")" >&2
    echo "  ($subject); it is left untouched: the build goes on, tests that need the fix fail." >&2
    echo "  Apply it with: patch -p1 -d \"$MICROPY_DIR\" < \"$p\"" >&2
  done
  echo "$MICROPY_DIR"; exit 0
fi
cache="$here/build/micropython-src"
stamp="$cache/patches.applied"
if [ -f "$cache/tree/py/mpconfig.h" ] && stale "$stamp"; then
  echo "fetch-micropython: the patches applied to $cache/tree changed; fetching it afresh" >&2
  rm -rf "$cache/tree" "$stamp"
fi
if [ -f "$cache/tree/py/mpconfig.h" ]; then
  check "$cache/tree"; apply_patches "$cache/tree" "$stamp"; echo "$cache/tree"; exit 0
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
apply_patches "$cache/tree" "$stamp"
echo "$cache/tree"
