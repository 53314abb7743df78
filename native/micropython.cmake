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
)

target_sources(usermod_uhttpd INTERFACE ${UHTTPD_SOURCES})

target_include_directories(usermod_uhttpd INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_uhttpd)
