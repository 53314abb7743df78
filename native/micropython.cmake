# cmake ports (esp32): the uhttpd user C module.  The same sources as
# native/micropython.mk (make ports); keep the two lists in step.
add_library(usermod_uhttpd INTERFACE)

set(UHTTPD_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/moduhttpd.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_server.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_parse.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_ws.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_files.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_sse.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_tls.c
)

target_sources(usermod_uhttpd INTERFACE ${UHTTPD_SOURCES})

target_include_directories(usermod_uhttpd INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

# HTTPS (uh_tls.c): ESP-IDF's mbedtls component is already linked into
# MicroPython's main component (it REQUIRES mbedtls, which also passes
# MBEDTLS_CONFIG_FILE="mbedtls/esp_config.h"), so nothing to add here;
# UH_TLS defaults to 1 in uh_config.h (a board may pass -DUH_TLS=0).

target_link_libraries(usermod INTERFACE usermod_uhttpd)
