#!/usr/bin/env bash
# Runs N private, real InfluxDB 1.x servers (influxd) for integration tests and benchmarks.
#
#   influxd-cluster.sh start  --dir DIR --ports P1,P2,... [--rpc-ports R1,R2,...]
#                             [--wait SECONDS] [--owner-pid PID]
#   influxd-cluster.sh stop   --dir DIR [--ports P1,...] [--grace SECONDS]
#   influxd-cluster.sh status --dir DIR
#
# Each node is named by its HTTP port P and lives in DIR/P/: influxdb.conf, meta/, data/, wal/,
# influxd.log, pid. Everything binds to 127.0.0.1: HTTP on P, the RPC (backup/restore) port on
# P+1000 unless --rpc-ports gives them. ifql, usage reporting, the _internal monitor store,
# HTTP request logs, query logs and subscriptions are disabled. INFLUXD_LOG_LEVEL (default
# "info") sets the log level.
#
# start: starts every listed node that is not already running (its data is kept, so start after
#   stop or after a kill -9 is a restart), then waits until each answers GET /ping with 204
#   (default at most 30 s per node); on failure prints the log tail, stops the nodes it started
#   and exits 1. Installs influxdb via install-deps.sh if influxd is missing.
#   --owner-pid PID: a watchdog stops the whole cluster once process PID is gone (so a test
#   process killed before its cleanup ran does not leave servers behind). Its PID is in
#   DIR/watchdog.pid.
# stop: SIGTERM to each recorded PID, SIGKILL after --grace seconds (default 10), removes the pid
#   files. Without --ports: all nodes under DIR and the watchdog. A node that already died is fine.
# status: one line per node: "<port> running <pid>" or "<port> stopped"; exit 0.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib.sh
source "$SCRIPT_DIR/lib.sh"
WAIT_SECONDS=30
GRACE_SECONDS=10

die() {
    printf 'influxd-cluster: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}



write_config() {
    local node_dir=$1 http_port=$2 rpc_port=$3
    cat >"$node_dir/influxdb.conf" <<EOF
reporting-enabled = false
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$node_dir/meta"
  logging-enabled = false

[data]
  dir = "$node_dir/data"
  wal-dir = "$node_dir/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$http_port"
  log-enabled = false
  write-tracing = false

[ifql]
  enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  log-enabled = false

[logging]
  level = "${INFLUXD_LOG_LEVEL:-info}"
EOF
}

start_node() {
    local dir=$1 port=$2 rpc_port=$3 node_dir
    node_dir="$dir/$port"
    if is_running "$node_dir/pid"; then
        printf 'influxd-cluster: %s already running (pid %s)\n' "$port" "$(<"$node_dir/pid")" >&2
        return 0
    fi
    mkdir -p "$node_dir/meta" "$node_dir/data" "$node_dir/wal"
    write_config "$node_dir" "$port" "$rpc_port"
    # every database holds open shard files: take the hard limit of file descriptors
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # setsid: the node must not receive the terminal's or the test runner's job-control signals
    setsid influxd run -config "$node_dir/influxdb.conf" </dev/null >>"$node_dir/influxd.log" 2>&1 &
    echo $! >"$node_dir/pid"
    STARTED+=("$port")
}

wait_node() {
    local dir=$1 port=$2 node_dir deadline
    node_dir="$dir/$port"
    deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        if [[ $(ping_status "$port") == 204 ]]; then
            return 0
        fi
        if ! is_running "$node_dir/pid"; then
            printf 'influxd-cluster: influxd on port %s exited during startup; last log lines:\n' "$port" >&2
            tail -n 30 "$node_dir/influxd.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    printf 'influxd-cluster: influxd on port %s did not answer /ping with 204 within %ss; last log lines:\n' \
        "$port" "$WAIT_SECONDS" >&2
    tail -n 30 "$node_dir/influxd.log" >&2 || true
    return 1
}

stop_nodes() {
    # TERM to all first, then wait for all: a graceful influxd shutdown takes about a second
    local node_dir pid deadline pids=()
    for node_dir in "$@"; do
        [[ -f $node_dir/pid ]] || continue
        pid=$(<"$node_dir/pid")
        if pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + GRACE_SECONDS))
    for pid in "${pids[@]}"; do
        while pid_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.05
        done
        if pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            while pid_alive "$pid"; do sleep 0.05; done
        fi
    done
    for node_dir in "$@"; do
        rm -f "$node_dir/pid"
    done
}



cmd=${1:-}
[[ -n $cmd ]] || usage
shift
DIR="" PORTS="" RPC_PORTS="" OWNER=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
        --ports) PORTS=${2:?--ports needs a value}; shift 2 ;;
        --rpc-ports) RPC_PORTS=${2:?--rpc-ports needs a value}; shift 2 ;;
        --wait) WAIT_SECONDS=${2:?--wait needs a value}; shift 2 ;;
        --grace) GRACE_SECONDS=${2:?--grace needs a value}; shift 2 ;;
        --owner-pid) OWNER=${2:?--owner-pid needs a value}; shift 2 ;;
        -h | --help) usage ;;
        *) die "unknown argument '$1'" ;;
    esac
done
[[ -n $DIR ]] || die "--dir DIR is required"

IFS=, read -r -a PORT_LIST <<<"$PORTS"
IFS=, read -r -a RPC_LIST <<<"$RPC_PORTS"
[[ $WAIT_SECONDS =~ ^[0-9]+$ ]] || die "--wait takes whole seconds"
[[ $GRACE_SECONDS =~ ^[0-9]+$ ]] || die "--grace takes whole seconds"
for p in "${PORT_LIST[@]}" "${RPC_LIST[@]}"; do
    [[ $p =~ ^[0-9]+$ ]] || die "bad port '$p'"
done

case "$cmd" in
    start)
        [[ ${#PORT_LIST[@]} -gt 0 ]] || die "start needs --ports P1,P2,..."
        if [[ ${#RPC_LIST[@]} -gt 0 && ${#RPC_LIST[@]} -ne ${#PORT_LIST[@]} ]]; then
            die "--rpc-ports must list as many ports as --ports"
        fi
        if ! command -v influxd >/dev/null 2>&1; then
            "$SCRIPT_DIR/install-deps.sh" influxdb || die "influxd is missing and could not be installed (as root: apt-get install -y influxdb influxdb-client)"
        fi
        mkdir -p "$DIR"
        DIR=$(cd "$DIR" && pwd)
        STARTED=()
        for i in "${!PORT_LIST[@]}"; do
            port=${PORT_LIST[$i]}
            rpc=${RPC_LIST[$i]:-$((port + 1000))}
            start_node "$DIR" "$port" "$rpc"
        done
        failed=0
        for port in "${PORT_LIST[@]}"; do
            wait_node "$DIR" "$port" || failed=1
        done
        if [[ $failed -ne 0 ]]; then
            nodes=()
            for port in "${STARTED[@]}"; do nodes+=("$DIR/$port"); done
            stop_nodes "${nodes[@]}"
            exit 1
        fi
        if [[ -n $OWNER ]]; then
            start_watchdog "$DIR" "$OWNER" "$SCRIPT_DIR/influxd-cluster.sh" influxd-cluster-watchdog --grace 5
        fi
        ;;
    stop)
        [[ -d $DIR ]] || exit 0
        mapfile -t nodes < <(selected_nodes "$DIR" influxdb.conf "${PORT_LIST[@]}")
        stop_nodes "${nodes[@]}"
        [[ ${#PORT_LIST[@]} -gt 0 ]] || stop_watchdog "$DIR"
        ;;
    status)
        [[ -d $DIR ]] || die "no such directory: $DIR"
        print_node_status "$DIR" influxdb.conf
        ;;
    *) usage ;;
esac
