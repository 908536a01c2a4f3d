# cmake/toolchain-aarch64-linux-gnu.cmake: cross-compiles weft for aarch64 Linux on a
# Debian x86-64 host, and runs its tests under qemu-user (the aarch64 preset uses this).
#
# Debian packages: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user, plus the host's
# libatomic-ops-dev (tools/test installs them where it can). No arm64 multiarch package is
# needed, and libatomic-ops-dev:arm64 must NOT be installed on a host that builds for
# x86-64 too: the package is not Multi-Arch co-installable, so apt removes the host's
# libatomic-ops-dev (and libcriterion-dev with it) to install it. weft uses libatomic_ops
# header-only, and its headers are the same for every architecture (they select the
# aarch64 code by __aarch64__), so the host's serve. The unit tests run on
# tests/common/weft_criterion.h's stand-in under an emulator (see the root
# CMakeLists.txt), so Criterion for arm64 is not needed either.
#
# qemu-user runs the Arm code with the host's (x86-64's) memory ordering: tests under it
# check the AAPCS64 context switch and everything else that is not about weak memory;
# Arm's weak ordering needs real hardware (docs/TESTING.md).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(WEFT_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${WEFT_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${WEFT_CROSS_TRIPLE}-gcc)

# The sysroot is the cross libc's: /usr/aarch64-linux-gnu (libc6-dev-arm64-cross). The
# multiarch libraries (libcriterion) live in /usr/lib/aarch64-linux-gnu, which the Debian
# cross gcc already searches.
set(CMAKE_FIND_ROOT_PATH /usr/${WEFT_CROSS_TRIPLE} /usr/lib/${WEFT_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config: the arm64 multiarch .pc files first, where there are any; then the host's
# multiarch directory, for atomic_ops.pc alone (header-only, architecture-independent;
# pkg-config drops its -I/usr/include, which the Debian cross gcc searches anyway, after
# its own sysroot). The environment must be set here, in the toolchain file, because it
# is read again for every try_compile and every re-configure.
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${WEFT_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig:/usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# CTest (and add_test with a target as the command) prefixes every test with this.
# -L: where qemu finds the aarch64 dynamic loader (/usr/aarch64-linux-gnu/lib, from
# libc6-arm64-cross). -E LD_LIBRARY_PATH: that loader must also take libc from there. Once
# an arm64 multiarch libc (libc6:arm64, which any :arm64 library package pulls in) is
# installed, the host's /etc/ld.so.cache lists its /lib/aarch64-linux-gnu/libc.so.6, and
# the loader, finding no ld.so.cache under the -L prefix, takes that one: a loader and a
# libc from two different builds of glibc, and the first pthread_create hangs.
find_program(WEFT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(WEFT_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${WEFT_QEMU_AARCH64} -L /usr/${WEFT_CROSS_TRIPLE}
        -E LD_LIBRARY_PATH=/usr/${WEFT_CROSS_TRIPLE}/lib)
endif()
