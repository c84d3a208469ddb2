#!/usr/bin/env bash
# Read-path benchmark (issue 4): the same queries directly to one influxd and through
# monitor-api (RF=1 and RF=2), one run, one markdown table. See bench.py for what is measured.
#   benches/query/run.sh [--port-base P] [--api-bin PATH] [--runs N] [--out FILE] [--keep]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec python3 "$REPO/benches/query/bench.py" "$@"
