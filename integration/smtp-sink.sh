#!/usr/bin/env bash
# A real SMTP server for tests that stores every received mail under DIR/mail/.
#
#   smtp-sink.sh start --dir DIR --port P [--owner-pid PID] [--wait SECONDS]
#   smtp-sink.sh stop  --dir DIR
#
# start: runs integration/smtp_sink.py (aiosmtpd) with Debian's /usr/bin/python3, listening on
#   127.0.0.1:P; PID in DIR/pid, log in DIR/smtp-sink.log; waits (default 15 s) until the server
#   greets with "220", else prints the log and exits 1. Each message: DIR/mail/<seq>.eml (raw DATA)
#   and DIR/mail/<seq>.json (envelope + data; written last, so it marks a complete message).
#   --owner-pid PID: the server exits by itself once process PID is gone.
#   Installs python3-aiosmtpd via install-deps.sh smtp when missing.
# stop: SIGTERM to the recorded PID, SIGKILL after 5 s, removes DIR/pid. Idempotent.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib.sh
source "$SCRIPT_DIR/lib.sh"
SYSTEM_PYTHON=/usr/bin/python3

die() {
    printf 'smtp-sink: %s\n' "$*" >&2
    exit 1
}


greets() (
    # subshell: the descriptor and the silenced connect error stay local
    port=$1 line=""
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    IFS= read -r -t 2 line <&3 || true
    printf 'QUIT\r\n' >&3 || true
    [[ $line == 220* ]]
)

cmd=${1:-}
[[ -n $cmd ]] || die "usage: smtp-sink.sh start --dir DIR --port P [--owner-pid PID] | stop --dir DIR"
shift
DIR="" PORT="" OWNER="" WAIT_SECONDS=15
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
        --port) PORT=${2:?--port needs a value}; shift 2 ;;
        --owner-pid) OWNER=${2:?--owner-pid needs a value}; shift 2 ;;
        --wait) WAIT_SECONDS=${2:?--wait needs a value}; shift 2 ;;
        *) die "unknown argument '$1'" ;;
    esac
done
[[ -n $DIR ]] || die "--dir DIR is required"
[[ $WAIT_SECONDS =~ ^[0-9]+$ ]] || die "--wait takes whole seconds"

case "$cmd" in
    start)
        [[ $PORT =~ ^[0-9]+$ ]] || die "start needs --port P"
        if ! [[ -x $SYSTEM_PYTHON ]] || ! "$SYSTEM_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
            "$SCRIPT_DIR/install-deps.sh" smtp || die "aiosmtpd for $SYSTEM_PYTHON is missing and could not be installed (as root: apt-get install -y python3-aiosmtpd)"
        fi
        mkdir -p "$DIR/mail"
        DIR=$(cd "$DIR" && pwd)
        if [[ -f $DIR/pid ]] && pid_alive "$(<"$DIR/pid")"; then
            die "already running (pid $(<"$DIR/pid")) in $DIR"
        fi
        args=(--dir "$DIR" --port "$PORT")
        [[ -n $OWNER ]] && args+=(--owner-pid "$OWNER")
        setsid "$SYSTEM_PYTHON" "$SCRIPT_DIR/smtp_sink.py" "${args[@]}" </dev/null >>"$DIR/smtp-sink.log" 2>&1 &
        pid=$!
        echo "$pid" >"$DIR/pid"
        deadline=$((SECONDS + WAIT_SECONDS))
        until greets "$PORT"; do
            if ! pid_alive "$pid" || ((SECONDS >= deadline)); then
                printf 'smtp-sink: server on port %s did not come up; log:\n' "$PORT" >&2
                tail -n 20 "$DIR/smtp-sink.log" >&2 || true
                kill -KILL "$pid" 2>/dev/null || true
                rm -f "$DIR/pid"
                exit 1
            fi
            sleep 0.1
        done
        ;;
    stop)
        [[ -f $DIR/pid ]] || exit 0
        stop_pid "$(<"$DIR/pid")" 5
        rm -f "$DIR/pid"
        ;;
    *) die "unknown command '$cmd' (start|stop)" ;;
esac
