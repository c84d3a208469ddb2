//! Parser throughput: `monitor::protocol` against the `influxdb-line-protocol` crate 2.0.0 on
//! the same inputs in the same run. Both sides produce every parsed value: tags and fields are
//! iterated and their (unescaped) values touched, so neither side can skip work.
//!
//! Inputs: TSBS-like cpu lines (~330 bytes, 10 tags, 10 fields), short lines (~36 bytes) and
//! log lines with a long string field. Run with `cargo bench --bench line_protocol`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use monitor::protocol::{Classifier, FieldValue, lines};

const LINES: usize = 1000;

fn tsbs_body() -> String {
    let mut body = String::new();
    for i in 0..LINES {
        body.push_str(&format!(
            "cpu,hostname=host_{h},region=eu-central-1,datacenter=eu-central-1a,rack={r},os=Ubuntu15.10,arch=x86,team=SF,service={s},service_version=1,service_environment=test usage_user={a}i,usage_system={b}i,usage_idle={c}i,usage_nice={d}i,usage_iowait={e}i,usage_irq={f}i,usage_softirq={g}i,usage_steal={a}i,usage_guest={b}i,usage_guest_nice={c}i {t}\n",
            h = i % 100,
            r = i % 7,
            s = i % 20,
            a = i % 97,
            b = (i * 7) % 101,
            c = (i * 13) % 89,
            d = i % 61,
            e = (i * 3) % 23,
            f = (i * 5) % 67,
            g = i % 11,
            t = 1_451_606_400_000_000_000u64 + i as u64 * 10_000_000_000,
        ));
    }
    body
}

fn short_body() -> String {
    let mut body = String::new();
    for i in 0..LINES {
        body.push_str(&format!(
            "cpu,host=h{:02} v=0.{:02} 1465839830{:04}\n",
            i % 100,
            (i * 7) % 100,
            i % 100
        ));
    }
    body
}

fn log_body() -> String {
    let mut body = String::new();
    for i in 0..LINES {
        body.push_str(&format!(
            "log,index=cluster1,source=api,host=host{} level=\"info\",msg=\"request {} handled: GET /api/v1/resources/{}?expand=owner,children&limit=100 returned 200 after 12ms; upstream shard g{} replica 2 acknowledged the batch of 5000 points, queue depth 0, user agent Telegraf/1.28 (linux; amd64) with \\\"keep-alive\\\" enabled, trace continues in span {:016x}\" {}\n",
            i % 50,
            i,
            i * 31,
            i % 3,
            i * 7919,
            1_465_839_830_100_400_200u64 + i as u64
        ));
    }
    body
}

fn ours(body: &str, classifier: &Classifier) -> u64 {
    let mut acc = 0u64;
    for line in lines(body.as_bytes(), classifier) {
        let Ok(line) = line else { continue };
        acc += line.measurement().unescaped().len() as u64;
        for (k, v) in line.tags() {
            acc += (k.unescaped().len() + v.unescaped().len()) as u64;
        }
        for (k, v) in line.fields() {
            acc += k.unescaped().len() as u64;
            acc += match v {
                FieldValue::Float(f) => f as u64,
                FieldValue::Integer(n) => n as u64,
                FieldValue::Unsigned(n) => n,
                FieldValue::Boolean(b) => u64::from(b),
                FieldValue::String(s) => s.unescaped().len() as u64,
            };
        }
        acc += line.timestamp().unwrap_or(0) as u64;
    }
    acc
}

fn crate_2_0(body: &str) -> u64 {
    use influxdb_line_protocol::{FieldValue as F, parse_lines};
    let mut acc = 0u64;
    for line in parse_lines(body) {
        let Ok(line) = line else { continue };
        acc += line.series.measurement.as_str().len() as u64;
        if let Some(tags) = &line.series.tag_set {
            for (k, v) in tags {
                acc += (k.as_str().len() + v.as_str().len()) as u64;
            }
        }
        for (k, v) in &line.field_set {
            acc += k.as_str().len() as u64;
            acc += match v {
                F::F64(f) => *f as u64,
                F::I64(n) => *n as u64,
                F::U64(n) => *n,
                F::Boolean(b) => u64::from(*b),
                F::String(s) => s.as_str().len() as u64,
            };
        }
        acc += line.timestamp.unwrap_or(0) as u64;
    }
    acc
}

fn bench(c: &mut Criterion) {
    let classifier = Classifier::default();
    for (name, body) in [
        ("tsbs", tsbs_body()),
        ("short", short_body()),
        ("log", log_body()),
    ] {
        assert_eq!(
            ours(&body, &classifier),
            crate_2_0(&body),
            "{name}: both parsers must see the same values"
        );
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("monitor", |b| {
            b.iter(|| ours(black_box(&body), &classifier))
        });
        if std::env::var_os("PARSE_ONLY").is_some() {
            group.bench_function("monitor-parse-only", |b| {
                b.iter(|| {
                    lines(black_box(body.as_bytes()), &classifier)
                        .filter(|l| l.is_ok())
                        .count()
                })
            });
        }
        group.bench_function("influxdb-line-protocol-2.0.0", |b| {
            b.iter(|| crate_2_0(black_box(&body)))
        });
        group.finish();
        eprintln!(
            "{name}: {} lines, {} bytes, {:.1} bytes/line",
            LINES,
            body.len(),
            body.len() as f64 / LINES as f64
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
