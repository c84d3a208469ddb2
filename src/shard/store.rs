//! The live shard map: an atomically swapped snapshot, its persistence in
//! `data_dir/shardmap.json`, replacement by `PUT /api/v1/shardmap`, and reload from the config
//! file. It must never let a request see half a change (readers take an `Arc` snapshot; writers
//! swap a whole new map), never bump the version without a change, and never put in memory a map
//! that failed to reach the disk.
//!
//! Which map wins at startup and on reload: the persisted file records the fingerprint of the
//! config file's routing section it descends from. If the config file's routing section still has
//! that fingerprint, the persisted map wins (changes made with PUT survive restarts and reloads);
//! if the operator has edited the routing section since, the file wins and becomes the next
//! version. In short: the most recent change wins, whether made through the API or in the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::map::{ShardMap, ShardMapDoc};
use crate::config::{ApiConfig, Problems};

/// File name of the persisted map inside `data_dir`.
pub const SHARDMAP_FILE: &str = "shardmap.json";

const FILE_FORMAT: u32 = 1;

/// A value that is replaced whole and read as a snapshot. Readers clone an `Arc` under a brief
/// read lock and keep using the version they got, however many swaps happen meanwhile.
#[derive(Debug)]
pub struct Shared<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Shared<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// Starts with an existing `Arc`.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self {
            current: RwLock::new(value),
        }
    }

    /// The current value. Hold it for the whole request.
    pub fn snapshot(&self) -> Arc<T> {
        // A poisoned lock still holds a whole Arc (the only write is one assignment), so it is
        // safe to keep serving it.
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Installs `value`, returning the previous one.
    pub fn swap(&self, value: Arc<T>) -> Arc<T> {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *guard, value)
    }
}

/// The shared handle to the live shard map.
pub type SharedShardMap = Shared<ShardMap>;

/// Why a shard map change or load was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShardMapError {
    /// The new map is invalid (400): every problem with its key path.
    #[error("invalid shard map:\n{0}")]
    Invalid(Problems),
    /// A PUT named a version that is no longer current (409).
    #[error(
        "version conflict: the request is based on version {expected}, the current version is {current}"
    )]
    VersionConflict {
        /// The version the client sent.
        expected: u64,
        /// The current version.
        current: u64,
    },
    /// The map could not be written to disk (500); the running map is unchanged.
    #[error("cannot persist the shard map to {path}: {source}")]
    Persist {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The persisted file exists but cannot be used. It is never silently discarded: fix or
    /// remove it (the config file's map is then used).
    #[error("cannot load the persisted shard map {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ShardMapError {
    /// The HTTP status the admin API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            ShardMapError::Invalid(_) => 400,
            ShardMapError::VersionConflict { .. } => 409,
            ShardMapError::Persist { .. } | ShardMapError::Load { .. } => 500,
        }
    }
}

/// Where the map in use at startup came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSource {
    /// No persisted map existed: the config file's map, version 1.
    ConfigFirstUse,
    /// The persisted map (made by PUT, or the config's), the config not edited since.
    Persisted,
    /// The config file's routing section changed since the persisted map: the file won.
    ConfigChanged,
}

/// What a reload did to the shard map.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    /// The config file's routing section is what the current map descends from: map and version
    /// untouched (changes made by PUT stay).
    Unchanged(Arc<ShardMap>),
    /// The routing section was edited: this new version is live.
    Replaced(Arc<ShardMap>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistedFile {
    format: u32,
    version: u64,
    /// Hex xxh3 of the config file's routing section this map descends from.
    config_fingerprint: String,
    shardmap: ShardMapDoc,
}

/// The live map plus its persistence. Changes (PUT, reload) are serialised; reads never wait on
/// them beyond one `Arc` clone.
#[derive(Debug)]
pub struct ShardMapStore {
    shared: SharedShardMap,
    file: Option<PathBuf>,
    /// Serialises changes; holds the fingerprint of the config routing section the live map
    /// descends from.
    config_fingerprint: Mutex<u64>,
    source: MapSource,
}

impl ShardMapStore {
    /// Opens the store for a validated config: loads `data_dir/shardmap.json` if present and
    /// decides which map wins (see the module docs), creating `data_dir` and persisting as needed.
    pub fn open(config: &ApiConfig) -> Result<Self, ShardMapError> {
        Self::open_at(config, &config.data_dir.join(SHARDMAP_FILE))
    }

    /// [`open`](Self::open) with an explicit file.
    pub fn open_at(config: &ApiConfig, file: &Path) -> Result<Self, ShardMapError> {
        let config_doc = ShardMapDoc::from_config(config);
        let fingerprint = config_doc.fingerprint();
        let (map, source) = match read_persisted(file)? {
            Some(persisted) if persisted.config_fingerprint == hex(fingerprint) => {
                let map = ShardMap::build(&persisted.shardmap, persisted.version).map_err(
                    |problems| ShardMapError::Load {
                        path: file.to_owned(),
                        reason: format!("it does not validate:\n{problems}"),
                    },
                )?;
                (map, MapSource::Persisted)
            }
            Some(persisted) => {
                let map = ShardMap::build(&config_doc, persisted.version + 1)
                    .map_err(ShardMapError::Invalid)?;
                write_persisted(file, &map, fingerprint)?;
                (map, MapSource::ConfigChanged)
            }
            None => {
                let map = ShardMap::build(&config_doc, 1).map_err(ShardMapError::Invalid)?;
                write_persisted(file, &map, fingerprint)?;
                (map, MapSource::ConfigFirstUse)
            }
        };
        Ok(Self {
            shared: Shared::new(map),
            file: Some(file.to_owned()),
            config_fingerprint: Mutex::new(fingerprint),
            source,
        })
    }

    /// A store that never touches the disk (tests, `monitorctl check-config`), at version 1.
    pub fn in_memory(config: &ApiConfig) -> Result<Self, ShardMapError> {
        let doc = ShardMapDoc::from_config(config);
        let map = ShardMap::build(&doc, 1).map_err(ShardMapError::Invalid)?;
        Ok(Self {
            shared: Shared::new(map),
            file: None,
            config_fingerprint: Mutex::new(doc.fingerprint()),
            source: MapSource::ConfigFirstUse,
        })
    }

    /// Where the startup map came from (worth a log line).
    pub fn source(&self) -> MapSource {
        self.source
    }

    /// The current map. Take it once per request and route every line with it.
    pub fn snapshot(&self) -> Arc<ShardMap> {
        self.shared.snapshot()
    }

    /// The shared handle, for components that only read.
    pub fn shared(&self) -> &SharedShardMap {
        &self.shared
    }

    /// `PUT /api/v1/shardmap`: restores redacted secrets from the current map, validates,
    /// checks the optional version precondition, persists, then swaps. A document equal to the
    /// current map changes nothing and keeps the version.
    pub fn replace(&self, mut doc: ShardMapDoc) -> Result<Arc<ShardMap>, ShardMapError> {
        let descends_from = self
            .config_fingerprint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.shared.snapshot();
        if let Some(expected) = doc.version
            && expected != current.version()
        {
            return Err(ShardMapError::VersionConflict {
                expected,
                current: current.version(),
            });
        }
        doc.restore_secrets(current.doc())
            .map_err(ShardMapError::Invalid)?;
        if doc.fingerprint() == current.doc().fingerprint() {
            return Ok(current);
        }
        let map = ShardMap::build(&doc, current.version() + 1).map_err(ShardMapError::Invalid)?;
        self.install(map, *descends_from)
    }

    /// Reload (SIGHUP, `POST /-/reload`) with a freshly loaded and validated config: if its
    /// routing section differs from the one the live map descends from, it becomes the next
    /// version; otherwise nothing changes (a map set by PUT stays).
    pub fn reload(&self, config: &ApiConfig) -> Result<ReloadOutcome, ShardMapError> {
        let mut descends_from = self
            .config_fingerprint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let doc = ShardMapDoc::from_config(config);
        let fingerprint = doc.fingerprint();
        let current = self.shared.snapshot();
        if fingerprint == *descends_from {
            return Ok(ReloadOutcome::Unchanged(current));
        }
        let map = ShardMap::build(&doc, current.version() + 1).map_err(ShardMapError::Invalid)?;
        let installed = self.install(map, fingerprint)?;
        *descends_from = fingerprint;
        Ok(ReloadOutcome::Replaced(installed))
    }

    fn install(&self, map: ShardMap, fingerprint: u64) -> Result<Arc<ShardMap>, ShardMapError> {
        if let Some(file) = &self.file {
            write_persisted(file, &map, fingerprint)?;
        }
        let map = Arc::new(map);
        self.shared.swap(Arc::clone(&map));
        Ok(map)
    }
}

fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

fn read_persisted(file: &Path) -> Result<Option<PersistedFile>, ShardMapError> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(ShardMapError::Load {
                path: file.to_owned(),
                reason: error.to_string(),
            });
        }
    };
    let persisted: PersistedFile =
        serde_json::from_slice(&bytes).map_err(|error| ShardMapError::Load {
            path: file.to_owned(),
            reason: error.to_string(),
        })?;
    if persisted.format != FILE_FORMAT {
        return Err(ShardMapError::Load {
            path: file.to_owned(),
            reason: format!(
                "unknown format {} (this build reads format {FILE_FORMAT})",
                persisted.format
            ),
        });
    }
    Ok(Some(persisted))
}

/// Writes `file` atomically: a temporary file in the same directory, fsync, rename, fsync of the
/// directory. Readable by the owner only (it holds backend credentials).
fn write_persisted(file: &Path, map: &ShardMap, fingerprint: u64) -> Result<(), ShardMapError> {
    let persist_error = |source| ShardMapError::Persist {
        path: file.to_owned(),
        source,
    };
    let persisted = PersistedFile {
        format: FILE_FORMAT,
        version: map.version(),
        config_fingerprint: hex(fingerprint),
        shardmap: ShardMapDoc {
            version: None,
            ..map.doc().clone()
        },
    };
    let mut body =
        serde_json::to_vec_pretty(&persisted).map_err(|error| persist_error(error.into()))?;
    body.push(b'\n');
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(persist_error)?;
    let mut temporary_name = file.file_name().unwrap_or_default().to_owned();
    temporary_name.push(".tmp");
    let temporary = directory.join(temporary_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options.open(&temporary).map_err(persist_error)?;
    handle.write_all(&body).map_err(persist_error)?;
    handle.sync_all().map_err(persist_error)?;
    drop(handle);
    std::fs::rename(&temporary, file).map_err(persist_error)?;
    std::fs::File::open(&directory)
        .and_then(|dir| dir.sync_all())
        .map_err(persist_error)?;
    Ok(())
}
