//! The inputs the rules benchmarks share (`benches/rules.rs`, `benches/rules_e2e.rs`), so both
//! measure the same mix: 1,000-line write requests (70% metrics over 20 measurements with 6 tags
//! and 4 fields, 30% logs with a ~170-byte `msg`, ~1% of the logs carrying a keyword) and N rules
//! (half threshold over 100 measurements with tag matchers on half of them, half keyword with
//! two keywords each, half of those case-insensitive). It must never depend on the clock or on
//! the machine: the same seed gives the same bytes.

/// Lines per write request.
pub const LINES: usize = 1000;

/// A lowercase word of 6 to 10 letters, the same for the same seed.
pub fn word(seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let len = rng.usize(6..11);
    (0..len).map(|_| rng.lowercase()).collect()
}

/// `n` rules as items of a YAML `rules:` list (without the `rules:` line).
pub fn rule_items_yaml(n: usize) -> String {
    let mut yaml = String::new();
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
    yaml
}

/// One write request of [`LINES`] lines drawn from `seed`; with `first_timestamp_ns` the lines
/// carry timestamps 1 ms apart from it, without it the proxy stamps them.
pub fn write_body(seed: u64, first_timestamp_ns: Option<u64>) -> String {
    let mut body = String::with_capacity(LINES * 200);
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..LINES {
        if i % 10 < 7 {
            body.push_str(&format!(
                "m{},index=cluster1,host=host{},region=eu-west-1,dc=dc{},service=svc{},env=prod usage={:.2},free={}i,load={:.3},count={}i",
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
                "log,index=cluster1,source=api,host=host{},level=info msg=\"request {i} handled: GET /api/v1/resources/{} returned 200 after {}ms; upstream shard g1 replica 2 acknowledged the batch {alarm}\"",
                i % 100,
                i * 31,
                i % 50,
            ));
        }
        if let Some(first) = first_timestamp_ns {
            body.push_str(&format!(" {}", first + i as u64 * 1_000_000));
        }
        body.push('\n');
    }
    body
}
