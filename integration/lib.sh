# Helpers shared by the integration/ scripts (sourced, not run): process liveness by PID, stopping
# by PID with a grace period, the owner watchdog that cleans up after a killed test run, and the
# node directories (DIR/PORT/) of the backend scripts: listing, status lines and /ping probes.
# shellcheck shell=bash

# pid_alive PID: the process exists and is not a zombie (kill -0 also succeeds for a zombie,
# which a killed child stays until it is reaped).
pid_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# is_running PID_FILE: the file exists and its process is alive.
is_running() {
    [[ -f $1 ]] && pid_alive "$(<"$1")"
}

# stop_pid PID [GRACE_SECONDS=5]: SIGTERM, then SIGKILL if it is still alive after the grace.
stop_pid() {
    local pid=$1 grace=${2:-5} deadline
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if pid_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# start_watchdog DIR OWNER_PID SCRIPT NAME [STOP_ARGS...]: once OWNER_PID is gone, runs
# `SCRIPT stop --dir DIR STOP_ARGS...`. Its PID goes to DIR/watchdog.pid, its log to
# DIR/watchdog.log. Does nothing if a watchdog for DIR already runs.
start_watchdog() {
    local dir=$1 owner=$2 script=$3 name=$4
    shift 4
    is_running "$dir/watchdog.pid" && return 0
    # shellcheck disable=SC2016 # the inner script expands its own positional parameters
    setsid bash -c '
        owner=$1 script=$2 dir=$3
        shift 3
        while [[ -e /proc/$owner ]] && ! grep -q "^State:.Z" "/proc/$owner/status" 2>/dev/null; do sleep 1; done
        rm -f "$dir/watchdog.pid"
        exec "$script" stop --dir "$dir" "$@"
    ' "$name" "$owner" "$script" "$dir" "$@" </dev/null >>"$dir/watchdog.log" 2>&1 &
    echo $! >"$dir/watchdog.pid"
}

# stop_watchdog DIR: stops the watchdog of DIR, if any.
stop_watchdog() {
    if is_running "$1/watchdog.pid"; then
        kill -TERM "$(<"$1/watchdog.pid")" 2>/dev/null || true
    fi
    rm -f "$1/watchdog.pid"
}

# service_main NAME STEM DEFAULT_BINARY DEFAULT_LISTEN PROBE_PATH SCRIPT CMD [options]: the
# `start|stop` of one of our own binaries for `make run` (options: --dir DIR --config FILE
# [--binary PATH] [--wait S]). PID in DIR/STEM.pid, log in DIR/STEM.log; `start` reads `listen:`
# from the config and waits until PROBE_PATH answers there, showing the log's tail if it never does.
service_main() {
    local name=$1 stem=$2 binary=$3 default_listen=$4 probe=$5 script=$6
    shift 6
    local usage="usage: $script start --dir DIR --config FILE [--binary PATH] [--wait S] | stop --dir DIR"
    local cmd=${1:-}
    shift || true
    local dir="" config="" wait_s=30
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir=$2; shift 2 ;;
            --config) config=$2; shift 2 ;;
            --binary) binary=$2; shift 2 ;;
            --wait) wait_s=$2; shift 2 ;;
            *) echo "$usage" >&2; return 2 ;;
        esac
    done
    [[ -n "$dir" ]] || { echo "$usage" >&2; return 2; }
    local pid_file="$dir/$stem.pid" log_file="$dir/$stem.log" listen
    case "$cmd" in
        start)
            [[ -n "$config" ]] || { echo "$usage" >&2; return 2; }
            mkdir -p "$dir"
            if is_running "$pid_file"; then echo "$name already running (pid $(<"$pid_file"))"; return 0; fi
            listen=$(sed -n 's/^listen:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\)"\{0,1\}.*/\1/p' "$config" | head -1)
            listen=${listen:-$default_listen}
            nohup "$binary" --config "$config" >>"$log_file" 2>&1 &
            echo $! >"$pid_file"
            for _ in $(seq 1 $((wait_s * 10))); do
                if curl -fsS -o /dev/null "http://$listen$probe" 2>/dev/null; then
                    echo "$name up on http://$listen (pid $(<"$pid_file"))"; return 0
                fi
                is_running "$pid_file" || break
                sleep 0.1
            done
            echo "$name did not come up on http://$listen; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2 || true
            return 1
            ;;
        stop)
            if is_running "$pid_file"; then
                stop_pid "$(<"$pid_file")" 10
                echo "$name stopped"
            fi
            rm -f "$pid_file"
            ;;
        *) echo "$usage" >&2; return 2 ;;
    esac
}

# ping_status PORT: the HTTP status of GET http://127.0.0.1:PORT/ping, or 000 when nothing answers
# (through bash's /dev/tcp where curl is missing).
ping_status() {
    local port=$1
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/ping" 2>/dev/null || true
    else
        (
            exec 2>/dev/null
            exec 3<>"/dev/tcp/127.0.0.1/$port" || { printf 000; exit 0; }
            printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
            line=""
            IFS= read -r -t 2 line <&3 || true
            read -r _ status _ <<<"$line"
            printf '%s' "${status:-000}"
        )
    fi
}

# node_dirs DIR MARKER: the node directories under DIR (those holding the file MARKER, the node's
# config), one a line.
node_dirs() {
    local d
    for d in "$1"/*/; do
        d=${d%/}
        [[ -f $d/$2 ]] && printf '%s\n' "$d"
    done
    return 0
}

# selected_nodes DIR MARKER [PORT...]: DIR/PORT for each PORT given, else every node under DIR.
selected_nodes() {
    local dir=$1 marker=$2 port
    shift 2
    if [[ $# -eq 0 ]]; then
        node_dirs "$dir" "$marker"
        return 0
    fi
    for port in "$@"; do printf '%s\n' "$dir/$port"; done
}

# print_node_status DIR MARKER: one line a node under DIR, "<port> running <pid>" or "<port> stopped".
print_node_status() {
    local node
    while IFS= read -r node; do
        if is_running "$node/pid"; then
            printf '%s running %s\n' "$(basename "$node")" "$(<"$node/pid")"
        else
            printf '%s stopped\n' "$(basename "$node")"
        fi
    done < <(node_dirs "$1" "$2")
}
