# shellcheck shell=bash
# tools/lib/common.sh: the shell helpers weft's scripts share. Sourced, never run, by
# tools/test, tools/demo, tools/bench, tools/stress, tools/fuzz, bench/peers/build.sh and
# .ci/run, each with the line
#
#     source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"
#
# (the path adjusted to where the script lives). It only defines things; the script then
# calls them. What it defines:
#
#   WEFT_TOOL            the name messages start with: tools/test, bench/peers/build.sh
#                        (the sourcing script's path from the repository root)
#   WEFT_ROOT            the repository root, absolute
#   WEFT_DIE_STATUS      die's exit status (default 2; set it after sourcing to change it)
#   WEFT_BUILD_PACKAGES  the Debian packages any build of weft needs
#   die MSG...           "$WEFT_TOOL: MSG" on stderr, exit $WEFT_DIE_STATUS
#   bad_usage MSG...     usage() on stderr, then die MSG (the script defines usage())
#   step TEXT...         a blank line, then "== TEXT": the start of a step
#   cd_repo_root         cd to WEFT_ROOT (everything after it is relative to the root)
#   have CMD             whether CMD is on PATH
#   cpu_count            nproc, or 2 where nproc fails
#   fmt_elapsed S        S seconds as 1m05s
#   fmt_clock S          S seconds as 1:05
#   pkg_installed PKG    whether Debian package PKG is installed
#   install_missing_packages [--best-effort] [--log FILE] PKG...
#                        installs the packages that are not installed (apt-get)
#   detect_sanitizer_wrapper
#                        sets sanitizer_wrapper=(setarch ... -R) where ASLR must go off
#
# Every script that installs packages does it through install_missing_packages and takes
# --no-install-deps to skip it; a script that builds weft installs what the build needs.

# Set -u safe: a script sources this after `set -u`. The variables are the scripts' to use.
# shellcheck disable=SC2034
WEFT_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
WEFT_TOOL=$(readlink -f "${BASH_SOURCE[1]:-$0}")
WEFT_TOOL=${WEFT_TOOL#"$WEFT_ROOT"/}
WEFT_DIE_STATUS=2
WEFT_BUILD_PACKAGES=(gcc make cmake pkg-config libatomic-ops-dev libdw-dev)

die() {
    echo "$WEFT_TOOL: $*" >&2
    exit "$WEFT_DIE_STATUS"
}

bad_usage() {
    usage >&2
    die "$@"
}

step() {
    echo
    echo "== $*"
}

# Run from anywhere: everything after this is relative to the repository root.
cd_repo_root() {
    cd "$WEFT_ROOT" || die "cannot cd to the repository root ($WEFT_ROOT)"
}

have() {
    command -v "$1" >/dev/null 2>&1
}

cpu_count() {
    nproc 2>/dev/null || echo 2
}

fmt_elapsed() {
    local s=$(($1))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

fmt_clock() {
    local s=$(($1))
    printf '%d:%02d' $((s / 60)) $((s % 60))
}

# The Status test: `dpkg -s` also answers for removed packages whose configuration files
# remain ("deinstall ok config-files").
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# install_missing_packages [--best-effort] [--log FILE] PACKAGE...
#
# The packages are checked one by one so that a machine that has them all never touches
# apt (no network, no root needed). What is missing is installed with apt-get update and
# apt-get install, through sudo when not root.
#
# Default: all or nothing; if apt-get fails (or there is no sudo), die. --best-effort:
# for packages the script can do without (a peer is skipped, the chart is left out):
# after a failed install of them all, each is tried alone, so that one that cannot be had
# does not stop the others; failures are reported and the function returns 0.
# --log FILE: apt-get's output goes to FILE (appended) instead of stdout.
install_missing_packages() {
    local best_effort=0 log="" missing=() p sudo=()
    while (($#)); do
        case "$1" in
        --best-effort) best_effort=1; shift ;;
        --log) log=$2; shift 2 ;;
        *) break ;;
        esac
    done
    if ! have dpkg-query || ! have apt-get; then
        echo "$WEFT_TOOL: no dpkg/apt-get here; make sure these (Debian names) are installed: $*"
        return 0
    fi
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "all present: $*"
        return 0
    fi
    echo "missing: ${missing[*]}"
    if ((EUID != 0)); then
        if ! have sudo; then
            ((best_effort)) || die "not root and no sudo: install ${missing[*]} yourself"
            echo "$WEFT_TOOL: not root and no sudo: install ${missing[*]} yourself (going on without them)" >&2
            return 0
        fi
        sudo=(sudo)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
    _weft_apt_run() {
        if [[ -n $log ]]; then "${apt[@]}" "$@" >>"$log" 2>&1; else "${apt[@]}" "$@"; fi
    }
    if _weft_apt_run update && _weft_apt_run install -y --no-install-recommends "${missing[@]}"; then
        return 0
    fi
    ((best_effort)) || die "apt-get could not install: ${missing[*]}${log:+ (see $log)}"
    for p in "${missing[@]}"; do
        _weft_apt_run install -y --no-install-recommends "$p" ||
            echo "$WEFT_TOOL: could not install $p${log:+ (see $log)}; going on without it" >&2
    done
    return 0
}

# The sanitizer runtimes of gcc 12 map their shadow memory at fixed addresses and die
# ("unexpected memory mapping") when the kernel randomizes mmap with more than 28 bits,
# the default of recent kernels on some distributions. Running the sanitizer builds' tests
# with ASLR off (setarch -R) avoids that where the sandbox allows it. Sets
# sanitizer_wrapper to the command words to put before a test (empty where none is
# needed or possible), and says on stdout what it found.
# shellcheck disable=SC2034
sanitizer_wrapper=()
detect_sanitizer_wrapper() {
    local bits
    sanitizer_wrapper=()
    bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null) || return 0
    ((bits > 28)) || return 0
    if setarch "$(uname -m)" -R true 2>/dev/null; then
        # shellcheck disable=SC2034
        sanitizer_wrapper=(setarch "$(uname -m)" -R)
        echo "note: vm.mmap_rnd_bits=$bits; sanitizer tests run with ASLR off (setarch -R)"
    else
        echo "note: vm.mmap_rnd_bits=$bits and setarch -R is not allowed here;" \
            "sanitizer tests may fail with 'unexpected memory mapping'" \
            "(fix: sysctl vm.mmap_rnd_bits=28)"
    fi
}
