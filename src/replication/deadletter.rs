//! Dead-letter files: lines a backend rejected (field type conflict, missing database, ...)
//! are appended, one JSON object per line, to `<data_dir>/dead-letter/<group>/<replica>.jsonl`
//! with the reason, so an operator can inspect, fix and replay them. It never blocks a queue:
//! a failure to write the file is logged and counted, and the sender moves on.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One rejected line and why.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// Milliseconds since the epoch when it was dead-lettered.
    pub at_ms: u64,
    pub group: &'a str,
    pub replica: &'a str,
    pub database: &'a str,
    pub retention_policy: &'a str,
    pub precision: &'a str,
    pub request_id: &'a str,
    /// Short machine-readable reason (`field_type_conflict`, `database_not_found`, ...).
    pub reason: &'a str,
    /// The backend's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The backend's own message.
    pub message: &'a str,
    /// The line exactly as it was sent.
    pub line: &'a str,
}

/// The dead-letter file of one replica.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetterFile {
    pub fn new(data_dir: &Path, group: &str, replica: &str) -> Self {
        DeadLetterFile {
            path: data_dir
                .join("dead-letter")
                .join(group)
                .join(format!("{replica}.jsonl")),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `letters` and syncs the file (dead letters are rare; losing one is not ok).
    pub fn append(&self, letters: &[DeadLetter<'_>]) -> io::Result<()> {
        let mut buffer = Vec::with_capacity(letters.len() * 256);
        for letter in letters {
            serde_json::to_writer(&mut buffer, letter)?;
            buffer.push(b'\n');
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| io::Error::other("dead-letter file not open"))?;
        file.write_all(&buffer)?;
        file.sync_data()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = DeadLetterFile::new(dir.path(), "g1", "r1");
        let letter = DeadLetter {
            at_ms: 1,
            group: "g1",
            replica: "r1",
            database: "db",
            retention_policy: "",
            precision: "ns",
            request_id: "req",
            reason: "field_type_conflict",
            status: Some(400),
            message: "partial write: field type conflict",
            line: "m,index=a f=\"x\" 1",
        };
        file.append(&[letter]).unwrap();
        file.append(&[]).unwrap();
        let text = fs::read_to_string(dir.path().join("dead-letter/g1/r1.jsonl")).unwrap();
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["reason"], "field_type_conflict");
        assert_eq!(value["line"], "m,index=a f=\"x\" 1");
        assert_eq!(text.lines().count(), 1);
    }
}
