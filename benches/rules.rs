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
//! keywords (two each, half of the rules case-insensitive) and fire on about 1% of the logs
//! (`benches/common/rules_setup.rs` builds them, for `benches/rules_e2e.rs` too).
//! Run with `cargo bench --bench rules`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use monitor::config::ApiConfig;
use monitor::protocol::{Classifier, Precision};
use monitor::replication::batcher::{SplitContext, split_by_group, split_by_group_observed};
use monitor::rules::{Budget, EngineLimits, EvalContext, RuleSet, RulesFile};
use monitor::shard::{Principal, ShardMap};

#[path = "common/rules_setup.rs"]
mod rules_setup;

use rules_setup::{LINES, rule_items_yaml, write_body};

/// The requests' seed and first timestamp (2026-11-21T12:00:00Z).
const BODY_SEED: u64 = 7;
const FIRST_TIMESTAMP_NS: u64 = 1_795_262_400_000_000_000;

fn rules(n: usize) -> RulesFile {
    let yaml = format!("rules:\n{}", rule_items_yaml(n));
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
    let body = write_body(BODY_SEED, Some(FIRST_TIMESTAMP_NS));
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
