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
