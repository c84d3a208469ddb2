#!/usr/bin/env bash
# Starts and stops a monitor-alert-manager process for `make run` (tests start their own).
#   integration/alert-manager.sh start --dir DIR --config FILE [--binary PATH] [--wait S]
#   integration/alert-manager.sh stop  --dir DIR
# PID in DIR/alert-manager.pid, log (JSON lines) in DIR/alert-manager.log. `start` waits until
# /ready answers.
set -euo pipefail

# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service_main monitor-alert-manager alert-manager target/release/monitor-alert-manager 127.0.0.1:9193 /ready "$0" "$@"
