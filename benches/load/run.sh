#!/usr/bin/env bash
# End-to-end write-path benchmark: wrk POSTs line-protocol bodies over loopback, one run, several
# targets, one markdown table (stdout and target/bench-write.md).
#
#   benches/load/run.sh [--steps a,b,c,d,e,f] [--duration S] [--warmup S] [--threads N]
#                       [--connections N] [--lines N] [--port-base P] [--api-bin PATH]
#                       [--relay PATH] [--out FILE] [--keep]
#
# Steps, run in this order (each ~duration+warmup seconds; the default run takes < 3 minutes):
#   a  wrk -> one nginx null sink            the generator's ceiling (nothing can beat it)
#   b  wrk -> one real influxd /write        what one InfluxDB takes directly
#   c  wrk -> monitor-api RF=3 -> 3 null sinks   the proxy's own ceiling, durable log, fsync always
#   d  wrk -> monitor-api RF=3 -> 3 influxd      the proxy must never be the bottleneck here
#   e  wrk -> influxdb-relay -> 3 null sinks     the peer, only with --relay PATH (or $INFLUXDB_RELAY)
#   f  wrk -> monitor-api RF=3 -> 3 null sinks that take 1/10 of what (c) reached (nginx
#      limit_req): 503s expected, RSS must stay flat (sampled every second)
# Steps c, d and f need target/release/monitor-api (or --api-bin); when it is missing, exits at
# start-up, or does not take a 1-line write, they are reported as "skipped: monitor-api not
# available (...)" and the run goes on.
#
# Per step: accepted lines/s (2xx answers x lines per body / wrk's duration), p50/p99 latency per
# request (one request = one body of --lines lines), non-2xx count, delivered lines/s (lines that
# reached the backends, counted there, until they went quiet: influxd's pointsWrittenOK, or the
# bytes nginx read / bytes per line for the sinks), CPU seconds of the target process tree and of
# the backends (utime+stime from /proc, from the start of the measured run until the backends
# are quiet), both per million accepted lines, wrk's own CPU, the target's peak RSS (VmHWM) and
# "other load": CPU used on the machine by processes outside the benchmark during the step.
#
# Ports: all on 127.0.0.1, picked at start-up from --port-base (default 40100) upwards within
# 900 ports, skipping any that has a socket on it. Everything runs under a fresh temp dir (removed at exit unless --keep) and is stopped at exit, also on Ctrl-C.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STEPS=a,b,c,d,e,f
DURATION=12
WARMUP=3
THREADS=2
CONNECTIONS=16
LINES=5000
PORT_BASE=40100
API_BIN=$REPO/target/release/monitor-api
RELAY_BIN=${INFLUXDB_RELAY:-}
OUT=$REPO/target/bench-write.md
KEEP=0
DRAIN_MAX=30
ORIGINAL_ARGS="$*"

die() {
    printf 'bench-write: %s\n' "$*" >&2
    exit 1
}
log() { printf 'bench-write: %s\n' "$*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --steps) STEPS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --threads) THREADS=${2:?}; shift 2 ;;
        --connections) CONNECTIONS=${2:?}; shift 2 ;;
        --lines) LINES=${2:?}; shift 2 ;;
        --port-base) PORT_BASE=${2:?}; shift 2 ;;
        --api-bin) API_BIN=${2:?}; shift 2 ;;
        --relay) RELAY_BIN=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for n in "$DURATION" "$WARMUP" "$THREADS" "$CONNECTIONS" "$LINES" "$PORT_BASE"; do
    [[ $n =~ ^[0-9]+$ ]] || die "numbers only: '$n'"
done
want() { [[ ,$STEPS, == *,$1,* ]]; }

SINK_PORTS="" SLOW_SINK_PORTS="" INFLUX_PORTS="" INFLUX_RPC_PORTS="" RELAY_PORT=""
LUA=$REPO/benches/load/write.lua
CLK_TCK=$(getconf CLK_TCK)
NPROC=$(nproc)

command -v curl >/dev/null 2>&1 || die "curl is required"
if ! command -v wrk >/dev/null 2>&1; then
    "$REPO/integration/install-deps.sh" wrk || die "wrk is missing (as root: apt-get install -y wrk)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-write.XXXXXX")
STARTED_PIDS=()
SINKS_UP=0 SLOW_SINKS_UP=0 INFLUX_UP=0

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ $SINKS_UP -eq 1 ]]; then "$REPO/integration/null-sink.sh" stop --dir "$WORK/sinks" || true; fi
    if [[ $SLOW_SINKS_UP -eq 1 ]]; then "$REPO/integration/null-sink.sh" stop --dir "$WORK/slow-sinks" || true; fi
    if [[ $INFLUX_UP -eq 1 ]]; then "$REPO/integration/influxd-cluster.sh" stop --dir "$WORK/influxd" --grace 5 || true; fi
    if [[ $KEEP -eq 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- process accounting

descendants() {
    # the pid and every process below it (nginx workers, ...), by parent pid
    local pid=$1 child
    [[ -d /proc/$pid ]] || return 0
    printf '%s\n' "$pid"
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        descendants "$child"
    done
}

tree_pids() {
    local root
    for root in "$@"; do descendants "$root"; done
}

cpu_ticks() {
    # utime+stime of the given pids, in clock ticks
    local total=0 pid stat fields
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    printf '%s\n' "$total"
}

hwm_kib() {
    local total=0 pid value
    for pid in "$@"; do
        value=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${value:-0}))
    done
    printf '%s\n' "$total"
}

rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

busy_ticks() {
    # all CPUs, all processes: user+nice+system+irq+softirq+steal
    awk '/^cpu / {print $2+$3+$4+$7+$8+$9; exit}' /proc/stat
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- ports

# This machine hands out 32768-60999 as ephemeral ports for outgoing connections, and our range
# lies inside it: any busy process (this benchmark included) may hold one of our ports for a
# while, and a socket in TIME_WAIT there makes bind() fail. So ports are picked at run time,
# from PORT_BASE upwards, skipping any that has a socket on it.
NEXT_PORT=$PORT_BASE
port_in_use() {
    ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .
}

alloc_ports() {
    # alloc_ports VAR N: VAR=comma-separated list of N free ports never handed out before
    local -n result=$1
    local count=$2 list=""
    while ((count > 0)); do
        ((NEXT_PORT < PORT_BASE + 900)) || die "no free port left in $PORT_BASE..$((PORT_BASE + 899))"
        if ! port_in_use "$NEXT_PORT"; then
            list+=${list:+,}$NEXT_PORT
            count=$((count - 1))
        fi
        NEXT_PORT=$((NEXT_PORT + 1))
    done
    # shellcheck disable=SC2034 # a nameref: assigns the caller's variable
    result=$list
}

# ---------------------------------------------------------------- backends

start_sinks() {
    # start_sinks DIR VAR [null-sink options]: three sinks on fresh ports (VAR gets them)
    local dir=$1 attempt
    local -n ports=$2
    shift 2
    for attempt in 1 2 3; do
        alloc_ports ports 3
        if "$REPO/integration/null-sink.sh" start --dir "$dir" --ports "$ports" --owner-pid $$ "$@" >&2; then
            return 0
        fi
        log "sinks on $ports did not start (attempt $attempt), trying other ports"
    done
    die "could not start null sinks"
}

sink_master_pids() {
    local dir=$1 port
    for port in ${2//,/ }; do cat "$dir/$port/pid"; done
}

start_influx() {
    local attempt started=0
    for attempt in 1 2 3; do
        alloc_ports INFLUX_PORTS 3
        alloc_ports INFLUX_RPC_PORTS 3
        if INFLUXD_LOG_LEVEL=warn "$REPO/integration/influxd-cluster.sh" start --dir "$WORK/influxd" \
            --ports "$INFLUX_PORTS" --rpc-ports "$INFLUX_RPC_PORTS" --owner-pid $$ >&2; then
            started=1
            break
        fi
        log "influxd on $INFLUX_PORTS did not start (attempt $attempt), trying other ports"
    done
    [[ $started -eq 1 ]] || die "could not start influxd"
    INFLUX_UP=1
    local port
    for port in ${INFLUX_PORTS//,/ }; do
        curl -s -o /dev/null -XPOST "http://127.0.0.1:$port/query" --data-urlencode 'q=CREATE DATABASE bench'
    done
}

influx_pids() {
    local port
    for port in ${INFLUX_PORTS//,/ }; do cat "$WORK/influxd/$port/pid"; done
}

influx_points_ok() {
    # sum of pointsWrittenOK over the given influxd HTTP ports (lines they stored)
    local total=0 port n
    for port in "$@"; do
        n=$(curl -s -m 5 "http://127.0.0.1:$port/debug/vars" | grep -o '"pointsWrittenOK":[0-9]*' | awk -F: '{s += $2} END {printf "%.0f", s}' || true)
        total=$((total + ${n:-0}))
    done
    printf '%s\n' "$total"
}

sink_bytes_read() {
    # bytes nginx read on write requests (headers + bodies), from the sinks' access logs
    local dir=$1 port total=0 n
    for port in ${2//,/ }; do
        n=$(awk '$1 == "POST" && ($2 == "/write" || $2 == "/api/v2/write") {s += $4} END {printf "%.0f", s}' \
            "$dir/$port/access.log" 2>/dev/null || echo 0)
        total=$((total + ${n:-0}))
    done
    printf '%s\n' "$total"
}

# ---------------------------------------------------------------- proxies under test

first_error_line() {
    # the line that says why a program stopped, not the last line of its backtrace
    local line
    line=$(grep -m 1 -E 'Error|error|panicked' "$1" 2>/dev/null || true)
    [[ -n $line ]] || line=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 || true)
    printf '%s' "$line" | cut -c1-160
}

API_REASON=""
start_api() {
    # start_api NAME REPLICA_PORTS [extra yaml]; sets API_PID and API_URL, or API_REASON and
    # returns 1
    local name=$1 replicas=$2 extra=${3:-} dir code body port
    API_PID="" API_REASON=""
    alloc_ports port 1
    API_URL="http://127.0.0.1:$port"
    if [[ ! -x $API_BIN ]]; then
        API_REASON="$API_BIN not built"
        return 1
    fi
    dir=$WORK/$name
    mkdir -p "$dir/data"
    {
        printf 'listen: "127.0.0.1:%s"\n' "$port"
        printf 'data_dir: "%s/data"\n' "$dir"
        printf 'index_tag: "index"\n'
        printf 'groups:\n  g1:\n    replicas:\n'
        for p in ${replicas//,/ }; do printf '      - url: "http://127.0.0.1:%s"\n' "$p"; done
        printf 'indexes:\n  bench0: g1\n'
        printf 'default_group: g1\n'
        printf 'create_database: true\n'
        printf 'open_access: true\n'
        printf 'queue:\n  fsync: always\n%s' "$extra"
        # Backends on this host: compressing each replica's copy costs more CPU than it saves.
        printf 'backend:\n  gzip: %s\n' "${BENCH_BACKEND_GZIP:-false}"
        printf 'log:\n  level: "warn"\n'
    } >"$dir/monitor-api.yaml"
    setsid "$API_BIN" --config "$dir/monitor-api.yaml" </dev/null >"$dir/monitor-api.log" 2>&1 &
    API_PID=$!
    STARTED_PIDS+=("$API_PID")
    for _ in $(seq 150); do
        if ! kill -0 "$API_PID" 2>/dev/null; then
            API_REASON="exited at start-up: $(first_error_line "$dir/monitor-api.log")"
            return 1
        fi
        # any HTTP answer means it listens; the 1-line write below decides whether it works
        code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/ping" || true)
        [[ -n $code && $code != 000 ]] && break
        sleep 0.1
    done
    if [[ -z $code || $code == 000 ]]; then
        API_REASON="nothing answered on 127.0.0.1:$port within 15 s"
        return 1
    fi
    body=$(curl -s -m 10 -w ' HTTP %{http_code}' -XPOST "http://127.0.0.1:$port/write?db=bench" \
        --data-binary 'bench_smoke,index=bench0 value=1i 1700000000000000000' || true)
    if [[ $body != *' HTTP 2'* ]]; then
        API_REASON="a 1-line write answered: $(printf '%s' "$body" | tr '\n' ' ' | cut -c1-160)"
        return 1
    fi
    return 0
}

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

start_relay() {
    # sets RELAY_PID or API_REASON
    RELAY_PID=""
    if [[ -z $RELAY_BIN ]]; then
        API_REASON="no influxdb-relay binary given (--relay PATH or INFLUXDB_RELAY)"
        return 1
    fi
    [[ -x $RELAY_BIN ]] || { API_REASON="$RELAY_BIN is not executable"; return 1; }
    alloc_ports RELAY_PORT 1
    mkdir -p "$WORK/relay"
    {
        printf '[[http]]\nname = "bench"\nbind-addr = "127.0.0.1:%s"\noutput = [\n' "$RELAY_PORT"
        for p in ${SINK_PORTS//,/ }; do
            printf '  { name = "s%s", location = "http://127.0.0.1:%s/write" },\n' "$p" "$p"
        done
        printf ']\n'
    } >"$WORK/relay/relay.toml"
    setsid "$RELAY_BIN" -config "$WORK/relay/relay.toml" </dev/null >"$WORK/relay/relay.log" 2>&1 &
    RELAY_PID=$!
    STARTED_PIDS+=("$RELAY_PID")
    for _ in $(seq 100); do
        [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$RELAY_PORT/ping" || true) == 204 ]] && return 0
        kill -0 "$RELAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    API_REASON="influxdb-relay did not answer /ping: $(tail -n 1 "$WORK/relay/relay.log")"
    return 1
}

# ---------------------------------------------------------------- one measured step

ROWS=()
declare -A RATE P50 P99 CPU_PER_M CEILING

run_wrk() {
    # run_wrk NAME URL SECONDS: wrk's output to $WORK/NAME.wrk, wrk's CPU ticks to $WORK/NAME.wrkcpu
    local name=$1 url=$2 seconds=$3
    (
        me=$BASHPID
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 30s --latency -s "$LUA" "$url" -- \
            "lines=$LINES" >"$WORK/$name.wrk" 2>&1 || true
        # cutime+cstime of this subshell = the wrk it waited for
        read -r -a f <<<"$(sed 's/.*) //' "/proc/$me/stat")"
        echo $((f[13] + f[14])) >"$WORK/$name.wrkcpu"
    )
}

result_field() {
    # result_field NAME KEY: a value from wrk's RESULT line
    [[ -f $WORK/$1.wrk ]] || return 0
    awk -v key="$2" '$1 == "RESULT" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) { print substr($i, length(key) + 2); exit } } }' "$WORK/$1.wrk"
}

wait_quiet() {
    # wait_quiet KIND ARGS: waits until the backends stop receiving lines (at most DRAIN_MAX s).
    # Sets QUIET_VALUE (the final counter) and QUIET_AT_MS (when it last moved, or when the wait
    # began if it never did). KIND: influx PORTS... (pointsWrittenOK) | sinks DIR PORTS (bytes read)
    local kind=$1 current stable=0 deadline=$((SECONDS + DRAIN_MAX)) need=3
    shift
    QUIET_VALUE=-1
    QUIET_AT_MS=$(now_ms)
    while ((SECONDS < deadline)); do
        if [[ $kind == influx ]]; then
            current=$(influx_points_ok "$@")
        else
            current=$(sink_bytes_read "$@")
        fi
        if [[ $current == "$QUIET_VALUE" ]]; then
            stable=$((stable + 1))
            ((stable >= need)) && break
        else
            stable=0
            [[ $QUIET_VALUE == -1 ]] || QUIET_AT_MS=$(now_ms)
        fi
        QUIET_VALUE=$current
        sleep 0.5
    done
}

fmt_rate() {
    awk -v r="$1" 'BEGIN { if (r >= 1e6) printf "%.2fM", r / 1e6; else printf "%.0fk", r / 1e3 }'
}

measure() {
    # measure STEP LABEL URL "TARGET_ROOT_PIDS" "BACKEND_ROOT_PIDS" DELIVERY_KIND [args]
    local step=$1 label=$2 url=$3 target_roots=$4 backend_roots=$5 kind=$6
    shift 6
    local target_pids backend_pids t0 t1 b0 b1 s0 s1 w0 w1 d0 d1 wrk_ticks lines ok rate
    local delivered="" delivered_rate="n/a" per_m_target per_m_backend other hwm drain_s ceiling
    if ((WARMUP > 0)); then
        run_wrk "$step-warmup" "$url" "$WARMUP"
    fi
    # shellcheck disable=SC2086 # pid lists are space separated on purpose
    target_pids=$(tree_pids $target_roots)
    # shellcheck disable=SC2086
    backend_pids=$(tree_pids $backend_roots)
    d0=0
    if [[ $kind != none ]]; then
        wait_quiet "$kind" "$@"
        d0=$QUIET_VALUE
    fi
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $target_pids)
    # shellcheck disable=SC2086
    b0=$(cpu_ticks $backend_pids)
    s0=$(busy_ticks)
    w0=$(now_ms)
    run_wrk "$step" "$url" "$DURATION"
    local wrk_end_ms
    wrk_end_ms=$(now_ms)
    d1=0
    local quiet_ms=$wrk_end_ms
    if [[ $kind != none ]]; then
        wait_quiet "$kind" "$@"
        d1=$QUIET_VALUE
        quiet_ms=$QUIET_AT_MS
    fi
    w1=$(now_ms)
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $target_pids)
    # shellcheck disable=SC2086
    b1=$(cpu_ticks $backend_pids)
    s1=$(busy_ticks)
    # shellcheck disable=SC2086
    hwm=$(hwm_kib $target_pids)
    wrk_ticks=$(cat "$WORK/$step.wrkcpu" 2>/dev/null || echo 0)

    rate=$(result_field "$step" lines_per_s)
    if [[ -z $rate ]]; then
        ROWS+=("| $step | $label | wrk failed: $(tail -n 1 "$WORK/$step.wrk" | cut -c1-100) ||||||||||||")
        return 0
    fi
    lines=$(result_field "$step" lines_per_body)
    BODY_BYTES=$(result_field "$step" body_bytes)
    ok=$(result_field "$step" ok)
    local accepted=$((ok * lines))
    local duration_s
    duration_s=$(result_field "$step" duration_s)
    if [[ $kind == influx ]]; then
        delivered=$(((d1 - d0) / ${REPLICAS:-1}))
    elif [[ $kind == sinks ]]; then
        local body_bytes
        body_bytes=$(result_field "$step" body_bytes)
        # bytes read / bytes per line; request headers make this a slight overestimate
        delivered=$(awk -v b="$((d1 - d0))" -v bb="$body_bytes" -v l="$lines" -v r="${REPLICAS:-1}" \
            'BEGIN { printf "%.0f", b / (bb / l) / r }')
    fi
    drain_s=$(awk -v a="$wrk_end_ms" -v b="$quiet_ms" 'BEGIN { d = (b - a) / 1000; if (d < 0) d = 0; printf "%.1f", d }')
    if [[ -n $delivered ]]; then
        delivered_rate=$(awk -v n="$delivered" -v s="$duration_s" -v d="$drain_s" 'BEGIN { printf "%.0f", n / (s + d) }')
        delivered_rate="$(fmt_rate "$delivered_rate") (drain ${drain_s}s)"
    fi
    per_m_target=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$accepted" 'BEGIN { if (n > 0) printf "%.3f", t / hz / (n / 1e6); else print "n/a" }')
    per_m_backend="n/a"
    if [[ -n $backend_roots ]]; then
        # per line the backends stored: with a backlog left at DRAIN_MAX they did not see them all
        per_m_backend=$(awk -v t="$((b1 - b0))" -v hz="$CLK_TCK" -v n="${delivered:-$accepted}" 'BEGIN { if (n > 0) printf "%.3f", t / hz / (n / 1e6); else print "n/a" }')
    fi
    other=$(awk -v all="$((s1 - s0))" -v mine="$((t1 - t0 + b1 - b0 + wrk_ticks))" -v hz="$CLK_TCK" \
        -v ms="$((w1 - w0))" -v n="$NPROC" 'BEGIN { o = (all - mine) / hz / (ms / 1000) / n * 100; if (o < 0) o = 0; printf "%.0f%%", o }')
    # what the step would reach with the machine to itself, if CPU is what limits it
    ceiling=$(awk -v t="$((t1 - t0 + b1 - b0 + wrk_ticks))" -v hz="$CLK_TCK" -v n="$accepted" -v c="$NPROC" \
        'BEGIN { if (t > 0) printf "%.0f", c * n / (t / hz); else print 0 }')
    RATE[$step]=$rate
    CPU_PER_M[$step]=$per_m_target
    CEILING[$step]=$ceiling
    P50[$step]=$(result_field "$step" p50_ms)
    P99[$step]=$(result_field "$step" p99_ms)
    ROWS+=("| $step | $label | **$(fmt_rate "$rate")** | ${P50[$step]} | ${P99[$step]} | $(result_field "$step" non2xx) ($(result_field "$step" statuses)) | $delivered_rate | $(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", t/hz}') | $per_m_target | $per_m_backend | $(awk -v t="$wrk_ticks" -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", t/hz}') | $((hwm / 1024)) | $other | $(fmt_rate "$ceiling") |")
    log "step $step: $(fmt_rate "$rate") lines/s accepted, p99 ${P99[$step]} ms"
}

skip_row() {
    ROWS+=("| $1 | $2 | skipped: $3 ||||||||||||")
    log "step $1 skipped: $3"
}

# ---------------------------------------------------------------- the run

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
log "work dir $WORK; steps $STEPS; ${DURATION}s each (+${WARMUP}s warm-up)"

# Every backend listens before the first request: once traffic flows, outgoing connections take
# ephemeral ports, possibly ours.
if want a || want c || want e; then
    SINKS_UP=1
    start_sinks "$WORK/sinks" SINK_PORTS
fi
if want b || want d; then start_influx; fi
if want f && [[ -x $API_BIN ]]; then
    SLOW_SINKS_UP=1
    start_sinks "$WORK/slow-sinks" SLOW_SINK_PORTS --max-rps 1000
fi

if want a; then
    REPLICAS=1 measure a "wrk -> nginx null sink (generator ceiling)" "http://127.0.0.1:${SINK_PORTS%%,*}" \
        "$(sink_master_pids "$WORK/sinks" "${SINK_PORTS%%,*}")" "" sinks "$WORK/sinks" "${SINK_PORTS%%,*}"
fi

if want b; then
    first_influx=${INFLUX_PORTS%%,*}
    REPLICAS=1 measure b "wrk -> influxd 1.6.7 /write (direct)" "http://127.0.0.1:$first_influx" \
        "$(cat "$WORK/influxd/$first_influx/pid")" "" influx "$first_influx"
fi

if want c; then
    if start_api api-sinks "$SINK_PORTS"; then
        REPLICAS=3 measure c "wrk -> monitor-api RF=3 -> 3 null sinks (fsync always)" \
            "$API_URL" "$API_PID" "$(sink_master_pids "$WORK/sinks" "$SINK_PORTS")" \
            sinks "$WORK/sinks" "$SINK_PORTS"
        stop_pid "$API_PID"
    else
        skip_row c "wrk -> monitor-api RF=3 -> 3 null sinks" "monitor-api not available ($API_REASON)"
        [[ -n ${API_PID:-} ]] && stop_pid "$API_PID"
    fi
fi

if want d; then
    if start_api api-influx "$INFLUX_PORTS"; then
        # shellcheck disable=SC2086 # one argument per port
        REPLICAS=3 measure d "wrk -> monitor-api RF=3 -> 3 influxd (fsync always)" \
            "$API_URL" "$API_PID" "$(influx_pids | tr '\n' ' ')" \
            influx ${INFLUX_PORTS//,/ }
        stop_pid "$API_PID"
    else
        skip_row d "wrk -> monitor-api RF=3 -> 3 influxd" "monitor-api not available ($API_REASON)"
        [[ -n ${API_PID:-} ]] && stop_pid "$API_PID"
    fi
fi
if [[ $INFLUX_UP -eq 1 ]]; then
    "$REPO/integration/influxd-cluster.sh" stop --dir "$WORK/influxd" --grace 5 >&2 || true
    INFLUX_UP=0
fi

if want e; then
    if start_relay; then
        REPLICAS=3 measure e "wrk -> influxdb-relay -> 3 null sinks (no durability)" \
            "http://127.0.0.1:$RELAY_PORT" "$RELAY_PID" "$(sink_master_pids "$WORK/sinks" "$SINK_PORTS")" \
            sinks "$WORK/sinks" "$SINK_PORTS"
        stop_pid "$RELAY_PID"
    else
        skip_row e "wrk -> influxdb-relay -> 3 null sinks" "$API_REASON"
        [[ -n ${RELAY_PID:-} ]] && stop_pid "$RELAY_PID"
    fi
fi

SLOW_SUMMARY=""
if want f; then
    # backends 10x too slow: each sink admits 1/10 of the batches (c) delivered per second
    base_rate=${RATE[c]:-1000000}
    slow_rps=$(awk -v r="$base_rate" -v l="$LINES" 'BEGIN { x = int(r / 10 / l + 0.5); if (x < 1) x = 1; print x }')
    if [[ $SLOW_SINKS_UP -eq 1 ]]; then
        "$REPO/integration/null-sink.sh" reload --dir "$WORK/slow-sinks" --max-rps "$slow_rps" >&2
    fi
    # a small disk cap and consistency any, so the durable log fills within the step and the
    # cap's 503s show (at quorum the clients are slowed to the sinks' pace instead); backend
    # batches of one client request's size, so that the sinks' request rate means 1/10 of the lines
    if start_api api-slow "$SLOW_SINK_PORTS" '  max_bytes: "256MiB"
sender:
  batch_max_bytes: "720KiB"
consistency: "any"
'; then
        rss_log=$WORK/f.rss
        : >"$rss_log"
        (
            while kill -0 "$API_PID" 2>/dev/null; do
                rss_kib "$API_PID" >>"$rss_log"
                sleep 1
            done
        ) &
        sampler=$!
        DRAIN_MAX=2 REPLICAS=3 measure f "wrk -> monitor-api RF=3 -> 3 sinks at ${slow_rps} req/s each (10x too slow)" \
            "$API_URL" "$API_PID" "$(sink_master_pids "$WORK/slow-sinks" "$SLOW_SINK_PORTS")" \
            sinks "$WORK/slow-sinks" "$SLOW_SINK_PORTS"
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        SLOW_SUMMARY=$(awk '{ a[NR] = $1 } END {
            if (NR < 4) { print "too few RSS samples"; exit }
            q = int(NR / 4); if (q < 1) q = 1
            m = 0; for (i = 1; i <= NR; i++) if (a[i] > m) m = a[i]
            printf "monitor-api RSS over the step (1 s samples): at 25%%: %.0f MiB, at the end: %.0f MiB, max: %.0f MiB", a[q] / 1024, a[NR] / 1024, m / 1024 }' "$rss_log")
        stop_pid "$API_PID"
    else
        skip_row f "wrk -> monitor-api RF=3 -> 3 slow sinks" "monitor-api not available ($API_REASON)"
        [[ -n ${API_PID:-} ]] && stop_pid "$API_PID"
    fi
fi

# ---------------------------------------------------------------- report

ratio() {
    # ratio A B: RATE[A] / RATE[B], or "n/a"
    local a=${RATE[$1]:-} b=${RATE[$2]:-}
    if [[ -n $a && -n $b ]]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'; else echo "n/a"; fi
}
delta() {
    local a=$1 b=$2
    if [[ -n $a && -n $b ]]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.2f ms", a - b }'; else echo "n/a"; fi
}

{
    printf '## bench-write: %s\n\n' "$START_DATE"
    printf 'Machine: %s cores, %s, kernel %s; load average at start %s, at end %s. ' \
        "$NPROC" "$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)" \
        "$(uname -r)" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'Commit %s.\n\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf 'wrk %s threads, %s connections, %s s per step (+%s s warm-up); one request = %s lines (%s bytes, ~%s bytes/line), precision=ns, 4 indexes. Command: `benches/load/run.sh %s`\n\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$LINES" \
        "${BODY_BYTES:-?}" \
        "$(awk -v b="${BODY_BYTES:-0}" -v l="$LINES" 'BEGIN { if (b > 0) printf "%.0f", b / l; else print "?" }')" \
        "$ORIGINAL_ARGS"
    printf '| step | path | lines/s accepted | p50 ms | p99 ms | non-2xx | delivered lines/s | target CPU s | target CPU s / M lines | backends CPU s / M lines | wrk CPU s | target peak RSS MiB | other load | CPU-bound ceiling lines/s |\n'
    printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
    printf '%s\n' "${ROWS[@]}"
    printf '\nRatios from this run: c/a (proxy ceiling vs generator ceiling) %s; c/e (proxy vs influxdb-relay, goal >= 2) %s; d/b (proxy into 3 influxd vs 1 influxd direct) %s; e/a %s.\n' \
        "$(ratio c a)" "$(ratio c e)" "$(ratio d b)" "$(ratio e a)"
    cpu_c=${CPU_PER_M[c]:-} cpu_e=${CPU_PER_M[e]:-}
    if [[ -n $cpu_c && -n $cpu_e && $cpu_c != n/a && $cpu_e != n/a ]]; then
        printf 'CPU per million lines, proxy vs relay (c/e, less is better; robust to other load): %s.\n' \
            "$(awk -v a="$cpu_c" -v b="$cpu_e" 'BEGIN { printf "%.2f", a / b }')"
    fi
    printf 'Added latency per request, p50 / p99: c vs a %s / %s; d vs b %s / %s.\n' \
        "$(delta "${P50[c]:-}" "${P50[a]:-}")" "$(delta "${P99[c]:-}" "${P99[a]:-}")" \
        "$(delta "${P50[d]:-}" "${P50[b]:-}")" "$(delta "${P99[d]:-}" "${P99[b]:-}")"
    if [[ -n ${RATE[c]:-} ]]; then
        printf 'Goal (c) >= 2,400,000 lines/s at RF=3 with the durable log: %s as measured; %s by the CPU-bound ceiling (%s).\n' \
            "$(awk -v r="${RATE[c]}" 'BEGIN { print (r >= 2400000) ? "met" : "NOT met" }')" \
            "$(awk -v r="${CEILING[c]}" 'BEGIN { print (r >= 2400000) ? "met" : "NOT met" }')" \
            "$(fmt_rate "${CEILING[c]}")"
    fi
    [[ -n $SLOW_SUMMARY ]] && printf '%s.\n' "$SLOW_SUMMARY"
    printf '\n"lines/s accepted": 2xx answers x lines per body / duration. "delivered": lines counted at the backends until they went quiet, over duration + drain (sinks: bytes read / bytes per line, per replica). CPU: utime+stime from /proc, measured run + drain; target CPU per million accepted lines, backends CPU (all replicas together) per million delivered lines. "other load": CPU used by processes outside the benchmark during the step (other work on this shared machine); figures from steps with high other load are low. "CPU-bound ceiling": %s cores x accepted lines / CPU seconds of target + backends + wrk, i.e. the rate with the machine to ourselves if CPU is the limit (an overestimate where something else limits, e.g. the fsyncs of influxd).\n' "$NPROC"
} | tee "$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
log "report written to $OUT"
