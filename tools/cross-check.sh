#!/bin/sh
# Compile the MicroPython-free C files of native/ for a 32-bit Xtensa target
# (Debian's gcc-xtensa-lx106 + picolibc: ESP8266's core, the closest compiler to the
# ESP32's Xtensa LX6 available from Debian) and, if present, ARM Cortex-M
# (gcc-arm-none-eabi), with -std=c99 -Wall -Wextra -Werror -Os, and print
# their sizes.  The MicroPython-facing files (moduhttpd.c, uh_server.c,
# uh_files.c, uh_sse.c, uh_ws.c) need ESP-IDF and the port's headers and
# are not compiled here (see docs/esp32.md).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
PURE="uh_parse.c"
out="$root/build/cross"
mkdir -p "$out"
if ! command -v xtensa-lx106-elf-gcc >/dev/null 2>&1 || [ ! -f /usr/lib/xtensa-lx106-elf/picolibc.specs ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      gcc-xtensa-lx106 picolibc-xtensa-lx106-elf >/dev/null
fi
status=0
for cc in xtensa-lx106-elf-gcc arm-none-eabi-gcc; do
  command -v $cc >/dev/null 2>&1 || continue
  extra="--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs"   # C library headers
  [ $cc = arm-none-eabi-gcc ] && extra="-mcpu=cortex-m4 -mthumb"
  for f in $PURE; do
    o="$out/${cc%-gcc}-${f%.c}.o"
    if ! $cc -std=c99 -Wall -Wextra -Werror -Os -ffreestanding $extra -I"$root/native" -c "$root/native/$f" -o "$o"; then
      status=1
      continue
    fi
    size=$(${cc%-gcc}-size "$o" | tail -n1 | awk '{print $1" "$2" "$3}')
    echo "$cc $f text/data/bss: $size"
  done
done
exit $status
