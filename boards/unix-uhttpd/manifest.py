# Unix host build: asyncio (in the MicroPython tree) plus uhttpd.  The port's
# own variants/manifest.py needs micropython-lib (mip), which Debian's +ds
# source package does not ship.
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py")
# `ssl` over the built-in `tls` (micropython-lib's ssl package is absent
# from the +ds tree; the ESP32 port freezes that one).
module("ssl.py", opt=3)
