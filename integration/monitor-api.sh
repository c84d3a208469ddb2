#!/usr/bin/env bash
# Starts and stops a monitor-api process for `make run` (tests start their own).
#   integration/monitor-api.sh start --dir DIR --config FILE [--binary PATH] [--wait S]
#   integration/monitor-api.sh stop  --dir DIR
# PID in DIR/monitor-api.pid, log in DIR/monitor-api.log. `start` waits until /ping answers.
set -euo pipefail

# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

service_main monitor-api monitor-api target/release/monitor-api 127.0.0.1:8186 /ping "$0" "$@"
