#!/usr/bin/env bash
# Builds the peer HTTP servers of tools/bench --server into OUTDIR:
#   server-go      Go net/http           (go/, Debian golang-go)
#   server-hyper   hyper 0.14 on Tokio   (hyper/, Debian librust-hyper-dev,
#                                         librust-tokio-dev, cargo)
# and checks the third peer, nginx (Debian nginx-light; tools/bench writes its
# configuration from nginx/nginx.conf.in).
#
# usage: bench/peers/servers/build.sh [--no-install-deps] OUTDIR
#
# As bench/peers/build.sh: a peer that cannot be built prints "skipped: <peer>: <reason>"
# and the script goes on; one that is built prints "built: <peer>: <versions>", also
# written to OUTDIR/servers-versions.txt; build logs go to OUTDIR/servers-build/. Exit
# status 0 unless something unexpected broke (bad usage, OUTDIR not writable).
#
# Offline: the hyper server builds against the crates that Debian's librust-*-dev packages
# install in /usr/share/cargo/registry (hyper/.cargo/config.toml), Go with GOPROXY=off.
# Missing Debian packages are installed (apt-get, through sudo when not root) unless
# --no-install-deps; tools/bench installs them itself and passes it.
#
# Environment: GO (default go), PEERS_CARGO (default: the cargo on PATH, else
# /usr/bin/cargo), NGINX (default: nginx on PATH, else /usr/sbin/nginx).
set -u
# shellcheck source=SCRIPTDIR/../../../tools/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../tools/lib/common.sh" || exit 2

usage() {
    cat <<'USAGE'
Usage: bench/peers/servers/build.sh [--no-install-deps] OUTDIR
Builds server-go and server-hyper into OUTDIR and checks for nginx.
  --no-install-deps    do not install missing Debian packages
USAGE
}

install_deps=1
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

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$outdir" || exit 2
OUT=$(cd "$outdir" && pwd) || exit 2
BUILD=$OUT/servers-build
mkdir -p "$BUILD" || exit 2
VERSIONS=$OUT/servers-versions.txt
: >"$VERSIONS" || exit 2
GO=${GO:-go}

skip() { rm -f "$OUT/server-$1"; echo "skipped: $1: $2"; }
built() { echo "built: $1: $2"; echo "$1: $2" >>"$VERSIONS"; }

find_cargo() {
    if [ -n "${PEERS_CARGO:-}" ]; then echo "$PEERS_CARGO"
    elif have cargo; then command -v cargo
    elif [ -x /usr/bin/cargo ]; then echo /usr/bin/cargo
    fi
}
find_nginx() {
    if [ -n "${NGINX:-}" ]; then echo "$NGINX"
    elif have nginx; then command -v nginx
    elif [ -x /usr/sbin/nginx ]; then echo /usr/sbin/nginx
    fi
}

if ((install_deps)); then
    want=()
    have "$GO" || want+=(golang-go)
    pkg_installed librust-hyper-dev || want+=(librust-hyper-dev)
    pkg_installed librust-tokio-dev || want+=(librust-tokio-dev)
    [ -n "$(find_cargo)" ] || want+=(cargo)
    [ -n "$(find_nginx)" ] || want+=(nginx-light)
    if [ ${#want[@]} -gt 0 ]; then
        install_missing_packages --best-effort --log "$BUILD/apt.log" "${want[@]}" >&2
    fi
fi

build_go() {
    if ! have "$GO"; then skip go "no go toolchain (Debian package golang-go)"; return; fi
    if (cd "$HERE/go" && GOCACHE="$BUILD/go-cache" GOFLAGS=-buildvcs=false GO111MODULE=on \
        GOPROXY=off GOTOOLCHAIN=local "$GO" build -o "$OUT/server-go" .) >"$BUILD/go.log" 2>&1; then
        built go "go=$("$GO" version 2>/dev/null | awk '{print $3}') net/http"
    else
        skip go "build failed, see $BUILD/go.log"
    fi
}

build_hyper() {
    local cargo rustc
    cargo=$(find_cargo)
    if [ -z "$cargo" ] || ! have "$cargo"; then skip hyper "no cargo (Debian package cargo)"; return; fi
    if ! ls -d /usr/share/cargo/registry/hyper-0.14.* >/dev/null 2>&1; then
        skip hyper "no hyper 0.14 crate in /usr/share/cargo/registry (Debian package librust-hyper-dev)"
        return
    fi
    # A fresh copy, so that no Cargo.lock lands in the source tree; the target folder is
    # kept for the next build.
    rm -rf "$BUILD/hyper-src"
    cp -r "$HERE/hyper" "$BUILD/hyper-src" || { skip hyper "cannot copy sources"; return; }
    rm -f "$BUILD/hyper-src/Cargo.lock"
    rustc=$(dirname "$cargo")/rustc
    [ -x "$rustc" ] || rustc=rustc
    if (cd "$BUILD/hyper-src" && CARGO_TARGET_DIR="$BUILD/hyper-target" RUSTC="$rustc" \
        "$cargo" build --release --offline) >"$BUILD/hyper.log" 2>&1 &&
        cp "$BUILD/hyper-target/release/server-hyper" "$OUT/server-hyper"; then
        local lock=$BUILD/hyper-src/Cargo.lock hver tver
        hver=$(awk '/^name = "hyper"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$lock")
        tver=$(awk '/^name = "tokio"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$lock")
        built hyper "hyper=${hver:-?} tokio=${tver:-?} rustc=$("$rustc" --version 2>/dev/null | awk '{print $2}')"
    else
        skip hyper "build failed, see $BUILD/hyper.log"
    fi
}

check_nginx() {
    local nginx
    nginx=$(find_nginx)
    if [ -z "$nginx" ]; then skip nginx "no nginx (Debian package nginx-light)"; return; fi
    built nginx "nginx=$("$nginx" -v 2>&1 | sed -n 's|.*nginx/\([^ ]*\).*|\1|p') $nginx"
}

build_go
build_hyper
check_nginx
exit 0
