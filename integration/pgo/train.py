#!/usr/bin/env python3
"""The workload a profile-guided build of monitor-api learns from (integration/pgo/build.sh).

Starts two influxd on loopback, loads the query benchmark's data into both (benches/query), then
runs an instrumented monitor-api twice, over a one-replica group (`replicated: true`, answers
pass through) and over a two-replica group (unions, merges), and sends it what an operator's
system sends: trace lookups, raw SELECTs, aggregates, SHOW statements, /api/v1 searches and
line-protocol writes. Each instrumented run is stopped with SIGTERM, so that it exits normally
and writes its profile.

Code this workload never runs is optimised as cold by the profiled build: add to it before
relying on the PGO build for a path it leaves out (alert rules, TLS replicas, ...).
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benches/query"))
from bench import (PER_HOST, STEP_NS, T0, group_configs, load, pick_ports, request,  # noqa: E402
                   start_api, start_cluster, stop_cluster, wait_for_ping)


def expect(port, method, path, body=None, ok=(200, 204)):
    status, data = request(port, method, path, body=body)
    if status not in ok:
        raise SystemExit(f"pgo-train: {method} {path[:80]} answered {status}: {data[:300]!r}")


def workload(port):
    def query(text, times, **extra):
        params = {"db": "bench", "q": text, "epoch": "ms", **extra}
        for _ in range(times):
            expect(port, "GET", "/query?" + urllib.parse.urlencode(params))

    hour = f"time >= {T0} AND time < {T0 + 60_000 * STEP_NS}"
    query("SELECT * FROM tracelog WHERE traceid = 't1234'", 1500)
    query(f"SELECT value FROM cpu WHERE host = 'h1' AND time >= {T0} AND time < {T0 + 10_000 * STEP_NS}", 30)
    query(f"SELECT value FROM cpu WHERE host = 'h2' AND {hour} LIMIT 500", 30, chunked="true")
    query(f"SELECT mean(value), max(value), count(value) FROM cpu WHERE {hour} GROUP BY time(1m)", 20)
    query(f"SELECT count(value) FROM cpu WHERE time >= {T0} AND time < {T0 + PER_HOST * STEP_NS} GROUP BY host", 5)
    query("SHOW MEASUREMENTS; SHOW TAG VALUES FROM cpu WITH KEY = host", 50)
    for _ in range(200):
        expect(port, "GET", "/api/v1/traces/t1234?db=bench")
        expect(port, "GET", "/api/v1/logs?db=bench&index=c1&limit=20")
    lines = "\n".join(
        f"pgo,index=c1,host=h{i % 10},region=r{i % 3} value={i}.25,count={i}i,ok=true,msg=\"line {i}\" {T0 + i * 1000}"
        for i in range(5000)).encode()
    for _ in range(40):
        expect(port, "POST", "/write?db=bench", body=lines)
    expect(port, "GET", "/metrics")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-bin", required=True, help="an instrumented monitor-api")
    parser.add_argument("--port-base", type=int, default=19320)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="pgo-train-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    influx_ports = pick_ports(args.port_base, 2, 1000)
    api_port = pick_ports(max(influx_ports) + 1, 1)[0]
    try:
        start_cluster(workdir, influx_ports, 1000)
        load(influx_ports)
        for name, groups in group_configs(influx_ports).items():
            data_dir = os.path.join(workdir, name.replace("=", ""))
            api = start_api(args.api_bin, data_dir, api_port, groups)
            try:
                wait_for_ping(api_port, f"monitor-api ({name})", prefix="pgo-train")
                workload(api_port)
            finally:
                api.send_signal(signal.SIGTERM)
                code = api.wait(timeout=120)
            if code != 0:
                raise SystemExit(f"pgo-train: monitor-api ({name}) exited with {code}; see {data_dir}/api.log")
            print(f"pgo-train: {name} done", file=sys.stderr)
    finally:
        stop_cluster(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
