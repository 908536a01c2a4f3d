# Install rules: headers, both libraries, weft.pc and the CMake package.
#
#   cc app.c $(pkg-config --cflags --libs weft)          # shared
#   cc -static app.c $(pkg-config --static --cflags --libs weft)
#   find_package(weft 0.1 REQUIRED)  ->  weft::weft, weft::weft_static

include(CMakePackageConfigHelpers)

set(WEFT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/weft"
    CACHE STRING "Where weftConfig.cmake goes, relative to the prefix")
mark_as_advanced(WEFT_INSTALL_CMAKEDIR)

# include/ holds only public headers (weft.h, and weft/*.h if the API ever grows into a
# directory), so all of it is installed.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    COMPONENT weft_development
    FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/weft/version.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weft
    COMPONENT weft_development)

install(TARGETS weft weft_static
    EXPORT weftTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        COMPONENT weft_runtime
        NAMELINK_COMPONENT weft_development
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT weft_development
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT weft_runtime)

install(EXPORT weftTargets
    NAMESPACE weft::
    FILE weftTargets.cmake
    DESTINATION ${WEFT_INSTALL_CMAKEDIR}
    COMPONENT weft_development)

configure_package_config_file(
    ${PROJECT_SOURCE_DIR}/cmake/weftConfig.cmake.in
    ${PROJECT_BINARY_DIR}/weftConfig.cmake
    INSTALL_DESTINATION ${WEFT_INSTALL_CMAKEDIR})
# 0.x releases share SOVERSION 0, so the CMake package promises the same compatibility.
write_basic_package_version_file(
    ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
    VERSION ${PROJECT_VERSION}
    COMPATIBILITY SameMajorVersion)
install(FILES
        ${PROJECT_BINARY_DIR}/weftConfig.cmake
        ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
    DESTINATION ${WEFT_INSTALL_CMAKEDIR}
    COMPONENT weft_development)

# weft.pc. The prefix is only known for certain at install time: `cmake --install
# --prefix DIR` overrides the configured CMAKE_INSTALL_PREFIX, and a .pc file holding the
# configured prefix would then point at a directory that has no weft in it. So the file is
# configured twice: now for everything but the prefix (a relative libdir/includedir
# becomes ${prefix}/..., an absolute one stays as given), and by the install script for
# the prefix, which there is the effective one (without DESTDIR, as it must be).
foreach(_dir IN ITEMS LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
        set(WEFT_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
    else()
        set(WEFT_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
    endif()
endforeach()
# Left as a placeholder for the second pass.
set(WEFT_PC_PREFIX "@WEFT_PC_PREFIX@")
configure_file(${PROJECT_SOURCE_DIR}/cmake/weft.pc.in ${PROJECT_BINARY_DIR}/weft.pc.in @ONLY)
install(CODE "
    set(WEFT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    configure_file(\"${PROJECT_BINARY_DIR}/weft.pc.in\" \"${PROJECT_BINARY_DIR}/weft.pc\" @ONLY)
    " COMPONENT weft_development)
install(FILES ${PROJECT_BINARY_DIR}/weft.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
    COMPONENT weft_development)
