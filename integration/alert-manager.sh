#!/usr/bin/env bash
# Starts and stops a monitor-alert-manager process for `make run` (tests start their own).
#   integration/alert-manager.sh start --dir DIR --config FILE [--binary PATH] [--wait S]
#   integration/alert-manager.sh stop  --dir DIR
# PID in DIR/alert-manager.pid, log (JSON lines) in DIR/alert-manager.log. `start` waits until
# /ready answers.
set -euo pipefail

# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,6p' "$0" >&2; exit 2; }

cmd=${1:-}; shift || true
dir=""; config=""; binary="target/release/monitor-alert-manager"; wait_s=30
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
pid_file="$dir/alert-manager.pid"
log_file="$dir/alert-manager.log"

running() { is_running "$pid_file"; }

case "$cmd" in
  start)
    [[ -n "$config" ]] || usage
    mkdir -p "$dir"
    if running; then echo "monitor-alert-manager already running (pid $(cat "$pid_file"))"; exit 0; fi
    listen=$(sed -n 's/^listen:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\)"\{0,1\}.*/\1/p' "$config" | head -1)
    listen=${listen:-127.0.0.1:9193}
    nohup "$binary" --config "$config" >>"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 $((wait_s * 10))); do
      if curl -fsS -o /dev/null "http://$listen/ready" 2>/dev/null; then
        echo "monitor-alert-manager up on http://$listen (pid $(cat "$pid_file"))"; exit 0
      fi
      if ! running; then break; fi
      sleep 0.1
    done
    echo "monitor-alert-manager did not come up on http://$listen; last lines of $log_file:" >&2
    tail -n 20 "$log_file" >&2 || true
    exit 1
    ;;
  stop)
    if running; then
      stop_pid "$(<"$pid_file")" 10
      echo "monitor-alert-manager stopped"
    fi
    rm -f "$pid_file"
    ;;
  *) usage ;;
esac
