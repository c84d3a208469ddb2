//! The `monitor-api` config file: every key with its default, and the semantic checks that run
//! after the YAML parsed. Key spellings listed in DESIGN.md ("Configuration keys that scripts rely
//! on") are fixed. It must never accept a config that would misroute, silently open access, or
//! lose data: unknown keys, dangling group names and contradictions are refused.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use super::error::{ConfigError, Problems};
use super::load::{parse_validated, read_config};
use super::locate::KeyPath;
use super::ordered::OrderedMap;
use super::pattern::parse_selector;
use super::units::{ByteSize, HumanDuration};

/// Write consistency: how many replicas of a group must have taken a batch before the client is
/// answered. `any`: the batch is in the group's durable log (replicas catch up from it); `one`,
/// `quorum` (a majority), `all`: that many replica backends acknowledged it. InfluxDB Enterprise
/// vocabulary; a request may override the default with `consistency=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Durable in the proxy's log.
    Any,
    /// One replica has it.
    One,
    /// A majority of replicas have it (default).
    #[default]
    Quorum,
    /// Every replica has it.
    All,
}

impl Consistency {
    /// Backend acknowledgements needed for a group of `replicas` replicas (0 for `any`). A
    /// `replicated: true` group counts as one replica.
    pub fn required_acks(self, replicas: usize) -> usize {
        match self {
            Consistency::Any => 0,
            Consistency::One => replicas.min(1),
            Consistency::Quorum => replicas / 2 + usize::from(replicas > 0),
            Consistency::All => replicas,
        }
    }

    /// The spelling used in config and in the `consistency=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Any => "any",
            Consistency::One => "one",
            Consistency::Quorum => "quorum",
            Consistency::All => "all",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `consistency=` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consistency {0:?}: expected any, one, quorum or all")]
pub struct ConsistencyError(pub String);

impl FromStr for Consistency {
    type Err = ConsistencyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "any" => Ok(Consistency::Any),
            "one" => Ok(Consistency::One),
            "quorum" => Ok(Consistency::Quorum),
            "all" => Ok(Consistency::All),
            other => Err(ConsistencyError(other.to_owned())),
        }
    }
}

/// The HTTP API a replica speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// InfluxDB 1.x: `/write?db=`, `/query`, username/password (default).
    #[default]
    V1,
    /// InfluxDB 2.x: `/api/v2/write?org=&bucket=`, token auth.
    V2,
}

/// Which backend database (v1) or bucket (v2) a client's `db` lands in. Absent in the config:
/// the client's `db` passes through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseMapping {
    /// `database: metrics`: every write to this replica goes to this one database.
    Fixed(String),
    /// `database: {telegraf: tg_prod}`: listed client databases are renamed, others pass through.
    PerClientDb(OrderedMap<String>),
}

impl DatabaseMapping {
    /// The backend name for a client database.
    pub fn resolve<'a>(&'a self, client_db: &'a str) -> &'a str {
        match self {
            DatabaseMapping::Fixed(name) => name,
            DatabaseMapping::PerClientDb(map) => {
                map.get(client_db).map_or(client_db, String::as_str)
            }
        }
    }
}

impl Serialize for DatabaseMapping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DatabaseMapping::Fixed(name) => serializer.serialize_str(name),
            DatabaseMapping::PerClientDb(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DatabaseMapping {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MappingVisitor;
        impl<'de> Visitor<'de> for MappingVisitor {
            type Value = DatabaseMapping;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a database name or a mapping of client db to backend db")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<DatabaseMapping, E> {
                Ok(DatabaseMapping::Fixed(name.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<DatabaseMapping, A::Error> {
                OrderedMap::deserialize(de::value::MapAccessDeserializer::new(access))
                    .map(DatabaseMapping::PerClientDb)
            }
        }
        deserializer.deserialize_any(MappingVisitor)
    }
}

/// One InfluxDB backend of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Base URL, `http://` or `https://`, optionally with a path prefix. Required.
    pub url: String,
    /// Stable name for metrics, logs and queue cursor files. Default: derived from the URL's
    /// `host:port` by the shard map. Letters, digits, `_`, `-`, `.` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `v1` (default) or `v2`.
    #[serde(default)]
    pub dialect: Dialect,
    /// v1: backend database for the client's `db` (absent: pass through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseMapping>,
    /// v1: basic-auth user for the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// v1: password for `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// v2: organisation (required for v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// v2: bucket for the client's `db` (absent: the client's db, or its v2 `bucket`, passes through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<DatabaseMapping>,
    /// v2: API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl ReplicaConfig {
    /// A v1 replica at `url` with everything else default (tests, generated maps).
    pub fn v1(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            dialect: Dialect::V1,
            database: None,
            username: None,
            password: None,
            org: None,
            bucket: None,
            token: None,
        }
    }

    /// The backend database (v1) or bucket (v2) that a write for `client_db` goes to.
    pub fn backend_database<'a>(&'a self, client_db: &'a str) -> &'a str {
        let mapping = match self.dialect {
            Dialect::V1 => self.database.as_ref(),
            Dialect::V2 => self.bucket.as_ref(),
        };
        mapping.map_or(client_db, |mapping| mapping.resolve(client_db))
    }
}

/// A shard group: 2–3 replicas that each receive every line routed to the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The backends. 2 or 3; 1 to 3 when `replicated: true`.
    pub replicas: Vec<ReplicaConfig>,
    /// The backend replicates itself (InfluxDB Enterprise, a cluster behind a balancer): write
    /// and read through one replica, failing over to the next. Default false.
    #[serde(default)]
    pub replicated: bool,
}

/// Request limits of the HTTP surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body as sent (compressed or not), checked before decompression.
    /// Default 32MiB (InfluxDB's own default is 25MB; Telegraf batches stay well under).
    pub max_body_bytes: ByteSize,
    /// Largest body after gzip decompression: the gzip-bomb limit. Default 128MiB.
    pub max_decompressed_bytes: ByteSize,
    /// Longest single line. Default 1MiB (InfluxDB accepts up to 64KiB per string field).
    pub max_line_bytes: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: ByteSize::mib(32),
            max_decompressed_bytes: ByteSize::mib(128),
            max_line_bytes: ByteSize::mib(1),
        }
    }
}

/// When the durable log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before every acknowledgement (default): an acked line survives power loss.
    #[default]
    Always,
    /// Every `fsync_interval`: an acked line survives a proxy crash, but power loss may take the
    /// last interval.
    Interval,
    /// Left to the OS: survives a proxy crash only.
    Never,
}

/// The per-group durable log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `always` (default), `interval` or `never`.
    pub fsync: FsyncPolicy,
    /// Flush period for `fsync: interval`. Default 1s.
    pub fsync_interval: HumanDuration,
    /// Disk cap per group. At the cap writes are answered 503 with `Retry-After`. Default 1GiB.
    pub max_bytes: ByteSize,
    /// Segment file size. Default 64MiB.
    pub segment_bytes: ByteSize,
    /// Optional age cap: records a replica still has not taken after this long are moved to that
    /// replica's dead-letter file (counted and logged) so a long-dead replica cannot pin the log.
    /// Default: none (kept until `max_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
    /// Write large group commits (256 KiB and more, i.e. under load) with `O_DIRECT`: whole blocks
    /// straight from the proxy's buffer to the disk, without copying every line into the page
    /// cache first (which cost more CPU than any other step but parsing). Each such commit is
    /// padded to a 4 KiB boundary (under 2% of it). Filesystems without `O_DIRECT` (tmpfs) fall
    /// back to buffered writes by themselves. Default true.
    pub direct_io: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            fsync_interval: HumanDuration::from_secs(1),
            max_bytes: ByteSize(1 << 30),
            segment_bytes: ByteSize::mib(64),
            max_age: None,
            direct_io: true,
        }
    }
}

/// The per-replica senders that move the log to the backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// Reserved, validated but not used yet: backend batches are bounded by `batch_max_bytes`.
    /// Default 5000.
    pub batch_max_lines: usize,
    /// The most bytes one backend request carries: a sender takes whatever whole records are
    /// pending up to this size (one larger record goes alone). Default 4MiB.
    pub batch_max_bytes: ByteSize,
    /// Reserved, validated but not used yet: a sender sends at once what is pending. Under load
    /// the group-committed log already coalesces many client requests per backend request; a
    /// wait would add its length to every `one`/`quorum`/`all` write at low load. Default 100ms.
    pub batch_max_wait: HumanDuration,
    /// First retry delay after a backend failure. Default 100ms.
    pub retry_backoff_min: HumanDuration,
    /// Retry delay cap (exponential backoff, honours `Retry-After`). Default 30s.
    pub retry_backoff_max: HumanDuration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            batch_max_lines: 5000,
            batch_max_bytes: ByteSize::mib(4),
            batch_max_wait: HumanDuration::from_millis(100),
            retry_backoff_min: HumanDuration::from_millis(100),
            retry_backoff_max: HumanDuration::from_secs(30),
        }
    }
}

/// Talking to backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Per-request timeout for writes and queries. Default 10s.
    pub timeout: HumanDuration,
    /// `/ping` period for replica health. Default 5s.
    pub health_check_interval: HumanDuration,
    /// Gzip write bodies to the backends. Default true (saves bandwidth to remote shards);
    /// turn it off for backends on the same host, where compressing once per replica costs
    /// more CPU than the bytes it saves.
    pub gzip: bool,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            timeout: HumanDuration::from_secs(10),
            health_check_interval: HumanDuration::from_secs(5),
            gzip: true,
        }
    }
}

/// The `/query` read path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Most rows one statement may return (after the merge), and most rows one replica's answer
    /// to it may hold: what bounds the proxy's memory per query. Over it, the statement gets an
    /// error naming this key. Default 1000000.
    pub max_rows: u64,
    /// How often DDL that a down replica missed is retried. Default 5s.
    pub ddl_retry_interval: HumanDuration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            ddl_retry_interval: HumanDuration::from_secs(5),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (default: logs are for machines first).
    #[default]
    Json,
}

/// The proxy's own logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `monitor=debug,info`; `MONITOR_LOG` overrides. Default `info`.
    pub level: String,
    /// `json` (default) or `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Json,
        }
    }
}

/// A client token and what it may do. Clients send it as `Authorization: Token <t>`,
/// `Authorization: Bearer <t>`, Basic auth with the token as password, or the `p` parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret.
    pub token: String,
    /// A label for logs and metrics (the secret itself is never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Indexes it may write: names, globs, `/regex/`, or `*`.
    #[serde(default)]
    pub write: Vec<String>,
    /// Indexes it may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// May read and replace the shard map and trigger a reload. Default false.
    #[serde(default)]
    pub admin: bool,
}

/// The whole `monitor-api` config. Only `groups` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:8186`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Queues, dead letters and the persisted shard map. Default `./data/api`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The tag whose value picks the shard group. Default `index`.
    #[serde(default = "default_index_tag")]
    pub index_tag: String,
    /// Default write consistency. Default `quorum`.
    #[serde(default)]
    pub consistency: Consistency,
    /// Shard groups by name (letters, digits, `_`, `-`). Required, at least one.
    pub groups: OrderedMap<GroupConfig>,
    /// Index name or pattern -> group. Exact names win; then patterns in file order; then
    /// `default_group`. Default empty.
    #[serde(default)]
    pub indexes: OrderedMap<String>,
    /// Group for indexes nothing else matches. Without it an unknown index is refused (400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_group: Option<String>,
    /// Alert manager base URLs fired alerts go to. Default none.
    #[serde(default)]
    pub alert_managers: Vec<String>,
    /// Rules YAML, relative to the working directory. Default none (no rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_file: Option<PathBuf>,
    /// Measurement name of log lines. Default `log`.
    #[serde(default = "default_log_measurement")]
    pub log_measurement: String,
    /// Measurement name of tracelog lines. Default `tracelog`.
    #[serde(default = "default_tracelog_measurement")]
    pub tracelog_measurement: String,
    /// Tag carrying the trace id on tracelog lines. Default `traceid`.
    #[serde(default = "default_trace_id_tag")]
    pub trace_id_tag: String,
    /// Create a missing database on a v1 backend (`CREATE DATABASE` is idempotent) instead of
    /// dead-lettering writes to it. Default true.
    #[serde(default = "default_true")]
    pub create_database: bool,
    /// A host is Active while its last line is younger than this. Default 5m.
    #[serde(default = "default_host_active_window")]
    pub host_active_window: HumanDuration,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Durable log.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Replica senders.
    #[serde(default)]
    pub sender: SenderConfig,
    /// Backend timeouts and health checks.
    #[serde(default)]
    pub backend: BackendConfig,
    /// Client tokens. None configured means open access (see `open_access`).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// States the access mode explicitly. Absent: open exactly when `tokens` is empty (and the
    /// proxy logs a warning saying so). `true` with tokens, or `false` without, is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_access: Option<bool>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The search APIs (`/api/v1/traces/{id}`, `/api/v1/logs`).
    #[serde(default)]
    pub search: SearchConfig,
    /// The `/query` read path (row limit, DDL retries).
    #[serde(default)]
    pub query: QueryConfig,
    /// Rules engine caps and timers (see `rules::settings`).
    #[serde(default)]
    pub rules: crate::rules::RulesSettings,
    /// Metrics derived from logs and tracelogs, written back (see `rules::settings`).
    #[serde(default)]
    pub derived: crate::rules::DerivedSettings,
}

/// The search APIs' defaults and bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// The client database searched when a request names no `db`: logs and tracelogs live in
    /// whatever database their writers named, so this should be the one the agents write to.
    /// Mapped per replica like writes (`database`/`bucket`). Default `monitor`.
    pub database: String,
    /// `/api/v1/logs` without `start` looks back this far. Default 1h.
    pub logs_default_range: HumanDuration,
    /// Largest `limit` of `/api/v1/logs` (a larger one is lowered to it). Default 10000.
    pub logs_max_limit: usize,
    /// At most this many lines of one trace are returned; beyond it the answer says
    /// `"truncated": true`. Default 50000.
    pub trace_max_lines: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            database: "monitor".to_owned(),
            logs_default_range: HumanDuration::from_secs(3600),
            logs_max_limit: 10_000,
            trace_max_lines: 50_000,
        }
    }
}

impl SearchConfig {
    fn validate(&self, path: &KeyPath, problems: &mut Problems) {
        if self.database.is_empty() {
            problems.push(&path.key("database"), "must not be empty");
        }
        if self.logs_default_range.is_zero() {
            problems.push(&path.key("logs_default_range"), "must be longer than 0s");
        }
        for (key, value) in [
            ("logs_max_limit", self.logs_max_limit),
            ("trace_max_lines", self.trace_max_lines),
        ] {
            if value == 0 {
                problems.push(&path.key(key), "must be at least 1");
            }
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8186".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/api")
}
fn default_index_tag() -> String {
    "index".to_owned()
}
fn default_log_measurement() -> String {
    "log".to_owned()
}
fn default_tracelog_measurement() -> String {
    "tracelog".to_owned()
}
fn default_trace_id_tag() -> String {
    "traceid".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_host_active_window() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// Settings that a reload cannot change in a running process.
const RESTART_ONLY: &[&str] = &["listen", "data_dir", "queue", "limits"];

impl ApiConfig {
    /// A minimal config with the given groups and every default (tests, tools).
    pub fn with_groups(groups: OrderedMap<GroupConfig>) -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            index_tag: default_index_tag(),
            consistency: Consistency::default(),
            groups,
            indexes: OrderedMap::new(),
            default_group: None,
            alert_managers: Vec::new(),
            rules_file: None,
            log_measurement: default_log_measurement(),
            tracelog_measurement: default_tracelog_measurement(),
            trace_id_tag: default_trace_id_tag(),
            create_database: true,
            host_active_window: default_host_active_window(),
            limits: LimitsConfig::default(),
            queue: QueueConfig::default(),
            sender: SenderConfig::default(),
            backend: BackendConfig::default(),
            tokens: Vec::new(),
            open_access: None,
            log: LogConfig::default(),
            search: SearchConfig::default(),
            query: QueryConfig::default(),
            rules: crate::rules::RulesSettings::default(),
            derived: crate::rules::DerivedSettings::default(),
        }
    }

    /// Parses and validates YAML text; `file` names the source in errors.
    pub fn from_yaml_str(source: &str, file: &str) -> Result<Self, ConfigError> {
        parse_validated(source, file, Self::validate)
    }

    /// Every semantic problem, each with its key path (lines are added by the loader).
    pub fn validate(&self) -> Result<(), Problems> {
        let root = KeyPath::root();
        let mut problems = Problems::default();
        if let Err(message) = check_listen(&self.listen) {
            problems.push(&root.key("listen"), message);
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push(&root.key("data_dir"), "must not be empty");
        }
        check_tag_key(&self.index_tag, &root.key("index_tag"), &mut problems);
        validate_shard_map(
            &self.groups,
            &self.indexes,
            self.default_group.as_deref(),
            &root,
            &mut problems,
        );
        for (position, url) in self.alert_managers.iter().enumerate() {
            if let Err(message) = check_http_url(url) {
                problems.push(&root.key("alert_managers").index(position), message);
            }
        }
        if self
            .rules_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            problems.push(
                &root.key("rules_file"),
                "must not be empty (leave the key out for no rules)",
            );
        }
        for (key, value) in [
            ("log_measurement", &self.log_measurement),
            ("tracelog_measurement", &self.tracelog_measurement),
        ] {
            if value.is_empty() {
                problems.push(&root.key(key), "must not be empty");
            }
        }
        if self.log_measurement == self.tracelog_measurement && !self.log_measurement.is_empty() {
            problems.push(
                &root.key("tracelog_measurement"),
                format!(
                    "must differ from log_measurement (both are {:?})",
                    self.log_measurement
                ),
            );
        }
        check_tag_key(&self.trace_id_tag, &root.key("trace_id_tag"), &mut problems);
        if self.trace_id_tag == self.index_tag {
            problems.push(
                &root.key("trace_id_tag"),
                format!("must differ from index_tag (both are {:?})", self.index_tag),
            );
        }
        if self.host_active_window.is_zero() {
            problems.push(&root.key("host_active_window"), "must be longer than 0s");
        }
        self.validate_limits(&root.key("limits"), &mut problems);
        self.search.validate(&root.key("search"), &mut problems);
        if self.query.max_rows == 0 {
            problems.push(&root.key("query").key("max_rows"), "must be greater than 0");
        }
        if self.query.ddl_retry_interval.is_zero() {
            problems.push(
                &root.key("query").key("ddl_retry_interval"),
                "must be longer than 0s",
            );
        }
        self.validate_queue(&root.key("queue"), &mut problems);
        self.validate_sender(&root.key("sender"), &mut problems);
        for (key, value) in [
            ("timeout", self.backend.timeout),
            ("health_check_interval", self.backend.health_check_interval),
        ] {
            if value.is_zero() {
                problems.push(&root.key("backend").key(key), "must be longer than 0s");
            }
        }
        self.validate_access(&root, &mut problems);
        self.rules.validate(&root.key("rules"), &mut problems);
        self.derived.validate(&root.key("derived"), &mut problems);
        if self.log.level.trim().is_empty() {
            problems.push(
                &root.key("log").key("level"),
                "must not be empty, e.g. \"info\"",
            );
        }
        problems.into_result()
    }

    fn validate_limits(&self, path: &KeyPath, problems: &mut Problems) {
        let limits = &self.limits;
        for (key, value) in [
            ("max_body_bytes", limits.max_body_bytes),
            ("max_decompressed_bytes", limits.max_decompressed_bytes),
            ("max_line_bytes", limits.max_line_bytes),
        ] {
            if value.get() == 0 {
                problems.push(&path.key(key), "must be greater than 0");
            }
        }
        problems.require_at_least(
            &path.key("max_decompressed_bytes"),
            limits.max_decompressed_bytes,
            "limits.max_body_bytes",
            limits.max_body_bytes,
        );
    }

    fn validate_queue(&self, path: &KeyPath, problems: &mut Problems) {
        let queue = &self.queue;
        if queue.segment_bytes.get() == 0 {
            problems.push(&path.key("segment_bytes"), "must be greater than 0");
        }
        problems.require_at_least(
            &path.key("max_bytes"),
            queue.max_bytes,
            "queue.segment_bytes",
            queue.segment_bytes,
        );
        if queue.fsync == FsyncPolicy::Interval && queue.fsync_interval.is_zero() {
            problems.push(
                &path.key("fsync_interval"),
                "must be longer than 0s with fsync: interval",
            );
        }
        if queue.max_age.is_some_and(HumanDuration::is_zero) {
            problems.push(
                &path.key("max_age"),
                "must be longer than 0s (leave the key out for no age cap)",
            );
        }
    }

    fn validate_sender(&self, path: &KeyPath, problems: &mut Problems) {
        let sender = &self.sender;
        if sender.batch_max_lines == 0 {
            problems.push(&path.key("batch_max_lines"), "must be greater than 0");
        }
        if sender.batch_max_bytes.get() == 0 {
            problems.push(&path.key("batch_max_bytes"), "must be greater than 0");
        }
        if sender.retry_backoff_min.is_zero() {
            problems.push(&path.key("retry_backoff_min"), "must be longer than 0s");
        }
        problems.require_at_least(
            &path.key("retry_backoff_max"),
            sender.retry_backoff_max,
            "sender.retry_backoff_min",
            sender.retry_backoff_min,
        );
    }

    fn validate_access(&self, root: &KeyPath, problems: &mut Problems) {
        for (position, token) in self.tokens.iter().enumerate() {
            let path = root.key("tokens").index(position);
            if token.token.is_empty() {
                problems.push(&path.key("token"), "must not be empty");
            } else if let Some(first) = self.tokens[..position]
                .iter()
                .position(|other| other.token == token.token)
            {
                // The secret is not repeated in the message.
                problems.push(
                    &path.key("token"),
                    format!("duplicate of tokens[{first}].token"),
                );
            }
            for (key, selectors) in [("write", &token.write), ("read", &token.read)] {
                for (item, selector) in selectors.iter().enumerate() {
                    if let Err(error) = parse_selector(selector) {
                        problems.push(&path.key(key).index(item), error.to_string());
                    }
                }
            }
            if token.write.is_empty() && token.read.is_empty() && !token.admin {
                problems.push(
                    &path,
                    "grants nothing: give it `write`, `read` or `admin: true`",
                );
            }
        }
        match self.open_access {
            Some(true) if !self.tokens.is_empty() => problems.push(
                &root.key("open_access"),
                "`open_access: true` contradicts the configured tokens; remove one or the other",
            ),
            Some(false) if self.tokens.is_empty() => problems.push(
                &root.key("open_access"),
                "`open_access: false` needs at least one entry in `tokens`",
            ),
            _ => {}
        }
    }

    /// The line classifier for this config's index tag, measurement names and trace id tag.
    pub fn classifier(&self) -> crate::protocol::Classifier {
        crate::protocol::Classifier {
            index_tag: self.index_tag.as_bytes().to_vec(),
            log_measurement: self.log_measurement.as_bytes().to_vec(),
            tracelog_measurement: self.tracelog_measurement.as_bytes().to_vec(),
            trace_id_tag: self.trace_id_tag.as_bytes().to_vec(),
        }
    }

    /// True when no token is configured: every client may read and write every index.
    pub fn is_open_access(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Things that are allowed but an operator should hear about at startup.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.is_open_access() {
            let loopback = self.listen.starts_with("127.")
                || self.listen.starts_with("localhost:")
                || self.listen.starts_with("[::1]:");
            warnings.push(if loopback {
                "open access: no tokens are configured, every client may read and write every index".to_owned()
            } else {
                format!("open access on a non-loopback address ({}): no tokens are configured, anyone who can reach it may read and write every index", self.listen)
            });
        }
        let mut seen: Vec<(String, &str)> = Vec::new();
        for (group, config) in self.groups.iter() {
            for replica in &config.replicas {
                let key = normalise_url(&replica.url);
                if let Some((_, other)) = seen
                    .iter()
                    .find(|(url, other)| *url == key && *other != group)
                {
                    warnings.push(format!("replica {} is in groups {other} and {group}: both groups write the same backend", replica.url));
                }
                seen.push((key, group));
            }
        }
        if self.alert_managers.is_empty() && self.rules_file.is_some() {
            warnings.push(
                "rules_file is set but alert_managers is empty: fired alerts go nowhere".to_owned(),
            );
        }
        warnings
    }

    /// Top-level keys whose change a reload cannot apply (the process must restart).
    pub fn restart_required(&self, new: &ApiConfig) -> Vec<&'static str> {
        RESTART_ONLY
            .iter()
            .copied()
            .filter(|key| match *key {
                "listen" => self.listen != new.listen,
                "data_dir" => self.data_dir != new.data_dir,
                "queue" => self.queue != new.queue,
                "limits" => self.limits != new.limits,
                _ => false,
            })
            .collect()
    }
}

/// Loads and validates a `monitor-api` config file.
pub fn load_api_config(path: impl AsRef<Path>) -> Result<ApiConfig, ConfigError> {
    let (source, file) = read_config(path.as_ref())?;
    ApiConfig::from_yaml_str(&source, &file)
}

/// Checks the shard-map part of a config (also used for `PUT /api/v1/shardmap`): group names,
/// replica counts and URLs, dialect fields, index selectors and the groups they name.
pub fn validate_shard_map(
    groups: &OrderedMap<GroupConfig>,
    indexes: &OrderedMap<String>,
    default_group: Option<&str>,
    root: &KeyPath,
    problems: &mut Problems,
) {
    if groups.is_empty() {
        problems.push(&root.key("groups"), "at least one group is needed");
    }
    for (name, group) in groups.iter() {
        let path = root.key("groups").key(name);
        if !is_file_safe_name(name) {
            problems.push(&path, format!("group names may use only letters, digits, '_' and '-' (they name directories in data_dir); got {name:?}"));
        }
        validate_group(group, &path, problems);
    }
    let known = || groups.keys().collect::<Vec<_>>().join(", ");
    for (selector, group) in indexes.iter() {
        let path = root.key("indexes").key(selector);
        if let Err(error) = parse_selector(selector) {
            problems.push(&path, error.to_string());
        }
        if !groups.contains_key(group) {
            problems.push(
                &path,
                format!("unknown group {group:?} (groups: {})", known()),
            );
        }
    }
    if let Some(group) = default_group
        && !groups.contains_key(group)
    {
        problems.push(
            &root.key("default_group"),
            format!("unknown group {group:?} (groups: {})", known()),
        );
    }
}

fn validate_group(group: &GroupConfig, path: &KeyPath, problems: &mut Problems) {
    let count = group.replicas.len();
    let replicas_path = path.key("replicas");
    if count == 0 {
        problems.push(&replicas_path, "a group needs 2 or 3 replicas; got none");
    } else if count > 3 {
        problems.push(
            &replicas_path,
            format!("a group needs 2 or 3 replicas; got {count}"),
        );
    } else if count == 1 && !group.replicated {
        problems.push(
            &replicas_path,
            "a group needs 2 or 3 replicas; got 1 (set `replicated: true` if the backend replicates itself)",
        );
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (position, replica) in group.replicas.iter().enumerate() {
        let path = replicas_path.index(position);
        match check_http_url(&replica.url) {
            Err(message) => problems.push(&path.key("url"), message),
            Ok(()) => {
                let key = normalise_url(&replica.url);
                if let Some((_, first)) = seen.iter().find(|(url, _)| *url == key) {
                    problems.push(
                        &path.key("url"),
                        format!("duplicate of replicas[{first}].url {:?}", replica.url),
                    );
                } else {
                    seen.push((key, position));
                }
            }
        }
        if let Some(name) = &replica.name
            && (name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            problems.push(
                &path.key("name"),
                format!(
                    "replica names may use only letters, digits, '.', '_' and '-'; got {name:?}"
                ),
            );
        }
        validate_dialect_fields(replica, &path, problems);
    }
}

fn validate_dialect_fields(replica: &ReplicaConfig, path: &KeyPath, problems: &mut Problems) {
    let (own, foreign): (&str, [(&str, bool); 3]) = match replica.dialect {
        Dialect::V1 => (
            "v1",
            [
                ("org", replica.org.is_some()),
                ("bucket", replica.bucket.is_some()),
                ("token", replica.token.is_some()),
            ],
        ),
        Dialect::V2 => (
            "v2",
            [
                ("database", replica.database.is_some()),
                ("username", replica.username.is_some()),
                ("password", replica.password.is_some()),
            ],
        ),
    };
    let other = if own == "v1" { "v2" } else { "v1" };
    for (key, present) in foreign {
        if present {
            problems.push(
                &path.key(key),
                format!("`{key}` applies to dialect {other} only (this replica is {own})"),
            );
        }
    }
    match replica.dialect {
        Dialect::V1 => {
            if replica.password.is_some() && replica.username.is_none() {
                problems.push(&path.key("password"), "`password` needs `username`");
            }
            if replica.username.is_some() && replica.password.is_none() {
                problems.push(&path.key("username"), "`username` needs `password`");
            }
        }
        Dialect::V2 => {
            if replica.org.as_deref().is_none_or(str::is_empty) {
                problems.push(path, "dialect v2 needs `org`");
            }
        }
    }
    for (key, mapping) in [("database", &replica.database), ("bucket", &replica.bucket)] {
        match mapping {
            Some(DatabaseMapping::Fixed(name)) if name.is_empty() => {
                problems.push(
                    &path.key(key),
                    "must not be empty (leave the key out to pass the client's db through)",
                );
            }
            Some(DatabaseMapping::PerClientDb(map)) => {
                for (client, backend) in map.iter() {
                    if client.is_empty() || backend.is_empty() {
                        problems.push(
                            &path.key(key).key(client),
                            "database names must not be empty",
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_file_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `host:port` with a numeric port; the host may be a name, an IPv4 or a bracketed IPv6 address.
fn check_listen(listen: &str) -> Result<(), String> {
    let bad = || format!("expected \"host:port\", e.g. \"127.0.0.1:8186\"; got {listen:?}");
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    if host.starts_with('[') != host.ends_with(']') {
        return Err(bad());
    }
    Ok(())
}

fn check_tag_key(key: &str, path: &KeyPath, problems: &mut Problems) {
    if key.is_empty() || key.contains([' ', '\t', ',', '=', '"', '\n']) {
        problems.push(
            path,
            format!(
                "must be a non-empty tag key without spaces, commas, '=' or quotes; got {key:?}"
            ),
        );
    }
}

/// An absolute `http://` or `https://` URL with a host and no query or fragment.
pub fn check_http_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|error| match error {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("invalid URL {text:?}: {error} (expected e.g. \"http://host:port\")")
        }
        _ => format!("invalid URL {text:?}: {error}"),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "invalid URL {text:?}: the scheme must be http or https"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "invalid URL {text:?}: must not carry a query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is not echoed: it carries a secret.
        return Err(
            "invalid URL: put credentials in username/password or token, not in the URL".to_owned(),
        );
    }
    Ok(())
}

/// The comparable form of a URL (`http://h:80/` equals `http://h`), or the text itself.
pub fn normalise_url(text: &str) -> String {
    Url::parse(text).map_or_else(
        |_| text.to_owned(),
        |url| url.as_str().trim_end_matches('/').to_owned(),
    )
}
