//! The parser against a real InfluxDB 1.x ("no poison", DESIGN.md invariant 3): every line
//! `monitor::protocol` accepts must be accepted by a real influxd, in the form the proxy forwards
//! it, when written alone. A field type conflict is not a syntax rejection and is allowed; a 400
//! parse error, a 500 after parsing or a crash of influxd fails the test.
//!
//! Inputs: every decode case of the line-protocol corpus (`MONITOR_CORPUS`, default
//! `$CARGO_MANIFEST_DIR/../shared/conformance/line-protocol-corpus/corpus.json`), ~240
//! handpicked probes, and a seeded
//! generator of structured and mutated lines (escapes, all value types, unicode, edge numbers and
//! timestamps, long strings). Lines we refuse are sent too, only to report (not assert) how many
//! of them influxd would have taken, by our refusal reason.
//!
//! `MONITOR_ACCEPTANCE_SEED` replaces the generator's fixed seed to explore other lines.
//!
//! Speed: lines go in batches into a fresh database each; a batch is split in halves only when
//! influxd's answer is not "all accepted" or "every line refused", so a clean run needs a few
//! hundred requests.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use monitor::protocol::{
    Classifier, OwnedFieldValue, ParseErrorKind, Point, Precision, lines,
    parse_line_with_precision, write_timestamp,
};
use support::{HttpResponse, InfluxCluster};

const MAX_BATCH_LINES: usize = 400;
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
const GENERATED_BODIES: usize = 4000;
const SEED: u64 = 0x006d_6f6e_6974_6f72;

// ------------------------------------------------------------------------------------------
// inputs

struct Body {
    origin: String,
    bytes: Vec<u8>,
    precision: Precision,
}

fn corpus_path() -> PathBuf {
    match std::env::var_os("MONITOR_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/conformance/line-protocol-corpus/corpus.json"),
    }
}

fn corpus_precision(p: &str) -> Precision {
    let v1 = match p {
        "" | "1ns" => "ns",
        "1us" | "1µs" => "u",
        "1ms" => "ms",
        "1s" => "s",
        "1m" => "m",
        "1h" => "h",
        other => panic!("corpus precision {other:?} not mapped"),
    };
    Precision::from_v1(v1).expect("known precision")
}

fn corpus_bodies() -> Vec<Body> {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "line-protocol corpus not found at {} ({e}); set MONITOR_CORPUS to corpus.json of \
             influxdata/line-protocol-corpus (the project keeps it in shared/conformance/)",
            path.display()
        )
    });
    let corpus: serde_json::Value = serde_json::from_str(&text).expect("corpus is JSON");
    let decode = corpus["decode"]
        .as_object()
        .expect("corpus has a decode object");
    let mut bodies = Vec::with_capacity(decode.len());
    for (key, case) in decode {
        let input = &case["input"];
        let bytes = match &input["text"] {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            serde_json::Value::Object(o) => base64::engine::general_purpose::STANDARD
                .decode(o["binary"].as_str().expect("binary is a string"))
                .expect("binary is base64"),
            other => panic!("case {key}: unexpected text {other}"),
        };
        let precision = corpus_precision(input["precision"].as_str().unwrap_or(""));
        bodies.push(Body {
            origin: format!("corpus {key}"),
            bytes,
            precision,
        });
    }
    bodies
}

/// Targeted probes first written to a real influxd 1.6.7 while building this test (name,
/// precision, body): duplicates, reserved keys, invalid UTF-8, number and timestamp edges,
/// escapes and backslash pairs, whitespace. Kept so these classes are covered whatever the seed.
const HANDPICKED: &[(&str, &str, &[u8])] = &[
    ("dup-tag-diff", "ns", b"m,a=1,a=2 f=1 1000"),
    ("dup-tag-same", "ns", b"m,a=1,a=1 f=1 1000"),
    ("dup-field-same-type", "ns", b"m f=1,f=2 1000"),
    ("dup-field-int-float", "ns", b"m f=1i,f=2 1000"),
    ("dup-field-float-str", "ns", b"m f=1,f=\"x\" 1000"),
    ("tag-and-field-same-key", "ns", b"m,a=x a=1 1000"),
    ("field-key-time", "ns", b"m time=1 1000"),
    ("field-key-time-plus", "ns", b"m time=1,f=2 1000"),
    ("tag-key-time", "ns", b"m,time=x f=1 1000"),
    ("measurement-time", "ns", b"time f=1 1000"),
    ("field-key-escaped-time", "ns", b"m tim\\e=1 1000"),
    ("badutf8-measurement", "ns", b"m\xff f=1 1000"),
    ("badutf8-tagkey", "ns", b"m,a\xff=b f=1 1000"),
    ("badutf8-tagvalue", "ns", b"m,a=b\xff f=1 1000"),
    ("badutf8-fieldkey", "ns", b"m f\xff=1 1000"),
    ("badutf8-string", "ns", b"m f=\"a\xffb\" 1000"),
    ("badutf8-overlong", "ns", b"m f=\"\xc0\xaf\" 1000"),
    ("badutf8-surrogate", "ns", b"m f=\"\xed\xa0\x80\" 1000"),
    ("nul-in-measurement", "ns", b"m\x00x f=1 1000"),
    ("nul-in-string", "ns", b"m f=\"a\x00b\" 1000"),
    ("float NaN", "ns", b"m f=NaN 1000"),
    ("float nan", "ns", b"m f=nan 1000"),
    ("float Inf", "ns", b"m f=Inf 1000"),
    ("float +Inf", "ns", b"m f=+Inf 1000"),
    ("float -Inf", "ns", b"m f=-Inf 1000"),
    ("float inf", "ns", b"m f=inf 1000"),
    ("float Infinity", "ns", b"m f=Infinity 1000"),
    ("float 1e400", "ns", b"m f=1e400 1000"),
    ("float -1e400", "ns", b"m f=-1e400 1000"),
    ("float 1e-400", "ns", b"m f=1e-400 1000"),
    ("float 1.", "ns", b"m f=1. 1000"),
    ("float .1", "ns", b"m f=.1 1000"),
    ("float +1", "ns", b"m f=+1 1000"),
    ("float -0", "ns", b"m f=-0 1000"),
    ("float 1E5", "ns", b"m f=1E5 1000"),
    ("float 1e+5", "ns", b"m f=1e+5 1000"),
    ("float 0x10", "ns", b"m f=0x10 1000"),
    ("float 1_000", "ns", b"m f=1_000 1000"),
    ("float 01", "ns", b"m f=01 1000"),
    ("float 1.5e", "ns", b"m f=1.5e 1000"),
    ("float .", "ns", b"m f=. 1000"),
    ("float -", "ns", b"m f=- 1000"),
    ("float +.5", "ns", b"m f=+.5 1000"),
    (
        "float 1.7976931348623157e308",
        "ns",
        b"m f=1.7976931348623157e308 1000",
    ),
    ("float 4.9e-324", "ns", b"m f=4.9e-324 1000"),
    ("float 00001.5", "ns", b"m f=00001.5 1000"),
    ("float 1e05", "ns", b"m f=1e05 1000"),
    ("float --1", "ns", b"m f=--1 1000"),
    (
        "int 9223372036854775807i",
        "ns",
        b"m f=9223372036854775807i 1000",
    ),
    (
        "int 9223372036854775808i",
        "ns",
        b"m f=9223372036854775808i 1000",
    ),
    (
        "int -9223372036854775808i",
        "ns",
        b"m f=-9223372036854775808i 1000",
    ),
    (
        "int -9223372036854775809i",
        "ns",
        b"m f=-9223372036854775809i 1000",
    ),
    ("int +1i", "ns", b"m f=+1i 1000"),
    ("int 1.5i", "ns", b"m f=1.5i 1000"),
    ("int 1e3i", "ns", b"m f=1e3i 1000"),
    ("int 1I", "ns", b"m f=1I 1000"),
    ("int 01i", "ns", b"m f=01i 1000"),
    ("int -0i", "ns", b"m f=-0i 1000"),
    ("int i", "ns", b"m f=i 1000"),
    ("int -i", "ns", b"m f=-i 1000"),
    ("int 0x1i", "ns", b"m f=0x1i 1000"),
    (
        "int 99999999999999999999i",
        "ns",
        b"m f=99999999999999999999i 1000",
    ),
    ("uint 1u", "ns", b"m f=1u 1000"),
    ("uint 1U", "ns", b"m f=1U 1000"),
    ("uint 0u", "ns", b"m f=0u 1000"),
    (
        "uint 18446744073709551615u",
        "ns",
        b"m f=18446744073709551615u 1000",
    ),
    (
        "uint 18446744073709551616u",
        "ns",
        b"m f=18446744073709551616u 1000",
    ),
    ("uint -1u", "ns", b"m f=-1u 1000"),
    ("uint +1u", "ns", b"m f=+1u 1000"),
    ("bool t", "ns", b"m f=t 1000"),
    ("bool T", "ns", b"m f=T 1000"),
    ("bool true", "ns", b"m f=true 1000"),
    ("bool True", "ns", b"m f=True 1000"),
    ("bool TRUE", "ns", b"m f=TRUE 1000"),
    ("bool f", "ns", b"m f=f 1000"),
    ("bool F", "ns", b"m f=F 1000"),
    ("bool false", "ns", b"m f=false 1000"),
    ("bool False", "ns", b"m f=False 1000"),
    ("bool FALSE", "ns", b"m f=FALSE 1000"),
    ("bool tRUE", "ns", b"m f=tRUE 1000"),
    ("bool tru", "ns", b"m f=tru 1000"),
    ("bool fa", "ns", b"m f=fa 1000"),
    ("bool yes", "ns", b"m f=yes 1000"),
    ("bool 1b", "ns", b"m f=1b 1000"),
    ("bool truee", "ns", b"m f=truee 1000"),
    ("bool falsey", "ns", b"m f=falsey 1000"),
    ("string escaped-quote", "ns", b"m f=\"a\\\"b\" 1000"),
    ("string escaped-backslash", "ns", b"m f=\"a\\\\b\" 1000"),
    ("string backslash-n", "ns", b"m f=\"a\\nb\" 1000"),
    ("string trailing-escaped-quote", "ns", b"m f=\"a\\\" 1000"),
    ("string backslash-end", "ns", b"m f=\"a\\\\\" 1000"),
    ("string quote-in-middle", "ns", b"m f=\"a\"b\" 1000"),
    ("string empty", "ns", b"m f=\"\" 1000"),
    ("string single-quotes", "ns", b"m f='a' 1000"),
    ("string unquoted-word", "ns", b"m f=abc 1000"),
    ("string space-inside", "ns", b"m f=\"a b\" 1000"),
    ("string comma-eq-inside", "ns", b"m f=\"a,b=c\" 1000"),
    ("string tab-inside", "ns", b"m f=\"a\tb\" 1000"),
    ("string cr-inside", "ns", b"m f=\"a\rb\" 1000"),
    ("string newline-inside", "ns", b"m f=\"a\nb\" 1000"),
    ("string backslash-other", "ns", b"m f=\"a\\tb\" 1000"),
    (
        "string triple-backslash-quote",
        "ns",
        b"m f=\"a\\\\\\\"b\" 1000",
    ),
    (
        "string unicode",
        "ns",
        b"m f=\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\" 1000",
    ),
    (
        "ts ns 9223372036854775806",
        "ns",
        b"m f=1 9223372036854775806",
    ),
    (
        "ts ns 9223372036854775807",
        "ns",
        b"m f=1 9223372036854775807",
    ),
    (
        "ts ns 9223372036854775808",
        "ns",
        b"m f=1 9223372036854775808",
    ),
    (
        "ts ns -9223372036854775806",
        "ns",
        b"m f=1 -9223372036854775806",
    ),
    (
        "ts ns -9223372036854775807",
        "ns",
        b"m f=1 -9223372036854775807",
    ),
    (
        "ts ns -9223372036854775808",
        "ns",
        b"m f=1 -9223372036854775808",
    ),
    ("ts ns -1", "ns", b"m f=1 -1"),
    ("ts ns 0", "ns", b"m f=1 0"),
    ("ts ns +1", "ns", b"m f=1 +1"),
    ("ts ns 1.5", "ns", b"m f=1 1.5"),
    ("ts ns 1e9", "ns", b"m f=1 1e9"),
    ("ts ns 01", "ns", b"m f=1 01"),
    ("ts ns -0", "ns", b"m f=1 -0"),
    (
        "ts ns -9223372036854775805",
        "ns",
        b"m f=1 -9223372036854775805",
    ),
    (
        "ts ns 99999999999999999999",
        "ns",
        b"m f=1 99999999999999999999",
    ),
    ("ts 1s 9223372036", "s", b"m f=1 9223372036"),
    ("ts 1s 9223372037", "s", b"m f=1 9223372037"),
    ("ts 1s -9223372036", "s", b"m f=1 -9223372036"),
    ("ts 1ms 9223372036854", "ms", b"m f=1 9223372036854"),
    ("ts 1ms 9223372036855", "ms", b"m f=1 9223372036855"),
    ("ts 1us 9223372036854775", "u", b"m f=1 9223372036854775"),
    ("ts 1us 9223372036854776", "u", b"m f=1 9223372036854776"),
    ("ts 1s 1", "s", b"m f=1 1"),
    ("ts 1m 153722867", "m", b"m f=1 153722867"),
    ("ts 1h 2562047", "h", b"m f=1 2562047"),
    ("escape meas-escaped-space", "ns", b"m\\ x f=1 1000"),
    ("escape meas-escaped-comma", "ns", b"m\\,x f=1 1000"),
    ("escape meas-escaped-eq", "ns", b"m\\=x f=1 1000"),
    ("escape meas-eq", "ns", b"m=x f=1 1000"),
    ("escape meas-dbl-backslash", "ns", b"m\\\\x f=1 1000"),
    ("escape meas-backslash-other", "ns", b"m\\x f=1 1000"),
    ("escape meas-trailing-backslash", "ns", b"m\\ f=1 1000"),
    ("escape meas-quote", "ns", b"\"m\" f=1 1000"),
    ("escape meas-hash", "ns", b"#m f=1 1000"),
    ("escape meas-inner-hash", "ns", b"m#x f=1 1000"),
    ("escape tag-escaped-space", "ns", b"m,a\\ b=c\\ d f=1 1000"),
    ("escape tag-escaped-eq", "ns", b"m,a\\=b=c\\=d f=1 1000"),
    ("escape tag-escaped-comma", "ns", b"m,a\\,b=c\\,d f=1 1000"),
    ("escape tagvalue-dbl-backslash", "ns", b"m,a=b\\\\ f=1 1000"),
    (
        "escape tagvalue-trailing-backslash",
        "ns",
        b"m,a=b\\ f=1 1000",
    ),
    ("escape tagvalue-quoted", "ns", b"m,a=\"b\" f=1 1000"),
    ("escape tagvalue-eq-unescaped", "ns", b"m,a=b=c f=1 1000"),
    (
        "escape tagkey-unicode",
        "ns",
        b"m,\xc3\xbc=\xc3\xb6 f=1 1000",
    ),
    ("escape fieldkey-escaped-space", "ns", b"m f\\ x=1 1000"),
    ("escape fieldkey-escaped-eq", "ns", b"m f\\=x=1 1000"),
    ("escape fieldkey-escaped-comma", "ns", b"m f\\,x=1 1000"),
    ("escape fieldkey-quote", "ns", b"m \"f\"=1 1000"),
    (
        "escape meas-unicode",
        "ns",
        b"m\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80 f=1 1000",
    ),
    ("escape meas-only-escaped-space", "ns", b"\\  f=1 1000"),
    ("ws trailing-space", "ns", b"m f=1 "),
    ("ws trailing-2-spaces", "ns", b"m f=1  "),
    ("ws trailing-space-after-ts", "ns", b"m f=1 1000 "),
    ("ws trailing-tab", "ns", b"m f=1\t"),
    ("ws two-spaces-before-fields", "ns", b"m  f=1 1000"),
    ("ws two-spaces-before-ts", "ns", b"m f=1  1000"),
    ("ws tab-separator", "ns", b"m\tf=1 1000"),
    ("ws tab-before-ts", "ns", b"m f=1\t1000"),
    ("ws leading-space", "ns", b" m f=1 1000"),
    ("ws leading-tab", "ns", b"\tm f=1 1000"),
    ("ws cr-end", "ns", b"m f=1 1000\r"),
    ("ws cr-end-no-ts", "ns", b"m f=1\r"),
    ("ws crlf-multi", "ns", b"m f=1 1000\r\nm f=2 2000\r\n"),
    ("ws comment", "ns", b"# hello"),
    ("ws comment-leading-space", "ns", b"   # hello"),
    ("ws trailing-comment", "ns", b"m f=1 1000 # c"),
    ("ws meas-only", "ns", b"m"),
    ("ws meas-space", "ns", b"m "),
    ("ws empty-tag-value", "ns", b"m,a= f=1 1000"),
    ("ws tag-no-eq", "ns", b"m,a f=1 1000"),
    ("ws empty-tag", "ns", b"m, f=1 1000"),
    ("ws empty-tag-key", "ns", b"m,=b f=1 1000"),
    ("ws trailing-comma-fields", "ns", b"m f=1, 1000"),
    ("ws double-comma-fields", "ns", b"m f=1,,g=2 1000"),
    ("ws field-no-value", "ns", b"m f= 1000"),
    ("ws field-no-key", "ns", b"m =1 1000"),
    ("ws no-fields-with-ts", "ns", b"m 1000"),
    ("ws tags-unsorted", "ns", b"m,b=1,a=2 f=1 1000"),
    ("ws vtab-separator", "ns", b"m\x0bf=1 1000"),
    ("ws formfeed-separator", "ns", b"m\x0cf=1 1000"),
    ("ws nbsp", "ns", b"m\xc2\xa0f=1 1000"),
    (
        "ws many-lines-blank-between",
        "ns",
        b"m f=1 1000\n\n\nm f=2 2000",
    ),
    ("ws ts-then-garbage", "ns", b"m f=1 1000 x"),
    ("ws meas-comma-nothing", "ns", b"m, f=1"),
    ("ws empty-body", "ns", b""),
    ("ws only-newlines", "ns", b"\n\n"),
    ("ws only-spaces", "ns", b"   "),
    ("multi-dup-point", "ns", b"m f=1 1000\nm f=2 1000"),
    ("multi-type-conflict", "ns", b"m f=1 1000\nm f=\"x\" 2000"),
    ("multi-mixed-good-bad", "ns", b"m f=1 1000\nbad\nm f=3 3000"),
    ("tv-dbl-bs-mid", "ns", b"m,a=b\\\\c f=1 1000"),
    ("tk-dbl-bs", "ns", b"m,a\\\\b=c f=1 1000"),
    ("fk-dbl-bs", "ns", b"m f\\\\x=1 1000"),
    ("meas-dbl-bs-end", "ns", b"m\\\\ f=1 1000"),
    ("tv-dbl-bs-then-tag", "ns", b"m,a=b\\\\,c=d f=1 1000"),
    ("tv-dbl-bs-end", "ns", b"m,a=b\\\\ f=1 1000"),
    ("tv-bs-end-ts", "ns", b"m,a=b\\ f=1"),
    ("fk-bs-end", "ns", b"m f\\=1 1000"),
    ("tv-bs-x", "ns", b"m,a=b\\x f=1 1000"),
    ("tv-triple-bs-space", "ns", b"m,a=b\\\\\\ c f=1 1000"),
    ("fk-dbl-bs-end", "ns", b"m f\\\\=1 1000"),
    ("str-then-space-comma", "ns", b"m f=\"a\" ,g=1"),
    ("tv-unicode-bs", "ns", b"m,a=\xc3\xa9\\\\ f=1 1000"),
    ("tk-bs-space", "ns", b"m,a\\ =b f=1 1000"),
    ("meas-bs-comma-end", "ns", b"m\\, f=1 1000"),
    ("tv-quad-bs-end", "ns", b"m,a=b\\\\\\\\ f=1 1000"),
    ("fk-dbl-bs-space", "ns", b"m y\\\\ f=1 1000"),
    ("fk-dbl-bs-space-noeq", "ns", b"m y\\\\ f=1"),
    ("fk-bs-space", "ns", b"m y\\ f=1 1000"),
    ("fk-dbl-bs-comma", "ns", b"m y\\\\,f=1 1000"),
    ("fk-dbl-bs-eq", "ns", b"m y\\\\=1 1000"),
    ("fk-x-dbl-bs", "ns", b"m y\\\\x=1 1000"),
    ("fk-triple-bs-space", "ns", b"m y\\\\\\ f=1 1000"),
    ("meas-dbl-bs-comma", "ns", b"m\\\\,a=b f=1 1000"),
    ("tk-dbl-bs-eq", "ns", b"m,a\\\\=b f=1 1000"),
    ("tv-dbl-bs-comma", "ns", b"m,a=b\\\\,c=d f=1 1000"),
    ("meas-lead-dbl-bs", "ns", b"\\\\m f=1 1000"),
    ("meas-mid-dbl-bs", "ns", b"a\\\\b f=1 1000"),
    ("meas-dbl-bs-quote", "ns", b"\\\\\"Z9 f=1 1000"),
    ("meas-dbl-bs-eq-lead", "ns", b"\\\\=mem f=1 1000"),
    ("meas-a-dbl-bs-eq", "ns", b"a\\\\=b f=1 1000"),
    ("meas-a-dbl-bs-comma-tag", "ns", b"a\\\\,t=v f=1 1000"),
    ("meas-lead-single-bs", "ns", b"\\m f=1 1000"),
    ("meas-lead-quad-bs", "ns", b"\\\\\\\\m f=1 1000"),
    ("meas-x-dbl-bs-end-tag", "ns", b"a\\\\,b=c f=1 1000"),
];

fn handpicked_bodies() -> Vec<Body> {
    HANDPICKED
        .iter()
        .map(|(name, precision, bytes)| Body {
            origin: format!("handpicked {name}"),
            bytes: bytes.to_vec(),
            precision: Precision::from_v1(precision).expect("precision"),
        })
        .collect()
}

/// SplitMix64: tiny, seeded, good enough to spread test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// Each set comes as (usual, edgy): an edgy piece is picked with a small probability, so most
// generated lines are valid and the invalid ones are invalid in one place.
const NAME_PIECES: (&[&str], &[&str]) = (
    &[
        "cpu", "m", "mem", "a", "Z9", "_x", "é", "日本", "😀", "\\ ", "\\,", "\\=", "-", ".", ":",
        "/", "ü", "log", "tracelog", "index", "host", "'", "\"",
    ],
    &[
        "=", "#", "\\\\", "\\x", "\\", "a b", "\u{a0}", "\t", "\u{b}", "time", "", ",", "\u{7f}",
        "\u{0}",
    ],
);
const VALUE_PIECES: (&[&str], &[&str]) = (
    &[
        "a", "host1", "1", "-", "é", "😀", "\\ ", "\\,", "\\=", "'", "\"", "#", "ü", "x.y", "/",
    ],
    &[
        "\\\\", "\\", "=", ",", " ", "x y", "\u{7f}", "\u{0}", "", "\t",
    ],
);
const STRING_PIECES: (&[&str], &[&str]) = (
    &[
        "a",
        "hello world",
        "\\\"",
        "\\\\",
        "\\n",
        "é",
        "😀",
        ",",
        "=",
        " ",
        "\t",
        "'",
        "{\\\"json\\\": 1}",
        "",
    ],
    &["\\", "\n", "\r", "\u{0}", "\"", "\\\\\\"],
);
const FLOATS: (&[&str], &[&str]) = (
    &[
        "1",
        "-1",
        "0",
        "-0",
        "1.5",
        ".5",
        "5.",
        "-.5",
        "1e10",
        "1E-5",
        "1e+5",
        "1e05",
        "00012.5",
        "1.7976931348623157e308",
        "4.9e-324",
        "1e-400",
        "3.14159",
    ],
    &[
        "1e400", "NaN", "Inf", "-Inf", "+1", "1_0", "0x10", "1.5e", ".", "-", "--1", "1.2.3",
    ],
);
const INTEGERS: (&[&str], &[&str]) = (
    &[
        "1i",
        "-1i",
        "0i",
        "-0i",
        "01i",
        "9223372036854775807i",
        "-9223372036854775808i",
    ],
    &[
        "9223372036854775808i",
        "-9223372036854775809i",
        "+1i",
        "1.5i",
        "1e3i",
        "1I",
        "i",
        "-i",
        "1u",
        "0u",
        "18446744073709551615u",
        "-1u",
    ],
);
const BOOLEANS: (&[&str], &[&str]) = (
    &[
        "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE",
    ],
    &["tRUE", "tru", "yes", "truee", "FALSe"],
);
const TIMESTAMPS: (&[&str], &[&str]) = (
    &[
        "",
        "",
        "",
        "0",
        "-1",
        "1",
        "01",
        "-0",
        "1465839830100400200",
        "9223372036854775806",
        "-9223372036854775806",
    ],
    &[
        "9223372036854775807",
        "-9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "+1",
        "1.5",
        "1e9",
        "99999999999999999999",
    ],
);

/// Percent of picks that take the edgy variant.
const EDGY_PERCENT: usize = 4;

fn pick_piece(rng: &mut Rng, set: (&[&'static str], &[&'static str])) -> &'static str {
    let items = if rng.chance(EDGY_PERCENT) {
        set.1
    } else {
        set.0
    };
    items[rng.below(items.len())]
}

/// A name of 1..=`max_pieces` pieces.
fn name(rng: &mut Rng, max_pieces: usize) -> String {
    let pieces = 1 + rng.below(max_pieces);
    (0..pieces).map(|_| pick_piece(rng, NAME_PIECES)).collect()
}

fn field_value(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=2 => {
            if rng.chance(50) {
                pick_piece(rng, FLOATS).to_string()
            } else {
                let f = f64::from_bits(rng.next());
                if !f.is_finite() {
                    "2.5".to_string()
                } else if rng.chance(50) {
                    format!("{f:?}")
                } else {
                    format!("{f:e}")
                }
            }
        }
        3..=5 => {
            if rng.chance(50) {
                pick_piece(rng, INTEGERS).to_string()
            } else {
                format!("{}i", (rng.next() as i64) >> rng.below(64))
            }
        }
        6 => pick_piece(rng, BOOLEANS).to_string(),
        _ => {
            let mut s = String::from("\"");
            if rng.chance(3) {
                // long strings around the 64 KiB limit
                let len = *rng.pick(&[1000usize, 40_000, 65_535, 65_536, 70_000]);
                s.push_str(&"x".repeat(len));
            } else {
                for _ in 0..rng.below(6) {
                    s.push_str(pick_piece(rng, STRING_PIECES));
                }
            }
            s.push('"');
            s
        }
    }
}

/// One structured line: mostly valid, with every kind of edge mixed in.
fn structured_line(rng: &mut Rng, n: usize) -> String {
    let mut line = name(rng, 3);
    for _ in 0..rng.below(4) {
        line.push(',');
        line.push_str(&name(rng, 2));
        line.push('=');
        let pieces = 1 + rng.below(3);
        for _ in 0..pieces {
            line.push_str(pick_piece(rng, VALUE_PIECES));
        }
    }
    line.push_str(if rng.chance(5) { "  " } else { " " });
    for j in 0..1 + rng.below(4) {
        if j > 0 {
            line.push(',');
        }
        // a key unique to this line keeps type conflicts between lines away
        if rng.chance(15) {
            line.push_str(&name(rng, 1));
        }
        line.push_str(&format!("f{n}_{j}"));
        line.push('=');
        line.push_str(&field_value(rng));
    }
    let ts = pick_piece(rng, TIMESTAMPS);
    if !ts.is_empty() {
        line.push(' ');
        line.push_str(ts);
    }
    if rng.chance(5) {
        let tail: &&str = rng.pick(&[" ", "  ", "\t", "\r", " # c"]);
        line.push_str(tail);
    }
    line
}

/// Byte-level mutation of a valid-looking line: most become invalid, some stay valid.
fn mutate(rng: &mut Rng, line: &str) -> Vec<u8> {
    const BYTES: &[u8] = b" ,=\"\\\t#.-+eEiuTf0\x0b\x00\xff\xc3\r";
    let mut bytes = line.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(3) {
            0 => bytes.insert(at, *rng.pick(BYTES)),
            1 if at < bytes.len() => bytes[at] = *rng.pick(BYTES),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(*rng.pick(BYTES)),
        }
    }
    bytes
}

/// `MONITOR_ACCEPTANCE_SEED` (decimal or 0x-hex) explores other generated lines.
fn seed() -> u64 {
    match std::env::var("MONITOR_ACCEPTANCE_SEED") {
        Ok(s) => {
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("MONITOR_ACCEPTANCE_SEED={s:?} is not a number"))
        }
        Err(_) => SEED,
    }
}

fn generated_bodies() -> Vec<Body> {
    let seed = seed();
    let mut rng = Rng(seed);
    let ns = Precision::Nanosecond;
    let mut bodies = Vec::with_capacity(GENERATED_BODIES);
    for n in 0..GENERATED_BODIES {
        let line = structured_line(&mut rng, n);
        let bytes = if rng.chance(25) {
            mutate(&mut rng, &line)
        } else {
            line.into_bytes()
        };
        bodies.push(Body {
            origin: format!("generated #{n} (seed {seed:#x})"),
            bytes,
            precision: ns,
        });
    }
    // precisions other than ns, around their range limits
    for (p, ts) in [
        ("s", "9223372036"),
        ("s", "9223372037"),
        ("s", "-9223372036"),
        ("ms", "9223372036854"),
        ("ms", "9223372036855"),
        ("u", "9223372036854775"),
        ("u", "9223372036854776"),
        ("m", "153722867"),
        ("m", "153722868"),
        ("h", "2562047"),
        ("h", "2562048"),
        ("s", "1465839830"),
    ] {
        bodies.push(Body {
            origin: format!("precision {p} ts {ts}"),
            bytes: format!("prec_{p} v=1 {ts}").into_bytes(),
            precision: Precision::from_v1(p).expect("precision"),
        });
    }
    bodies
}

// ------------------------------------------------------------------------------------------
// what we send

/// A line as one write to influxd.
struct Probe {
    origin: String,
    bytes: Vec<u8>,
    precision: Precision,
    /// Why our parser refused it; None when it accepted it.
    refusal: Option<ParseErrorKind>,
    /// The re-stamped form of an accepted line (see `probes`), not the line as written.
    forwarded: bool,
}

fn category(kind: &ParseErrorKind) -> String {
    match kind {
        ParseErrorKind::InvalidCharacter(_, context) => format!("invalid character in {context}"),
        ParseErrorKind::UnexpectedAfterField(_) => "unexpected character after field value".into(),
        ParseErrorKind::KeyTooLong(..) => "max key length exceeded".into(),
        ParseErrorKind::StringTooLong(_) => "string field value too long".into(),
        ParseErrorKind::LineTooLong(_) => "line too long".into(),
        ParseErrorKind::TimestampOutOfRange { .. } => "time outside range".into(),
        other => other.to_string(),
    }
}

fn trim_blank(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if matches!(first, b' ' | b'\t' | b'\n' | b'\r') {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if matches!(last, b'\n' | b'\r') {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Splits each body with our parser into the forms the proxy may forward (accepted lines) and
/// the refused entries.
fn probes(bodies: &[Body]) -> Vec<Probe> {
    let classifier = Classifier::default();
    let mut out = Vec::new();
    for body in bodies {
        let mut it = lines(&body.bytes, &classifier).with_precision(body.precision);
        loop {
            let start = it.offset();
            let Some(result) = it.next() else { break };
            match result {
                Ok(line) => {
                    let origin = format!("{} line {}", body.origin, line.number());
                    out.push(Probe {
                        origin: origin.clone(),
                        bytes: line.raw().to_vec(),
                        precision: body.precision,
                        refusal: None,
                        forwarded: false,
                    });
                    // a line without timestamp is stamped with the receive time
                    // a line with one may be normalised to nanoseconds
                    let mut stamped = Vec::new();
                    let precision = match (line.timestamp(), line.timestamp_nanos()) {
                        (None, _) => {
                            write_timestamp(
                                line.without_timestamp(),
                                body.precision.now(),
                                &mut stamped,
                            );
                            body.precision
                        }
                        (Some(_), Some(ns)) => {
                            write_timestamp(line.without_timestamp(), ns, &mut stamped);
                            Precision::Nanosecond
                        }
                        (Some(_), None) => continue,
                    };
                    let stamped = trim_blank(&stamped).to_vec();
                    if stamped != line.raw() {
                        out.push(Probe {
                            origin: origin + " (as forwarded)",
                            bytes: stamped,
                            precision,
                            refusal: None,
                            forwarded: true,
                        });
                    }
                }
                Err(e) => {
                    let entry = trim_blank(&body.bytes[start..it.offset()]);
                    if !entry.is_empty() {
                        out.push(Probe {
                            origin: format!("{} line {}", body.origin, e.line),
                            bytes: entry.to_vec(),
                            precision: body.precision,
                            refusal: Some(e.kind),
                            forwarded: false,
                        });
                    }
                }
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// influxd's verdicts

#[derive(Debug, Clone)]
enum Verdict {
    Accepted,
    /// Parsed, refused only because a field changed type (not syntax).
    TypeConflict,
    Refused(String),
    /// 500 after a successful parse (e.g. invalid UTF-8 names, values the engine cannot convert).
    FailedAfterParse(String),
    /// influxd died on it.
    Crashed,
}

impl Verdict {
    fn describe(&self) -> String {
        match self {
            Verdict::Accepted => "accepted".into(),
            Verdict::TypeConflict => "field type conflict".into(),
            Verdict::Refused(e) => format!("refused: {e}"),
            Verdict::FailedAfterParse(e) => format!("failed after parsing: {e}"),
            Verdict::Crashed => "influxd crashed".into(),
        }
    }
}

const SHARED_DATABASE: &str = "refused";

struct Checker {
    cluster: InfluxCluster,
    databases: Vec<String>,
    created: usize,
    requests: usize,
    restarts: usize,
}

impl Checker {
    /// A database nobody wrote to. Databases are created 200 at a time; the previous 200 are
    /// dropped then (each holds an open shard, and influxd runs out of file descriptors after a
    /// few thousand).
    fn fresh_database(&mut self) -> String {
        const CHUNK: usize = 200;
        if self.databases.is_empty() {
            let mut statements: Vec<String> = (self.created.saturating_sub(CHUNK)..self.created)
                .map(|n| format!("DROP DATABASE d{n}"))
                .collect();
            let names: Vec<String> = (self.created..self.created + CHUNK)
                .map(|n| format!("d{n}"))
                .collect();
            self.created += CHUNK;
            statements.extend(names.iter().map(|n| format!("CREATE DATABASE {n}")));
            self.cluster.query(0, "", &statements.join(";"));
            self.databases = names;
        }
        self.databases.pop().expect("pool refilled")
    }

    /// Writes into a fresh database, or into the shared one used for lines we refuse (only
    /// reported, so their answers may depend on earlier writes; a fresh database per request
    /// costs a new shard each and would make the test several times slower).
    fn write(
        &mut self,
        precision: Precision,
        body: &[u8],
        shared: bool,
    ) -> std::io::Result<HttpResponse> {
        let db = if shared {
            SHARED_DATABASE.to_string()
        } else {
            self.fresh_database()
        };
        self.requests += 1;
        let path = format!(
            "/write?{}",
            support::query_string(&[("db", &db), ("precision", precision.as_v1())])
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.cluster.http_port(0)));
        support::http_request(addr, "POST", &path, &[], body)
    }

    fn alive(&self) -> bool {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.cluster.http_port(0)));
        matches!(support::http_request(addr, "GET", "/ping", &[], b""), Ok(r) if r.status == 204)
    }

    /// Verdicts for `items` (indices into `probes`, all of one precision).
    fn check(&mut self, probes: &[Probe], items: &[usize], verdicts: &mut [Option<Verdict>]) {
        let mut body = Vec::new();
        for (k, &i) in items.iter().enumerate() {
            if k > 0 {
                body.push(b'\n');
            }
            body.extend_from_slice(&probes[i].bytes);
        }
        let precision = probes[items[0]].precision;
        let single = items.len() == 1;
        let shared = items.iter().all(|&i| probes[i].refusal.is_some());
        let response = match self.write(precision, &body, shared) {
            Ok(r) => r,
            Err(e) => {
                if self.alive() {
                    panic!("request to a live influxd failed: {e}");
                }
                self.restarts += 1;
                self.cluster.restart(0);
                self.databases.clear();
                if single {
                    verdicts[items[0]] = Some(Verdict::Crashed);
                } else {
                    self.bisect(probes, items, verdicts);
                }
                return;
            }
        };
        let error = match response.status {
            204 => {
                for &i in items {
                    verdicts[i] = Some(Verdict::Accepted);
                }
                return;
            }
            _ => serde_json::from_slice::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| response.text()),
        };
        if response.status == 400
            && !error.starts_with("partial write")
            && error.matches("unable to parse '").count() == items.len()
        {
            for &i in items {
                verdicts[i] = Some(Verdict::Refused(error.clone()));
            }
            return;
        }
        if !single {
            self.bisect(probes, items, verdicts);
            return;
        }
        verdicts[items[0]] = Some(match response.status {
            400 if error.contains("field type conflict") => Verdict::TypeConflict,
            s if s >= 500 => Verdict::FailedAfterParse(format!("{s} {error}")),
            s => Verdict::Refused(format!("{s} {error}")),
        });
    }

    fn bisect(&mut self, probes: &[Probe], items: &[usize], verdicts: &mut [Option<Verdict>]) {
        let (a, b) = items.split_at(items.len() / 2);
        self.check(probes, a, verdicts);
        self.check(probes, b, verdicts);
    }

    fn check_all(&mut self, probes: &[Probe], group: &[usize], verdicts: &mut [Option<Verdict>]) {
        let mut by_precision: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in group {
            by_precision
                .entry(probes[i].precision.as_v1())
                .or_default()
                .push(i);
        }
        for items in by_precision.values() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            for &i in items {
                if probes[i].refusal.is_some()
                    && probes[i].bytes.iter().any(|b| matches!(b, b'"' | b'\\'))
                {
                    // influxd's scanner may carry an unbalanced quote or an escape across the
                    // newline into the next line, which spoils a batch's error count
                    self.check(probes, &[i], verdicts);
                    continue;
                }
                if !batch.is_empty()
                    && (batch.len() >= MAX_BATCH_LINES
                        || bytes + probes[i].bytes.len() > MAX_BATCH_BYTES)
                {
                    self.check(probes, &batch, verdicts);
                    batch.clear();
                    bytes = 0;
                }
                bytes += probes[i].bytes.len() + 1;
                batch.push(i);
            }
            if !batch.is_empty() {
                self.check(probes, &batch, verdicts);
            }
        }
    }
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s: String = s.chars().take(160).collect();
    format!("{s:?}")
}

#[test]
fn every_line_we_accept_is_accepted_by_real_influxd() {
    let mut bodies = corpus_bodies();
    let corpus_cases = bodies.len();
    bodies.extend(handpicked_bodies());
    bodies.extend(generated_bodies());
    let probes = probes(&bodies);
    let accepted: Vec<usize> = (0..probes.len())
        .filter(|&i| probes[i].refusal.is_none())
        .collect();
    let refused: Vec<usize> = (0..probes.len())
        .filter(|&i| probes[i].refusal.is_some())
        .collect();

    let mut checker = Checker {
        cluster: InfluxCluster::start_in_memory(1),
        databases: Vec::new(),
        created: 0,
        requests: 0,
        restarts: 0,
    };
    checker.cluster.create_database(0, SHARED_DATABASE);
    let mut verdicts: Vec<Option<Verdict>> = vec![None; probes.len()];
    checker.check_all(&probes, &accepted, &mut verdicts);
    let requests_for_accepted = checker.requests;
    checker.check_all(&probes, &refused, &mut verdicts);

    println!(
        "inputs: {corpus_cases} corpus cases + {} handpicked and generated bodies; {} writes accepted by our parser \
         (line + forwarded forms), {} entries refused; {} requests ({} for the accepted), {} influxd restarts",
        bodies.len() - corpus_cases,
        accepted.len(),
        refused.len(),
        checker.requests,
        requests_for_accepted,
        checker.restarts,
    );

    let mut poison = Vec::new();
    let mut conflicts = 0;
    for &i in &accepted {
        match verdicts[i].as_ref().expect("every probe checked") {
            Verdict::Accepted => {}
            Verdict::TypeConflict => conflicts += 1,
            other => poison.push(format!(
                "{}: {} -> {}",
                probes[i].origin,
                show(&probes[i].bytes),
                other.describe()
            )),
        }
    }
    println!(
        "accepted by us: {} -> influxd accepted {}, type conflict only {}, POISON {}",
        accepted.len(),
        accepted.len() - conflicts - poison.len(),
        conflicts,
        poison.len()
    );

    // what we refuse that influxd takes, by our reason
    let mut stricter: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut refused_too = 0;
    let mut influxd_fails = BTreeMap::<&str, usize>::new();
    for &i in &refused {
        let reason = category(probes[i].refusal.as_ref().expect("refused"));
        match verdicts[i].as_ref().expect("every probe checked") {
            Verdict::Refused(_) => refused_too += 1,
            Verdict::Accepted | Verdict::TypeConflict => {
                let entry = stricter.entry(reason).or_default();
                entry.0 += 1;
                if entry.1.len() < 2 {
                    entry.1.push(show(&probes[i].bytes));
                }
            }
            Verdict::FailedAfterParse(_) => {
                *influxd_fails.entry("500 after parse").or_default() += 1
            }
            Verdict::Crashed => *influxd_fails.entry("crashed influxd").or_default() += 1,
        }
    }
    let stricter_total: usize = stricter.values().map(|(n, _)| n).sum();
    println!(
        "refused by us: {} -> influxd refuses {refused_too}, influxd accepts {stricter_total}, \
         influxd fails after parsing/crashes {influxd_fails:?}",
        refused.len()
    );
    println!("we refuse, influxd accepts (by our reason):");
    for (reason, (n, examples)) in &stricter {
        println!("  {n:5}  {reason}: e.g. {}", examples.join(" | "));
    }

    assert!(
        poison.is_empty(),
        "{} line(s) accepted by our parser are refused by real influxd (poison):\n{}",
        poison.len(),
        poison
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// what influxd stores

/// influxd prints floats exactly (Go's shortest round-trip form), but serde_json without its
/// `float_roundtrip` feature may parse them one or two ULPs off; both sides' own parsers (Go
/// strconv, Rust core) are correctly rounded, so a real disagreement would be far larger.
fn nearly_equal(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_sign_negative() != b.is_sign_negative() {
        return false;
    }
    a.to_bits().abs_diff(b.to_bits()) <= 4
}

/// What influxd stored for one line, compared with our reading of it; None when they agree.
fn stored_mismatch(
    point: &Point,
    timestamp_ns: Option<i64>,
    answer: &serde_json::Value,
) -> Option<String> {
    let select = &answer["results"][0];
    let series = select["series"].as_array().cloned().unwrap_or_default();
    if series.len() != 1 {
        return Some(format!("expected one series, SELECT * gave {select}"));
    }
    let series = &series[0];
    if series["name"].as_str() != Some(point.measurement.as_str()) {
        return Some(format!(
            "measurement {:?} stored as {}",
            point.measurement, series["name"]
        ));
    }
    let rows = series["values"].as_array().cloned().unwrap_or_default();
    if rows.len() != 1 {
        return Some(format!("expected one row, got {}", rows.len()));
    }
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let row = rows[0].as_array().cloned().unwrap_or_default();
    let cell = |name: &str| columns.iter().position(|c| *c == name).map(|i| &row[i]);
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for s in answer["results"][1]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for v in s["values"].as_array().into_iter().flatten() {
            types.insert(
                v[0].as_str().unwrap_or_default().to_string(),
                v[1].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    if let Some(ts) = timestamp_ns
        && cell("time").and_then(|v| v.as_i64()) != Some(ts)
    {
        return Some(format!("time {ts} stored as {:?}", cell("time")));
    }
    for (key, value) in &point.tags {
        if cell(key).and_then(|v| v.as_str()) != Some(value.as_str()) {
            return Some(format!("tag {key:?}={value:?} stored as {:?}", cell(key)));
        }
    }
    // duplicate field keys: the last one wins in InfluxDB 1.x
    let mut fields: BTreeMap<&str, &OwnedFieldValue> = BTreeMap::new();
    for (key, value) in &point.fields {
        fields.insert(key, value);
    }
    if types.len() != fields.len() {
        return Some(format!(
            "fields {:?} stored with keys {:?}",
            fields.keys().collect::<Vec<_>>(),
            types.keys().collect::<Vec<_>>()
        ));
    }
    for (key, value) in fields {
        let got = cell(key);
        let (expected_type, same) = match value {
            OwnedFieldValue::Float(f) => (
                "float",
                got.and_then(|v| v.as_f64())
                    .is_some_and(|g| nearly_equal(g, *f)),
            ),
            OwnedFieldValue::Integer(i) => ("integer", got.and_then(|v| v.as_i64()) == Some(*i)),
            OwnedFieldValue::Unsigned(u) => ("unsigned", got.and_then(|v| v.as_u64()) == Some(*u)),
            OwnedFieldValue::String(s) => {
                ("string", got.and_then(|v| v.as_str()) == Some(s.as_str()))
            }
            OwnedFieldValue::Boolean(b) => ("boolean", got.and_then(|v| v.as_bool()) == Some(*b)),
        };
        if !same || types.get(key).map(String::as_str) != Some(expected_type) {
            return Some(format!(
                "field {key:?}={value:?} stored as {got:?} of type {:?}",
                types.get(key)
            ));
        }
    }
    None
}

/// What a line written alone into a fresh database is read back with.
const READ_BACK: &str = "SELECT * FROM /.*/; SHOW FIELD KEYS";
/// Times an empty `SELECT *` right after a write is asked again (200 ms apart) before the line
/// counts as not stored.
const RE_READS: usize = 5;

#[test]
fn influxd_stores_what_we_read() {
    let mut bodies = corpus_bodies();
    bodies.extend(handpicked_bodies());
    bodies.extend(generated_bodies());
    let classifier = Classifier::default();
    let mut checker = Checker {
        cluster: InfluxCluster::start_in_memory(1),
        databases: Vec::new(),
        created: 0,
        requests: 0,
        restarts: 0,
    };
    let mut compared = 0;
    let mut skipped_name_clash = 0;
    let mut not_accepted = 0;
    let mut re_read = 0;
    let mut mismatches = Vec::new();
    for probe in probes(&bodies)
        .iter()
        .filter(|p| p.refusal.is_none() && !p.forwarded)
    {
        let line = match parse_line_with_precision(&probe.bytes, 1, &classifier, probe.precision) {
            Ok(Some(line)) => line,
            other => panic!(
                "{}: re-parsing the accepted line gave {other:?}",
                probe.origin
            ),
        };
        let point = Point::from_line(&line);
        // influxd renames a tag column that clashes with a field ("k" and "k_1")
        if point.tags.iter().any(|(k, _)| {
            point
                .fields
                .iter()
                .any(|(f, _)| f == k || *f == format!("{k}_1"))
        }) {
            skipped_name_clash += 1;
            continue;
        }
        let db = checker.fresh_database();
        let path = format!(
            "/write?{}",
            support::query_string(&[("db", &db), ("precision", probe.precision.as_v1())])
        );
        let written = support::http_post(checker.cluster.http_port(0), &path, &probe.bytes);
        if written.status != 204 {
            // reported by every_line_we_accept_is_accepted_by_real_influxd
            not_accepted += 1;
            continue;
        }
        let mut answer = checker.cluster.query(0, &db, READ_BACK);
        // Seen once in CI (a line written with a 204 and, right after, not in `SELECT *`; the
        // same line was found in every other run): nothing found at all is asked again, a
        // bounded number of times, before it counts as not stored. Counted and printed.
        for _ in 0..RE_READS {
            if !answer["results"][0]["series"]
                .as_array()
                .is_none_or(|series| series.is_empty())
            {
                break;
            }
            re_read += 1;
            std::thread::sleep(std::time::Duration::from_millis(200));
            answer = checker.cluster.query(0, &db, READ_BACK);
        }
        compared += 1;
        if let Some(m) = stored_mismatch(&point, line.timestamp_nanos(), &answer) {
            mismatches.push(format!("{}: {}: {m}", probe.origin, show(&probe.bytes)));
        }
    }
    println!(
        "stored values: {compared} lines compared, {} differ, {skipped_name_clash} skipped (tag/field name clash), \
         {not_accepted} not accepted, {re_read} empty answer(s) asked again",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "influxd stored something else than our parser read for {} line(s):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
