//! Persisted read cursors: one small file per replica holding the log position up to which that
//! replica's backend acknowledged everything. A cursor file must never name a position the
//! backend has not acknowledged (it may lag: replay is idempotent), and it is replaced atomically
//! (write temp file, fsync, rename, fsync directory) so a crash leaves the old or the new value.
//!
//! File `<replica>.cursor`, 16 bytes: magic `MQC1`, position u64 LE, crc32 of the first 12 bytes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::QueueError;

const MAGIC: &[u8; 4] = b"MQC1";
const CURSOR_FILE_LEN: usize = 16;
pub const CURSOR_SUFFIX: &str = ".cursor";
const TMP_SUFFIX: &str = ".cursor.tmp";

/// Replica names become file names, so only a safe alphabet is accepted.
pub fn validate_replica_name(name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidReplicaName(name.to_string()))
    }
}

pub fn cursor_path(dir: &Path, replica: &str) -> PathBuf {
    dir.join(format!("{replica}{CURSOR_SUFFIX}"))
}

pub fn encode(position: u64) -> [u8; CURSOR_FILE_LEN] {
    let mut out = [0; CURSOR_FILE_LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4..12].copy_from_slice(&position.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The position stored in a cursor file's bytes, or `None` if they are damaged.
pub fn decode(bytes: &[u8]) -> Option<u64> {
    let bytes: &[u8; CURSOR_FILE_LEN] = bytes.try_into().ok()?;
    let crc = u32::from_le_bytes(bytes[12..].try_into().ok()?);
    (bytes[..4] == *MAGIC && crc32fast::hash(&bytes[..12]) == crc)
        .then(|| u64::from_le_bytes(bytes[4..12].try_into().unwrap_or_default()))
}

pub fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| QueueError::io(dir, e))
}

/// Atomically replaces `<dir>/<replica>.cursor` with `position`.
pub fn persist(dir: &Path, replica: &str, position: u64) -> Result<(), QueueError> {
    let tmp = dir.join(format!("{replica}{TMP_SUFFIX}"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&encode(position))?;
        file.sync_data()
    })();
    result.map_err(|e| QueueError::io(&tmp, e))?;
    let path = cursor_path(dir, replica);
    fs::rename(&tmp, &path).map_err(|e| QueueError::io(&path, e))?;
    sync_dir(dir)
}

pub fn remove(dir: &Path, replica: &str) -> Result<(), QueueError> {
    let path = cursor_path(dir, replica);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(QueueError::io(&path, e)),
    }
}

/// What was found for one replica when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCursor {
    pub replica: String,
    /// `None`: the file exists but is damaged.
    pub position: Option<u64>,
}

/// Reads every `*.cursor` file of `dir` and removes leftover temp files of interrupted writes.
pub fn load_all(dir: &Path) -> Result<Vec<LoadedCursor>, QueueError> {
    let mut loaded = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| QueueError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| QueueError::io(&path, e))?;
            continue;
        }
        let Some(replica) = name.strip_suffix(CURSOR_SUFFIX) else {
            continue;
        };
        if validate_replica_name(replica).is_err() {
            continue;
        }
        let path = entry.path();
        let bytes = fs::read(&path).map_err(|e| QueueError::io(&path, e))?;
        loaded.push(LoadedCursor {
            replica: replica.to_string(),
            position: decode(&bytes),
        });
    }
    loaded.sort_by(|a, b| a.replica.cmp(&b.replica));
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_detects_damage() {
        let bytes = encode(123_456_789);
        assert_eq!(decode(&bytes), Some(123_456_789));
        for index in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[index] ^= 1;
            assert_eq!(decode(&damaged), None, "flip at {index}");
        }
        assert_eq!(decode(&bytes[..15]), None);
    }

    #[test]
    fn persist_replaces_atomically_and_load_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        persist(dir.path(), "influx-a", 10).unwrap();
        persist(dir.path(), "influx-a", 20).unwrap();
        fs::write(dir.path().join("influx-b.cursor.tmp"), b"half").unwrap();
        fs::write(dir.path().join("influx-c.cursor"), b"garbage").unwrap();
        let loaded = load_all(dir.path()).unwrap();
        assert_eq!(
            loaded,
            vec![
                LoadedCursor {
                    replica: "influx-a".into(),
                    position: Some(20)
                },
                LoadedCursor {
                    replica: "influx-c".into(),
                    position: None
                },
            ]
        );
        assert!(!dir.path().join("influx-b.cursor.tmp").exists());
    }

    #[test]
    fn replica_names_are_restricted_to_safe_file_names() {
        for good in ["a", "influx-1.example_com", "R2"] {
            assert!(validate_replica_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "a b", "é"] {
            assert!(validate_replica_name(bad).is_err(), "{bad}");
        }
    }
}
