#!/bin/sh
# Prove the cmake side of the ESP32 build (cannot be built here): configure a
# dummy project that defines MicroPython's `usermod` target and includes the
# project's CMakeLists.txt exactly as py/usermod.cmake does, then check that
# it lists existing files and the same sources as native/micropython.mk.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/CMakeLists.txt" <<EOC
cmake_minimum_required(VERSION 3.12)
project(uhttpd_cmake_check NONE)
add_library(usermod INTERFACE)
include($root/CMakeLists.txt)
get_target_property(srcs usermod_uhttpd INTERFACE_SOURCES)
get_target_property(incs usermod_uhttpd INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(links usermod INTERFACE_LINK_LIBRARIES)
foreach(f \${srcs})
    if(NOT EXISTS \${f})
        message(FATAL_ERROR "missing source: \${f}")
    endif()
endforeach()
if(NOT links MATCHES "usermod_uhttpd")
    message(FATAL_ERROR "usermod does not link usermod_uhttpd")
endif()
file(WRITE \${CMAKE_BINARY_DIR}/sources.txt "\${srcs}")
message(STATUS "usermod_uhttpd: \${srcs}; include: \${incs}")
EOC
cmake -S "$tmp" -B "$tmp/b" >/dev/null
cm=$(tr ';' '\n' < "$tmp/b/sources.txt" | xargs -n1 basename | sort)
mk=$(sed -n 's|^SRC_USERMOD_C += $(UHTTPD_MOD_DIR)/||p' "$root/native/micropython.mk" | sort)
if [ "$cm" != "$mk" ]; then
  echo "native/micropython.cmake and native/micropython.mk list different sources:" >&2
  echo "cmake: $cm" >&2; echo "make:  $mk" >&2
  exit 1
fi
echo "cmake OK: $(echo $cm)"

# The board: include its mpconfigboard.cmake as ports/esp32/CMakeLists.txt
# does, check that every sdkconfig fragment it names exists (relative ones
# in a MicroPython tree), and that its partition table is sound: contiguous,
# inside 4 MiB, app slots 64 KiB aligned and as large as the budget says.
board="$root/boards/ESP32_GENERIC_UHTTPD"
cat > "$tmp/CMakeLists.txt" <<EOC
cmake_minimum_required(VERSION 3.12)
project(uhttpd_board_check NONE)
set(MICROPY_BOARD_DIR $board)
include($board/mpconfigboard.cmake)
file(WRITE \${CMAKE_BINARY_DIR}/defaults.txt "\${SDKCONFIG_DEFAULTS}")
EOC
rm -rf "$tmp/b"
cmake -S "$tmp" -B "$tmp/b" >/dev/null
mpy=$("$root/tools/fetch-micropython.sh" 2>/dev/null || true)
python3 - "$tmp/b" "$mpy" <<'EOP'
import pathlib, re, sys
b, mpy = pathlib.Path(sys.argv[1]), sys.argv[2]
frags = (b / "defaults.txt").read_text().split(";")
text = ""
for f in frags:
    p = pathlib.Path(f)
    if not p.is_absolute():
        if not mpy:
            continue   # no MicroPython tree to look in
        p = pathlib.Path(mpy) / "ports" / "esp32" / f
    if not p.exists():
        sys.exit("board: sdkconfig fragment %s does not exist" % p)
    text += p.read_text() + "\n"
names = re.findall(r'^CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="([^"]+)"', text, re.M)
table = pathlib.Path(names[-1])   # the last one wins, as in the combined sdkconfig
if not table.is_absolute() or not table.exists():
    sys.exit("board: partition table %s missing (the board's must be absolute)" % table)
end = 0x9000
apps = []
for line in table.read_text().splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, kind, sub, off, size = [x.strip() for x in line.split(",")[:5]]
    off, size = int(off, 16), int(size, 16)
    if off != end:
        sys.exit("board: partition %s at %#x, expected %#x (gap or overlap)" % (name, off, end))
    if kind == "app":
        if off % 0x10000:
            sys.exit("board: app partition %s not 64 KiB aligned" % name)
        apps.append(size)
    end = off + size
if end > 4 * 1024 * 1024:
    sys.exit("board: partitions end at %#x, past 4 MiB" % end)
if len(apps) != 2 or min(apps) < 0x1A0000:
    sys.exit("board: two OTA app slots of at least 0x1A0000 expected, got %s" % [hex(a) for a in apps])
print("board OK: %s, app slots %s, %d sdkconfig fragments" % (table.name, ", ".join(hex(a) for a in apps), len(frags)))
EOP
