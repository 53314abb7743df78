# Generic ESP32 (WROOM, 4 MiB flash) with uhttpd frozen in.  Mirrors
# ports/esp32/boards/ESP32_GENERIC with its OTA partition table, so that
# examples/ota.py can write the next OTA partition.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/ESP32_GENERIC/sdkconfig.ota
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
