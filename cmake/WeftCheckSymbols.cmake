# cmake -DNM=<nm> -DLIBRARY=<libweft.so> -P WeftCheckSymbols.cmake
#
# The abi.symbols test. libweft.so must
# - export only public names: weft_ followed by a letter or digit. Internal functions are
#   weft__* or static, and hidden: by -fvisibility=hidden for C, and by an explicit
#   .hidden for symbols defined in assembly (which the visibility flag does not reach).
# - leave no AO_ function undefined: weft uses libatomic_ops header-only (its primitives
#   compile to gcc __atomic builtins) and does not link libatomic_ops.so. If an AO_ call
#   appears here, that primitive has no inline version on this target: use another, or
#   link PkgConfig atomic_ops after all.

if(NOT NM OR NOT LIBRARY)
    message(FATAL_ERROR "usage: cmake -DNM=<nm> -DLIBRARY=<libweft.so> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()

function(_weft_nm out)
    execute_process(COMMAND ${NM} ${ARGN} ${LIBRARY}
        OUTPUT_VARIABLE _text ERROR_VARIABLE _err RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "${NM} ${ARGN} ${LIBRARY} failed (${_rc}): ${_err}")
    endif()
    string(REPLACE "\n" ";" _lines "${_text}")
    set(${out} "${_lines}" PARENT_SCOPE)
endfunction()

set(_failed FALSE)

_weft_nm(_undefined -u)
foreach(_line IN LISTS _undefined)
    if(_line MATCHES "[ \t]U[ \t]+(AO_[A-Za-z0-9_]*)")
        message(SEND_ERROR "undefined libatomic_ops function ${CMAKE_MATCH_1}: weft must use "
                           "libatomic_ops header-only (see this script's header)")
        set(_failed TRUE)
    endif()
endforeach()

_weft_nm(_exported -D --defined-only)
set(_count 0)
foreach(_line IN LISTS _exported)
    # "<address> <type> <name>[@version]"
    if(NOT _line MATCHES "^[0-9a-fA-F]+[ \t]+([A-Za-z])[ \t]+([^@ \t]+)")
        continue()
    endif()
    set(_name "${CMAKE_MATCH_2}")
    # Linker-defined section markers; older binutils export these from every library.
    if(_name MATCHES "^(_init|_fini|__bss_start|_edata|_end)$")
        continue()
    endif()
    if(_name MATCHES "^weft_[A-Za-z0-9]")
        math(EXPR _count "${_count} + 1")
    else()
        message(SEND_ERROR "libweft.so exports '${_name}' (${_line}): only weft_* names may be "
                           "public; mark it static, or hide it (.hidden in assembly)")
        set(_failed TRUE)
    endif()
endforeach()

if(_count EQUAL 0)
    message(SEND_ERROR "libweft.so exports no weft_* symbol: is WEFT_API defaulting to hidden?")
    set(_failed TRUE)
endif()
if(_failed)
    message(FATAL_ERROR "symbol check of ${LIBRARY} failed")
endif()
message(STATUS "${LIBRARY}: ${_count} weft_* symbols exported, no AO_ function undefined")
