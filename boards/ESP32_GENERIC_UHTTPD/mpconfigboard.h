// Generic ESP32 module with uhttpd (WebREPL, websocket and os.dupterm are
// already enabled by ports/esp32/mpconfigport.h).
#define MICROPY_HW_BOARD_NAME "Generic ESP32 module with uhttpd"
#define MICROPY_HW_MCU_NAME "ESP32"

// uhttpd defaults for a board (see native/uh_config.h): 4 connections,
// 2 KiB file blocks, 1 KiB SSE queues.  Lower them here if RAM is short:
// #define UH_DEFAULT_FILE_BLOCK (1024)
