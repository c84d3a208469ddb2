//! Cost of the rules engine against the write path's own per-request work, with 0, 100 and
//! 1,000 rules (half threshold, half keyword) in one run.
//!
//! - `split`: what the write handler does per request before appending (parse, route, copy into
//!   group records): the ingest cost the engine is compared with.
//! - `evaluate/N`: what the evaluation thread does per request with N rules (decode the records,
//!   parse every line again, collect hosts, evaluate the candidate rules).
//!
//! Inputs: 1,000 lines per request, 70% metrics over 20 measurements (6 tags, 4 fields) and 30%
//! logs with a ~170-byte `msg`. Rules are spread over 100 measurements (so a metric line meets
//! about 5 threshold rules) with tag matchers on half of them; the keyword rules hold 1,000
//! keywords (two each, half of the rules case-insensitive) and fire on about 1% of the logs.
//! Run with `cargo bench --bench rules`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use monitor::config::ApiConfig;
use monitor::protocol::{Classifier, Precision};
use monitor::replication::batcher::{SplitContext, split_by_group, split_by_group_observed};
use monitor::rules::{Budget, EngineLimits, EvalContext, RuleSet, RulesFile};
use monitor::shard::{Principal, ShardMap};

const LINES: usize = 1000;

fn word(seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let len = rng.usize(6..11);
    (0..len).map(|_| rng.lowercase()).collect()
}

fn body() -> String {
    let mut body = String::new();
    let mut rng = fastrand::Rng::with_seed(7);
    let t0 = 1_795_262_400_000_000_000u64;
    for i in 0..LINES {
        let ts = t0 + i as u64 * 1_000_000;
        if i % 10 < 7 {
            body.push_str(&format!(
                "m{},index=cluster1,host=host{},region=eu-west-1,dc=dc{},service=svc{},env=prod usage={:.2},free={}i,load={:.3},count={}i {ts}\n",
                i % 20,
                i % 100,
                i % 3,
                i % 12,
                rng.f64() * 100.0,
                rng.u32(0..100_000),
                rng.f64() * 4.0,
                rng.u32(0..1000),
            ));
        } else {
            // ~1% of the logs carry a keyword of the keyword rules.
            let alarm = if i % 97 == 0 {
                word(1_000)
            } else {
                "ok".to_owned()
            };
            body.push_str(&format!(
                "log,index=cluster1,source=api,host=host{},level=info msg=\"request {i} handled: GET /api/v1/resources/{} returned 200 after {}ms; upstream shard g1 replica 2 acknowledged the batch {alarm}\" {ts}\n",
                i % 100,
                i * 31,
                i % 50,
            ));
        }
    }
    body
}

fn rules(n: usize) -> RulesFile {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        if i % 2 == 0 {
            let matcher = if i % 4 == 0 {
                "\n    tags: [\"host=~host1.*\"]"
            } else {
                ""
            };
            yaml.push_str(&format!(
                "  - name: T{i}\n    kind: threshold\n    measurement: m{}\n    field: {}\n    op: \">\"\n    value: {}{matcher}\n",
                (i / 2) % 100,
                ["usage", "free", "load", "count"][i % 4],
                // A few rules fire (and are then throttled), most never do.
                if i % 100 == 0 { 50.0 } else { 1e12 },
            ));
        } else {
            yaml.push_str(&format!(
                "  - name: K{i}\n    kind: keyword\n    keywords: [\"{}\", \"{}\"]\n    case_sensitive: {}\n",
                word(1_000 + i as u64),
                word(5_000 + i as u64),
                i % 4 == 1,
            ));
        }
    }
    RulesFile::from_yaml_str(&yaml, "bench.yaml").expect("bench rules are valid")
}

fn bench(c: &mut Criterion) {
    let config = ApiConfig::from_yaml_str(
        "groups:\n  g1:\n    replicas: [{url: \"http://127.0.0.1:1\"}, {url: \"http://127.0.0.1:2\"}]\nindexes:\n  cluster1: g1\nopen_access: true\n",
        "bench.yaml",
    )
    .expect("bench config");
    let map = ShardMap::from_config(&config, 1).expect("shard map");
    let classifier = Classifier::default();
    let body = body();
    let context = SplitContext {
        map: &map,
        principal: Principal::Open,
        classifier: &classifier,
        precision: Precision::Nanosecond,
        now: 0,
        database: "db",
        retention_policy: "",
        request_id: "bench",
        max_line_bytes: 1 << 20,
    };
    let limits = EngineLimits {
        max_series_per_rule: 100_000,
        default_resend_ms: 60_000,
    };

    let mut group = c.benchmark_group("rules_ingest");
    group.throughput(Throughput::Elements(LINES as u64));
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("split", |b| {
        b.iter(|| {
            black_box(split_by_group(black_box(body.as_bytes()), &context).map(|o| o.records.len()))
        })
    });
    for n in [0usize, 100, 1000] {
        let budget = Budget::new(64 << 20);
        let set = RuleSet::compile(&rules(n), None, limits.clone(), &classifier, &budget)
            .expect("compile");
        // The clock moves one second per request, as under steady load.
        let mut now_ms = 1_795_262_400_000u64;
        // What the write path does with rules: split, each accepted line evaluated as parsed.
        group.bench_function(format!("split+evaluate/{n}"), |b| {
            b.iter(|| {
                now_ms += 1000;
                let ctx = EvalContext {
                    now_ms,
                    request_id: "bench",
                    budget: &budget,
                    receive_nanos: None,
                };
                let mut alerts = Vec::new();
                let outcome =
                    split_by_group_observed(black_box(body.as_bytes()), &context, &mut |line| {
                        set.evaluate(line, &ctx, &mut alerts)
                    })
                    .map(|o| o.records.len());
                black_box((outcome, alerts.len()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
