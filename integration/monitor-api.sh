#!/usr/bin/env bash
# Starts and stops a monitor-api process for `make run` (tests start their own).
#   integration/monitor-api.sh start --dir DIR --config FILE [--binary PATH] [--wait S]
#   integration/monitor-api.sh stop  --dir DIR
# PID in DIR/monitor-api.pid, log in DIR/monitor-api.log. `start` waits until /ping answers.
set -euo pipefail

# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,5p' "$0" >&2; exit 2; }

cmd=${1:-}; shift || true
dir=""; config=""; binary="target/release/monitor-api"; wait_s=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$dir" ]] || usage
pid_file="$dir/monitor-api.pid"
log_file="$dir/monitor-api.log"

running() { is_running "$pid_file"; }

case "$cmd" in
  start)
    [[ -n "$config" ]] || usage
    mkdir -p "$dir"
    if running; then echo "monitor-api already running (pid $(cat "$pid_file"))"; exit 0; fi
    listen=$(sed -n 's/^listen:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\)"\{0,1\}.*/\1/p' "$config" | head -1)
    listen=${listen:-127.0.0.1:8186}
    nohup "$binary" --config "$config" >>"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 $((wait_s * 10))); do
      if curl -fsS -o /dev/null "http://$listen/ping" 2>/dev/null; then
        echo "monitor-api up on http://$listen (pid $(cat "$pid_file"))"; exit 0
      fi
      if ! running; then break; fi
      sleep 0.1
    done
    echo "monitor-api did not come up on http://$listen; last lines of $log_file:" >&2
    tail -n 20 "$log_file" >&2 || true
    exit 1
    ;;
  stop)
    if running; then
      stop_pid "$(<"$pid_file")" 10
      echo "monitor-api stopped"
    fi
    rm -f "$pid_file"
    ;;
  *) usage ;;
esac
