//! The example configs in `config/` (what `make run` uses) load, validate and mean what their
//! comments say, including the commented second group once uncommented.

use std::path::PathBuf;

use monitor::config::{ApiConfig, load_alert_manager_config, load_api_config};
use monitor::shard::ShardMap;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn monitor_api_example_has_the_three_local_replicas() {
    let config = load_api_config(example("monitor-api.yaml")).unwrap();
    assert_eq!(config.listen, "127.0.0.1:8186");
    let g1 = config.groups.get("g1").unwrap();
    let urls: Vec<&str> = g1.replicas.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:18086",
            "http://127.0.0.1:18087",
            "http://127.0.0.1:18088"
        ]
    );
    assert!(!g1.replicated);
    assert_eq!(config.alert_managers, ["http://127.0.0.1:9193"]);
    assert_eq!(
        config.rules_file.as_deref(),
        Some(std::path::Path::new("config/rules.yaml"))
    );
    assert_eq!(config.open_access, Some(true));
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(map.route_group(b"cluster1").unwrap().name, "g1");
    assert_eq!(
        map.route_group(b"anything").unwrap().name,
        "g1",
        "default_group"
    );
}

#[test]
fn monitor_api_example_states_every_default() {
    let example = load_api_config(example("monitor-api.yaml")).unwrap();
    let minimal = ApiConfig::from_yaml_str(
        "groups:\n  g1:\n    replicas: [{url: \"http://a\"}, {url: \"http://b\"}]\n",
        "minimal.yaml",
    )
    .unwrap();
    assert_eq!(
        example.limits, minimal.limits,
        "comments say these are the defaults"
    );
    assert_eq!(example.queue, minimal.queue);
    assert_eq!(example.sender, minimal.sender);
    assert_eq!(example.backend, minimal.backend);
    assert_eq!(example.log, minimal.log);
    assert_eq!(example.host_active_window, minimal.host_active_window);
    assert_eq!(example.data_dir, minimal.data_dir);
}

#[test]
fn the_commented_second_group_is_valid_once_uncommented() {
    let source = std::fs::read_to_string(example("monitor-api.yaml")).unwrap();
    let mut in_g2 = false;
    let uncommented: String = source
        .lines()
        .map(|line| {
            if line.starts_with("  # g2:") {
                in_g2 = true;
            } else if !line.starts_with("  #") {
                in_g2 = false;
            }
            let pattern_line =
                line.starts_with("  # \"cluster*\"") || line.starts_with("  # \"/^eu-/\"");
            if in_g2 || pattern_line {
                format!("  {}\n", &line[4..])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(uncommented.contains("\n  g2:\n"), "{uncommented}");
    let config = ApiConfig::from_yaml_str(&uncommented, "uncommented.yaml").unwrap();
    let g2 = config.groups.get("g2").unwrap();
    assert_eq!(g2.replicas.len(), 2);
    assert_eq!(g2.replicas[1].org.as_deref(), Some("ops"));
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(map.route_group(b"cluster1").unwrap().name, "g1");
    assert_eq!(map.route_group(b"cluster2").unwrap().name, "g2");
    assert_eq!(map.route_group(b"eu-west").unwrap().name, "g2");
    assert_eq!(map.route_group(b"other").unwrap().name, "g1");
}

#[test]
fn alert_manager_example_loads() {
    let config = load_alert_manager_config(example("alert-manager.yaml")).unwrap();
    assert_eq!(config.listen, "127.0.0.1:9193");
    assert_eq!(config.monitor_api, ["http://127.0.0.1:8186"]);
    assert_eq!(config.reissue_duration.get().as_secs(), 3600);
    assert_eq!(config.success_duration.get().as_secs(), 600);
    assert_eq!(config.occurrences.count, 1);
    assert_eq!(config.occurrences.window.get().as_secs(), 300);
    assert_eq!(config.receivers.len(), 2);
    assert_eq!(config.routes[0].receiver, "ops-mail");
    assert!(config.routes[0].continue_matching);
}

#[test]
fn rules_example_has_the_design_rules() {
    let text = std::fs::read_to_string(example("rules.yaml")).unwrap();
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let rules = value["rules"].as_sequence().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["HighMem", "Panic"]);
    assert_eq!(rules[0]["op"].as_str(), Some(">"));
}

#[test]
fn check_config_tells_the_kinds_apart_and_uses_the_real_loaders() {
    use monitor::config::{ConfigKind, check_config_file};
    let api = check_config_file(example("monitor-api.yaml"), None).unwrap();
    assert_eq!(api.kind, ConfigKind::Api);
    assert!(
        api.warnings.iter().any(|w| w.starts_with("open access")),
        "{:?}",
        api.warnings
    );
    let am = check_config_file(example("alert-manager.yaml"), None).unwrap();
    assert_eq!(am.kind, ConfigKind::AlertManager);
    assert!(am.warnings.is_empty(), "{:?}", am.warnings);
    let rules = check_config_file(example("rules.yaml"), None).unwrap();
    assert_eq!(rules.kind, ConfigKind::Rules);

    let error = check_config_file(example("rules.yaml"), Some(ConfigKind::Api)).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `rules`"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("x.yaml");
    std::fs::write(&unknown, "hello: world\n").unwrap();
    let error = check_config_file(&unknown, None).unwrap_err();
    assert!(
        error.to_string().contains("cannot tell which program"),
        "{error}"
    );
}
