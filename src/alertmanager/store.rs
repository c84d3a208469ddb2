//! The alert manager's crash-safe state in redb. The outbox keeps its own tables in the same
//! database, so a state change and the notification it causes commit in one transaction.
//!
//! On-disk format 3 (the number is `am_meta["format"]`):
//! - `am_ignores`: rule id -> the ignore rule as JSON (rare writes, read by operators' tools).
//! - `am_slot_states`: slot -> one small binary state record ([`super::records`]): the
//!   fingerprint, first and last seen, sender's end, sightings (Occurrences), state and
//!   receivers, its IssuedAlerts entry (times, deliveries, Success withheld) if any, and its
//!   memberships of waiting groups. A sighting that changes state writes this one record.
//! - `am_slot_contents`: slot -> the alert itself (labels, annotations, value, time) as last
//!   persisted, plus the issued entry's copy when that differs. Written when the alert is new or
//!   its content changed, so state changes do not rewrite labels and annotations.
//! - `am_group_headers`: group key -> the waiting group without its alerts (sequence number,
//!   receiver, labels, created, due, request id). A group's alerts are the state records whose
//!   pending reference names the key and sequence number; flushing a group deletes its header,
//!   which turns those references stale.
//! - `am_meta`: `format` (3) and `next_group_seq` (sequence numbers are never reused, so a stale
//!   reference never matches a later group with the same key).
//!
//! A slot is a fixed-width `u64` the pipeline gives a fingerprint when it first stores it, in
//! arrival order: a sender's batch of new alerts is appended to the end of both tables, and its
//! later state changes land in the few B-tree leaves that batch filled, instead of one random
//! leaf per alert (format 2 keyed both tables by the fingerprint string, so every large commit
//! rewrote nearly every leaf, and compared keys as UTF-8 strings). A slot is only an address:
//! nothing refers to it but the pipeline's map from fingerprint to slot, rebuilt at load.
//!
//! Format 2 (the same records keyed by fingerprint in `am_fingerprints` and `am_alert_content`)
//! and format 1 (no `am_meta`; `am_alerts`, `am_issued`, `am_groups` as JSON) are migrated in
//! one transaction when opened; any other format number is refused with
//! [`StoreError::Format`].
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
pub const FORMAT: u64 = 3;

/// The tables this module owns that are keyed by a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Ignores,
    GroupHeaders,
}

/// The tables keyed by a fingerprint's slot (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotTable {
    States,
    Contents,
}

/// Tables of earlier formats, read only to migrate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyTable {
    /// Format 1.
    Alerts,
    /// Format 1.
    Issued,
    /// Format 1.
    Groups,
    /// Format 2: fingerprint -> state record.
    Fingerprints,
    /// Format 2: fingerprint -> content record.
    Contents,
}

const IGNORES: TableDefinition<&str, &[u8]> = TableDefinition::new("am_ignores");
const GROUP_HEADERS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_group_headers");
const SLOT_STATES: TableDefinition<u64, &[u8]> = TableDefinition::new("am_slot_states");
const SLOT_CONTENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("am_slot_contents");
const META: TableDefinition<&str, u64> = TableDefinition::new("am_meta");
const LEGACY_ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_alerts");
const LEGACY_ISSUED: TableDefinition<&str, &[u8]> = TableDefinition::new("am_issued");
const LEGACY_GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_groups");
const LEGACY_FINGERPRINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_fingerprints");
const LEGACY_CONTENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_alert_content");

pub const META_FORMAT: &str = "format";
pub const META_NEXT_GROUP_SEQ: &str = "next_group_seq";

const TABLES: [Table; 2] = [Table::Ignores, Table::GroupHeaders];
const SLOT_TABLES: [SlotTable; 2] = [SlotTable::States, SlotTable::Contents];
const LEGACY_TABLES: [LegacyTable; 5] = [
    LegacyTable::Alerts,
    LegacyTable::Issued,
    LegacyTable::Groups,
    LegacyTable::Fingerprints,
    LegacyTable::Contents,
];

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Ignores => IGNORES,
            Table::GroupHeaders => GROUP_HEADERS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Ignores => "ignores",
            Table::GroupHeaders => "group headers",
        }
    }
}

impl SlotTable {
    fn definition(self) -> TableDefinition<'static, u64, &'static [u8]> {
        match self {
            SlotTable::States => SLOT_STATES,
            SlotTable::Contents => SLOT_CONTENTS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SlotTable::States => "slot states",
            SlotTable::Contents => "slot contents",
        }
    }
}

impl LegacyTable {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            LegacyTable::Alerts => LEGACY_ALERTS,
            LegacyTable::Issued => LEGACY_ISSUED,
            LegacyTable::Groups => LEGACY_GROUPS,
            LegacyTable::Fingerprints => LEGACY_FINGERPRINTS,
            LegacyTable::Contents => LEGACY_CONTENTS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LegacyTable::Alerts | LegacyTable::Issued | LegacyTable::Groups => "format 1",
            LegacyTable::Fingerprints | LegacyTable::Contents => "format 2",
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
        "the state database {path} has format {found}, this build reads format {FORMAT} \
         (and migrates formats 1 and 2); use the build that wrote it, or move the file away \
         to start with empty state"
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

/// One pending change of a string-keyed table or the meta table.
enum Change {
    Put(Table, String, Vec<u8>),
    Delete(Table, String),
    Meta(&'static str, u64),
}

impl Change {
    /// Where the change goes: meta first, then each table in key order.
    fn order(&self) -> (u8, &str) {
        match self {
            Change::Meta(key, _) => (0, key),
            Change::Put(table, key, _) | Change::Delete(table, key) => (1 + *table as u8, key),
        }
    }
}

/// One pending change of a slot table (`None`: delete). `order` is its position in the batch,
/// so that two changes of one slot keep their order through an unstable sort.
struct SlotChange {
    table: SlotTable,
    slot: u64,
    order: usize,
    value: Option<Vec<u8>>,
}

/// Changes collected while a request or tick is processed, written in one go.
#[derive(Default)]
pub struct Batch {
    changes: Vec<Change>,
    /// Kept apart: thousands per batch, sorted by integer keys without comparing strings.
    slot_changes: Vec<SlotChange>,
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

    /// An encoded record at a fingerprint's slot.
    pub fn put_slot(&mut self, table: SlotTable, slot: u64, bytes: Vec<u8>) {
        self.push_slot(table, slot, Some(bytes));
    }

    pub fn delete_slot(&mut self, table: SlotTable, slot: u64) {
        self.push_slot(table, slot, None);
    }

    fn push_slot(&mut self, table: SlotTable, slot: u64, value: Option<Vec<u8>>) {
        let order = self.slot_changes.len();
        self.slot_changes.push(SlotChange {
            table,
            slot,
            order,
            value,
        });
    }

    pub fn set_meta(&mut self, key: &'static str, value: u64) {
        self.changes.push(Change::Meta(key, value));
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.slot_changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len() + self.slot_changes.len()
    }
}

/// The database and the tables of the pipeline.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// The earlier format (1 or 2) whose tables wait for [`Store::finish_migration`].
    legacy: Option<u64>,
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
            match found {
                FORMAT => None,
                2 => Some(2),
                _ => return Err(StoreError::Format { path, found }),
            }
        } else if has(LEGACY_ALERTS.name())
            || has(LEGACY_ISSUED.name())
            || has(LEGACY_GROUPS.name())
        {
            Some(1)
        } else {
            None
        };
        // Create the tables up front so reads of a fresh database find them.
        for table in TABLES {
            txn.open_table(table.definition()).map_err(redb_error)?;
        }
        for table in SLOT_TABLES {
            txn.open_table(table.definition()).map_err(redb_error)?;
        }
        if legacy.is_none() {
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

    /// The earlier format (1 or 2) the file holds and that waits to be migrated.
    pub fn legacy_format(&self) -> Option<u64> {
        self.legacy
    }

    pub fn begin(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(redb_error)
    }

    /// Writes a batch inside `txn` (the caller commits, after adding its outbox entries). Only
    /// the tables the batch touches are opened.
    pub fn write(&self, txn: &WriteTransaction, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tables: [Option<redb::Table<'_, &str, &[u8]>>; 2] = [None, None];
        let mut slot_tables: [Option<redb::Table<'_, u64, &[u8]>>; 2] = [None, None];
        let mut meta = None;
        let Batch {
            mut changes,
            mut slot_changes,
        } = batch;
        // In key order, each B-tree leaf is visited once in a run. Two changes of one key keep
        // their order (a stable sort here; the batch position breaks ties below).
        changes.sort_by(|a, b| a.order().cmp(&b.order()));
        slot_changes.sort_unstable_by_key(|c| (c.table, c.slot, c.order));
        for change in slot_changes {
            let open = open_in(
                txn,
                &mut slot_tables[change.table as usize],
                change.table.definition(),
            )?;
            match change.value {
                Some(value) => {
                    open.insert(change.slot, value.as_slice())
                        .map_err(redb_error)?;
                }
                None => {
                    open.remove(change.slot).map_err(redb_error)?;
                }
            }
        }
        for change in changes {
            match change {
                Change::Put(table, key, value) => {
                    let open = open_in(txn, &mut tables[table as usize], table.definition())?;
                    open.insert(key.as_str(), value.as_slice())
                        .map_err(redb_error)?;
                }
                Change::Delete(table, key) => {
                    let open = open_in(txn, &mut tables[table as usize], table.definition())?;
                    open.remove(key.as_str()).map_err(redb_error)?;
                }
                Change::Meta(key, value) => {
                    let open = open_in(txn, &mut meta, META)?;
                    open.insert(key, value).map_err(redb_error)?;
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
        if self.legacy.is_none() || !self.has_table(table)? {
            return Ok(Vec::new());
        }
        self.load_json(table.definition(), table.name())
    }

    /// Every record of a binary format 2 table, decoded by `decode` (migration only).
    pub fn load_legacy_with<T, E: std::fmt::Display>(
        &self,
        table: LegacyTable,
        decode: impl FnMut(&str, &[u8]) -> Result<T, E>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        if self.legacy.is_none() || !self.has_table(table)? {
            return Ok(Vec::new());
        }
        self.load_str_keyed(table.definition(), table.name(), decode)
    }

    fn has_table(&self, table: LegacyTable) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        match txn.open_table(table.definition()) {
            Ok(_) => Ok(true),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(error) => Err(redb_error(error)),
        }
    }

    fn load_json<T: DeserializeOwned>(
        &self,
        definition: TableDefinition<&str, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.load_str_keyed(definition, name, |_, bytes| serde_json::from_slice(bytes))
    }

    fn load_str_keyed<T, E: std::fmt::Display>(
        &self,
        definition: TableDefinition<&str, &[u8]>,
        name: &'static str,
        mut decode: impl FnMut(&str, &[u8]) -> Result<T, E>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let open = txn.open_table(definition).map_err(redb_error)?;
        let mut records = Vec::new();
        for entry in open.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let key = key.value().to_owned();
            let record = decode(&key, value.value()).map_err(|e| StoreError::Decode {
                table: name,
                key: key.clone(),
                message: e.to_string(),
            })?;
            records.push((key, record));
        }
        Ok(records)
    }

    /// Every record of a binary string-keyed table, decoded by `decode` (its error names the
    /// key).
    pub fn load_with<T, E: std::fmt::Display>(
        &self,
        table: Table,
        decode: impl FnMut(&str, &[u8]) -> Result<T, E>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.load_str_keyed(table.definition(), table.name(), decode)
    }

    /// Every record of a slot table in slot order, decoded by `decode`.
    pub fn load_slots<T, E: std::fmt::Display>(
        &self,
        table: SlotTable,
        mut decode: impl FnMut(u64, &[u8]) -> Result<T, E>,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let open = txn.open_table(table.definition()).map_err(redb_error)?;
        let mut records = Vec::new();
        for entry in open.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let slot = key.value();
            let record = decode(slot, value.value()).map_err(|e| StoreError::Decode {
                table: table.name(),
                key: slot.to_string(),
                message: e.to_string(),
            })?;
            records.push((slot, record));
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

    /// Writes the migrated state, drops the tables of the earlier format and records format 3,
    /// in one transaction: a crash before it commits leaves the earlier file as it was.
    pub fn finish_migration(&mut self, mut batch: Batch) -> Result<(), StoreError> {
        if self.legacy.is_none() {
            return Ok(());
        }
        batch.set_meta(META_FORMAT, FORMAT);
        let txn = self.begin()?;
        self.write(&txn, batch)?;
        for table in LEGACY_TABLES {
            txn.delete_table(table.definition()).map_err(redb_error)?;
        }
        txn.commit().map_err(redb_error)?;
        self.legacy = None;
        Ok(())
    }
}

/// The table in `slot`, opened in `txn` on first use.
fn open_in<'txn, 'slot, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'txn WriteTransaction,
    slot: &'slot mut Option<redb::Table<'txn, K, V>>,
    definition: TableDefinition<'_, K, V>,
) -> Result<&'slot mut redb::Table<'txn, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(definition).map_err(redb_error)?);
    }
    slot.as_mut()
        .ok_or_else(|| StoreError::Redb("table not open".to_owned()))
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
            batch.put_slot(SlotTable::States, 7, vec![1, 2]);
            batch.put_slot(SlotTable::States, 3, vec![3]);
            batch.delete_slot(SlotTable::States, 3);
            batch.set_meta(META_NEXT_GROUP_SEQ, 7);
            store.commit(batch).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.legacy_format(), None);
        let records: Vec<(String, serde_json::Value)> = store.load(Table::Ignores).unwrap();
        assert_eq!(
            records,
            vec![("b".to_string(), serde_json::json!({"x": 2}))]
        );
        let bytes = store
            .load_slots(SlotTable::States, |_, b| Ok::<_, String>(b.to_vec()))
            .unwrap();
        assert_eq!(bytes, vec![(7, vec![1, 2])]);
        assert_eq!(store.meta(META_NEXT_GROUP_SEQ).unwrap(), Some(7));
        assert_eq!(store.meta(META_FORMAT).unwrap(), Some(FORMAT));
    }

    #[test]
    fn an_unknown_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            batch.set_meta(META_FORMAT, 4);
            store.commit(batch).unwrap();
        }
        let Err(error) = Store::open(dir.path()) else {
            panic!("format 4 opened");
        };
        let message = error.to_string();
        assert!(
            message.contains("has format 4") && message.contains("reads format 3"),
            "{message}"
        );
    }
}
