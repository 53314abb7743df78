# Unix host build: asyncio (in the MicroPython tree) plus uhttpd.  The port's
# own variants/manifest.py needs micropython-lib (mip), which Debian's +ds
# source package does not ship.
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py")
