#!/bin/sh
# Install the system packages the build and the tests need (Debian).
# Idempotent: skips apt entirely when everything is already there.
# Usage: tools/setup-deps.sh [build|test|bench|fuzz|esp32|all]
set -eu
what=${1:-build}
pkgs="build-essential dpkg-dev patch python3 pkg-config"
case "$what" in
  build) ;;
  test) pkgs="$pkgs curl gcc-multilib chromium" ;;
  bench) pkgs="$pkgs wrk apache2-utils nginx-light curl" ;;
  fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
  browser) pkgs="$pkgs chromium" ;;
  # tools/esp32-check.sh: Xtensa GCC (ESP8266's lx106; its picolibc comes
  # along but the check uses newlib, as ESP-IDF does)
  esp32) pkgs="$pkgs gcc-xtensa-lx106 libnewlib-dev" ;;
  all) pkgs="$pkgs curl gcc-multilib chromium wrk apache2-utils nginx-light clang libclang-rt-14-dev gcc-xtensa-lx106 libnewlib-dev" ;;
  *) echo "usage: $0 [build|test|bench|fuzz|esp32|all]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup-deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
