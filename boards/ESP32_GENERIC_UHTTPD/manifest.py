# The ESP32 port's usual frozen set (needs the lib/micropython-lib
# submodule: `make -C ports/esp32 submodules`) plus uhttpd.
include("$(PORT_DIR)/boards/manifest.py")
include("../../manifest.py")
