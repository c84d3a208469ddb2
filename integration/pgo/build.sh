#!/usr/bin/env bash
# A profile-guided (PGO) release build of monitor-api: build it instrumented, run the workload of
# integration/pgo/train.py against two local influxd, merge the profiles, build it again with them.
# The result is target/pgo/build/release/monitor-api (the plain release build is left alone).
#
#   integration/pgo/build.sh            (or: make release-pgo)
#
# Why: the proxy's work per query is spread thin over tokio, hyper, axum and our own code, and
# with PGO the hot paths are laid out together and inlined where it pays. BENCHMARKS.md ("Query
# path") has the figures. Needs influxd and llvm-profdata of rustc's LLVM major version, both
# installed here when missing (integration/install-deps.sh influxdb llvm-profdata).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
integration/install-deps.sh influxdb
profdata=$(integration/install-deps.sh llvm-profdata)
out=$REPO/target/pgo
rm -rf "$out/profraw" "$out/monitor-api.profdata"
mkdir -p "$out/profraw"
echo "pgo: building instrumented monitor-api" >&2
RUSTFLAGS="-Cprofile-generate=$out/profraw" cargo build --release --bin monitor-api --target-dir "$out/instrumented"
echo "pgo: training" >&2
python3 integration/pgo/train.py --api-bin "$out/instrumented/release/monitor-api"
"$profdata" merge -o "$out/monitor-api.profdata" "$out"/profraw/*.profraw
echo "pgo: building with the profile" >&2
RUSTFLAGS="-Cprofile-use=$out/monitor-api.profdata" cargo build --release --bin monitor-api --target-dir "$out/build"
echo "pgo: done: $out/build/release/monitor-api" >&2
