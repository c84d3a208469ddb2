//! "No poison": every line a real InfluxDB 1.6.7 refuses (400), fails on after parsing (500)
//! or crashes on must be refused by our parser.
//!
//! `proto-spec/vectors/influxd-1.6.7-probes.json` holds targeted probes written to a real
//! influxd. The corpus-wide check reads the ground truth produced next to the project
//! (`MONITOR_INFLUXD_TRUTH`, default `/work/notes/influxd-corpus-truth.json`) and is ignored by
//! default because that file is not part of the repository.

use base64::Engine;
use monitor::protocol::{Classifier, Precision, parse_line_with_precision};
use serde_json::Value;

fn text_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) => o
            .get("binary")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// (lines influxd refuses that we accept, lines influxd stores that we refuse)
fn check(lines: &[(Vec<u8>, Value, Precision)]) -> (Vec<String>, usize) {
    let classifier = Classifier::default();
    let mut poison = Vec::new();
    let mut stricter = 0;
    for (line, status, precision) in lines {
        let ours = parse_line_with_precision(line, 1, &classifier, *precision);
        let influxd_ok = status.as_i64() == Some(204);
        match ours {
            // A trailing CR is not part of `Line::raw()`, which is what the proxy forwards;
            // influxd itself refuses `m f=1\r`, so the CR must never reach it.
            Ok(Some(l)) if !influxd_ok && line.strip_suffix(b"\r") == Some(l.raw()) => {}
            Ok(Some(_)) if !influxd_ok => poison.push(format!(
                "{:?} accepted, influxd said {status}",
                String::from_utf8_lossy(line)
            )),
            Err(e) if influxd_ok => {
                stricter += 1;
                if std::env::var_os("SHOW_STRICTER").is_some() {
                    eprintln!("stricter: {:?}: {}", String::from_utf8_lossy(line), e.kind);
                }
            }
            _ => {}
        }
    }
    (poison, stricter)
}

#[test]
fn probes_refused_by_influxd_are_refused_here() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto-spec/vectors/influxd-1.6.7-probes.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut lines = Vec::new();
    for probe in doc["probes"].as_array().unwrap() {
        let precision = Precision::from_v1(probe["precision"].as_str().unwrap()).unwrap();
        for l in probe["lines"].as_array().unwrap() {
            lines.push((text_of(&l["line"]), l["status"].clone(), precision));
        }
    }
    assert!(lines.len() > 200, "only {} probe lines", lines.len());
    let (poison, stricter) = check(&lines);
    eprintln!(
        "{} probe lines, {stricter} stored by influxd but refused here",
        lines.len()
    );
    assert!(poison.is_empty(), "poison lines:\n{}", poison.join("\n"));
}

#[test]
#[ignore = "needs the influxd ground truth file outside the repository"]
fn corpus_lines_refused_by_influxd_are_refused_here() {
    let path = std::env::var("MONITOR_INFLUXD_TRUTH")
        .unwrap_or_else(|_| "/work/notes/influxd-corpus-truth.json".to_owned());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut lines = Vec::new();
    for case in doc.as_object().unwrap().values() {
        let precision = Precision::from_v1(case["precision"].as_str().unwrap()).unwrap();
        for l in case["lines"].as_array().unwrap() {
            lines.push((text_of(&l["line"]), l["status"].clone(), precision));
        }
    }
    let (poison, stricter) = check(&lines);
    eprintln!(
        "{} corpus lines, {stricter} stored by influxd but refused here",
        lines.len()
    );
    assert!(
        poison.is_empty(),
        "{} poison lines:\n{}",
        poison.len(),
        poison.join("\n")
    );
}

/// The probes that record what influxd read back (`stored`): where our parser accepts the line,
/// it must read the same measurement, tag keys and values, and field keys (escaping rules, not
/// only acceptance).
#[test]
fn probes_stored_by_influxd_read_the_same_here() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto-spec/vectors/influxd-1.6.7-probes.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let classifier = Classifier::default();
    let mut compared = 0;
    let mut differ = Vec::new();
    for probe in doc["probes"].as_array().unwrap() {
        for l in probe["lines"].as_array().unwrap() {
            let Some(stored) = l.get("stored") else {
                continue;
            };
            let bytes = text_of(&l["line"]);
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            let line =
                match parse_line_with_precision(&bytes, 1, &classifier, Precision::Nanosecond) {
                    Ok(Some(line)) => line,
                    // refusing more than influxd is counted by the test above
                    Err(_) => continue,
                    Ok(None) => {
                        differ.push(format!("{shown:?}: influxd stored it, we saw no line"));
                        continue;
                    }
                };
            compared += 1;
            let columns: Vec<&str> = stored["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let values = stored["values"].as_array().unwrap();
            let column = |name: &str| columns.iter().position(|c| *c == name).map(|i| &values[i]);
            if line.measurement().as_str() != stored["measurement"].as_str().unwrap() {
                differ.push(format!(
                    "{shown:?}: measurement {:?}, influxd {}",
                    line.measurement().as_str(),
                    stored["measurement"]
                ));
            }
            for (k, v) in line.tags() {
                if column(&k.as_str()).and_then(Value::as_str) != Some(&*v.as_str()) {
                    differ.push(format!("{shown:?}: tag {:?}={:?}", k.as_str(), v.as_str()));
                }
            }
            for (k, _) in line.fields() {
                if column(&k.as_str()).is_none() {
                    differ.push(format!("{shown:?}: field {:?} not stored", k.as_str()));
                }
            }
            let ours = 1 + line.tags().count() + line.fields().count();
            if ours != columns.len() {
                differ.push(format!(
                    "{shown:?}: {ours} columns here, influxd {columns:?}"
                ));
            }
        }
    }
    assert!(compared > 50, "only {compared} probes with stored values");
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
