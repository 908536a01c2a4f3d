#!/usr/bin/env bash
# tools/bench --server: weft's HTTP server against Go, hyper (Tokio) and nginx, on the
# rows http_hello and idle_conns of bench/WORKLOADS.md. tools/bench runs this script
# when given --server (with the other arguments); it can also be run directly.
#
#   1. installs what is missing (Debian packages, apt-get as root or through sudo): wrk,
#      taskset (util-linux), python3, the build tools, golang-go, librust-hyper-dev,
#      librust-tokio-dev, cargo, nginx-light;
#   2. builds weft (release; examples/http_server and bench/idle_conns.c) and the peer
#      servers (bench/peers/servers/build.sh; nginx is Debian's binary);
#   3. runs, interleaved (for each row, run r = 1..R, each server once in turn, each run
#      on a freshly started server):
#        http_hello  wrk -t1 -cC -dDs --latency on loopback, C = 64 and 1,000: req/s and
#                    p50/p99 latency (wrk's), every response must be a 200;
#        idle_conns  weft-idle-conns opens N = 10,000 keep-alive connections, one GET on
#                    each, and holds them idle; the server's VmHWM (/proc/PID/status)
#                    before and after gives bytes per connection;
#      the server on one CPU and the load generator on another (taskset; the servers
#      with one worker thread or process); each server is stopped with SIGTERM and must
#      exit 0;
#   4. writes every run's raw line to bench/results-server-raw.txt, and from it (with
#      tools/bench.d/server_report.py) the region of bench/RESULTS.md between
#      "<!-- tools/bench --server: begin -->" and "<!-- tools/bench --server: end -->".
#
# Bounded: every wrk run lasts D seconds (killed at D + 30), every idle_conns client
# gives up after 60 s, every server gets 10 s to start and 10 s to stop (then SIGKILL).
#
# Usage: see usage() below, or tools/bench --server --help.

set -uo pipefail
# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/common.sh" || exit 2
WEFT_TOOL="tools/bench --server"

KNOWN_SERVERS=(weft go hyper nginx)
KNOWN_WORKLOADS=(http_hello idle_conns)

usage() {
    cat <<'USAGE'
Usage: tools/bench --server [options]
  --runs R            runs of each (row, server) pair; the table shows medians (default 3)
  --duration S        seconds per wrk run (default 10; --quick: 2)
  --connections LIST  wrk connection counts, comma-separated (default 64,1000)
  --idle N            connections held by idle_conns (default 10000; --quick: 2000)
  --workloads LIST    from: http_hello idle_conns (default: both)
  --peers LIST        comma-separated, from: go hyper nginx (default: all)
  --no-peers          weft only
  --quick             R = 1, 2-second wrk runs, 2,000 idle connections: a smoke test.
                      Writes build/.../RESULTS-quick.md unless --output is given
  --output FILE       the Markdown file to update (default bench/RESULTS.md); the raw
                      lines go beside it (RESULTS.md -> results-server-raw.txt)
  --no-build          do not configure or build (use the programs already built)
  --no-install-deps   do not install missing Debian packages
  --report-only       run nothing: rebuild the Markdown region from the raw file
  -h, --help          this text
Environment: WEFT_BENCH_BUILD_DIR (default build/release, with `cmake --preset release`).
USAGE
}

runs=3
runs_set=0
duration=""
connections_arg="64,1000"
idle_n=""
workloads_arg=""
peers_arg=""
no_peers=0
quick=0
output=""
build=1
install_deps=1
report_only=0
cmdline="tools/bench --server"
for arg in "$@"; do [[ $arg == --server ]] || cmdline+=" $arg"; done
while (($#)); do
    case "$1" in
    --runs) (($# >= 2)) || die "--runs needs a number"; runs=$2; runs_set=1; shift 2 ;;
    --duration) (($# >= 2)) || die "--duration needs seconds"; duration=$2; shift 2 ;;
    --connections) (($# >= 2)) || die "--connections needs a list"; connections_arg=$2; shift 2 ;;
    --idle) (($# >= 2)) || die "--idle needs a number"; idle_n=$2; shift 2 ;;
    --workloads) (($# >= 2)) || die "--workloads needs a list"; workloads_arg=$2; shift 2 ;;
    --peers) (($# >= 2)) || die "--peers needs a list"; peers_arg=$2; shift 2 ;;
    --no-peers) no_peers=1; shift ;;
    --quick) quick=1; shift ;;
    --output) (($# >= 2)) || die "--output needs a file"; output=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-install-deps) install_deps=0; shift ;;
    --report-only) report_only=1; shift ;;
    --server) shift ;; # tools/bench passes it on
    -h | --help) usage; exit 0 ;;
    *) bad_usage "unknown argument: $1" ;;
    esac
done
if ((quick)); then
    ((runs_set)) || runs=1
    : "${duration:=2}" "${idle_n:=2000}"
fi
: "${duration:=10}" "${idle_n:=10000}"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer, not '$runs'"
in_range() { [[ $1 =~ ^[1-9][0-9]{0,6}$ ]] && (($1 <= $2)); }
in_range "$duration" 300 || die "--duration wants 1 to 300 seconds"
in_range "$idle_n" 100000 || die "--idle wants 1 to 100000"
IFS=, read -ra conn_counts <<<"$connections_arg"
for c in "${conn_counts[@]}"; do
    in_range "$c" 10000 || die "--connections wants counts from 1 to 10000"
done

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[[ -n $output ]] && output=$(abspath "$output")
cd_repo_root
ROOT=$PWD

if [[ -n ${WEFT_BENCH_BUILD_DIR:-} ]]; then
    build_dir=$WEFT_BENCH_BUILD_DIR
    use_preset=0
else
    build_dir=build/release
    use_preset=1
fi
build_dir_abs=$(abspath "$build_dir")
servers_dir=$build_dir_abs/servers
if [[ -z $output ]]; then
    if ((quick)); then output=$build_dir_abs/RESULTS-quick.md; else output=$ROOT/bench/RESULTS.md; fi
fi
out_dir=$(dirname "$output")
out_stem=$(basename "$output")
out_stem=${out_stem%.md}
raw_file=$out_dir/${out_stem,,}-server-raw.txt
REPORT=$ROOT/tools/bench.d/server_report.py

run_report() {
    step "report"
    python3 "$REPORT" --raw "$raw_file" --output "$output" ||
        die "server_report.py failed (the raw lines are in $raw_file)"
    echo "wrote $output"
    echo "wrote $raw_file"
}
if ((report_only)); then
    [[ -f $raw_file ]] || die "no raw file $raw_file to report from"
    run_report
    exit 0
fi

workloads=()
IFS=, read -ra wl <<<"${workloads_arg:-http_hello,idle_conns}"
for w in "${wl[@]}"; do
    [[ -z $w ]] && continue
    [[ " ${KNOWN_WORKLOADS[*]} " == *" $w "* ]] || die "unknown workload '$w' (known: ${KNOWN_WORKLOADS[*]})"
    workloads+=("$w")
done
((${#workloads[@]})) || die "--workloads names no workload"
peers=()
if ((!no_peers)); then
    IFS=, read -ra pl <<<"${peers_arg:-go,hyper,nginx}"
    for p in "${pl[@]}"; do
        [[ -z $p ]] && continue
        [[ $p != weft && " ${KNOWN_SERVERS[*]} " == *" $p "* ]] || die "unknown peer '$p' (known: go hyper nginx)"
        peers+=("$p")
    done
fi

# --- dependencies and build ------------------------------------------------------------

packages=("${WEFT_BUILD_PACKAGES[@]}" wrk util-linux procps)
((use_preset)) && packages+=(libcriterion-dev) # the preset builds the tests
have python3 || packages+=(python3)
for p in "${peers[@]}"; do
    case $p in
    go) have "${GO:-go}" || packages+=(golang-go) ;;
    hyper)
        packages+=(librust-hyper-dev librust-tokio-dev)
        have cargo || [[ -x /usr/bin/cargo ]] || [[ -n ${PEERS_CARGO:-} ]] || packages+=(cargo)
        ;;
    nginx) have nginx || [[ -x /usr/sbin/nginx ]] || packages+=(nginx-light) ;;
    esac
done
if ((install_deps)); then
    step "dependencies"
    install_missing_packages --best-effort "${packages[@]}"
fi
have python3 || die "python3 is needed for the report (Debian package python3)"
have wrk || die "wrk is needed (Debian package wrk)"
have timeout || die "timeout (coreutils) is needed"

build_note=""
if ((build)); then
    jobs=$(cpu_count)
    if ((use_preset)); then
        step "weft: configure and build (cmake --preset release)"
        cmake --preset release >/dev/null || die "weft's configure failed"
        cmake --build --preset release -j "$jobs" || die "weft's build failed"
    else
        step "weft: configure and build ($build_dir)"
        cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF \
            -DWEFT_BUILD_BENCH=ON -DWEFT_BUILD_EXAMPLES=ON "-DCMAKE_C_FLAGS_RELEASE=-O2 -g -DNDEBUG" \
            "-DCMAKE_ASM_FLAGS_RELEASE=-g" >/dev/null || die "weft's configure failed"
        cmake --build "$build_dir" -j "$jobs" || die "weft's build failed"
    fi
    if ((${#peers[@]})); then
        step "peers: bench/peers/servers/build.sh $servers_dir"
        bench/peers/servers/build.sh --no-install-deps "$servers_dir" || die "bench/peers/servers/build.sh failed"
    fi
else
    build_note=" (--no-build: programs as already built)"
fi

# --- servers, pinning, limits ----------------------------------------------------------

declare -A SERVER_BIN=([weft]=$build_dir_abs/examples/http_server
    [go]=$servers_dir/server-go [hyper]=$servers_dir/server-hyper)
NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
idle_bin=$build_dir_abs/bench/weft-idle-conns
runtimes=()
declare -A NA=() # runtime -> why it is not run
for rt in weft "${peers[@]}"; do
    runtimes+=("$rt")
    if [[ $rt == nginx ]]; then
        [[ -x $NGINX_BIN ]] || NA[$rt]="no nginx (Debian package nginx-light)"
    elif [[ ! -x ${SERVER_BIN[$rt]} ]]; then
        NA[$rt]="not built (${SERVER_BIN[$rt]} missing)"
    fi
done
[[ " ${workloads[*]} " == *" idle_conns "* && ! -x $idle_bin ]] &&
    die "$idle_bin is not built (bench/idle_conns.c)"

# Two CPUs from this process's affinity list: the server on the second, the load
# generator (wrk, weft-idle-conns) on the first. With one CPU nothing is pinned.
mapfile -t cpus < <(python3 -c 'import os; print("\n".join(map(str, sorted(os.sched_getaffinity(0)))))')
if ((${#cpus[@]} >= 2)) && have taskset; then
    load_cpu=${cpus[0]}
    server_cpu=${cpus[1]}
    pin_server=(taskset -c "$server_cpu")
    pin_load=(taskset -c "$load_cpu")
    pinning="server on CPU $server_cpu, load generator on CPU $load_cpu (taskset)"
else
    pin_server=()
    pin_load=()
    pinning="not pinned (fewer than 2 CPUs, or no taskset)"
fi

# The servers, wrk and the client inherit this limit (10,000 connections need more than
# the usual 1,024 fds); raised as far as the hard limit allows.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
[[ $nofile == unlimited ]] && nofile=1048576

tmp=$(mktemp -d) || die "mktemp failed"
server_pid=""
load_pid=""
cleanup() {
    # load_pid is timeout(1), which passes a TERM on to wrk or the client (a KILL would not).
    [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "$WEFT_TOOL: interrupted (partial raw lines in $raw_file)" >&2; exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts server $1 on a fresh port; sets server_pid, server_port, measure_pid (the
# process that holds the connections: nginx's worker) or start_error.
start_server() {
    local rt=$1 i
    server_port=""
    measure_pid=""
    start_error=""
    : >"$tmp/server.out"
    : >"$tmp/server.err"
    if [[ $rt == nginx ]]; then
        server_port=$(free_port) || { start_error="no free port"; return 1; }
        rm -rf "$tmp/nginx" && mkdir -p "$tmp/nginx"
        local user_line=""
        ((EUID == 0)) && user_line="user $(id -un);"
        sed -e "s|@PREFIX@|$tmp/nginx|g" -e "s|@PORT@|$server_port|g" -e "s|@USER@|$user_line|" \
            -e "s|@NOFILE@|$nofile|" bench/peers/servers/nginx/nginx.conf.in >"$tmp/nginx/nginx.conf"
        "${pin_server[@]}" "$NGINX_BIN" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
            -e "$tmp/nginx/error.log" >"$tmp/server.out" 2>"$tmp/server.err" &
    else
        # weft's http_server caps its connections (--max-conns, default 10,000): at the fd
        # limit here, so that --idle up to that limit is served.
        local cap=()
        [[ $rt == weft ]] && cap=(--max-conns "$nofile")
        "${pin_server[@]}" "${SERVER_BIN[$rt]}" --port 0 --workers 1 "${cap[@]}" >"$tmp/server.out" 2>"$tmp/server.err" &
    fi
    server_pid=$!
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid"
            start_error="exited at start (status $?): $(tail -n 1 "$tmp/server.err")"
            server_pid=""
            return 1
        fi
        if [[ $rt == nginx ]]; then
            if port_open "$server_port"; then
                measure_pid=$(pgrep -P "$server_pid" | head -n 1)
                [[ -n $measure_pid ]] && return 0
            fi
        else
            server_port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/server.out")
            [[ -n $server_port ]] && { measure_pid=$server_pid; return 0; }
        fi
        sleep 0.05
    done
    start_error="not ready within 10 s"
    stop_server
    return 1
}

# SIGTERM, 10 s to exit, then SIGKILL. Sets stop_rc (the exit status; "killed" if it
# had to be killed).
stop_server() {
    local i
    stop_rc=-
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        stop_rc=killed
    else
        wait "$server_pid"
        stop_rc=$?
    fi
    server_pid=""
}

vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# wrk's report as key=value words: requests_per_s p50_us p99_us requests non2xx errors.
parse_wrk() {
    awk '
    function us(v) {
        if (v ~ /us$/) return v + 0
        if (v ~ /ms$/) return v * 1000
        if (v ~ /m$/) return v * 60e6
        if (v ~ /s$/) return v * 1e6
        return -1
    }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    $2 == "requests" && $3 == "in" { requests = $1 }
    $1 == "Requests/sec:" { rps = $2 }
    /^ *Non-2xx or 3xx responses:/ { non2xx = $NF }
    /^ *Socket errors:/ { gsub(/,/, ""); errors = "connect:" $4 ",read:" $6 ",write:" $8 ",timeout:" $10 }
    END {
        printf "requests_per_s=%s p50_us=%s p99_us=%s requests=%s non2xx=%d errors=%s\n",
            rps == "" ? "-" : rps, p50 == "" ? "-" : p50, p99 == "" ? "-" : p99,
            requests == "" ? "-" : requests, non2xx, errors == "" ? "none" : errors
    }' "$1"
}

# --- raw file header -------------------------------------------------------------------

mkdir -p "$out_dir" || die "cannot create $out_dir"
meta() { printf '# %s: %s\n' "$1" "$2" >>"$raw_file"; }
cpu=$(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
# shellcheck disable=SC1091
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]] && git_rev="$git_rev, with uncommitted changes"
: >"$raw_file" || die "cannot write $raw_file"
meta format "tools/bench --server raw v1"
meta command "$cmdline"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta cpu "${cpu:-unknown}"
meta cores "$(cpu_count)"
meta memory_kb "${mem_kb:-?}"
meta kernel "$(uname -sr)"
meta os "${os:-?}"
meta weft "$(sed -n 's/^project(weft VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt) (git $git_rev)"
meta weft_build "$build_dir$build_note"
meta gcc "$( (gcc -dumpfullversion 2>/dev/null || gcc -dumpversion 2>/dev/null) | head -n 1)"
meta wrk "$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
if [[ -f $servers_dir/servers-versions.txt ]]; then
    while IFS= read -r l; do
        [[ " ${peers[*]} " == *" ${l%%:*} "* ]] && meta peer "$l"
    done <"$servers_dir/servers-versions.txt"
fi
meta pinning "$pinning"
meta nofile "$nofile"
meta mode "$( ((quick)) && echo quick || echo full)"
meta runs "$runs"
meta duration_s "$duration"
meta connections "${conn_counts[*]}"
meta idle_connections "$idle_n"
meta runtimes "${runtimes[*]}"
meta workloads "${workloads[*]}"
for rt in "${!NA[@]}"; do meta na "$rt|${NA[$rt]}"; done

# --- running ---------------------------------------------------------------------------

rows=()
for w in "${workloads[@]}"; do
    if [[ $w == http_hello ]]; then
        for c in "${conn_counts[@]}"; do rows+=("http_hello $c"); done
    else
        rows+=("idle_conns $idle_n")
    fi
done
live=0
for rt in "${runtimes[@]}"; do [[ -n ${NA[$rt]:-} ]] || live=$((live + 1)); done
total=$((${#rows[@]} * runs * live))
n=0

record() { # workload runtime connections run status rc note result
    local note=""
    [[ -n $7 ]] && note=" note=$(tr ' |' '_/' <<<"$7")"
    printf 'phase=server workload=%s runtime=%s connections=%s run=%s status=%s rc=%s stop_rc=%s%s | %s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$stop_rc" "$note" "$8" >>"$raw_file"
}

# One run: a fresh server, one wrk run or one idle_conns client, the server stopped.
one_run() { # workload connections runtime run
    local w=$1 c=$2 rt=$3 r=$4 rc status note="" result="" show
    n=$((n + 1))
    printf '[%d/%d] %s c=%s %s run %d/%d ... ' "$n" "$total" "$w" "$c" "$rt" "$r" "$runs"
    stop_rc=-
    if ! start_server "$rt"; then
        echo "FAIL ($start_error)"
        record "$w" "$rt" "$c" "$r" FAIL - "$start_error" ""
        return
    fi
    if [[ $w == http_hello ]]; then
        timeout -k 5 $((duration + 30)) "${pin_load[@]}" wrk -t1 -c"$c" -d"${duration}s" --timeout 10s \
            --latency "http://127.0.0.1:$server_port/" >"$tmp/load.out" 2>&1 &
        load_pid=$!
        wait "$load_pid"
        rc=$?
        load_pid=""
        result=$(parse_wrk "$tmp/load.out")
        status=ok
        if ((rc != 0)); then
            status=FAIL note="wrk exited with status $rc: $(tail -n 1 "$tmp/load.out")"
        elif [[ $result == *"requests_per_s=- "* ]]; then
            status=FAIL note="no Requests/sec in wrk's output"
        elif [[ $result != *" non2xx=0 "* ]]; then
            status=WRONG note="responses that are not 200"
        fi
        show="$(sed -n 's/.*requests_per_s=\([^ ]*\) p50_us=\([^ ]*\) p99_us=\([^ ]*\).*/\1 req\/s, p50 \2 us, p99 \3 us/p' <<<"$result")"
    else
        local before after rss i
        before=$(vm_kb "$measure_pid" VmHWM)
        : >"$tmp/load.out"
        timeout -k 5 90 "${pin_load[@]}" "$idle_bin" --port "$server_port" --connections "$c" \
            --hold 3 --timeout 60 >"$tmp/load.out" 2>"$tmp/load.err" &
        load_pid=$!
        for ((i = 0; i < 1400; i++)); do # 70 s at most; the client gives up at 60 s
            grep -q '^ready ' "$tmp/load.out" && break
            kill -0 "$load_pid" 2>/dev/null || break
            sleep 0.05
        done
        sleep 0.5 # let the server finish with the last replies
        after=$(vm_kb "$measure_pid" VmHWM)
        rss=$(vm_kb "$measure_pid" VmRSS)
        wait "$load_pid"
        rc=$?
        load_pid=""
        local line
        line=$(grep -m1 '^workload=idle_conns' "$tmp/load.out")
        status=ok
        if ((rc != 0)) || ! grep -q '^ready ' "$tmp/load.out"; then
            status=FAIL note="weft-idle-conns exited with status $rc: $(tail -n 1 "$tmp/load.err")"
        fi
        local per="-"
        [[ -n $before && -n $after ]] && per=$(((after - before) * 1024 / c))
        result="hwm_before_kb=${before:--} hwm_after_kb=${after:--} rss_after_kb=${rss:--} bytes_per_connection=$per ${line#workload=idle_conns }"
        show="$per bytes per connection (VmHWM ${before:-?} -> ${after:-?} kB)"
    fi
    stop_server
    if [[ $stop_rc != 0 && $status == ok ]]; then
        status=FAIL note="the server did not exit 0 on SIGTERM (status $stop_rc)"
    fi
    if [[ $status == ok ]]; then echo "$show"; else echo "$status ($note)"; fi
    record "$w" "$rt" "$c" "$r" "$status" "$rc" "$note" "$result"
}

started=$SECONDS
step "running: ${runtimes[*]}; ${#rows[@]} rows, R = $runs; $pinning; raw lines to $raw_file"
for row in "${rows[@]}"; do
    read -r w c <<<"$row"
    for ((r = 1; r <= runs; r++)); do
        for rt in "${runtimes[@]}"; do
            [[ -n ${NA[$rt]:-} ]] && continue
            one_run "$w" "$c" "$rt" "$r"
        done
    done
done
elapsed=$((SECONDS - started))
printf '# elapsed_s: %d\n' "$elapsed" >>"$raw_file"
echo
echo "ran $n runs in $(fmt_elapsed "$elapsed")"
run_report
