//! Conformance against the InfluxData line-protocol corpus (6,615 decode cases).
//!
//! Reads `$CARGO_MANIFEST_DIR/../shared/conformance/line-protocol-corpus/corpus.json` (or
//! `$MONITOR_CORPUS`), parses every decode case with the project's parser and compares
//! acceptance, names, tags, typed fields and times. A failing case listed in
//! `proto-spec/deviations.json` counts as a documented deviation; anything else fails the run.
//! `CONFORMANCE_REPORT=<file>` writes every mismatch as JSON lines for inspection.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use monitor::protocol::{Classifier, FieldValue, Precision, lines};
use serde_json::Value;

fn corpus_path() -> PathBuf {
    match std::env::var_os("MONITOR_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/conformance/line-protocol-corpus/corpus.json"),
    }
}

fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(o) => o
            .get("binary")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()),
        _ => None,
    }
}

fn precision_of(s: &str) -> Option<Precision> {
    Some(match s {
        "1ns" => Precision::Nanosecond,
        "1µs" | "1us" => Precision::Microsecond,
        "1ms" => Precision::Millisecond,
        "1s" => Precision::Second,
        "1m" => Precision::Minute,
        "1h" => Precision::Hour,
        _ => return None,
    })
}

/// Our parse of a body as the corpus represents points, or the first error.
fn decode(body: &[u8], precision: Precision, default_time: i64) -> Result<Vec<Value>, String> {
    let classifier = Classifier::default();
    let mut points = Vec::new();
    for line in lines(body, &classifier).with_precision(precision) {
        let line = line.map_err(|e| e.to_string())?;
        let time = match line.timestamp_nanos() {
            Some(ns) => ns,
            None => precision
                .to_nanos(precision.from_nanos(default_time))
                .ok_or("default time out of range")?,
        };
        let str_or_bin = |b: &[u8]| match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => serde_json::json!({
                "binary": base64::engine::general_purpose::STANDARD.encode(b)
            }),
        };
        // The corpus lists tags sorted by key (the series key order); lines keep body order.
        let mut tag_pairs: Vec<(Vec<u8>, Vec<u8>)> = line
            .tags()
            .map(|(k, v)| (k.unescaped().into_owned(), v.unescaped().into_owned()))
            .collect();
        tag_pairs.sort();
        let tags: Vec<Value> = tag_pairs
            .iter()
            .map(|(k, v)| serde_json::json!({"key": str_or_bin(k), "value": str_or_bin(v)}))
            .collect();
        let fields: Vec<Value> = line
            .fields()
            .map(|(k, v)| {
                let value = match v {
                    FieldValue::Float(f) => serde_json::json!({"float": f}),
                    FieldValue::Integer(i) => serde_json::json!({"int": i}),
                    FieldValue::Unsigned(u) => serde_json::json!({"uint": u}),
                    FieldValue::Boolean(b) => serde_json::json!({"bool": b}),
                    FieldValue::String(s) => {
                        serde_json::json!({"string": str_or_bin(&s.unescaped())})
                    }
                };
                serde_json::json!({"key": str_or_bin(&k.unescaped()), "value": value})
            })
            .collect();
        points.push(serde_json::json!({
            "time": time,
            "name": str_or_bin(&line.measurement().unescaped()),
            "tags": tags,
            "fields": fields,
        }));
    }
    Ok(points)
}

fn floats_equal(a: f64, b: f64) -> bool {
    // serde_json may be one ULP off when reading long decimal literals.
    a == b || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
}

fn values_equal(ours: &Value, expected: &Value) -> bool {
    match (ours, expected) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => floats_equal(x, y),
                    _ => false,
                },
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            // `{"float": 1}` in the corpus may be written as an integer literal.
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
        }
        (a, b) => a == b,
    }
}

fn main() -> ExitCode {
    let path = corpus_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "conformance: cannot read the corpus at {} ({e}); set MONITOR_CORPUS to its path",
                path.display()
            );
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let corpus: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("conformance: {} is not valid JSON: {e}", path.display());
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let deviations_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto-spec/deviations.json");
    let deviations: BTreeMap<String, String> = std::fs::read_to_string(&deviations_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("cases").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut report = std::env::var_os("CONFORMANCE_REPORT")
        .and_then(|p| std::fs::File::create(p).ok())
        .map(std::io::BufWriter::new);

    let Some(cases) = corpus.get("decode").and_then(Value::as_object) else {
        eprintln!("conformance: no decode cases in {}", path.display());
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    };
    let (mut passed, mut failed, mut stale) = (0usize, 0usize, 0usize);
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, case) in cases {
        let input = &case["input"];
        let output = &case["output"];
        let body = bytes_of(&input["text"]).unwrap_or_default();
        let precision = input["precision"].as_str().and_then(precision_of);
        let default_time = input["defaultTime"].as_i64().unwrap_or(0);
        let ours = match precision {
            Some(p) => decode(&body, p, default_time),
            None => Err(format!("unknown precision {}", input["precision"])),
        };
        let matches = match (&ours, output.get("result"), output.get("error")) {
            (Err(_), _, Some(_)) => true,
            (Ok(points), Some(expected), None) => {
                let expected = expected.as_array().cloned().unwrap_or_default();
                values_equal(&Value::Array(points.clone()), &Value::Array(expected))
            }
            _ => false,
        };
        let deviation = deviations.get(key.as_str());
        match (matches, deviation) {
            (true, None) => passed += 1,
            (true, Some(_)) => {
                stale += 1;
                eprintln!("conformance: {key} is listed as a deviation but now matches");
            }
            (false, Some(category)) => *by_category.entry(category.as_str()).or_default() += 1,
            (false, None) => {
                failed += 1;
                if failed <= 20 {
                    eprintln!(
                        "FAIL {key}: input {:?}\n  expected {}\n  ours     {}",
                        String::from_utf8_lossy(&body),
                        output,
                        match &ours {
                            Ok(p) => Value::Array(p.clone()).to_string(),
                            Err(e) => e.clone(),
                        }
                    );
                }
            }
        }
        if !matches && let Some(out) = report.as_mut() {
            let line = serde_json::json!({
                "key": key,
                "text": String::from_utf8_lossy(&body),
                "expected": output,
                "ours": match &ours { Ok(p) => serde_json::json!({"result": p}), Err(e) => serde_json::json!({"error": e}) },
            });
            let _ = writeln!(out, "{line}");
        }
    }
    let documented: usize = by_category.values().sum();
    for (category, n) in &by_category {
        println!("deviation {category}: {n}");
    }
    if stale > 0 {
        println!(
            "{stale} listed deviations now match: remove them from proto-spec/deviations.json"
        );
    }
    println!(
        "{passed} passed, {} failed ({documented} documented deviations)",
        failed + stale
    );
    if failed + stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
