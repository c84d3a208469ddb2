//! Property tests: the parser never panics, and every accepted line survives a round trip
//! through `Point::write_line_protocol` unchanged.

use monitor::protocol::{Classifier, FieldValue, OwnedFieldValue, Point, lines};
use proptest::prelude::*;

/// Parses `body` and touches every part of every line; returns the accepted points.
fn parse_all(body: &[u8]) -> Vec<Point> {
    let classifier = Classifier::default();
    let mut points = Vec::new();
    for line in lines(body, &classifier) {
        let Ok(line) = line else { continue };
        let _ = (
            line.kind(),
            line.index(),
            line.trace_id(),
            line.without_timestamp(),
        );
        for (k, v) in line.tags() {
            let _ = (k.as_str(), v.as_str());
        }
        for (k, v) in line.fields() {
            let _ = k.as_str();
            if let FieldValue::String(s) = v {
                let _ = s.as_str();
            }
        }
        points.push(Point::from_line(&line));
    }
    points
}

fn round_trip(points: &[Point]) {
    for p in points {
        let mut out = Vec::new();
        p.write_line_protocol(&mut out);
        let again = parse_all(&out);
        assert_eq!(
            again.len(),
            1,
            "serialised {:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(
            &again[0],
            p,
            "serialised {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Bytes drawn mostly from the characters that matter to the grammar.
fn lp_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(vec![
        b'm', b'a', b'f', b't', b'T', b'e', b'i', b'u', b'0', b'1', b'9', b'.', b'-', b'+', b',',
        b'=', b' ', b' ', b'"', b'\\', b'\n', b'\r', b'\t', b'#', 0, 0x7f, 0xc3, 0xa9, 0xff,
    ]);
    prop::collection::vec(prop_oneof![3 => interesting, 1 => any::<u8>()], 0..200)
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ ,=\\\\\"'.#é☃-]{1,12}"
        // InfluxDB 1.x cannot store a backslash right before `,`, space, `=` or `"` in a
        // measurement or field key (proto-spec/README.md, "Escaping"), nor one at the end.
        .prop_filter("representable name", |s| {
            !s.ends_with('\\')
                && !["\\,", "\\ ", "\\=", "\\\""].iter().any(|p| s.contains(p))
                && s != "time"
        })
}

fn value() -> impl Strategy<Value = OwnedFieldValue> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(OwnedFieldValue::Float),
        any::<i64>().prop_map(OwnedFieldValue::Integer),
        any::<bool>().prop_map(OwnedFieldValue::Boolean),
        "(?s).{0,40}".prop_map(OwnedFieldValue::String),
    ]
}

fn point() -> impl Strategy<Value = Point> {
    (
        name().prop_filter("not a comment", |m| !m.starts_with('#')),
        prop::collection::btree_map(name(), name(), 0..6),
        prop::collection::btree_map(name(), value(), 1..6),
        prop::option::of(-9_223_372_036_854_775_806i64..=9_223_372_036_854_775_806),
    )
        .prop_map(|(measurement, tags, fields, timestamp)| Point {
            measurement,
            tags: tags.into_iter().collect(),
            fields: fields.into_iter().collect(),
            timestamp,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        round_trip(&parse_all(&body));
    }

    #[test]
    fn accepted_lines_round_trip(body in lp_bytes()) {
        round_trip(&parse_all(&body));
    }

    #[test]
    fn generated_points_round_trip(p in point()) {
        let mut out = Vec::new();
        p.write_line_protocol(&mut out);
        let parsed = parse_all(&out);
        prop_assert_eq!(parsed.len(), 1, "{:?}", String::from_utf8_lossy(&out));
        prop_assert_eq!(&parsed[0], &p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Distinct keys are never taken for duplicates (whatever the bloom filter says), and a
    /// repeated tag key or a field key repeated with another type is always found, for few
    /// and for many keys.
    #[test]
    fn duplicate_detection_is_exact(
        keys in prop::collection::btree_set("[a-z]{1,3}", 1..60),
        pick in any::<prop::sample::Index>(),
    ) {
        let keys: Vec<String> = keys.into_iter().filter(|k| k != "time").collect();
        prop_assume!(!keys.is_empty());
        let tags: Vec<String> = keys.iter().map(|k| format!("{k}=v")).collect();
        let fields: Vec<String> = keys.iter().map(|k| format!("{k}=1i")).collect();
        let classifier = Classifier::default();
        let ok = format!("m,{} {}", tags.join(","), fields.join(","));
        prop_assert!(lines(ok.as_bytes(), &classifier).all(|l| l.is_ok()), "{}", ok);

        let dup = pick.get(&keys);
        let dup_tag = format!("m,{},{dup}=w {}", tags.join(","), fields.join(","));
        prop_assert!(lines(dup_tag.as_bytes(), &classifier).all(|l| l.is_err()), "{}", dup_tag);
        let same_type = format!("m {},{dup}=2i", fields.join(","));
        prop_assert!(lines(same_type.as_bytes(), &classifier).all(|l| l.is_ok()), "{}", same_type);
        let conflict = format!("m {},{dup}=2", fields.join(","));
        prop_assert!(lines(conflict.as_bytes(), &classifier).all(|l| l.is_err()), "{}", conflict);
    }
}
