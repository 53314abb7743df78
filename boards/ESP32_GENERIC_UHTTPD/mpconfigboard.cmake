# Generic ESP32 (WROOM, 4 MiB flash) with uhttpd frozen in.  Built like the
# OTA variant of ports/esp32/boards/ESP32_GENERIC: -Os (sdkconfig.ota), which
# the firmware needs to fit a slot, and two app slots so that
# examples/ota.py can write the next one; the slots are this board's own
# (partitions-4MiB-ota-uhttpd.csv: 1,664 KiB each instead of 1,536 KiB, a
# 704 KiB file system).  The size budget is in docs/esp32.md.
set(IDF_TARGET esp32)

# The partition table lives in this folder, outside ports/esp32, so its
# path must be absolute: an sdkconfig fragment written at configure time
# carries it (after sdkconfig.ota, whose table it replaces).
set(UHTTPD_PARTITIONS ${CMAKE_BINARY_DIR}/sdkconfig.uhttpd_partitions)
file(WRITE ${UHTTPD_PARTITIONS}
    "CONFIG_PARTITION_TABLE_CUSTOM=y\n"
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions-4MiB-ota-uhttpd.csv\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/ESP32_GENERIC/sdkconfig.ota
    ${UHTTPD_PARTITIONS}
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
