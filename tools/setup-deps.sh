#!/bin/sh
# Install the system packages the build and the tests need (Debian).
# Idempotent: skips apt entirely when everything is already there.
# Usage: tools/setup-deps.sh [build|build32|test|bench|fuzz|esp32|all]
#   build32: what `make build BITS=32` needs on top of build (multilib gcc,
#   and the i386 mbedTLS to link against: the i386 dpkg architecture is
#   added for it, only then).
set -eu
what=${1:-build}
# libmbedtls-dev: MicroPython's tls/hashlib/cryptolib and uhttpd's HTTPS
# (Debian's MicroPython links the system mbedTLS; its headers are
# architecture-independent, so the :i386 package shares them).
pkgs="build-essential dpkg-dev patch python3 pkg-config libmbedtls-dev"
case "$what" in
  build) ;;
  build32) pkgs="$pkgs gcc-multilib libmbedtls-dev:i386" ;;
  test) pkgs="$pkgs curl openssl gcc-multilib chromium" ;;
  bench) pkgs="$pkgs wrk apache2-utils nginx-light curl openssl" ;;
  fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
  browser) pkgs="$pkgs chromium" ;;
  # tools/esp32-check.sh: Xtensa GCC (ESP8266's lx106; its picolibc comes
  # along but the check uses newlib, as ESP-IDF does)
  esp32) pkgs="$pkgs gcc-xtensa-lx106 libnewlib-dev" ;;
  all) pkgs="$pkgs curl openssl gcc-multilib libmbedtls-dev:i386 chromium wrk apache2-utils nginx-light clang libclang-rt-14-dev gcc-xtensa-lx106 libnewlib-dev" ;;
  *) echo "usage: $0 [build|build32|test|bench|fuzz|esp32|all]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
case "$missing" in
  *:i386*)
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
      echo "setup-deps: adding the i386 architecture (for libmbedtls-dev:i386)" >&2
      $SUDO dpkg --add-architecture i386
    fi ;;
esac
echo "setup-deps: installing$missing" >&2
# An index that fails (a mirror mid-sync, often for a foreign architecture)
# need not stop the install; the install itself fails loudly if it must.
$SUDO apt-get update -qq || echo "setup-deps: apt-get update reported errors; installing anyway" >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
