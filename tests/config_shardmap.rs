//! The shard map: routing, versions, persistence, reload, snapshots across swaps, access control.

use std::sync::Arc;

use monitor::config::{ApiConfig, Consistency, GroupConfig, OrderedMap, ReplicaConfig};
use monitor::shard::{
    Access, AccessError, Action, MapSource, REDACTED, ReloadOutcome, RouteError, SHARDMAP_FILE,
    ShardMap, ShardMapDoc, ShardMapError, ShardMapStore, extract_token,
};

fn group(urls: &[&str]) -> GroupConfig {
    GroupConfig {
        replicas: urls.iter().map(|url| ReplicaConfig::v1(*url)).collect(),
        replicated: false,
    }
}

/// g1 (3 replicas), g2, g3; cluster1 -> g1 exact, patterns cluster* -> g2, /^eu-/ -> g3,
/// then "clusterX" -> g3 exact.
fn config() -> ApiConfig {
    let groups: OrderedMap<GroupConfig> = [
        (
            "g1",
            group(&[
                "http://127.0.0.1:18086",
                "http://127.0.0.1:18087",
                "http://127.0.0.1:18088",
            ]),
        ),
        (
            "g2",
            group(&["http://127.0.0.1:28086", "http://127.0.0.1:28087"]),
        ),
        (
            "g3",
            group(&["http://127.0.0.1:38086", "http://127.0.0.1:38087"]),
        ),
    ]
    .into_iter()
    .collect();
    let mut config = ApiConfig::with_groups(groups);
    config.indexes = [
        ("cluster1", "g1"),
        ("cluster*", "g2"),
        ("/^eu-/", "g3"),
        ("clusterX", "g3"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    config.validate().unwrap();
    config
}

fn group_name(map: &ShardMap, index: &str) -> Result<String, RouteError> {
    map.route_group(index.as_bytes()).map(|g| g.name.clone())
}

#[test]
fn routes_exact_then_patterns_in_order_then_default() {
    let mut config = config();
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(
        group_name(&map, "cluster1").unwrap(),
        "g1",
        "exact beats the cluster* pattern"
    );
    assert_eq!(
        group_name(&map, "clusterX").unwrap(),
        "g3",
        "exact, though listed after a pattern"
    );
    assert_eq!(group_name(&map, "cluster7").unwrap(), "g2");
    assert_eq!(group_name(&map, "eu-west").unwrap(), "g3");
    assert_eq!(
        map.route(b"us-east"),
        Err(RouteError::UnknownIndex("us-east".to_owned()))
    );
    assert_eq!(
        map.route(b"us-east").unwrap_err().to_string(),
        "unknown index \"us-east\": no group is configured for it and there is no default_group"
    );

    config.default_group = Some("g2".to_owned());
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(group_name(&map, "us-east").unwrap(), "g2");
    assert_eq!(
        group_name(&map, "eu-west").unwrap(),
        "g3",
        "a pattern beats the default"
    );
}

#[test]
fn first_matching_pattern_in_config_order_wins() {
    let mut config = config();
    config.indexes = [("eu-*", "g1"), ("/^eu-w/", "g2"), ("*", "g3")]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(group_name(&map, "eu-west").unwrap(), "g1");
    assert_eq!(
        group_name(&map, "anything").unwrap(),
        "g3",
        "`*` catches the rest"
    );

    config.indexes = [("/^eu-w/", "g2"), ("eu-*", "g1")]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    let map = ShardMap::from_config(&config, 1).unwrap();
    assert_eq!(group_name(&map, "eu-west").unwrap(), "g2");
    assert_eq!(group_name(&map, "eu-east").unwrap(), "g1");
}

#[test]
fn groups_expose_replicas_with_ids_in_config_order() {
    let map = ShardMap::from_config(&config(), 1).unwrap();
    let g1 = map.route_group(b"cluster1").unwrap();
    let ids: Vec<&str> = g1.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["127.0.0.1:18086", "127.0.0.1:18087", "127.0.0.1:18088"]
    );
    assert_eq!(map.group(g1.id).name, "g1");
    assert_eq!(map.group_by_name("g2").unwrap().replicas.len(), 2);
    assert_eq!(map.groups().len(), 3);
}

#[test]
fn database_mapping_and_consistency() {
    let yaml = r#"groups:
  g1:
    replicas:
      - url: "http://a"
      - url: "http://b"
        database: fixed
      - url: "http://c"
        database: {telegraf: tg_prod}
"#;
    let config = ApiConfig::from_yaml_str(yaml, "api.yaml").unwrap();
    let replicas = &config.groups.get("g1").unwrap().replicas;
    assert_eq!(replicas[0].backend_database("telegraf"), "telegraf");
    assert_eq!(replicas[1].backend_database("telegraf"), "fixed");
    assert_eq!(replicas[2].backend_database("telegraf"), "tg_prod");
    assert_eq!(replicas[2].backend_database("other"), "other");

    assert_eq!(Consistency::Any.required_acks(3), 0);
    assert_eq!(Consistency::One.required_acks(3), 1);
    assert_eq!(Consistency::Quorum.required_acks(3), 2);
    assert_eq!(Consistency::Quorum.required_acks(2), 2);
    assert_eq!(Consistency::All.required_acks(3), 3);
    assert_eq!("quorum".parse::<Consistency>(), Ok(Consistency::Quorum));
    assert!("most".parse::<Consistency>().is_err());
}

fn doc_moving_cluster1_to_g2(store: &ShardMapStore) -> ShardMapDoc {
    let mut doc = store.snapshot().doc().clone();
    doc.indexes.insert("cluster1", "g2".to_owned());
    doc
}

#[test]
fn a_snapshot_held_across_a_swap_routes_the_old_way() {
    let store = ShardMapStore::in_memory(&config()).unwrap();
    let before = store.snapshot();
    let after = store.replace(doc_moving_cluster1_to_g2(&store)).unwrap();
    assert_eq!(group_name(&before, "cluster1").unwrap(), "g1");
    assert_eq!(before.version(), 1);
    assert_eq!(group_name(&after, "cluster1").unwrap(), "g2");
    assert_eq!(group_name(&store.snapshot(), "cluster1").unwrap(), "g2");
    assert!(Arc::ptr_eq(&after, &store.snapshot()));
}

#[test]
fn versions_increment_on_change_only_and_guard_concurrent_puts() {
    let store = ShardMapStore::in_memory(&config()).unwrap();
    assert_eq!(store.snapshot().version(), 1);
    let mut doc = doc_moving_cluster1_to_g2(&store);
    doc.version = Some(1);
    assert_eq!(store.replace(doc.clone()).unwrap().version(), 2);

    // The same document again is no change.
    doc.version = None;
    assert_eq!(store.replace(doc.clone()).unwrap().version(), 2);

    // Based on a stale version: refused, nothing changes.
    doc.version = Some(1);
    doc.indexes.insert("cluster1", "g3".to_owned());
    let error = store.replace(doc).unwrap_err();
    assert!(matches!(
        error,
        ShardMapError::VersionConflict {
            expected: 1,
            current: 2
        }
    ));
    assert_eq!(error.http_status(), 409);
    assert_eq!(
        error.to_string(),
        "version conflict: the request is based on version 1, the current version is 2"
    );
    assert_eq!(group_name(&store.snapshot(), "cluster1").unwrap(), "g2");
}

#[test]
fn an_invalid_put_is_refused_with_key_paths_and_changes_nothing() {
    let store = ShardMapStore::in_memory(&config()).unwrap();
    let body = br#"{"groups": {"g1": {"replicas": [{"url": "http://a"}, {"url": "htp:/x"}]}},
                    "indexes": {"cluster1": "g9"}}"#;
    let doc = ShardMapDoc::from_json(body).unwrap();
    let error = store.replace(doc).unwrap_err();
    assert_eq!(error.http_status(), 400);
    assert_eq!(
        error.to_string(),
        "invalid shard map:\n\
         groups.g1.replicas[1].url: invalid URL \"htp:/x\": the scheme must be http or https\n\
         indexes.cluster1: unknown group \"g9\" (groups: g1)"
    );
    assert_eq!(store.snapshot().version(), 1);

    let typo = ShardMapDoc::from_json(br#"{"groups": {}, "indexs": {}}"#).unwrap_err();
    assert!(
        typo.to_string().starts_with("unknown field `indexs`"),
        "{typo}"
    );
}

#[test]
fn json_round_trip_of_the_document() {
    let store = ShardMapStore::in_memory(&config()).unwrap();
    let json = serde_json::to_vec(store.snapshot().doc()).unwrap();
    let doc = ShardMapDoc::from_json(&json).unwrap();
    assert_eq!(doc.version, Some(1));
    assert_eq!(&doc, store.snapshot().doc());
    let keys: Vec<&str> = doc.indexes.keys().collect();
    assert_eq!(
        keys,
        ["cluster1", "cluster*", "/^eu-/", "clusterX"],
        "order is kept"
    );
}

#[test]
fn secrets_are_redacted_and_a_put_of_the_redacted_doc_keeps_them() {
    let mut config = config();
    let replica = &mut config.groups.get_mut("g2").unwrap().replicas[0];
    replica.username = Some("writer".to_owned());
    replica.password = Some("hunter2".to_owned());
    let store = ShardMapStore::in_memory(&config).unwrap();

    let mut shown = store.snapshot().doc().redacted();
    let json = serde_json::to_string(&shown).unwrap();
    assert!(!json.contains("hunter2"));
    assert!(json.contains(REDACTED));

    shown.indexes.insert("new-index", "g2".to_owned());
    let updated = store.replace(shown.clone()).unwrap();
    let kept = &updated.group_by_name("g2").unwrap().replicas[0].config;
    assert_eq!(kept.password.as_deref(), Some("hunter2"));

    // A placeholder on a replica that had no secret cannot be resolved.
    let mut bad = shown;
    bad.version = None;
    bad.groups.get_mut("g2").unwrap().replicas[1].username = Some("u".to_owned());
    bad.groups.get_mut("g2").unwrap().replicas[1].password = Some(REDACTED.to_owned());
    let error = store.replace(bad).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid shard map:\ngroups.g2.replicas[1].password: \"<redacted>\" stands for the current secret, but no current replica with this URL in this group has one"
    );
}

#[test]
fn persistence_round_trip_and_which_map_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.data_dir = dir.path().join("api");
    let file = config.data_dir.join(SHARDMAP_FILE);

    // First start: the config's map, version 1, written to disk.
    let store = ShardMapStore::open(&config).unwrap();
    assert_eq!(store.source(), MapSource::ConfigFirstUse);
    assert_eq!(store.snapshot().version(), 1);
    assert!(file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds credentials");
    }

    // A PUT survives a restart with an unchanged config file.
    store.replace(doc_moving_cluster1_to_g2(&store)).unwrap();
    drop(store);
    let store = ShardMapStore::open(&config).unwrap();
    assert_eq!(store.source(), MapSource::Persisted);
    assert_eq!(store.snapshot().version(), 2);
    assert_eq!(group_name(&store.snapshot(), "cluster1").unwrap(), "g2");
    assert!(!dir.path().join("api").join("shardmap.json.tmp").exists());
    drop(store);

    // Editing the config file's routing section wins, as the next version.
    config.indexes.insert("cluster1", "g3".to_owned());
    let store = ShardMapStore::open(&config).unwrap();
    assert_eq!(store.source(), MapSource::ConfigChanged);
    assert_eq!(store.snapshot().version(), 3);
    assert_eq!(group_name(&store.snapshot(), "cluster1").unwrap(), "g3");
    drop(store);

    // Restarting again finds it persisted.
    let store = ShardMapStore::open(&config).unwrap();
    assert_eq!(store.source(), MapSource::Persisted);
    assert_eq!(store.snapshot().version(), 3);
}

#[test]
fn reload_applies_file_edits_and_keeps_put_changes_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.data_dir = dir.path().to_owned();
    let store = ShardMapStore::open(&config).unwrap();
    store.replace(doc_moving_cluster1_to_g2(&store)).unwrap();

    match store.reload(&config).unwrap() {
        ReloadOutcome::Unchanged(map) => {
            assert_eq!(map.version(), 2);
            assert_eq!(group_name(&map, "cluster1").unwrap(), "g2", "the PUT stays");
        }
        ReloadOutcome::Replaced(_) => panic!("an unchanged file must not replace the map"),
    }

    let held = store.snapshot();
    config.default_group = Some("g1".to_owned());
    match store.reload(&config).unwrap() {
        ReloadOutcome::Replaced(map) => {
            assert_eq!(map.version(), 3);
            assert_eq!(
                group_name(&map, "cluster1").unwrap(),
                "g1",
                "the file's map, whole"
            );
            assert_eq!(group_name(&map, "nowhere").unwrap(), "g1");
        }
        ReloadOutcome::Unchanged(_) => panic!("an edited file must replace the map"),
    }
    assert_eq!(group_name(&held, "cluster1").unwrap(), "g2");
    assert!(group_name(&held, "nowhere").is_err());

    let reopened = ShardMapStore::open(&config).unwrap();
    assert_eq!(reopened.snapshot().version(), 3);
    assert_eq!(reopened.source(), MapSource::Persisted);
}

#[test]
fn a_corrupt_persisted_map_is_refused_not_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.data_dir = dir.path().to_owned();
    std::fs::write(dir.path().join(SHARDMAP_FILE), b"{not json").unwrap();
    let error = ShardMapStore::open(&config).unwrap_err();
    assert!(matches!(error, ShardMapError::Load { .. }));
    assert!(
        error.to_string().starts_with(&format!(
            "cannot load the persisted shard map {}: key must be a string at line 1 column 2",
            dir.path().join(SHARDMAP_FILE).display()
        )),
        "{error}"
    );
    assert_eq!(
        std::fs::read(dir.path().join(SHARDMAP_FILE)).unwrap(),
        b"{not json"
    );
}

fn access() -> Access {
    let yaml = r#"groups:
  g1:
    replicas: [{url: "http://a"}, {url: "http://b"}]
tokens:
  - token: writer
    name: telegraf
    write: ["cluster*", "/^eu-/", "exact1"]
  - token: reader
    read: ["*"]
  - token: admin
    admin: true
"#;
    let config = ApiConfig::from_yaml_str(yaml, "api.yaml").unwrap();
    Access::from_config(&config).unwrap()
}

#[test]
fn tokens_grant_write_read_and_admin_per_index() {
    let access = access();
    assert!(!access.is_open());
    assert_eq!(access.check_write(Some("writer"), b"cluster9"), Ok(()));
    assert_eq!(access.check_write(Some("writer"), b"eu-west"), Ok(()));
    assert_eq!(access.check_write(Some("writer"), b"exact1"), Ok(()));
    let forbidden = access.check_write(Some("writer"), b"other").unwrap_err();
    assert_eq!(
        forbidden,
        AccessError::Forbidden {
            index: "other".to_owned(),
            action: Action::Write
        }
    );
    assert_eq!(
        forbidden.to_string(),
        "forbidden: this token may not write index \"other\""
    );
    assert_eq!(forbidden.http_status(), 403);
    assert!(access.check_read(Some("writer"), b"cluster9").is_err());
    assert_eq!(access.check_read(Some("reader"), b"anything"), Ok(()));
    assert!(access.check_write(Some("reader"), b"anything").is_err());
    assert_eq!(access.check_admin(Some("admin")), Ok(()));
    assert_eq!(
        access.check_admin(Some("writer")),
        Err(AccessError::NotAdmin)
    );
    assert_eq!(
        access.check_write(None, b"cluster9"),
        Err(AccessError::MissingToken)
    );
    assert_eq!(
        access.check_write(Some("nope"), b"cluster9"),
        Err(AccessError::UnknownToken)
    );
    assert_eq!(AccessError::UnknownToken.http_status(), 401);
    assert_eq!(
        access.authenticate(Some("writer")).unwrap().label(),
        "telegraf"
    );
}

#[test]
fn no_tokens_means_open_access() {
    let access = Access::from_config(&config()).unwrap();
    assert!(access.is_open());
    assert_eq!(access.check_write(None, b"anything"), Ok(()));
    assert_eq!(access.check_read(Some("whatever"), b"anything"), Ok(()));
    assert_eq!(access.check_admin(None), Ok(()));
    assert!(
        config()
            .warnings()
            .iter()
            .any(|w| w.starts_with("open access"))
    );
}

#[test]
fn tokens_are_taken_from_every_influx_credential_form() {
    assert_eq!(
        extract_token(Some("Token abc"), None).unwrap().as_deref(),
        Some("abc")
    );
    assert_eq!(
        extract_token(Some("token abc"), Some("ignored"))
            .unwrap()
            .as_deref(),
        Some("abc")
    );
    assert_eq!(
        extract_token(Some("Bearer abc"), None).unwrap().as_deref(),
        Some("abc")
    );
    // "user:abc" in base64
    assert_eq!(
        extract_token(Some("Basic dXNlcjphYmM="), None)
            .unwrap()
            .as_deref(),
        Some("abc")
    );
    assert_eq!(
        extract_token(None, Some("abc")).unwrap().as_deref(),
        Some("abc")
    );
    assert_eq!(extract_token(None, Some("")).unwrap(), None);
    assert_eq!(extract_token(None, None).unwrap(), None);
    assert_eq!(
        extract_token(Some("Basic !!!"), None)
            .unwrap_err()
            .to_string(),
        "authorization failed: Basic credentials are not valid base64"
    );
    assert_eq!(
        extract_token(Some("Digest x"), None)
            .unwrap_err()
            .to_string(),
        "authorization failed: unsupported authorization scheme \"Digest\" (use Token, Bearer or Basic)"
    );
}

#[test]
fn the_store_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ShardMapStore>();
    assert_send_sync::<Access>();
    assert_send_sync::<Arc<ShardMap>>();
}

#[test]
fn concurrent_readers_see_whole_versions_while_writers_swap() {
    // Each version moves cluster1 and eu-west together; a reader routing both through one
    // snapshot must always see them in the same group, and versions only ever go up.
    let store = Arc::new(ShardMapStore::in_memory(&config()).unwrap());
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..200 {
                let target = ["g1", "g2", "g3"][round % 3];
                let mut doc = store.snapshot().doc().clone();
                doc.version = None;
                doc.indexes = [("cluster1", target), ("eu-west", target)]
                    .into_iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect();
                store.replace(doc).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut last_version = 0;
                for _ in 0..2000 {
                    let snapshot = store.snapshot();
                    assert!(snapshot.version() >= last_version);
                    last_version = snapshot.version();
                    let a = snapshot.route(b"cluster1");
                    let b = snapshot.route(b"eu-west");
                    if snapshot.version() > 1 {
                        assert_eq!(a, b, "version {}", snapshot.version());
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(store.snapshot().version(), 201);
}

#[test]
fn parsed_lines_route_by_their_unescaped_index_tag() {
    let yaml = r#"index_tag: idx
groups:
  g1:
    replicas: [{url: "http://a"}, {url: "http://b"}]
  g2:
    replicas: [{url: "http://c"}, {url: "http://d"}]
indexes:
  "eu west": g2
  "cluster*": g1
"#;
    let config = ApiConfig::from_yaml_str(yaml, "api.yaml").unwrap();
    let classifier = config.classifier();
    let map = ShardMapStore::in_memory(&config).unwrap().snapshot();
    let body =
        b"mem,idx=cluster1,host=h1 used=1 1\nmem,idx=eu\\ west used=2 2\nmem,idx=us used=3 3\n";
    let routed: Vec<Result<String, RouteError>> = monitor::protocol::lines(body, &classifier)
        .map(|line| {
            let line = line.unwrap();
            let index = line.index().unwrap().unescaped();
            map.route_group(&index).map(|g| g.name.clone())
        })
        .collect();
    assert_eq!(
        routed,
        [
            Ok("g1".to_owned()),
            Ok("g2".to_owned()),
            Err(RouteError::UnknownIndex("us".to_owned()))
        ]
    );
}

#[test]
fn replicated_groups_write_one_replica_and_ids_must_be_distinct() {
    let yaml = r#"groups:
  solo:
    replicated: true
    replicas: [{url: "http://a"}, {url: "http://b"}]
  trio:
    replicas: [{url: "http://c"}, {url: "http://d"}, {url: "http://e"}]
"#;
    let config = ApiConfig::from_yaml_str(yaml, "api.yaml").unwrap();
    let map = ShardMap::from_config(&config, 1).unwrap();
    let solo = map.group_by_name("solo").unwrap();
    assert_eq!(solo.write_fanout(), 1);
    assert_eq!(solo.required_acks(Consistency::All), 1);
    let trio = map.group_by_name("trio").unwrap();
    assert_eq!(trio.write_fanout(), 3);
    assert_eq!(trio.required_acks(Consistency::Quorum), 2);

    let same_names = r#"{"groups": {"g1": {"replicas": [
        {"url": "http://a", "name": "r"}, {"url": "http://b", "name": "r"}]}}}"#;
    let doc = ShardMapDoc::from_json(same_names.as_bytes()).unwrap();
    let problems = ShardMap::build(&doc, 1).unwrap_err();
    assert_eq!(
        problems.to_string(),
        "groups.g1.replicas[1]: replica id \"r\" is used twice in this group; give the replicas distinct `name`s"
    );
}
