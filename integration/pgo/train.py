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
import subprocess
import sys
import tempfile
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benches/query"))
from bench import PER_HOST, STEP_NS, T0, load, pick_ports, request  # noqa: E402


def wait_for_ping(port, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if request(port, "GET", "/ping")[0] == 204:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"pgo-train: {what} does not answer /ping on {port}")


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
    cluster = os.path.join(REPO, "integration/influxd-cluster.sh")
    influx_ports = pick_ports(args.port_base, 2, 1000)
    api_port = pick_ports(max(influx_ports) + 1, 1)[0]
    try:
        subprocess.run([cluster, "start", "--dir", os.path.join(workdir, "influxd"), "--ports",
                        ",".join(map(str, influx_ports)), "--rpc-ports",
                        ",".join(str(p + 1000) for p in influx_ports), "--owner-pid", str(os.getpid())],
                       check=True, stdout=subprocess.DEVNULL)
        load(influx_ports)
        urls = [f"http://127.0.0.1:{p}" for p in influx_ports]
        groups = {
            "rf1": f'groups:\n  g1:\n    replicated: true\n    replicas:\n      - url: "{urls[0]}"\n',
            "rf2": f'groups:\n  g1:\n    replicas:\n      - url: "{urls[0]}"\n      - url: "{urls[1]}"\n',
        }
        for name, group in groups.items():
            data_dir = os.path.join(workdir, name)
            os.makedirs(data_dir)
            config = os.path.join(data_dir, "config.yaml")
            with open(config, "w") as f:
                f.write(f'listen: "127.0.0.1:{api_port}"\ndata_dir: "{data_dir}"\n'
                        'backend:\n  timeout: "300s"\n  gzip: false\nlog:\n  level: "warn"\n'
                        f"{group}indexes:\n  c1: g1\n")
            with open(os.path.join(data_dir, "api.log"), "w") as log_file:
                api = subprocess.Popen([args.api_bin, "--config", config], stdout=log_file,
                                       stderr=subprocess.STDOUT)
            try:
                wait_for_ping(api_port, f"monitor-api ({name})")
                workload(api_port)
            finally:
                api.send_signal(signal.SIGTERM)
                code = api.wait(timeout=120)
            if code != 0:
                raise SystemExit(f"pgo-train: monitor-api ({name}) exited with {code}; see {data_dir}/api.log")
            print(f"pgo-train: {name} done", file=sys.stderr)
    finally:
        subprocess.run([cluster, "stop", "--dir", os.path.join(workdir, "influxd")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
