# Unix host build: the port's standard frozen set plus uhttpd.
include("$(PORT_DIR)/variants/manifest.py")
include("$(MPY_DIR)/extmod/asyncio")
include("../../manifest.py")
