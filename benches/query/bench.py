#!/usr/bin/env python3
"""Read-path benchmark of monitor-api (issue 4): the same queries, against the same data, sent
directly to one influxd and through monitor-api, in one run; one markdown table on stdout and in
target/bench-query.md.

    benches/query/run.sh [--port-base P] [--rpc-offset N] [--api-bin PATH]
                         [--baseline-bin PATH] [--runs N] [--out FILE] [--keep]

Setup: two influxd (n0, n1) in a temp dir (under /dev/shm when it exists), both loaded directly
with the same data: 1,000,000 `cpu` points (10 hosts x 100,000, 60 ms apart) and 20,000
`tracelog` lines (2,000 traces of 10 lines). Two monitor-api processes in front:
  RF=1: group g1 `replicated: true` over n0 alone (one replica asked: the proxy's own cost);
  RF=2: group g1 = n0 + n1 (a raw SELECT asks both and merges the union; aggregates ask one).
"direct" is n0 itself; "nginx hop" is n0 behind nginx (one process, kept upstream connections,
no buffering): what a pass-through HTTP proxy that reads nothing costs on this machine, the floor
of any hop; "both replicas" sends the same query to n0 and n1 at once, without a
proxy, and waits for both answers: what any union of the two replicas waits for at least on
this machine, where both compute it on the same cores. With --baseline-bin, a third monitor-api (another build, e.g. the previous
commit's) serves the RF=2 configuration too, as "RF=2 base", interleaved with the others: its
ratio to "RF=2" compares two builds within one run. Every request uses a fresh TCP connection and `epoch=ms` (what Grafana
sends), no compression. Targets are interleaved (direct, RF=1, RF=2, direct, ...) so background
noise spreads over all three. Reported: median and p90 latency per query and target, the proxy's
overhead on the median, rows returned (checked equal across targets), the RF=2 proxy's peak RSS
(VmHWM) before and after serving the 1,000,000-row answer, and the machine's load average.

Ports: 127.0.0.1, from --port-base (default 19120) upwards; influxd's RPC ports are the HTTP
ports + --rpc-offset (default 1000). Everything it starts is stopped at
exit (by PID), also on Ctrl-C; the temp dir is removed unless --keep.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
T0 = 1_700_000_000_000_000_000
CLUSTER = os.path.join(REPO, "integration/influxd-cluster.sh")
STEP_NS = 60_000_000  # 60 ms between a host's points
HOSTS = 10
PER_HOST = 100_000
TRACES = 2_000
LINES_PER_TRACE = 10


def log(message):
    print(f"bench-query: {message}", file=sys.stderr, flush=True)


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def pick_ports(base, count, rpc_offset=None):
    ports = []
    port = base
    while len(ports) < count:
        if port > base + 90:
            raise SystemExit(f"bench-query: no {count} free ports from {base}")
        if port_free(port) and (rpc_offset is None or port_free(port + rpc_offset)):
            ports.append(port)
        port += 1
    return ports


def request(port, method, path, body=None, headers=None, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, data
    finally:
        conn.close()


def query(port, q, db="bench", extra=None):
    """Time and row count of one query; `port` a tuple: the same query sent to every port at
    once (both replicas computing it, as a union needs), timed until the last answer is read,
    rows counted from the first."""
    params = {"db": db, "q": q, "epoch": "ms"}
    params.update(extra or {})
    path = "/query?" + urllib.parse.urlencode(params)
    if isinstance(port, tuple):
        started = time.perf_counter()
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=300) for p in port]
        try:
            for conn in conns:
                conn.request("GET", path)
            answers = []
            for conn in conns:
                response = conn.getresponse()
                answers.append((response.status, response.read()))
        finally:
            for conn in conns:
                conn.close()
        elapsed = time.perf_counter() - started
        status, data = answers[0]
    else:
        started = time.perf_counter()
        status, data = request(port, "GET", path)
        elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{q!r} on :{port}: HTTP {status}: {data[:300]!r}")
    answer = json.loads(data)
    rows = 0
    for result in answer.get("results", []):
        if "error" in result:
            raise RuntimeError(f"{q!r} on :{port}: {result['error']}")
        for series in result.get("series", []):
            rows += len(series.get("values", []))
    return elapsed, rows


def write_lines(port, lines):
    body = "\n".join(lines).encode()
    status, data = request(port, "POST", "/write?db=bench&precision=ns", body=body)
    if status != 204:
        raise RuntimeError(f"write to :{port}: HTTP {status}: {data[:300]!r}")


def load(ports):
    def cpu_batches():
        batch = []
        for i in range(PER_HOST):
            t = T0 + i * STEP_NS
            for h in range(HOSTS):
                batch.append(
                    f"cpu,index=c1,host=h{h} value={(i * 7 + h) % 1000 / 10},n={i}i {t + h}"
                )
            if len(batch) >= 50_000:
                yield batch
                batch = []
        if batch:
            yield batch

    def trace_batch():
        lines = []
        for k in range(TRACES):
            for j in range(LINES_PER_TRACE):
                t = T0 + k * 1_000_000_000 + j * 1_000_000
                lines.append(
                    f'tracelog,index=c1,traceid=t{k},source=svc{j % 3},host=h{k % HOSTS} '
                    f'msg="span {j} of trace {k}",level="info" {t}'
                )
        return lines

    for port in ports:
        status, data = request(port, "POST", "/query?" + urllib.parse.urlencode({"q": "CREATE DATABASE bench"}))
        if status != 200:
            raise RuntimeError(f"CREATE DATABASE on :{port}: {data!r}")
    started = time.time()
    traces = trace_batch()
    for batch in cpu_batches():
        threads = [threading.Thread(target=write_lines, args=(p, batch)) for p in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for port in ports:
        write_lines(port, traces)
    log(f"loaded {HOSTS * PER_HOST} cpu points and {len(traces)} tracelog lines into each of {len(ports)} influxd in {time.time() - started:.1f}s")


def start_nginx(workdir, port, upstream_port):
    """n0 behind nginx in one process (no master, no daemon: its PID is the process to stop)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise SystemExit("bench-query: nginx missing: integration/install-deps.sh nginx")
    directory = os.path.join(workdir, "nginx")
    os.makedirs(directory)
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as f:
        f.write(f"""daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  upstream n0 {{ server 127.0.0.1:{upstream_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://n0;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
""")
    return subprocess.Popen([nginx, "-c", config, "-p", directory], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(directory, "stderr.log"), "w"))


def start_cluster(workdir, ports, rpc_offset):
    """Two (or more) influxd on `ports`, data under `workdir`, stopped with this process."""
    subprocess.run(
        [CLUSTER, "start", "--dir", os.path.join(workdir, "influxd"), "--ports",
         ",".join(map(str, ports)), "--rpc-ports",
         ",".join(str(p + rpc_offset) for p in ports), "--owner-pid", str(os.getpid())],
        check=True, stdout=subprocess.DEVNULL)


def stop_cluster(workdir):
    subprocess.run([CLUSTER, "stop", "--dir", os.path.join(workdir, "influxd")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def group_configs(influx_ports):
    """The groups monitor-api is measured over: n0 alone (`replicated: true`), n0 + n1."""
    urls = [f"http://127.0.0.1:{p}" for p in influx_ports]
    return {
        "RF=1": f'groups:\n  g1:\n    replicated: true\n    replicas:\n      - url: "{urls[0]}"\n',
        "RF=2": f'groups:\n  g1:\n    replicas:\n      - url: "{urls[0]}"\n      - url: "{urls[1]}"\n',
    }


def start_api(binary, data_dir, port, groups):
    """monitor-api on `port` over `groups` (index c1 in g1), its config and log in `data_dir`."""
    os.makedirs(data_dir)
    path = os.path.join(data_dir, "config.yaml")
    with open(path, "w") as f:
        f.write(f'listen: "127.0.0.1:{port}"\ndata_dir: "{data_dir}"\n'
                'backend:\n  timeout: "300s"\n  gzip: false\n'
                'log:\n  level: "warn"\n'
                f"{groups}indexes:\n  c1: g1\n")
    with open(os.path.join(data_dir, "api.log"), "w") as log_file:
        return subprocess.Popen([binary, "--config", path], stdout=log_file,
                                stderr=subprocess.STDOUT)


def wait_for_ping(port, what, prefix="bench-query"):
    deadline = time.time() + 30
    while True:
        try:
            if request(port, "GET", "/ping")[0] == 204:
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit(f"{prefix}: {what} does not answer /ping")
        time.sleep(0.1)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-base", type=int, default=19120)
    parser.add_argument("--api-bin", default=os.path.join(REPO, "target/release/monitor-api"))
    parser.add_argument("--baseline-bin", default=None)
    parser.add_argument("--rpc-offset", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default=os.path.join(REPO, "target/bench-query.md"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not os.access(args.api_bin, os.X_OK):
        raise SystemExit(f"bench-query: {args.api_bin} missing: cargo build --release --bin monitor-api")

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    workdir = tempfile.mkdtemp(prefix="bench-query-", dir=base)
    influx_ports = pick_ports(args.port_base, 2, args.rpc_offset)
    api_ports = pick_ports(max(influx_ports) + 1, 3 if args.baseline_bin else 2)
    nginx_port = pick_ports(max(api_ports) + 1, 1)[0]
    apis = []

    def stop(*_):
        for proc in apis:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stop_cluster(workdir)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        start_cluster(workdir, influx_ports, args.rpc_offset)
        configs = group_configs(influx_ports)
        binaries = {"RF=1": args.api_bin, "RF=2": args.api_bin}
        if args.baseline_bin:
            configs["RF=2 base"] = configs["RF=2"]
            binaries["RF=2 base"] = args.baseline_bin
        apis.append(start_nginx(workdir, nginx_port, influx_ports[0]))
        targets = {"direct": influx_ports[0], "nginx hop": nginx_port}
        for (name, groups), port in zip(configs.items(), api_ports):
            data_dir = os.path.join(workdir, f"api-{name}".replace(" ", "-"))
            apis.append(start_api(binaries[name], data_dir, port, groups))
            targets[name] = port
        for name, port in targets.items():
            wait_for_ping(port, name)
        # Not a proxy: both replicas asked at once, no merge. What any union of two replicas
        # sharing these cores waits for at least.
        targets = {"direct": targets["direct"], "nginx hop": targets["nginx hop"],
                   "both replicas": tuple(influx_ports),
                   **{k: v for k, v in targets.items() if k not in ("direct", "nginx hop")}}
        load(influx_ports)

        t_start_ms = T0 // 1_000_000
        raw = (f"SELECT value FROM cpu WHERE host = 'h1' AND time >= {T0} "
               f"AND time < {T0 + 10_000 * STEP_NS}")
        aggregate = (f"SELECT mean(value), max(value), count(value) FROM cpu WHERE time >= {T0} "
                     f"AND time < {T0 + PER_HOST * STEP_NS} GROUP BY time(1m)")
        trace = "SELECT * FROM tracelog WHERE traceid = 't1234'"
        million = "SELECT value FROM cpu"
        cases = [
            ("raw SELECT, 10,000 rows", raw, args.runs),
            ("GROUP BY time(1m) over 1,000,000 points", aggregate, max(5, args.runs // 3)),
            # Sub-millisecond, so many more samples: its p50 is the figure the goal hangs on.
            ("trace lookup (10 lines)", trace, args.runs * 20),
        ]
        load_before = loadavg()
        table = []
        for title, q, runs in cases:
            timings = {name: [] for name in targets}
            rows = {}
            for _ in range(2):  # warm-up
                for port in targets.values():
                    query(port, q)
            for _ in range(runs):
                for name, port in targets.items():
                    elapsed, n = query(port, q)
                    timings[name].append(elapsed)
                    rows.setdefault(name, n)
                    if rows[name] != n:
                        raise RuntimeError(f"{name}: {n} rows, earlier {rows[name]}")
            if len(set(rows.values())) != 1:
                raise RuntimeError(f"{title}: row counts differ: {rows}")
            table.append((title, runs, rows["direct"], timings))
            log(f"{title}: done")

        proxy_procs = apis[1:]  # apis[0] is nginx
        rss_before = {name: vm_hwm_kib(proc.pid) for name, proc in zip(configs, proxy_procs)}
        million_timings = {name: [] for name in targets}
        million_rows = {}
        for _ in range(3):
            for name, port in targets.items():
                elapsed, n = query(port, million)
                million_timings[name].append(elapsed)
                million_rows[name] = n
        rss_after = {name: vm_hwm_kib(proc.pid) for name, proc in zip(configs, proxy_procs)}
        if len(set(million_rows.values())) != 1:
            raise RuntimeError(f"1M rows: row counts differ: {million_rows}")
        table.append(("raw SELECT, 1,000,000 rows", 3, million_rows["direct"], million_timings))
        load_after = loadavg()

        def ms(values, q):
            values = sorted(values)
            if q == 50:
                return statistics.median(values) * 1000
            return values[min(len(values) - 1, int(len(values) * q / 100))] * 1000

        proxies = list(configs)
        hops = ["nginx hop"] + proxies
        out = ["| query | runs | rows | " + " | ".join(f"{n} p50 / p90 (ms)" for n in ["direct", "nginx hop", "both replicas"] + proxies)
               + " | overhead " + " / ".join(hops) + " (p50)"
               + (" | RF=2 / RF=2 base (p50) |" if args.baseline_bin else " |"),
               "|---|---|---|" + "---|" * (len(proxies) + 4) + ("---|" if args.baseline_bin else "")]
        for title, runs, rows, timings in table:
            d50 = ms(timings["direct"], 50)
            cells = [f"{ms(timings[n], 50):.1f} / {ms(timings[n], 90):.1f}" for n in ["direct", "nginx hop", "both replicas"] + proxies]
            over = " / ".join(f"{(ms(timings[n], 50) / d50 - 1) * 100:+.0f}%" for n in hops)
            line = f"| {title} | {runs} | {rows:,} | {' | '.join(cells)} | {over} |"
            if args.baseline_bin:
                line += f" {ms(timings['RF=2'], 50) / ms(timings['RF=2 base'], 50):.2f} |"
            out.append(line)
        out.append("")
        out.append("Peak RSS (VmHWM) before / after the 1,000,000-row answers: " + "; ".join(
            f"{n} {rss_before[n] / 1024:.0f} / {rss_after[n] / 1024:.0f} MiB" for n in proxies) + ".")
        out.append(f"Load average (1 min) at start / end of the measured part: {load_before} / {load_after}; "
                   f"machine: {os.cpu_count()} cores.")
        text = "\n".join(out)
        print(text)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
        _ = t_start_ms
    finally:
        stop()


if __name__ == "__main__":
    main()
