# Generic ESP32 (WROOM, 4 MiB flash) with uhttpd frozen in.  Mirrors the
# OTA variant of ports/esp32/boards/ESP32_GENERIC: its partition table (two
# 1.5 MiB app slots, so that examples/ota.py can write the next one) and its
# -Os build (sdkconfig.ota), which the firmware needs to fit a slot; the
# size budget is in docs/esp32.md.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/ESP32_GENERIC/sdkconfig.ota
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
