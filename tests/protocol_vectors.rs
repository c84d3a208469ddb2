//! Runs the parser over `proto-spec/vectors/lines.json`: valid lines with their expected
//! points, classification and index, invalid lines with reason, line and byte column.

use monitor::protocol::{Classifier, FieldValue, Kind, OwnedFieldValue, Point, Precision, lines};
use serde_json::Value;

fn expected_value(v: &Value) -> OwnedFieldValue {
    let (k, x) = v.as_object().unwrap().iter().next().unwrap();
    match k.as_str() {
        "float" => OwnedFieldValue::Float(x.as_f64().unwrap()),
        "int" => OwnedFieldValue::Integer(x.as_i64().unwrap()),
        "string" => OwnedFieldValue::String(x.as_str().unwrap().to_owned()),
        "bool" => OwnedFieldValue::Boolean(x.as_bool().unwrap()),
        other => panic!("unknown value type {other}"),
    }
}

fn expected_point(p: &Value) -> Point {
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                (
                    kv[0].as_str().unwrap().to_owned(),
                    kv[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    Point {
        measurement: p["measurement"].as_str().unwrap().to_owned(),
        tags: pairs(&p["tags"]),
        fields: p["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| (kv[0].as_str().unwrap().to_owned(), expected_value(&kv[1])))
            .collect(),
        timestamp: p["timestamp"].as_i64(),
    }
}

#[test]
fn vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto-spec/vectors/lines.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let classifier = Classifier::default();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 90);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let input = v["input"].as_str().unwrap().as_bytes();
        let precision = Precision::from_v1(v["precision"].as_str().unwrap_or("ns")).unwrap();
        let results: Vec<_> = lines(input, &classifier)
            .with_precision(precision)
            .collect();
        match v["expect"].as_str().unwrap() {
            "ok" => {
                let parsed: Vec<_> = results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")))
                    .collect();
                if let Some(n) = v["lines_ok"].as_u64() {
                    assert_eq!(parsed.len() as u64, n, "{name}");
                    continue;
                }
                let first = parsed.first().unwrap_or_else(|| panic!("{name}: no line"));
                if let Some(p) = v.get("point").filter(|p| !p.is_null()) {
                    assert_eq!(Point::from_line(first), expected_point(p), "{name}");
                }
                if let Some(kind) = v["kind"].as_str() {
                    let want = match kind {
                        "metric" => Kind::Metric,
                        "log" => Kind::Log,
                        _ => Kind::Tracelog,
                    };
                    assert_eq!(first.kind(), want, "{name}");
                }
                if let Some(index) = v["index"].as_str() {
                    assert_eq!(first.index().unwrap().as_str(), index, "{name}");
                }
                if let Some(trace) = v["trace_id"].as_str() {
                    assert_eq!(first.trace_id().unwrap().as_str(), trace, "{name}");
                }
                if let Some(f) = v["field_f"].as_f64() {
                    assert_eq!(first.field(b"f"), Some(FieldValue::Float(f)), "{name}");
                }
            }
            _ => {
                let err = results
                    .iter()
                    .find_map(|r| r.as_ref().err())
                    .unwrap_or_else(|| panic!("{name}: accepted"));
                let reason = v["reason"].as_str().unwrap();
                assert!(
                    err.kind.to_string().contains(reason),
                    "{name}: reason {:?} does not contain {reason:?}",
                    err.kind.to_string()
                );
                assert_eq!(err.line as u64, v["line"].as_u64().unwrap(), "{name}: line");
                if let Some(col) = v["column"].as_u64() {
                    assert_eq!(err.column as u64, col, "{name}: column ({err})");
                }
                if let Some(good) = v["good_lines"].as_u64() {
                    let ok = results.iter().filter(|r| r.is_ok()).count();
                    assert_eq!(ok as u64, good, "{name}: lines around the bad one");
                }
            }
        }
    }
}
