//! The host registry: (index, host) → when a line of that host was last accepted (wall clock),
//! fed once per write request with the distinct pairs of its lines. It answers
//! `GET /api/v1/hosts`, drives deadman rules, and is what the alert manager asks before it
//! declares a host's alert resolved.
//!
//! It is kept in memory and written atomically (temp file, fsync, rename) to
//! `data_dir/hosts.json` every `rules.hosts_snapshot_interval` and at shutdown. A crash loses at
//! most the updates of the last interval: a host first seen in it is forgotten until it reports
//! again, and the others look as old as the last snapshot says. It must never block a writer
//! for more than a map update, nor trust a snapshot file blindly (a corrupt one is set aside).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::calendar::rfc3339_ms;

/// One row of `GET /api/v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub index: String,
    pub host: String,
    pub last_seen: String,
    pub active: bool,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    hosts: Vec<SnapshotRow>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRow {
    index: String,
    host: String,
    last_seen_ms: u64,
}

/// The registry.
#[derive(Debug, Default)]
pub struct HostRegistry {
    /// index -> host -> last seen (ms since the epoch).
    hosts: Mutex<HashMap<String, HashMap<String, u64>>>,
    path: Option<PathBuf>,
    dirty: AtomicBool,
}

impl HostRegistry {
    /// Loads `path` if it exists. A file that does not parse is renamed `*.corrupt` and the
    /// registry starts empty (liveness is rebuilt as hosts report).
    pub fn open(path: Option<PathBuf>) -> HostRegistry {
        let registry = HostRegistry {
            path,
            ..HostRegistry::default()
        };
        let Some(path) = &registry.path else {
            return registry;
        };
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(snapshot) => {
                    let mut hosts = registry.lock();
                    for row in snapshot.hosts {
                        hosts
                            .entry(row.index)
                            .or_default()
                            .insert(row.host, row.last_seen_ms);
                    }
                }
                Err(error) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::warn!(path = %path.display(), %error, aside = %aside.display(), "host registry snapshot unreadable; starting empty");
                    let _ = std::fs::rename(path, &aside);
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the host registry snapshot; starting empty");
            }
        }
        registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, u64>>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that every `(index, host)` reported at `now_ms`.
    pub fn touch<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>, now_ms: u64) {
        let mut hosts = self.lock();
        for (index, host) in pairs {
            match hosts.get_mut(index) {
                Some(of_index) => match of_index.get_mut(host) {
                    Some(seen) => *seen = (*seen).max(now_ms),
                    None => {
                        of_index.insert(host.to_owned(), now_ms);
                    }
                },
                None => {
                    hosts
                        .entry(index.to_owned())
                        .or_default()
                        .insert(host.to_owned(), now_ms);
                }
            }
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Every `(index, host, last_seen_ms)`.
    pub fn all(&self) -> Vec<(String, String, u64)> {
        let hosts = self.lock();
        let mut out = Vec::new();
        for (index, of_index) in hosts.iter() {
            for (host, seen) in of_index {
                out.push((index.clone(), host.clone(), *seen));
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows of `GET /api/v1/hosts`, sorted by index then host.
    pub fn list(
        &self,
        index: Option<&str>,
        host: Option<&str>,
        now_ms: u64,
        active_window_ms: u64,
    ) -> Vec<HostEntry> {
        let mut rows: Vec<HostEntry> = self
            .all()
            .into_iter()
            .filter(|(i, h, _)| index.is_none_or(|x| x == i) && host.is_none_or(|x| x == h))
            .map(|(index, host, seen)| HostEntry {
                index,
                host,
                last_seen: rfc3339_ms(seen),
                active: now_ms.saturating_sub(seen) <= active_window_ms,
            })
            .collect();
        rows.sort_by(|a, b| (&a.index, &a.host).cmp(&(&b.index, &b.host)));
        rows
    }

    /// Writes the snapshot if anything changed since the last one.
    pub fn save_if_dirty(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.save();
        if result.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        result
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let snapshot = Snapshot {
            version: 1,
            hosts: self
                .all()
                .into_iter()
                .map(|(index, host, last_seen_ms)| SnapshotRow {
                    index,
                    host,
                    last_seen_ms,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
        write_atomically(path, &bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen_and_reports_activity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.json");
        let registry = HostRegistry::open(Some(path.clone()));
        registry.touch([("cluster1", "host1"), ("cluster1", "host2")], 1_000_000);
        registry.touch([("cluster1", "host1")], 1_100_000);
        registry.save_if_dirty().unwrap();
        let reopened = HostRegistry::open(Some(path));
        let rows = reopened.list(Some("cluster1"), None, 1_200_000, 150_000);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].host, "host1");
        assert!(rows[0].active);
        assert!(!rows[1].active, "host2 was last seen 200s ago");
        assert_eq!(reopened.list(None, Some("host2"), 0, 1).len(), 1);
    }

    #[test]
    fn a_corrupt_snapshot_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.json");
        std::fs::write(&path, b"{not json").unwrap();
        let registry = HostRegistry::open(Some(path.clone()));
        assert!(registry.is_empty());
        assert!(dir.path().join("hosts.json.corrupt").exists());
    }
}
