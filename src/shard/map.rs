//! The shard map: which group of replicas each index goes to. Built once per version from a
//! validated [`ShardMapDoc`] and never mutated afterwards, so a request that took a snapshot routes
//! every one of its lines the same way. It must never route one index to two different groups
//! within one version, and never allocate when routing a known index.

use regex::bytes::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::api::validate_shard_map;
use crate::config::{
    ApiConfig, GroupConfig, KeyPath, OrderedMap, Problems, ReplicaConfig, SelectorKind,
    parse_selector,
};

/// Stands in for a secret in [`ShardMapDoc::redacted`]. Sent back unchanged in a PUT, it means
/// "keep the current secret of the replica with this URL in this group".
pub const REDACTED: &str = "<redacted>";

/// The routing part of the config as a document: what `GET /api/v1/shardmap` returns and `PUT`
/// takes (JSON). `version` is the map's version when read; in a PUT it is optional and, when
/// given, must equal the current version (optimistic concurrency: 409 otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMapDoc {
    /// Version (see above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Groups by name, as in the config file.
    pub groups: OrderedMap<GroupConfig>,
    /// Index name or pattern -> group name, in matching order.
    #[serde(default)]
    pub indexes: OrderedMap<String>,
    /// Group for indexes nothing else matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_group: Option<String>,
}

impl ShardMapDoc {
    /// The routing part of a config file (no version).
    pub fn from_config(config: &ApiConfig) -> Self {
        Self {
            version: None,
            groups: config.groups.clone(),
            indexes: config.indexes.clone(),
            default_group: config.default_group.clone(),
        }
    }

    /// Parses a PUT body. Errors carry serde_json's line and column.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Every problem, with key paths relative to the document (`groups.g1.replicas[0].url`).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        validate_shard_map(
            &self.groups,
            &self.indexes,
            self.default_group.as_deref(),
            &KeyPath::root(),
            &mut problems,
        );
        problems.into_result()
    }

    /// A copy with passwords and tokens replaced by [`REDACTED`], for GET answers and logs.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for (_, group) in copy.groups.iter_mut() {
            for replica in &mut group.replicas {
                for secret in [&mut replica.password, &mut replica.token] {
                    if secret.is_some() {
                        *secret = Some(REDACTED.to_owned());
                    }
                }
            }
        }
        copy
    }

    /// Replaces [`REDACTED`] placeholders by the secrets of `current` (same group, same URL).
    /// A placeholder with nothing to take it from is a problem at its key.
    pub fn restore_secrets(&mut self, current: &ShardMapDoc) -> Result<(), Problems> {
        let mut problems = Problems::default();
        for (group_name, group) in self.groups.iter_mut() {
            let old_group = current.groups.get(group_name);
            for (position, replica) in group.replicas.iter_mut().enumerate() {
                let old = old_group.and_then(|g| g.replicas.iter().find(|r| r.url == replica.url));
                let path = KeyPath::root()
                    .key("groups")
                    .key(group_name)
                    .key("replicas")
                    .index(position);
                restore_one(
                    &mut replica.password,
                    old.and_then(|r| r.password.clone()),
                    &path.key("password"),
                    &mut problems,
                );
                restore_one(
                    &mut replica.token,
                    old.and_then(|r| r.token.clone()),
                    &path.key("token"),
                    &mut problems,
                );
            }
        }
        problems.into_result()
    }

    /// A hash of the routing content (the version excluded): equal documents, equal fingerprints.
    pub fn fingerprint(&self) -> u64 {
        let unversioned = ShardMapDoc {
            version: None,
            ..self.clone()
        };
        // Serialising plain strings, bools and ordered maps cannot fail; an empty buffer would
        // still give a stable (if useless) fingerprint rather than a panic.
        let bytes = serde_json::to_vec(&unversioned).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

fn restore_one(
    secret: &mut Option<String>,
    old: Option<String>,
    path: &KeyPath,
    problems: &mut Problems,
) {
    if secret.as_deref() == Some(REDACTED) {
        match old {
            Some(value) => *secret = Some(value),
            None => problems.push(
                path,
                format!("{REDACTED:?} stands for the current secret, but no current replica with this URL in this group has one"),
            ),
        }
    }
}

/// A group's position in its [`ShardMap`]. Only meaningful with the map it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(u32);

impl GroupId {
    /// Position in [`ShardMap::groups`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One backend of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// Stable id for logs, metrics and queue cursors: the configured `name`, else `host:port`
    /// of the URL (plus its path when it has one). Unique within the group.
    pub id: String,
    /// Parsed base URL.
    pub url: Url,
    /// Everything configured for it (dialect, credentials, database mapping).
    pub config: ReplicaConfig,
}

/// A shard group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its id in this map.
    pub id: GroupId,
    /// Configured name (also its directory name under `data_dir`).
    pub name: String,
    /// The backend replicates itself: write and read one replica, fail over in order.
    pub replicated: bool,
    /// Replicas in config order (the failover order for `replicated` groups).
    pub replicas: Vec<Replica>,
}

impl Group {
    /// Replicas a write goes to directly: all of them, or one (the first healthy, in order) for
    /// a `replicated` group.
    pub fn write_fanout(&self) -> usize {
        if self.replicated {
            1.min(self.replicas.len())
        } else {
            self.replicas.len()
        }
    }

    /// Backend acknowledgements a write at `consistency` needs in this group.
    pub fn required_acks(&self, consistency: crate::config::Consistency) -> usize {
        consistency.required_acks(self.write_fanout())
    }
}

/// Why an index could not be routed. The message names the index; the proxy answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No exact name, no pattern and no default group.
    #[error("unknown index {0:?}: no group is configured for it and there is no default_group")]
    UnknownIndex(String),
}

/// Index patterns in config order. The set answers "does any match" in one pass without
/// allocating (`RegexSet::matches` would allocate its answer); only when one does are the
/// patterns tried in order to find the first.
#[derive(Debug)]
struct Patterns {
    any: RegexSet,
    in_order: Vec<(Regex, GroupId)>,
}

impl Patterns {
    fn first_match(&self, index: &[u8]) -> Option<GroupId> {
        if !self.any.is_match(index) {
            return None;
        }
        self.in_order
            .iter()
            .find(|(regex, _)| regex.is_match(index))
            .map(|(_, id)| *id)
    }
}

/// An immutable, versioned routing table.
#[derive(Debug)]
pub struct ShardMap {
    version: u64,
    doc: ShardMapDoc,
    groups: Vec<Group>,
    exact: rustc_hash::FxHashMap<Box<[u8]>, GroupId>,
    patterns: Option<Patterns>,
    default_group: Option<GroupId>,
}

impl ShardMap {
    /// Validates `doc` and builds version `version` of the map from it.
    pub fn build(doc: &ShardMapDoc, version: u64) -> Result<Self, Problems> {
        doc.validate()?;
        let mut problems = Problems::default();
        let mut groups = Vec::with_capacity(doc.groups.len());
        for (position, (name, config)) in doc.groups.iter().enumerate() {
            let id = GroupId(u32::try_from(position).unwrap_or(u32::MAX));
            let mut replicas: Vec<Replica> = Vec::with_capacity(config.replicas.len());
            for (item, replica) in config.replicas.iter().enumerate() {
                let path = KeyPath::root()
                    .key("groups")
                    .key(name)
                    .key("replicas")
                    .index(item);
                let Ok(url) = Url::parse(&replica.url) else {
                    problems.push(&path.key("url"), "invalid URL");
                    continue;
                };
                let id = replica
                    .name
                    .clone()
                    .unwrap_or_else(|| default_replica_id(&url));
                if replicas.iter().any(|r| r.id == id) {
                    problems.push(&path, format!("replica id {id:?} is used twice in this group; give the replicas distinct `name`s"));
                }
                replicas.push(Replica {
                    id,
                    url,
                    config: replica.clone(),
                });
            }
            groups.push(Group {
                id,
                name: name.to_owned(),
                replicated: config.replicated,
                replicas,
            });
        }
        let group_id = |name: &str| groups.iter().find(|g| g.name == name).map(|g| g.id);
        let mut exact = rustc_hash::FxHashMap::default();
        let mut pattern_sources = Vec::new();
        let mut pattern_groups = Vec::new();
        for (selector, group) in doc.indexes.iter() {
            let Some(id) = group_id(group) else { continue };
            match parse_selector(selector) {
                Ok(SelectorKind::Exact(name)) => {
                    exact.insert(name.into_bytes().into_boxed_slice(), id);
                }
                Ok(SelectorKind::Pattern { regex, .. }) => {
                    pattern_sources.push(regex);
                    pattern_groups.push(id);
                }
                Ok(SelectorKind::Any) => {
                    pattern_sources.push("(?s:.*)".to_owned());
                    pattern_groups.push(id);
                }
                Err(_) => {}
            }
        }
        let patterns = if pattern_sources.is_empty() {
            None
        } else {
            let compiled: Result<Vec<(Regex, GroupId)>, regex::Error> = pattern_sources
                .iter()
                .zip(pattern_groups)
                .map(|(source, id)| Regex::new(source).map(|regex| (regex, id)))
                .collect();
            match (RegexSet::new(&pattern_sources), compiled) {
                (Ok(any), Ok(in_order)) => Some(Patterns { any, in_order }),
                (Err(error), _) | (_, Err(error)) => {
                    problems.push(
                        &KeyPath::root().key("indexes"),
                        format!("patterns do not compile: {error}"),
                    );
                    None
                }
            }
        };
        problems.into_result()?;
        let default_group = doc.default_group.as_deref().and_then(group_id);
        Ok(Self {
            version,
            doc: ShardMapDoc {
                version: Some(version),
                ..doc.clone()
            },
            groups,
            exact,
            patterns,
            default_group,
        })
    }

    /// Builds version `version` from the routing part of a config.
    pub fn from_config(config: &ApiConfig, version: u64) -> Result<Self, Problems> {
        Self::build(&ShardMapDoc::from_config(config), version)
    }

    /// The group for an index tag value (as unescaped bytes): an exact name first (one hash
    /// lookup), then the patterns in config order (one regex-set pass decides whether any
    /// matches), then the default group. Allocates only to report an unknown index.
    pub fn route(&self, index: &[u8]) -> Result<GroupId, RouteError> {
        if let Some(id) = self.exact.get(index) {
            return Ok(*id);
        }
        if let Some(id) = self.patterns.as_ref().and_then(|p| p.first_match(index)) {
            return Ok(id);
        }
        self.default_group
            .ok_or_else(|| RouteError::UnknownIndex(String::from_utf8_lossy(index).into_owned()))
    }

    /// [`route`](Self::route), returning the group itself.
    /// The group for lines without an index tag, when `default_group` is configured.
    pub fn default_group(&self) -> Option<GroupId> {
        self.default_group
    }

    pub fn route_group(&self, index: &[u8]) -> Result<&Group, RouteError> {
        self.route(index).map(|id| &self.groups[id.index()])
    }

    /// The group with this id. Panics only if the id came from another map.
    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.index()]
    }

    /// A group by name.
    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// All groups, in config order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The version: 1 for the first map a data directory ever had, +1 on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The document this map was built from, with its version set (secrets included: redact
    /// with [`ShardMapDoc::redacted`] before showing it).
    pub fn doc(&self) -> &ShardMapDoc {
        &self.doc
    }
}

fn default_replica_id(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url
        .port_or_known_default()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    format!("{host}{port}{path}")
}
