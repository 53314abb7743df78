#!/bin/bash
# ESP32 compile check of every native/*.c (design.md section 8, last rule).
#
#   tools/esp32-check.sh                    kit at ../shared/esp32-kit
#   ESP_IDF_KIT=<dir> tools/esp32-check.sh  another kit, or a real ESP-IDF
#
# 1. Strict: the MicroPython-free files of native/ (today uh_parse.c) with
#    the project's own flags, -std=c99 -Wall -Wextra -Werror -Os, for
#    Xtensa against newlib.  Needs no kit.
# 2. ESP32: every native/*.c (a glob: new files are covered by themselves)
#    with Debian's xtensa-lx106-elf-gcc against ESP-IDF v5.2.2's headers,
#    sdkconfig.h and mbedTLS from the compile-check kit
#    (/work/shared/esp32-kit, README.md there), the fetched MicroPython 1.25
#    tree (py/, ports/esp32), boards/ESP32_GENERIC_UHTTPD and a genhdr/
#    made here.  Compiler, flags and include order are the kit README's,
#    to the letter; mbedTLS's include directory and MBEDTLS_CONFIG_FILE are
#    passed to every file, as MicroPython's esp32 build does.  The check is
#    `-S`; any diagnostic at all fails it.  The .s is then assembled with
#    Debian's Xtensa assembler for the footprint table: that is lx106 code
#    (call0 ABI, no FPU) for the ESP32's headers, not the ESP32's windowed-ABI
#    code, so its size is an estimate of the real one.
#
# No kit: step 2 says so and is skipped (exit 0), unless ESP_IDF_KIT was
# given.  ESP_IDF_KIT may be:
#   - a kit (has include-dirs.txt): its lists and sdkconfig/ are used;
#   - an ESP-IDF checkout with its submodules (has components/): the
#     include list is tools/esp32-include-dirs.txt (the kit's, for v5.2.2;
#     directories your IDF lacks are left out and counted), and
#     ESP_IDF_SDKCONFIG=<dir holding sdkconfig.h> is required, e.g.
#     micropython/ports/esp32/build-ESP32_GENERIC_UHTTPD/config.
# Output: build/esp32-check/{s,obj,strict,genhdr}/.  Exit 1 when a compile
# fails or warns; a file that does not assemble only loses its size.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/esp32-check"
CC=xtensa-lx106-elf-gcc
"$root/tools/setup-deps.sh" esp32
gccinc=$("$CC" -print-file-name=include)
SYSINC=(-nostdinc -isystem "$gccinc" -isystem "$gccinc-fixed" -isystem /usr/include/newlib)
status=0
rm -rf "$out/s" "$out/obj" "$out/strict" "$out/genhdr"
mkdir -p "$out/s" "$out/obj" "$out/strict" "$out/genhdr/genhdr"

# --- 1. strict compile of the MicroPython-free files -------------------------
# pure: every quoted include is a native/ header with no quoted include
pure_header() {
  [ -f "$root/native/$1" ] && ! grep -q '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/native/$1"
}
pure=()
for f in "$root"/native/*.c; do
  ok=1
  for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
    pure_header "$h" || { ok=0; break; }
  done
  [ $ok = 1 ] && pure+=("$f")
done
for f in "${pure[@]}"; do
  n=$(basename "$f" .c)
  if "$CC" -std=c99 -Wall -Wextra -Werror -Os -ffreestanding "${SYSINC[@]}" \
       -I"$root/native" -c "$f" -o "$out/strict/$n.o"; then
    echo "esp32-check: strict  $n.c: ok (-std=c99 -Wall -Wextra -Werror, newlib)"
  else
    echo "esp32-check: strict  $n.c: FAILED" >&2; status=1
  fi
done

# --- 2. the ESP32 header check ------------------------------------------------
kit=${ESP_IDF_KIT:-$root/../shared/esp32-kit}
if [ ! -d "$kit" ]; then
  if [ -n "${ESP_IDF_KIT:-}" ]; then
    echo "esp32-check: ESP_IDF_KIT=$kit does not exist" >&2; exit 1
  fi
  echo "esp32-check: no ESP32 kit at $kit: the ESP-IDF header check is SKIPPED"
  echo "  (ESP_IDF_KIT=<kit or ESP-IDF checkout> points it elsewhere)"
  exit $status
fi
kit=$(cd "$kit" && pwd)
inc=()
missing=0
if [ -f "$kit/include-dirs.txt" ]; then
  what="kit $kit"
  idf_ver=v5.2.2
  while read -r d; do [ -n "$d" ] && inc+=(-I"$kit/$d"); done <"$kit/include-dirs.txt"
  while read -r d; do [ -n "$d" ] && inc+=(-I"$kit/$d"); done <"$kit/include-dirs-mbedtls.txt"
elif [ -d "$kit/components" ]; then
  sdk=${ESP_IDF_SDKCONFIG:-}
  if [ -z "$sdk" ] || [ ! -f "$sdk/sdkconfig.h" ]; then
    echo "esp32-check: ESP_IDF_KIT=$kit is an ESP-IDF tree: set ESP_IDF_SDKCONFIG=<dir with sdkconfig.h>" >&2
    echo "  (e.g. micropython/ports/esp32/build-ESP32_GENERIC_UHTTPD/config after a firmware build)" >&2
    exit 1
  fi
  v=$(sed -n 's/^set(IDF_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$kit/tools/cmake/version.cmake" 2>/dev/null | paste -sd. -)
  idf_ver=v${v:-unknown}
  what="ESP-IDF $idf_ver at $kit, sdkconfig.h from $sdk"
  inc+=(-I"$sdk")
  while read -r d; do
    case "$d" in ''|'#'*) continue ;; esac
    if [ -d "$kit/$d" ]; then inc+=(-I"$kit/$d"); else missing=$((missing + 1)); fi
  done <"$root/tools/esp32-include-dirs.txt"
else
  echo "esp32-check: ESP_IDF_KIT=$kit is neither a kit (include-dirs.txt) nor an ESP-IDF tree (components/)" >&2
  exit 1
fi

mpy=$("$root/tools/fetch-micropython.sh")

# genhdr/qstrdefs.generated.h: the unix build's (the core's qstrs and the
# module's), plus every MP_QSTR_ of native/ it lacks (used only in ESP32
# branches, or added since that build); qstr values do not matter for -S.
unixq="$root/build/unix/genhdr/qstrdefs.generated.h"
if [ ! -f "$unixq" ]; then
  echo "esp32-check: no build/unix/genhdr yet: make build" >&2
  make -s -C "$root" build >&2
fi
q="$out/genhdr/genhdr/qstrdefs.generated.h"
cp "$unixq" "$q"
extra=""
for n in $(grep -oh 'MP_QSTR_[A-Za-z0-9_]*' "$root"/native/*.c "$root"/native/*.h | sort -u); do
  grep -q "^QDEF[01](${n}," "$unixq" && continue
  s=${n#MP_QSTR_}
  echo "QDEF1(${n}, 0, ${#s}, \"${s}\")" >>"$q"
  extra="$extra $n"
done
[ -z "$extra" ] || echo "esp32-check: qstrs not in the unix build, added:$extra"

# genhdr/root_pointers.h: native/'s MP_REGISTER_ROOT_POINTERs plus the
# port's root pointers the module reaches through MP_STATE_VM (kit README).
# A new one shows up as "mp_state_vm_t has no member named ...": add it here.
PORT_ROOT_POINTERS='mp_obj_t dupterm_objs[(1)];  /* extmod/os_dupterm.c, MICROPY_PY_OS_DUPTERM=1 on esp32; uh_ws.c */'
{
  echo "// Generated by tools/esp32-check.sh"
  echo "$PORT_ROOT_POINTERS"
  sed -n 's/^[[:space:]]*MP_REGISTER_ROOT_POINTER(\(.*\));.*$/\1;/p' "$root"/native/*.c
} >"$out/genhdr/genhdr/root_pointers.h"

FLAGS=(
  -std=gnu17 -Os -ffunction-sections -fdata-sections -mlongcalls
  -U__INT32_TYPE__ -D__INT32_TYPE__=long
  -U__UINT32_TYPE__ '-D__UINT32_TYPE__=long unsigned int'
  -U__INT_LEAST32_TYPE__ -D__INT_LEAST32_TYPE__=long
  -U__UINT_LEAST32_TYPE__ '-D__UINT_LEAST32_TYPE__=long unsigned int'
  -DESP_PLATFORM -D_JBLEN=17 -D_GNU_SOURCE "-DIDF_VER=\"$idf_ver\"" -D_POSIX_READER_WRITER_LOCKS
  -DMICROPY_VFS_FAT=1 -DMICROPY_VFS_LFS2=1
  '-DMBEDTLS_CONFIG_FILE="mbedtls/esp_config.h"'
  -Wall -Werror=all -Wno-error=unused-function -Wno-error=unused-variable
  -Wno-error=unused-but-set-variable -Wno-error=deprecated-declarations
  -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-enum-conversion
  -Wno-clobbered -Wno-deprecated-declarations -Wno-missing-field-initializers
)
PROJINC=(-I"$root/native" -I"$mpy" -I"$mpy/ports/esp32" -I"$root/boards/ESP32_GENERIC_UHTTPD" -I"$out/genhdr")

echo "esp32-check: $what; MicroPython $mpy; $("$CC" --version | head -n1)"
[ "$missing" = 0 ] || echo "esp32-check: $missing include directories of tools/esp32-include-dirs.txt are not in $kit (left out)"
for f in "$root"/native/*.c; do
  n=$(basename "$f" .c)
  log="$out/s/$n.log"
  if "$CC" "${FLAGS[@]}" "${PROJINC[@]}" "${inc[@]}" "${SYSINC[@]}" -S "$f" -o "$out/s/$n.s" 2>"$log" && [ ! -s "$log" ]; then
    r="ok (-S, no diagnostics)"
  else
    echo "esp32-check: esp32   $n.c: FAILED" >&2
    cat "$log" >&2
    status=1
    continue
  fi
  if "$CC" -mlongcalls -c "$out/s/$n.s" -o "$out/obj/$n.o" 2>"$out/obj/$n.log"; then
    r="$r; lx106 text/data/bss $(xtensa-lx106-elf-size "$out/obj/$n.o" | tail -n1 | awk '{print $1"/"$2"/"$3}')"
  else
    r="$r; not assembled (see build/esp32-check/obj/$n.log): no size"
  fi
  echo "esp32-check: esp32   $n.c: $r"
done
exit $status
