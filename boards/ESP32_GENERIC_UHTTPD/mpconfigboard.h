// Generic ESP32 module with uhttpd (WebREPL, websocket and os.dupterm are
// already enabled by ports/esp32/mpconfigport.h).
#define MICROPY_HW_BOARD_NAME "Generic ESP32 module with uhttpd"
#define MICROPY_HW_MCU_NAME "ESP32"

// uhttpd's ESP32 defaults (native/uh_config.h): 4 connections, 1 KiB request
// heads, 2 KiB body buffers and file blocks, 1 KiB SSE queues, 2 nested
// handlers; about 3.8 kB of heap per connection and 7 kB per server
// (docs/esp32.md, "RAM").  The run-time values are Server() keywords;
// lower the defaults or the compile-time ones here if RAM is short, e.g.:
// #define UH_DEFAULT_FILE_BLOCK (1024)
