//! The alert manager's crash-safe state in redb: ignore rules, alert records (sightings for
//! Occurrences), issued alerts and waiting groups, one table each, values as JSON. The outbox
//! keeps its own tables in the same database, so a state change and the notification it causes
//! commit in one transaction.
//!
//! It must never make a change visible before it is durable: callers change memory only after
//! `commit` returned, and every table is written inside one write transaction per request or
//! tick, never one per alert.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The tables this module owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Ignores,
    Alerts,
    Issued,
    Groups,
}

const IGNORES: TableDefinition<&str, &[u8]> = TableDefinition::new("am_ignores");
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_alerts");
const ISSUED: TableDefinition<&str, &[u8]> = TableDefinition::new("am_issued");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("am_groups");

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Ignores => IGNORES,
            Table::Alerts => ALERTS,
            Table::Issued => ISSUED,
            Table::Groups => GROUPS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Ignores => "ignores",
            Table::Alerts => "alerts",
            Table::Issued => "issued",
            Table::Groups => "groups",
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
}

/// Changes collected while a request or tick is processed, written in one go.
#[derive(Default)]
pub struct Batch {
    changes: Vec<Change>,
}

impl Batch {
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

    pub fn delete(&mut self, table: Table, key: &str) {
        self.changes.push(Change::Delete(table, key.to_owned()));
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
}

impl Store {
    /// Opens (or creates) `DIR/state.redb`.
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
        let store = Self { db: Arc::new(db) };
        // Create the tables up front so reads of a fresh database find them.
        let txn = store.begin()?;
        for table in [Table::Ignores, Table::Alerts, Table::Issued, Table::Groups] {
            txn.open_table(table.definition()).map_err(redb_error)?;
        }
        txn.commit().map_err(redb_error)?;
        Ok(store)
    }

    /// The database, shared with the outbox.
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    pub fn begin(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(redb_error)
    }

    /// Writes a batch inside `txn` (the caller commits, after adding its outbox entries).
    pub fn write(&self, txn: &WriteTransaction, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tables = Vec::with_capacity(4);
        for table in [Table::Ignores, Table::Alerts, Table::Issued, Table::Groups] {
            tables.push((
                table,
                txn.open_table(table.definition()).map_err(redb_error)?,
            ));
        }
        for change in batch.changes {
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

    /// Every record of a table, decoded.
    pub fn load<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let open = txn.open_table(table.definition()).map_err(redb_error)?;
        let mut records = Vec::new();
        for entry in open.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let key = key.value().to_owned();
            let record = serde_json::from_slice(value.value()).map_err(|e| StoreError::Decode {
                table: table.name(),
                key: key.clone(),
                message: e.to_string(),
            })?;
            records.push((key, record));
        }
        Ok(records)
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
            store.commit(batch).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let records: Vec<(String, serde_json::Value)> = store.load(Table::Ignores).unwrap();
        assert_eq!(
            records,
            vec![("b".to_string(), serde_json::json!({"x": 2}))]
        );
        let none: Vec<(String, serde_json::Value)> = store.load(Table::Groups).unwrap();
        assert!(none.is_empty());
    }
}
