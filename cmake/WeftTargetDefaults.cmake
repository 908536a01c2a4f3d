# Flags for weft's own targets: the library, tests, examples and bench.
#
# Everything here is attached to targets, never to CMAKE_C_FLAGS, so that a parent project
# that does add_subdirectory(weft) keeps its own flags, and so that a sanitizer reaches
# every object of weft (library and tests alike) and nothing else.
#
#   weft_warnings   INTERFACE target: -Wall -Wextra, plus -Werror when WEFT_WERROR.
#   weft_sanitize   INTERFACE target: the WEFT_SANITIZE compile and link flags.
#   weft_target_defaults(<target>)
#                   C11 without GNU extensions, and links both of the above. Use it for
#                   any new target (bench/CMakeLists.txt too).

if(NOT WEFT_SANITIZE STREQUAL ""
   AND NOT WEFT_SANITIZE STREQUAL "thread"
   AND NOT WEFT_SANITIZE STREQUAL "address")
    message(FATAL_ERROR
        "WEFT_SANITIZE is '${WEFT_SANITIZE}'; it must be empty, 'thread' or 'address' "
        "(address also enables UndefinedBehaviorSanitizer). TSan and ASan cannot be "
        "combined in one build.")
endif()

add_library(weft_warnings INTERFACE)
target_compile_options(weft_warnings INTERFACE
    "$<$<COMPILE_LANGUAGE:C>:-Wall;-Wextra;$<$<BOOL:${WEFT_WERROR}>:-Werror>>")

add_library(weft_sanitize INTERFACE)
if(WEFT_SANITIZE STREQUAL "thread")
    set(_weft_sanitize_flags -fsanitize=thread)
elseif(WEFT_SANITIZE STREQUAL "address")
    # UBSan rides along with ASan (they combine; TSan does not). No recovery: a test that
    # prints a UB report and then exits 0 would pass unnoticed.
    set(_weft_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined)
else()
    set(_weft_sanitize_flags "")
endif()
if(_weft_sanitize_flags)
    # Frame pointers and debug info make the reports' stacks readable whatever the
    # build type.
    target_compile_options(weft_sanitize INTERFACE
        "$<$<COMPILE_LANGUAGE:C>:${_weft_sanitize_flags};-fno-omit-frame-pointer;-g>")
    target_link_options(weft_sanitize INTERFACE ${_weft_sanitize_flags})
endif()

function(weft_target_defaults target)
    set_target_properties(${target} PROPERTIES
        C_STANDARD 11
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)
    target_link_libraries(${target} PRIVATE weft_warnings weft_sanitize)
endfunction()
