# cmake ports (esp32): the uhttpd user C module.  The same sources as
# native/micropython.mk (make ports); keep the two lists in step.
add_library(usermod_uhttpd INTERFACE)

set(UHTTPD_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/moduhttpd.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_server.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_io.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_http.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_parse.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_ws.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_files.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_sse.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_tls.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_wsframe.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_wsapp.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_multipart.c
    ${CMAKE_CURRENT_LIST_DIR}/uh_form.c
)

target_sources(usermod_uhttpd INTERFACE ${UHTTPD_SOURCES})

target_include_directories(usermod_uhttpd INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

# Stop every server before the port deletes threads at soft reset (see
# uh_server.c, __wrap_mp_thread_deinit): a task deleted inside lwIP or the
# VFS could leave their mutexes held forever.
target_compile_definitions(usermod_uhttpd INTERFACE UH_WRAP_DEINIT=1)
target_link_options(usermod_uhttpd INTERFACE -Wl,--wrap=mp_thread_deinit)

# HTTPS (uh_tls.c): ESP-IDF's mbedtls component is already linked into
# MicroPython's main component (it REQUIRES mbedtls, which also passes
# MBEDTLS_CONFIG_FILE="mbedtls/esp_config.h"), so nothing to add here;
# UH_TLS defaults to 1 in uh_config.h (a board may pass -DUH_TLS=0).

target_link_libraries(usermod INTERFACE usermod_uhttpd)
