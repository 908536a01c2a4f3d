#!/usr/bin/env bash
# Builds the peer benchmark programs into OUTDIR:
#   peer-go peer-tokio peer-boost-fiber peer-boost-context peer-tbb peer-openmp
#
# usage: bench/peers/build.sh [--no-install-deps] OUTDIR
#
# A peer that cannot be built prints "skipped: <peer>: <reason>" and the script goes
# on; a peer that is built prints "built: <peer>: <versions>". The versions also go
# to OUTDIR/peers-versions.txt, and each build's log to OUTDIR/peers-build/<peer>.log.
# Exit status 0 unless something unexpected broke (bad usage, OUTDIR not writable).
#
# Offline: no peer fetches anything at build time. Tokio builds against the crates of
# Debian's librust-tokio-dev (/usr/share/cargo/registry, see tokio/.cargo/config.toml),
# Go against golang.org/x/sync from Debian's golang-golang-x-sync-dev
# (/usr/share/gocode, a replace directive in go/go.mod).
#
# Missing Debian packages (golang-go, golang-golang-x-sync-dev, librust-tokio-dev,
# cargo when no cargo is on PATH, libboost-fiber-dev, libboost-context-dev, libtbb-dev)
# are installed with apt-get (through sudo when not root; tools/lib/common.sh),
# apt-get's output going to OUTDIR/peers-build/apt.log; --no-install-deps (or
# PEERS_INSTALL=0) turns that off.
# tools/bench installs the packages of the peers it runs itself and passes
# --no-install-deps.
#
# Environment: CC, CXX (default gcc, g++), GO (default go), PEERS_CARGO (default: the
# cargo on PATH, else /usr/bin/cargo), PEERS_INSTALL (default 1).
set -u
# shellcheck source=SCRIPTDIR/../../tools/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../tools/lib/common.sh" || exit 2

usage() {
    cat <<'USAGE'
Usage: bench/peers/build.sh [--no-install-deps] OUTDIR
Builds the peer benchmark programs (peer-go, peer-tokio, ...) into OUTDIR.
  --no-install-deps    do not install missing Debian packages (also: PEERS_INSTALL=0)
USAGE
}

install_deps=${PEERS_INSTALL:-1}
[ "$install_deps" = 0 ] || install_deps=1
outdir=""
while (($#)); do
    case "$1" in
    --no-install-deps) install_deps=0; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) bad_usage "unknown argument: $1" ;;
    *) [ -z "$outdir" ] || bad_usage "one OUTDIR only"; outdir=$1; shift ;;
    esac
done
[ -n "$outdir" ] || bad_usage "no OUTDIR"
set -- "$outdir"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd) || exit 2
BUILD=$OUT/peers-build
mkdir -p "$BUILD" || exit 2
VERSIONS=$OUT/peers-versions.txt
: > "$VERSIONS" || exit 2

CC=${CC:-gcc}
CXX=${CXX:-g++}
GO=${GO:-go}
CFLAGS_PEER=(-O2 -DNDEBUG -Wall -Wextra)
TOKIO_REGISTRY=/usr/share/cargo/registry
GO_X_SYNC=/usr/share/gocode/src/golang.org/x/sync # go/go.mod's replace directive

skip() { rm -f "$OUT/peer-$1"; echo "skipped: $1: $2"; }
built() { echo "built: $1: $2"; echo "$1: $2" >> "$VERSIONS"; }
# Preprocesses a snippet with the C++ compiler and prints its last line.
cxx_macro() {
    printf '%s\n' "$@" | "$CXX" -x c++ -std=c++17 -E -P - 2> /dev/null | tail -n 1 | tr -d '"'
}
# Compiles one C or C++ peer. $1 peer, $2 compiler, $3.. source and flags.
compile() {
    local peer=$1 cc=$2
    shift 2
    if "$cc" "$@" -o "$OUT/peer-$peer" > "$BUILD/$peer.log" 2>&1; then
        return 0
    fi
    skip "$peer" "build failed, see $BUILD/$peer.log"
    return 1
}

find_cargo() {
    if [ -n "${PEERS_CARGO:-}" ]; then echo "$PEERS_CARGO"
    elif have cargo; then command -v cargo
    elif [ -x /usr/bin/cargo ]; then echo /usr/bin/cargo
    fi
}

# ---- install what is missing ----------------------------------------------------
if ((install_deps)); then
    want=()
    have "$GO" || want+=(golang-go)
    [ -d "$GO_X_SYNC/errgroup" ] || want+=(golang-golang-x-sync-dev)
    pkg_installed librust-tokio-dev || want+=(librust-tokio-dev)
    [ -n "$(find_cargo)" ] || want+=(cargo)
    pkg_installed libboost-fiber-dev || want+=(libboost-fiber-dev)
    pkg_installed libboost-context-dev || want+=(libboost-context-dev)
    pkg_installed libtbb-dev || want+=(libtbb-dev)
    # --best-effort: a peer whose packages cannot be had is skipped, the others built.
    # On stderr: stdout is the "built:"/"skipped:" lines.
    if [ ${#want[@]} -gt 0 ]; then
        install_missing_packages --best-effort --log "$BUILD/apt.log" "${want[@]}" >&2
    fi
fi

# ---- Go -------------------------------------------------------------------------
build_go() {
    if ! have "$GO"; then skip go "no go toolchain (Debian package golang-go)"; return; fi
    if [ ! -d "$GO_X_SYNC/errgroup" ]; then
        skip go "no golang.org/x/sync in $GO_X_SYNC (Debian package golang-golang-x-sync-dev)"
        return
    fi
    local ver
    ver=$("$GO" version 2> /dev/null | awk '{print $3}')
    if (cd "$HERE/go" && GOCACHE="$BUILD/go-cache" GOFLAGS=-buildvcs=false GO111MODULE=on \
            GOPROXY=off GOTOOLCHAIN=local "$GO" build -o "$OUT/peer-go" .) > "$BUILD/go.log" 2>&1; then
        built go "go=$ver"
    else
        skip go "build failed, see $BUILD/go.log"
    fi
}

# ---- Tokio ----------------------------------------------------------------------
build_tokio() {
    local cargo tokio_dir
    cargo=$(find_cargo)
    if [ -z "$cargo" ] || ! have "$cargo"; then
        skip tokio "no cargo (Debian package cargo)"
        return
    fi
    tokio_dir=$(find "$TOKIO_REGISTRY" -maxdepth 1 -name 'tokio-1.*' 2> /dev/null | head -n 1)
    if [ -z "$tokio_dir" ]; then
        skip tokio "no tokio crate in $TOKIO_REGISTRY (Debian package librust-tokio-dev)"
        return
    fi
    # Build in a fresh copy (so that no Cargo.lock lands in the source tree), with
    # the target folder kept for the next build.
    rm -rf "$BUILD/tokio-src"
    cp -r "$HERE/tokio" "$BUILD/tokio-src" || { skip tokio "cannot copy sources"; return; }
    rm -f "$BUILD/tokio-src/Cargo.lock"
    # The rustc beside this cargo (Debian's cargo would otherwise take the first
    # rustc on PATH, which may be another toolchain's).
    local rustc
    rustc=$(dirname "$cargo")/rustc
    [ -x "$rustc" ] || rustc=rustc
    if (cd "$BUILD/tokio-src" && CARGO_TARGET_DIR="$BUILD/tokio-target" RUSTC="$rustc" \
            "$cargo" build --release --offline) > "$BUILD/tokio.log" 2>&1 &&
        cp "$BUILD/tokio-target/release/peer-tokio" "$OUT/peer-tokio"; then
        local tver rver
        tver=$(awk '/^name = "tokio"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' \
            "$BUILD/tokio-src/Cargo.lock")
        rver=$(cd "$BUILD/tokio-src" && "$rustc" --version 2> /dev/null)
        built tokio "tokio=${tver:-?} rustc=$(echo "$rver" | awk '{print $2}') cargo=$cargo"
    else
        skip tokio "build failed, see $BUILD/tokio.log"
    fi
}

# ---- Boost.Fiber, Boost.Context -------------------------------------------------
boost_version() {
    local v
    v=$(cxx_macro '#include <boost/version.hpp>' 'BOOST_VERSION')
    case $v in
    *[!0-9]* | '') echo '?' ;;
    *) echo "$((v / 100000)).$((v / 100 % 1000)).$((v % 100))" ;;
    esac
}

build_boost_fiber() {
    if ! echo '#include <boost/fiber/all.hpp>' |
        "$CXX" -x c++ -std=c++17 -fsyntax-only - > /dev/null 2>&1; then
        skip boost-fiber "no Boost.Fiber headers (Debian package libboost-fiber-dev)"
        return
    fi
    compile boost-fiber "$CXX" -std=c++17 "${CFLAGS_PEER[@]}" "$HERE/boost-fiber/peer_boost_fiber.cpp" \
        -lboost_fiber -lboost_context -pthread &&
        built boost-fiber "boost=$(boost_version)"
}

build_boost_context() {
    if ! echo '#include <boost/context/detail/fcontext.hpp>' |
        "$CXX" -x c++ -std=c++17 -fsyntax-only - > /dev/null 2>&1; then
        skip boost-context "no Boost.Context headers (Debian package libboost-context-dev)"
        return
    fi
    compile boost-context "$CXX" -std=c++17 "${CFLAGS_PEER[@]}" \
        "$HERE/boost-context/peer_boost_context.cpp" -lboost_context &&
        built boost-context "boost=$(boost_version)"
}

# ---- oneTBB ---------------------------------------------------------------------
build_tbb() {
    if ! echo '#include <tbb/task_group.h>' |
        "$CXX" -x c++ -std=c++17 -fsyntax-only - > /dev/null 2>&1; then
        skip tbb "no oneTBB headers (Debian package libtbb-dev)"
        return
    fi
    compile tbb "$CXX" -std=c++17 "${CFLAGS_PEER[@]}" "$HERE/tbb/peer_tbb.cpp" -ltbb -pthread &&
        built tbb "onetbb=$(cxx_macro '#include <tbb/version.h>' \
            'TBB_VERSION_MAJOR.TBB_VERSION_MINOR.TBB_VERSION_PATCH' | tr -d ' ')"
}

# ---- OpenMP ---------------------------------------------------------------------
build_openmp() {
    if ! have "$CC"; then skip openmp "no C compiler ($CC)"; return; fi
    if ! printf '#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n' |
        "$CC" -fopenmp -x c - -o "$BUILD/omp-probe" > /dev/null 2>&1; then
        skip openmp "$CC -fopenmp does not link (libgomp missing)"
        return
    fi
    local ccver ompver
    ccver=$("$CC" -dumpfullversion 2> /dev/null || "$CC" -dumpversion)
    ompver=$(printf '_OPENMP\n' | "$CC" -fopenmp -x c -E -P - 2> /dev/null | tail -n 1)
    compile openmp "$CC" -std=gnu11 -fopenmp "${CFLAGS_PEER[@]}" "$HERE/openmp/peer_openmp.c" &&
        built openmp "$(basename "$CC")=$ccver libgomp _OPENMP=$ompver"
}

build_go
build_tokio
build_boost_fiber
build_boost_context
build_tbb
build_openmp
exit 0
