//! The alert manager's crash-safe state in redb. The outbox keeps its own tables in the same
//! database, so a state change and the notification it causes commit in one transaction.
//!
//! On-disk format 2 (the number is `am_meta["format"]`):
//! - `am_ignores`: rule id -> the ignore rule as JSON (rare writes, read by operators' tools).
//! - `am_fingerprints`: fingerprint -> one small binary state record ([`super::records`]): first
//!   and last seen, sender's end, sightings (Occurrences), state and receivers, its IssuedAlerts
//!   entry (times, deliveries, Success withheld) if any, and its memberships of waiting groups.
//!   A sighting that changes state writes this one record, not an alert record plus an issued
//!   record plus the whole group it joins.
//! - `am_alert_content`: fingerprint -> the alert itself (labels, annotations, value, time) as
//!   last persisted, plus the issued entry's copy when that differs. Written when the alert is
//!   new or its content changed, so state changes do not rewrite labels and annotations.
//! - `am_group_headers`: group key -> the waiting group without its alerts (sequence number,
//!   receiver, labels, created, due, request id). A group's alerts are the fingerprint records
//!   whose pending reference names the key and sequence number; flushing a group deletes its
//!   header, which turns those references stale.
//! - `am_meta`: `format` (2) and `next_group_seq` (sequence numbers are never reused, so a stale
//!   reference never matches a later group with the same key).
//!
//! Format 1 (no `am_meta`; `am_alerts`, `am_issued`, `am_groups` as JSON) is migrated in one
//! transaction when opened; any other format number is refused with [`StoreError::Format`].
//!
//! It must never make a change visible before it is durable: callers change memory only after
//! the commit returned, and every table is written inside one write transaction per request or
//! tick, never one per alert. It must never read a file of a format it does not know.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format this build reads and writes.
pub const FORMAT: u64 = 2;

/// The tables this module owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Ignores,
    Fingerprints,
    Contents,
    GroupHeaders,
}

/// Tables of format 1, read only to migrate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyTable {
    Alerts,
    Issued,
    Groups,
}

const IGNORES: TableDefinition<&str, &[u8]> = TableDefinition::new("am_ignores");
const FINGERPRINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_fingerprints");
const CONTENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_alert_content");
const GROUP_HEADERS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_group_headers");
const META: TableDefinition<&str, u64> = TableDefinition::new("am_meta");
const LEGACY_ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_alerts");
const LEGACY_ISSUED: TableDefinition<&str, &[u8]> = TableDefinition::new("am_issued");
const LEGACY_GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_groups");

pub const META_FORMAT: &str = "format";
pub const META_NEXT_GROUP_SEQ: &str = "next_group_seq";

const TABLES: [Table; 4] = [
    Table::Ignores,
    Table::Fingerprints,
    Table::Contents,
    Table::GroupHeaders,
];

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Ignores => IGNORES,
            Table::Fingerprints => FINGERPRINTS,
            Table::Contents => CONTENTS,
            Table::GroupHeaders => GROUP_HEADERS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Ignores => "ignores",
            Table::Fingerprints => "fingerprints",
            Table::Contents => "alert content",
            Table::GroupHeaders => "group headers",
        }
    }
}

impl LegacyTable {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            LegacyTable::Alerts => LEGACY_ALERTS,
            LegacyTable::Issued => LEGACY_ISSUED,
            LegacyTable::Groups => LEGACY_GROUPS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the state database {path} has format {found}, this build reads format {FORMAT}; \
         use the build that wrote it, or move the file away to start with empty state"
    )]
    Format { path: PathBuf, found: u64 },
    #[error("state database: {0}")]
    Redb(String),
    #[error("state database: table {table}, key {key}: undecodable record: {message}")]
    Decode {
        table: &'static str,
        key: String,
        message: String,
    },
}

fn redb_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Redb(error.to_string())
}

/// One pending change.
enum Change {
    Put(Table, String, Vec<u8>),
    Delete(Table, String),
    Meta(&'static str, u64),
}

impl Change {
    /// Where the change goes: table, then key (meta changes first).
    fn order(&self) -> (Option<Table>, &str) {
        match self {
            Change::Put(table, key, _) | Change::Delete(table, key) => (Some(*table), key),
            Change::Meta(key, _) => (None, key),
        }
    }
}

/// Changes collected while a request or tick is processed, written in one go.
#[derive(Default)]
pub struct Batch {
    changes: Vec<Change>,
}

impl Batch {
    /// A JSON record (ignore rules).
    pub fn put<T: Serialize>(
        &mut self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(redb_error)?;
        self.changes.push(Change::Put(table, key.to_owned(), bytes));
        Ok(())
    }

    /// An encoded record.
    pub fn put_bytes(&mut self, table: Table, key: &str, bytes: Vec<u8>) {
        self.changes.push(Change::Put(table, key.to_owned(), bytes));
    }

    pub fn delete(&mut self, table: Table, key: &str) {
        self.changes.push(Change::Delete(table, key.to_owned()));
    }

    pub fn set_meta(&mut self, key: &'static str, value: u64) {
        self.changes.push(Change::Meta(key, value));
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }
}

/// The database and the tables of the pipeline.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Format 1 tables are present and wait for [`Store::finish_migration`].
    legacy: bool,
}

impl Store {
    /// Opens (or creates) `DIR/state.redb`; refuses a format it does not know.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let txn = db.begin_write().map_err(redb_error)?;
        let names: Vec<String> = txn
            .list_tables()
            .map_err(redb_error)?
            .map(|t| t.name().to_owned())
            .collect();
        let has = |name: &str| names.iter().any(|n| n == name);
        let legacy = if has(META.name()) {
            let meta = txn.open_table(META).map_err(redb_error)?;
            let found = meta
                .get(META_FORMAT)
                .map_err(redb_error)?
                .map_or(0, |v| v.value());
            if found != FORMAT {
                return Err(StoreError::Format { path, found });
            }
            false
        } else {
            has(LEGACY_ALERTS.name()) || has(LEGACY_ISSUED.name()) || has(LEGACY_GROUPS.name())
        };
        // Create the tables up front so reads of a fresh database find them.
        for table in TABLES {
            txn.open_table(table.definition()).map_err(redb_error)?;
        }
        if !legacy {
            let mut meta = txn.open_table(META).map_err(redb_error)?;
            meta.insert(META_FORMAT, FORMAT).map_err(redb_error)?;
        }
        txn.commit().map_err(redb_error)?;
        Ok(Self {
            db: Arc::new(db),
            legacy,
        })
    }

    /// The database, shared with the outbox.
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// Whether the file holds format 1 state to migrate.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    pub fn begin(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(redb_error)
    }

    /// Writes a batch inside `txn` (the caller commits, after adding its outbox entries).
    pub fn write(&self, txn: &WriteTransaction, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tables = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            tables.push((
                table,
                txn.open_table(table.definition()).map_err(redb_error)?,
            ));
        }
        let mut meta = txn.open_table(META).map_err(redb_error)?;
        let mut changes = batch.changes;
        // In key order, each B-tree leaf is visited once in a run instead of once per random
        // fingerprint. The sort is stable: two changes of one key keep their order.
        changes.sort_by(|a, b| a.order().cmp(&b.order()));
        for change in changes {
            match change {
                Change::Put(table, key, value) => {
                    if let Some((_, open)) = tables.iter_mut().find(|(t, _)| *t == table) {
                        open.insert(key.as_str(), value.as_slice())
                            .map_err(redb_error)?;
                    }
                }
                Change::Delete(table, key) => {
                    if let Some((_, open)) = tables.iter_mut().find(|(t, _)| *t == table) {
                        open.remove(key.as_str()).map_err(redb_error)?;
                    }
                }
                Change::Meta(key, value) => {
                    meta.insert(key, value).map_err(redb_error)?;
                }
            }
        }
        Ok(())
    }

    /// Writes a batch in its own transaction and commits it.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let txn = self.begin()?;
        self.write(&txn, batch)?;
        txn.commit().map_err(redb_error)
    }

    /// Every JSON record of a table, decoded.
    pub fn load<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        self.load_json(table.definition(), table.name())
    }

    /// Every JSON record of a format 1 table (migration only).
    pub fn load_legacy<T: DeserializeOwned>(
        &self,
        table: LegacyTable,
    ) -> Result<Vec<(String, T)>, StoreError> {
        if !self.legacy {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(redb_error)?;
        match txn.open_table(table.definition()) {
            Ok(_) => self.load_json(table.definition(), "format 1"),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(error) => Err(redb_error(error)),
        }
    }

    fn load_json<T: DeserializeOwned>(
        &self,
        definition: TableDefinition<&str, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let open = txn.open_table(definition).map_err(redb_error)?;
        let mut records = Vec::new();
        for entry in open.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let key = key.value().to_owned();
            let record = serde_json::from_slice(value.value()).map_err(|e| StoreError::Decode {
                table: name,
                key: key.clone(),
                message: e.to_string(),
            })?;
            records.push((key, record));
        }
        Ok(records)
    }

    /// Every record of a binary table, decoded by `decode` (its error names the key).
    pub fn load_with<T, E: std::fmt::Display>(
        &self,
        table: Table,
        mut decode: impl FnMut(&str, &[u8]) -> Result<T, E>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let open = txn.open_table(table.definition()).map_err(redb_error)?;
        let mut records = Vec::new();
        for entry in open.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let key = key.value().to_owned();
            let record = decode(&key, value.value()).map_err(|e| StoreError::Decode {
                table: table.name(),
                key: key.clone(),
                message: e.to_string(),
            })?;
            records.push((key, record));
        }
        Ok(records)
    }

    pub fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        match txn.open_table(META) {
            Ok(meta) => Ok(meta.get(key).map_err(redb_error)?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(redb_error(error)),
        }
    }

    /// Writes the migrated state, drops the format 1 tables and records format 2, in one
    /// transaction: a crash before it commits leaves the format 1 file as it was.
    pub fn finish_migration(&mut self, mut batch: Batch) -> Result<(), StoreError> {
        if !self.legacy {
            return Ok(());
        }
        batch.set_meta(META_FORMAT, FORMAT);
        let txn = self.begin()?;
        self.write(&txn, batch)?;
        for table in [
            LegacyTable::Alerts,
            LegacyTable::Issued,
            LegacyTable::Groups,
        ] {
            txn.delete_table(table.definition()).map_err(redb_error)?;
        }
        txn.commit().map_err(redb_error)?;
        self.legacy = false;
        Ok(())
    }
}

pub fn commit_error(error: redb::CommitError) -> StoreError {
    redb_error(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_batch_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            batch
                .put(Table::Ignores, "a", &serde_json::json!({"x": 1}))
                .unwrap();
            batch
                .put(Table::Ignores, "b", &serde_json::json!({"x": 2}))
                .unwrap();
            batch.delete(Table::Ignores, "a");
            batch.put_bytes(Table::Fingerprints, "f", vec![1, 2]);
            batch.set_meta(META_NEXT_GROUP_SEQ, 7);
            store.commit(batch).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.is_legacy());
        let records: Vec<(String, serde_json::Value)> = store.load(Table::Ignores).unwrap();
        assert_eq!(
            records,
            vec![("b".to_string(), serde_json::json!({"x": 2}))]
        );
        let bytes = store
            .load_with(Table::Fingerprints, |_, b| Ok::<_, String>(b.to_vec()))
            .unwrap();
        assert_eq!(bytes, vec![("f".to_string(), vec![1, 2])]);
        assert_eq!(store.meta(META_NEXT_GROUP_SEQ).unwrap(), Some(7));
        assert_eq!(store.meta(META_FORMAT).unwrap(), Some(FORMAT));
    }

    #[test]
    fn an_unknown_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            batch.set_meta(META_FORMAT, 3);
            store.commit(batch).unwrap();
        }
        let Err(error) = Store::open(dir.path()) else {
            panic!("format 3 opened");
        };
        let message = error.to_string();
        assert!(
            message.contains("has format 3") && message.contains("reads format 2"),
            "{message}"
        );
    }
}
