//! Every refusal of a config file, with its exact message: file, line, key path, reason.

use monitor::config::{AlertManagerConfig, ApiConfig, ConfigError, load_api_config};

const GROUP: &str = r#"groups:
  g1:
    replicas:
      - url: "http://127.0.0.1:18086"
      - url: "http://127.0.0.1:18087"
"#;

fn api_error(yaml: &str) -> String {
    match ApiConfig::from_yaml_str(yaml, "api.yaml") {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error.to_string(),
    }
}

/// GROUP followed by `tail`; GROUP is 5 lines, so `tail` starts at line 6.
fn api_error_after_group(tail: &str) -> String {
    api_error(&format!("{GROUP}{tail}"))
}

fn alert_error(yaml: &str) -> String {
    match AlertManagerConfig::from_yaml_str(yaml, "am.yaml") {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn minimal_config_gets_every_default() {
    let config = ApiConfig::from_yaml_str(GROUP, "api.yaml").unwrap();
    assert_eq!(config.listen, "127.0.0.1:8186");
    assert_eq!(config.data_dir.to_str(), Some("./data/api"));
    assert_eq!(config.index_tag, "index");
    assert_eq!(config.consistency.as_str(), "quorum");
    assert_eq!(config.default_group, None);
    assert_eq!(config.limits.max_body_bytes.get(), 32 << 20);
    assert_eq!(config.limits.max_decompressed_bytes.get(), 128 << 20);
    assert_eq!(config.queue.max_bytes.get(), 1 << 30);
    assert_eq!(config.sender.batch_max_lines, 5000);
    assert_eq!(config.sender.batch_max_wait.get().as_millis(), 100);
    assert_eq!(config.host_active_window.get().as_secs(), 300);
    assert!(config.create_database);
    assert!(config.is_open_access());
    assert_eq!(config.log_measurement, "log");
    assert_eq!(config.tracelog_measurement, "tracelog");
    assert_eq!(config.trace_id_tag, "traceid");
    let classifier = config.classifier();
    assert_eq!(classifier.index_tag, b"index");
    assert_eq!(classifier.log_measurement, b"log");
    assert_eq!(classifier.tracelog_measurement, b"tracelog");
    assert_eq!(classifier.trace_id_tag, b"traceid");
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let error = api_error("groups:\n  g1:\n   replicas: [\n  - x\n");
    assert_eq!(
        error,
        "api.yaml:4:3: did not find expected node content, while parsing a flow node"
    );
    let error = api_error("listen: \"unterminated\ngroups: {}\n");
    assert!(error.starts_with("api.yaml:"), "{error}");
    assert!(error.contains("found unexpected end of stream"), "{error}");
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key_and_line() {
    assert_eq!(
        api_error("groups:\n  g1:\n    replica:\n      - url: http://a\n"),
        "api.yaml:3:5: groups.g1: unknown field `replica`, expected `replicas` or `replicated`"
    );
    assert_eq!(
        api_error_after_group("lsiten: \"127.0.0.1:1\"\n")
            .lines()
            .next()
            .unwrap_or_default(),
        "api.yaml:6:1: unknown field `lsiten`, expected one of `listen`, `data_dir`, `index_tag`, `consistency`, `groups`, `indexes`, `default_group`, `alert_managers`, `rules_file`, `log_measurement`, `tracelog_measurement`, `trace_id_tag`, `create_database`, `host_active_window`, `limits`, `queue`, `sender`, `backend`, `tokens`, `open_access`, `log`, `search`, `query`, `rules`, `derived`"
    );
    assert_eq!(
        api_error("groups:\n  g1:\n    replicas:\n      - url: http://a\n        dialect: v3\n"),
        "api.yaml:5:18: groups.g1.replicas[0].dialect: unknown variant `v3`, expected `v1` or `v2`"
    );
    assert_eq!(
        api_error_after_group("consistency: most\n"),
        "api.yaml:6:14: consistency: unknown variant `most`, expected one of `any`, `one`, `quorum`, `all`"
    );
    assert_eq!(
        api_error("listen: \"x:1\"\n"),
        "api.yaml:1:1: missing field `groups`"
    );
    assert_eq!(
        api_error_after_group("indexes:\n  a: g1\n  b: g1\n  a: g1\n"),
        "api.yaml:9: indexes: duplicate key \"a\""
    );
    assert_eq!(
        api_error("listen: \"127.0.0.1:1\"\nlisten: \"127.0.0.1:2\"\n"),
        "api.yaml:2: duplicate field `listen`"
    );
    assert_eq!(
        api_error(
            "groups:\n  g1:\n    replicas:\n      - url: \"http://a\"\n        url: \"http://b\"\n"
        ),
        "api.yaml:5: groups.g1.replicas[0]: duplicate field `url`"
    );
}

#[test]
fn durations_and_sizes_are_checked_while_parsing() {
    assert_eq!(
        api_error_after_group("host_active_window: 10\n"),
        "api.yaml:6:21: host_active_window: invalid duration \"10\": expected integers with units ms, s, m, h, d or w, e.g. \"150ms\", \"10m\", \"1h30m\""
    );
    assert_eq!(
        api_error_after_group("queue:\n  fsync_interval: 1.5s\n"),
        "api.yaml:7:19: queue.fsync_interval: invalid duration \"1.5s\": expected integers with units ms, s, m, h, d or w, e.g. \"150ms\", \"10m\", \"1h30m\""
    );
    assert_eq!(
        api_error_after_group("limits:\n  max_body_bytes: 12 parsecs\n"),
        "api.yaml:7:19: limits.max_body_bytes: invalid byte size \"12 parsecs\": expected an integer with an optional unit B, KB, MB, GB, KiB, MiB or GiB, e.g. \"32MiB\""
    );
    let config = ApiConfig::from_yaml_str(
        &format!("{GROUP}sender:\n  batch_max_wait: 150ms\n"),
        "api.yaml",
    )
    .unwrap();
    assert_eq!(config.sender.batch_max_wait.get().as_millis(), 150);
}

#[test]
fn bad_urls_are_refused_at_their_line() {
    let yaml = r#"groups:
  g1:
    replicas:
      - url: "http://127.0.0.1:18086"
      - url: "htp:/x"
      - url: "http://127.0.0.1:18086/"
"#;
    assert_eq!(
        api_error(yaml),
        "api.yaml:5: groups.g1.replicas[1].url: invalid URL \"htp:/x\": the scheme must be http or https\n\
         api.yaml:6: groups.g1.replicas[2].url: duplicate of replicas[0].url \"http://127.0.0.1:18086/\""
    );
    let yaml =
        "groups:\n  g1:\n    replicas:\n      - url: \"http://a\"\n      - url: \"not a url\"\n";
    assert_eq!(
        api_error(yaml),
        "api.yaml:5: groups.g1.replicas[1].url: invalid URL \"not a url\": relative URL without a base (expected e.g. \"http://host:port\")"
    );
    let yaml = "groups:\n  g1:\n    replicas:\n      - url: \"http://a?db=x\"\n      - url: \"http://u:pw@b\"\n";
    assert_eq!(
        api_error(yaml),
        "api.yaml:4: groups.g1.replicas[0].url: invalid URL \"http://a?db=x\": must not carry a query or fragment\n\
         api.yaml:5: groups.g1.replicas[1].url: invalid URL: put credentials in username/password or token, not in the URL"
    );
    assert_eq!(
        api_error_after_group("alert_managers: [\"http://127.0.0.1:9193\", \"127.0.0.1:9193\"]\n"),
        "api.yaml:6: alert_managers[1]: invalid URL \"127.0.0.1:9193\": relative URL without a base (expected e.g. \"http://host:port\")"
    );
}

#[test]
fn replica_counts() {
    assert_eq!(
        api_error("groups:\n  g1:\n    replicas:\n      - url: \"http://a\"\n"),
        "api.yaml:3: groups.g1.replicas: a group needs 2 or 3 replicas; got 1 (set `replicated: true` if the backend replicates itself)"
    );
    assert_eq!(
        api_error("groups:\n  g1:\n    replicas: []\n"),
        "api.yaml:3: groups.g1.replicas: a group needs 2 or 3 replicas; got none"
    );
    assert_eq!(
        api_error(
            "groups:\n  g1:\n    replicas: [{url: \"http://a\"}, {url: \"http://b\"}, {url: \"http://c\"}, {url: \"http://d\"}]\n"
        ),
        "api.yaml:3: groups.g1.replicas: a group needs 2 or 3 replicas; got 4"
    );
    assert_eq!(
        api_error("groups: {}\n"),
        "api.yaml:1: groups: at least one group is needed"
    );
    let single = "groups:\n  g1:\n    replicated: true\n    replicas:\n      - url: \"http://a\"\n";
    assert!(ApiConfig::from_yaml_str(single, "api.yaml").is_ok());
}

#[test]
fn group_and_replica_names() {
    assert_eq!(
        api_error(
            "groups:\n  \"g/1\":\n    replicas: [{url: \"http://a\"}, {url: \"http://b\"}]\n"
        ),
        "api.yaml:2: groups.\"g/1\": group names may use only letters, digits, '_' and '-' (they name directories in data_dir); got \"g/1\""
    );
    assert_eq!(
        api_error(
            "groups:\n  g1:\n    replicas:\n      - url: \"http://a\"\n        name: \"a b\"\n      - url: \"http://b\"\n"
        ),
        "api.yaml:5: groups.g1.replicas[0].name: replica names may use only letters, digits, '.', '_' and '-'; got \"a b\""
    );
}

#[test]
fn dialect_specific_keys() {
    let yaml = r#"groups:
  g1:
    replicas:
      - url: "http://a"
        org: ops
        username: u
      - url: "http://b"
        dialect: v2
        database: metrics
      - url: "http://c"
        password: p
"#;
    assert_eq!(
        api_error(yaml),
        "api.yaml:5: groups.g1.replicas[0].org: `org` applies to dialect v2 only (this replica is v1)\n\
         api.yaml:6: groups.g1.replicas[0].username: `username` needs `password`\n\
         api.yaml:7: groups.g1.replicas[1]: dialect v2 needs `org`\n\
         api.yaml:9: groups.g1.replicas[1].database: `database` applies to dialect v1 only (this replica is v2)\n\
         api.yaml:11: groups.g1.replicas[2].password: `password` needs `username`"
    );
    let yaml = "groups:\n  g1:\n    replicas:\n      - url: \"http://a\"\n        database: \"\"\n      - url: \"http://b\"\n        database: {telegraf: \"\"}\n";
    assert_eq!(
        api_error(yaml),
        "api.yaml:5: groups.g1.replicas[0].database: must not be empty (leave the key out to pass the client's db through)\n\
         api.yaml:7: groups.g1.replicas[1].database.telegraf: database names must not be empty"
    );
}

#[test]
fn indexes_and_default_group() {
    let tail = "indexes:\n  cluster1: g1\n  \"eu-*\": g2\n  \"/^(eu/\": g1\ndefault_group: g9\n";
    assert_eq!(
        api_error_after_group(tail),
        "api.yaml:8: indexes.\"eu-*\": unknown group \"g2\" (groups: g1)\n\
         api.yaml:9: indexes.\"/^(eu/\": invalid regular expression \"/^(eu/\": error: unclosed group\n\
         api.yaml:10: default_group: unknown group \"g9\" (groups: g1)"
    );
}

#[test]
fn top_level_scalars() {
    let tail = r#"listen: "8186"
data_dir: ""
index_tag: "my index"
rules_file: ""
log_measurement: ""
tracelog_measurement: ""
trace_id_tag: index
host_active_window: 0s
log:
  level: ""
"#;
    assert_eq!(
        api_error_after_group(tail),
        "api.yaml:6: listen: expected \"host:port\", e.g. \"127.0.0.1:8186\"; got \"8186\"\n\
         api.yaml:7: data_dir: must not be empty\n\
         api.yaml:8: index_tag: must be a non-empty tag key without spaces, commas, '=' or quotes; got \"my index\"\n\
         api.yaml:9: rules_file: must not be empty (leave the key out for no rules)\n\
         api.yaml:10: log_measurement: must not be empty\n\
         api.yaml:11: tracelog_measurement: must not be empty\n\
         api.yaml:13: host_active_window: must be longer than 0s\n\
         api.yaml:15: log.level: must not be empty, e.g. \"info\""
    );
    assert_eq!(
        api_error_after_group(
            "log_measurement: ev\ntracelog_measurement: ev\ntrace_id_tag: index\n"
        ),
        "api.yaml:7: tracelog_measurement: must differ from log_measurement (both are \"ev\")\n\
         api.yaml:8: trace_id_tag: must differ from index_tag (both are \"index\")"
    );
}

#[test]
fn limits_queue_sender_backend() {
    let tail = r#"limits:
  max_body_bytes: 64MiB
  max_decompressed_bytes: 32MiB
  max_line_bytes: 0
queue:
  fsync: interval
  fsync_interval: 0ms
  max_bytes: 1MiB
  segment_bytes: 64MiB
  max_age: 0s
sender:
  batch_max_lines: 0
  batch_max_bytes: 0
  retry_backoff_min: 1s
  retry_backoff_max: 500ms
backend:
  timeout: 0s
"#;
    assert_eq!(
        api_error_after_group(tail),
        "api.yaml:8: limits.max_decompressed_bytes: must be at least limits.max_body_bytes (64MiB)\n\
         api.yaml:9: limits.max_line_bytes: must be greater than 0\n\
         api.yaml:12: queue.fsync_interval: must be longer than 0s with fsync: interval\n\
         api.yaml:13: queue.max_bytes: must be at least queue.segment_bytes (64MiB)\n\
         api.yaml:15: queue.max_age: must be longer than 0s (leave the key out for no age cap)\n\
         api.yaml:17: sender.batch_max_lines: must be greater than 0\n\
         api.yaml:18: sender.batch_max_bytes: must be greater than 0\n\
         api.yaml:20: sender.retry_backoff_max: must be at least sender.retry_backoff_min (1s)\n\
         api.yaml:22: backend.timeout: must be longer than 0s"
    );
}

#[test]
fn tokens_and_open_access() {
    let tail = r#"tokens:
  - token: "t1"
    write: ["cluster*"]
  - token: "t1"
    read: ["/(/"]
  - token: ""
    admin: true
  - token: "t3"
open_access: true
"#;
    assert_eq!(
        api_error_after_group(tail),
        "api.yaml:9: tokens[1].token: duplicate of tokens[0].token\n\
         api.yaml:10: tokens[1].read[0]: invalid regular expression \"/(/\": error: unclosed group\n\
         api.yaml:11: tokens[2].token: must not be empty\n\
         api.yaml:13: tokens[3]: grants nothing: give it `write`, `read` or `admin: true`\n\
         api.yaml:14: open_access: `open_access: true` contradicts the configured tokens; remove one or the other"
    );
    assert_eq!(
        api_error_after_group("open_access: false\n"),
        "api.yaml:6: open_access: `open_access: false` needs at least one entry in `tokens`"
    );
    let error = api_error_after_group(
        "tokens:\n  - token: \"supersecret\"\n  - token: \"supersecret\"\n    write: [\"*\"]\n",
    );
    assert!(
        !error.contains("supersecret"),
        "a secret leaked into: {error}"
    );
}

#[test]
fn problems_are_structured_too() {
    let error =
        ApiConfig::from_yaml_str(&format!("{GROUP}default_group: nope\n"), "api.yaml").unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path.to_string(), "default_group");
    assert_eq!(problems[0].line, Some(6));
}

#[test]
fn unreadable_file_names_the_file() {
    let error = load_api_config("/nonexistent/monitor-api.yaml").unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/monitor-api.yaml: cannot read config file: "),
        "{error}"
    );
}

#[test]
fn alert_manager_minimal_defaults() {
    let config = AlertManagerConfig::from_yaml_str("{}\n", "am.yaml").unwrap();
    assert_eq!(config.listen, "127.0.0.1:9193");
    assert_eq!(config.reissue_duration.get().as_secs(), 3600);
    assert_eq!(config.success_duration.get().as_secs(), 600);
    assert_eq!(config.occurrences.count, 1);
    assert_eq!(config.occurrences.window.get().as_secs(), 300);
}

#[test]
fn alert_manager_refusals() {
    let yaml = r#"listen: "nowhere"
monitor_api: ["ftp://x"]
reissue_duration: 0s
occurrences: { count: 0, window: "0s" }
receivers:
  - name: a
  - name: a
    email:
      to: ["nobody"]
      from: "m@example.com"
      smarthost: "localhost"
    webhook:
      url: "http//x"
routes:
  - receiver: b
    matchers: ['severity="critical"', 'oops', 'host=~"("']
default_receiver: c
outbox:
  retry_backoff_min: 10s
  retry_backoff_max: 1s
"#;
    assert_eq!(
        alert_error(yaml),
        "am.yaml:1: listen: expected \"host:port\", e.g. \"127.0.0.1:9193\"; got \"nowhere\"\n\
         am.yaml:2: monitor_api[0]: invalid URL \"ftp://x\": the scheme must be http or https\n\
         am.yaml:3: reissue_duration: must be longer than 0s\n\
         am.yaml:4: occurrences.count: must be at least 1\n\
         am.yaml:4: occurrences.window: must be longer than 0s\n\
         am.yaml:6: receivers[0]: delivers nowhere: give it `email`, `webhook` or `chat`\n\
         am.yaml:7: receivers[1].name: duplicate of receivers[0].name \"a\"\n\
         am.yaml:9: receivers[1].email.to[0]: not an email address: \"nobody\"\n\
         am.yaml:11: receivers[1].email.smarthost: expected \"host:port\"; got \"localhost\"\n\
         am.yaml:13: receivers[1].webhook.url: invalid URL \"http//x\": relative URL without a base (expected e.g. \"http://host:port\")\n\
         am.yaml:15: routes[0].receiver: unknown receiver \"b\" (receivers: a, a)\n\
         am.yaml:16: routes[0].matchers[1]: invalid matcher \"oops\": expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\"\n\
         am.yaml:16: routes[0].matchers[2]: invalid matcher \"host=~\\\"(\\\"\": bad regex: error: unclosed group\n\
         am.yaml:17: default_receiver: unknown receiver \"c\" (receivers: a, a)\n\
         am.yaml:20: outbox.retry_backoff_max: must be at least outbox.retry_backoff_min (10s)"
    );
    assert_eq!(
        alert_error("occurrences: { count: 2, window: 5 }\n"),
        "am.yaml:1:34: occurrences.window: invalid duration \"5\": expected integers with units ms, s, m, h, d or w, e.g. \"150ms\", \"10m\", \"1h30m\""
    );
}

#[test]
fn matchers_match_like_alertmanager() {
    use monitor::config::Matcher;
    let equal = Matcher::parse("severity=\"critical\"").unwrap();
    assert!(equal.matches(Some("critical")));
    assert!(!equal.matches(Some("warning")));
    let regex = Matcher::parse("index=~\"eu-.*\"").unwrap();
    assert!(regex.matches(Some("eu-west")));
    assert!(!regex.matches(Some("us-eu-west")), "regexes are anchored");
    let not_equal = Matcher::parse("host!=h1").unwrap();
    assert!(not_equal.matches(None));
    assert!(!not_equal.matches(Some("h1")));
    let not_regex = Matcher::parse("alertname!~\"Test.*\"").unwrap();
    assert!(!not_regex.matches(Some("TestAlert")));
    assert!(not_regex.matches(Some("HighMem")));
}

#[test]
fn warnings_and_restart_only_keys() {
    let yaml = r#"listen: "0.0.0.0:8186"
groups:
  g1:
    replicas: [{url: "http://a:8086"}, {url: "http://b:8086"}]
  g2:
    replicas: [{url: "http://a:8086/"}, {url: "http://c:8086"}]
"#;
    let config = ApiConfig::from_yaml_str(yaml, "api.yaml").unwrap();
    assert_eq!(
        config.warnings(),
        [
            "open access on a non-loopback address (0.0.0.0:8186): no tokens are configured, anyone who can reach it may read and write every index",
            "replica http://a:8086/ is in groups g1 and g2: both groups write the same backend",
        ]
    );
    let mut changed = config.clone();
    changed.listen = "127.0.0.1:9999".to_owned();
    changed.queue.max_bytes = monitor::config::ByteSize(2 << 30);
    changed.default_group = Some("g1".to_owned());
    assert_eq!(config.restart_required(&changed), ["listen", "queue"]);
    assert!(config.restart_required(&config).is_empty());
}

#[test]
fn lines_are_found_through_crlf_document_markers_and_comments() {
    let yaml = "---\r\n# comment\r\ngroups:\r\n  g1:   # the first group\r\n\r\n    replicas:\r\n    # between\r\n    - url: \"http://a\"\r\n    - url: \"http://b\"\r\n      dialect: v2\r\n";
    assert_eq!(
        api_error(yaml),
        "api.yaml:9: groups.g1.replicas[1]: dialect v2 needs `org`"
    );
}

#[test]
fn check_config_applies_every_rule_check_to_a_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(
        &path,
        "rules:\n  - name: HighMem\n    kind: threshold\n    measurement: mem\n    field: used\n    op: \">>\"\n    value: 90\n",
    )
    .unwrap();
    let error = monitor::config::check_config_file(&path, None)
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(
            "rules.yaml:6: rules[0].op: unknown operator \">>\": use >, >=, <, <=, == or !="
        ),
        "{error}"
    );
}
