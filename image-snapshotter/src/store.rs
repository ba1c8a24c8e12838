//! Snapshot metadata in a redb database: one transaction per operation, so a process killed at
//! any moment leaves either the state before or after the operation, never a mix.
//!
//! Tables: `snapshots` (key -> JSON record), `children` ((parent id, child id) -> child key, so
//! "has this snapshot children?" is one range probe) and `meta` (the id sequence).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const CHILDREN: TableDefinition<(u64, u64), &str> = TableDefinition::new("children");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    View,
    Active,
    Committed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        }
    }
}

/// What is stored for one snapshot. Times are nanoseconds since the epoch (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub kind: Kind,
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    pub created: u64,
    pub updated: u64,
    #[serde(default)]
    pub inodes: i64,
    #[serde(default)]
    pub size: i64,
}

/// A snapshot with its whole chain of parent ids, nearest parent first: what mounts need.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub id: u64,
    pub kind: Kind,
    pub parent_ids: Vec<u64>,
}

pub fn now_nanos() -> u64 {
    to_nanos(SystemTime::now())
}

pub fn to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn from_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

pub struct Store {
    /// `None` only between a failed reopen and the next try. redb refuses every call after
    /// an I/O error (a full disk, say) until the database is opened again: `reopening` does
    /// that, holding the write side while no transaction runs.
    db: RwLock<Option<Database>>,
    /// Set when a call met an I/O error: the next one opens the database again.
    reopen: AtomicBool,
    /// From the first reopen until a call succeeds again: a full disk fails every call,
    /// and the log says so once, not once per call.
    failing: AtomicBool,
    path: PathBuf,
}

/// Table handles of one write transaction.
pub struct Tables<'t> {
    snapshots: redb::Table<'t, &'static str, &'static [u8]>,
    children: redb::Table<'t, (u64, u64), &'static str>,
    meta: redb::Table<'t, &'static str, u64>,
    path: &'t Path,
}

/// Table handles of one read transaction.
pub struct ReadTables<'t> {
    snapshots: redb::ReadOnlyTable<&'static str, &'static [u8]>,
    path: &'t Path,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|e| db_err(path, "open", e))?;
        let store = Store {
            db: RwLock::new(Some(db)),
            reopen: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            path: path.to_path_buf(),
        };
        // Create the tables once, so read transactions never meet a missing table.
        store.write(|_| Ok(()))?;
        Ok(store)
    }

    /// Runs `f` in a write transaction, committed (durably) only if `f` succeeds.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> Result<T>) -> Result<T> {
        self.in_write_txn(true, f)
    }

    /// Runs `f` holding the write lock (so no other change interleaves) but changes nothing:
    /// the transaction is aborted, which costs no sync to disk.
    pub fn locked<T>(&self, f: impl FnOnce(&mut Tables<'_>) -> Result<T>) -> Result<T> {
        self.in_write_txn(false, f)
    }

    /// The open database, for one transaction: opened again first if an earlier call met an
    /// I/O error (redb then answers every call with PreviousIo) or a reopen failed.
    fn db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>> {
        let p = self.path.as_path();
        {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            if db.is_some() && !self.reopen.load(Ordering::Acquire) {
                return Ok(db);
            }
        }
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if db.is_none() || self.reopen.swap(false, Ordering::AcqRel) {
            // The old handle holds the file's lock: it goes before the new one opens.
            *db = None;
            if !self.failing.swap(true, Ordering::AcqRel) {
                tracing::warn!(path = %p.display(), "metadata store failed with an I/O error; opened again on each call until one succeeds");
            }
            *db = Some(Database::create(p).map_err(|e| db_err(p, "reopen", e))?);
        }
        drop(db);
        Ok(self.db.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes an I/O error in `r` (the database must be opened again before the next call).
    fn watch<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Err(Error::Store { source, .. })
                if matches!(**source, redb::Error::Io(_) | redb::Error::PreviousIo) =>
            {
                self.reopen.store(true, Ordering::Release);
            }
            // The load first: a healthy store's calls only read the flag.
            Ok(_)
                if self.failing.load(Ordering::Acquire)
                    && self.failing.swap(false, Ordering::AcqRel) =>
            {
                tracing::info!(path = %self.path.display(), "metadata store works again");
            }
            _ => {}
        }
        r
    }

    fn in_write_txn<T>(
        &self,
        commit: bool,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T>,
    ) -> Result<T> {
        let r = self.in_write_txn_once(commit, f);
        self.watch(r)
    }

    fn in_write_txn_once<T>(
        &self,
        commit: bool,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T>,
    ) -> Result<T> {
        let p = self.path.as_path();
        let db = self.db()?;
        let db = db
            .as_ref()
            .ok_or_else(|| Error::Other("metadata store closed".into()))?;
        let txn = db.begin_write().map_err(|e| db_err(p, "begin", e))?;
        let out = {
            let mut tables = Tables {
                snapshots: txn
                    .open_table(SNAPSHOTS)
                    .map_err(|e| db_err(p, "open table", e))?,
                children: txn
                    .open_table(CHILDREN)
                    .map_err(|e| db_err(p, "open table", e))?,
                meta: txn
                    .open_table(META)
                    .map_err(|e| db_err(p, "open table", e))?,
                path: p,
            };
            f(&mut tables)
        };
        match out {
            Ok(v) if commit => {
                txn.commit().map_err(|e| db_err(p, "commit", e))?;
                Ok(v)
            }
            Ok(v) => {
                txn.abort().map_err(|e| db_err(p, "abort", e))?;
                Ok(v)
            }
            Err(e) => {
                // Dropping aborts too; an explicit abort reports failures to roll back.
                if let Err(ae) = txn.abort() {
                    tracing::warn!(path = %p.display(), error = %ae, "abort of write transaction failed");
                }
                Err(e)
            }
        }
    }

    pub fn read<T>(&self, f: impl FnOnce(&ReadTables<'_>) -> Result<T>) -> Result<T> {
        let r = self.read_once(f);
        self.watch(r)
    }

    fn read_once<T>(&self, f: impl FnOnce(&ReadTables<'_>) -> Result<T>) -> Result<T> {
        let p = self.path.as_path();
        let db = self.db()?;
        let db = db
            .as_ref()
            .ok_or_else(|| Error::Other("metadata store closed".into()))?;
        let txn = db.begin_read().map_err(|e| db_err(p, "begin", e))?;
        let tables = ReadTables {
            snapshots: txn
                .open_table(SNAPSHOTS)
                .map_err(|e| db_err(p, "open table", e))?,
            path: p,
        };
        f(&tables)
    }
}

fn db_err(path: &Path, context: &str, e: impl Into<redb::Error>) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        context: context.to_string(),
        source: Box::new(e.into()),
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn get_from(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
    key: &str,
) -> Result<Option<Record>> {
    let guard = table.get(key).map_err(|e| db_err(path, "get", e))?;
    guard.map(|g| decode(key, g.value())).transpose()
}

fn chain_from(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
    mut parent: String,
) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    while !parent.is_empty() {
        let rec = get_from(table, path, &parent)?
            .ok_or_else(|| Error::NotFound(format!("parent snapshot {parent:?}")))?;
        ids.push(rec.id);
        parent = rec.parent;
    }
    Ok(ids)
}

fn all_from(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    path: &Path,
) -> Result<Vec<(String, Record)>> {
    let mut out = Vec::new();
    for item in table.iter().map_err(|e| db_err(path, "iterate", e))? {
        let (k, v) = item.map_err(|e| db_err(path, "iterate", e))?;
        out.push((k.value().to_string(), decode(k.value(), v.value())?));
    }
    Ok(out)
}

impl ReadTables<'_> {
    pub fn get(&self, key: &str) -> Result<Record> {
        get_from(&self.snapshots, self.path, key)?
            .ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))
    }

    /// The snapshot and its parent chain, for Mounts: only active and view snapshots have mounts.
    pub fn chain(&self, key: &str) -> Result<Chain> {
        let rec = self.get(key)?;
        if rec.kind == Kind::Committed {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is committed, not active or view"
            )));
        }
        Ok(Chain {
            id: rec.id,
            kind: rec.kind,
            parent_ids: chain_from(&self.snapshots, self.path, rec.parent)?,
        })
    }

    pub fn all(&self) -> Result<Vec<(String, Record)>> {
        all_from(&self.snapshots, self.path)
    }
}

impl Tables<'_> {
    pub fn get(&self, key: &str) -> Result<Record> {
        self.find(key)?
            .ok_or_else(|| Error::NotFound(format!("snapshot {key:?}")))
    }

    pub fn find(&self, key: &str) -> Result<Option<Record>> {
        get_from(&self.snapshots, self.path, key)
    }

    fn put(&mut self, key: &str, rec: &Record) -> Result<()> {
        let bytes = serde_json::to_vec(rec).map_err(|e| Error::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        self.snapshots
            .insert(key, bytes.as_slice())
            .map_err(|e| db_err(self.path, "insert", e))?;
        Ok(())
    }

    fn next_id(&mut self) -> Result<u64> {
        let cur = self
            .meta
            .get(NEXT_ID)
            .map_err(|e| db_err(self.path, "get", e))?
            .map(|g| g.value())
            .unwrap_or(1);
        self.meta
            .insert(NEXT_ID, cur + 1)
            .map_err(|e| db_err(self.path, "insert", e))?;
        Ok(cur)
    }

    /// Inserts an active or view snapshot; checks in containerd's order (parent missing,
    /// parent not committed, key taken).
    pub fn create(
        &mut self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Chain> {
        if kind == Kind::Committed {
            return Err(Error::InvalidArgument(format!(
                "snapshot {key:?}: only active or view snapshots can be created"
            )));
        }
        let mut parent_ids = Vec::new();
        if !parent.is_empty() {
            let p = self
                .find(parent)?
                .ok_or_else(|| Error::NotFound(format!("parent snapshot {parent:?}")))?;
            if p.kind != Kind::Committed {
                return Err(Error::InvalidArgument(format!(
                    "parent {parent:?} is not a committed snapshot"
                )));
            }
            parent_ids.push(p.id);
            parent_ids.extend(chain_from(&self.snapshots, self.path, p.parent)?);
        }
        if self.find(key)?.is_some() {
            return Err(Error::AlreadyExists(format!("snapshot {key:?}")));
        }
        let id = self.next_id()?;
        let t = now_nanos();
        let rec = Record {
            id,
            kind,
            parent: parent.to_string(),
            labels: non_empty(labels),
            created: t,
            updated: t,
            inodes: 0,
            size: 0,
        };
        self.put(key, &rec)?;
        if let Some(&pid) = parent_ids.first() {
            self.children
                .insert((pid, id), key)
                .map_err(|e| db_err(self.path, "insert", e))?;
        }
        Ok(Chain {
            id,
            kind,
            parent_ids,
        })
    }

    /// Turns active snapshot `key` into committed snapshot `name`, keeping its id (and so its
    /// directory): the rename is the whole commit, so it is atomic.
    pub fn commit(
        &mut self,
        key: &str,
        name: &str,
        usage: (i64, i64),
        labels: HashMap<String, String>,
    ) -> Result<u64> {
        if self.find(name)?.is_some() {
            return Err(Error::AlreadyExists(format!("committed snapshot {name:?}")));
        }
        let mut rec = self
            .find(key)?
            .ok_or_else(|| Error::NotFound(format!("active snapshot {key:?}")))?;
        if rec.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is {}, not active",
                rec.kind.as_str()
            )));
        }
        let t = now_nanos();
        rec.kind = Kind::Committed;
        rec.created = t;
        rec.updated = t;
        rec.labels = non_empty(labels);
        (rec.inodes, rec.size) = usage;
        self.snapshots
            .remove(key)
            .map_err(|e| db_err(self.path, "remove", e))?;
        self.put(name, &rec)?;
        if !rec.parent.is_empty() {
            let pid = self.get(&rec.parent)?.id;
            self.children
                .insert((pid, rec.id), name)
                .map_err(|e| db_err(self.path, "insert", e))?;
        }
        Ok(rec.id)
    }

    /// Removes the record of `key`, refusing while it has children.
    pub fn remove(&mut self, key: &str) -> Result<Record> {
        let rec = self.get(key)?;
        let has_child = self
            .children
            .range((rec.id, 0)..=(rec.id, u64::MAX))
            .map_err(|e| db_err(self.path, "range", e))?
            .next()
            .is_some();
        if has_child {
            return Err(Error::FailedPrecondition(format!(
                "cannot remove snapshot {key:?}: it has children"
            )));
        }
        if !rec.parent.is_empty() {
            let pid = self.get(&rec.parent)?.id;
            self.children
                .remove((pid, rec.id))
                .map_err(|e| db_err(self.path, "remove", e))?;
        }
        self.snapshots
            .remove(key)
            .map_err(|e| db_err(self.path, "remove", e))?;
        Ok(rec)
    }

    /// Updates the labels of `key` as containerd's storage.UpdateInfo does: no field paths
    /// replace all labels; `labels` replaces them; `labels.K` sets (or, empty, removes) one.
    pub fn update_labels(
        &mut self,
        key: &str,
        labels: HashMap<String, String>,
        fieldpaths: &[String],
    ) -> Result<Record> {
        let mut rec = self.get(key)?;
        if fieldpaths.is_empty() {
            rec.labels = labels;
        } else {
            for path in fieldpaths {
                if let Some(label) = path.strip_prefix("labels.") {
                    let value = labels.get(label).cloned().unwrap_or_default();
                    rec.labels.insert(label.to_string(), value);
                } else if path == "labels" {
                    rec.labels = labels.clone();
                } else {
                    return Err(Error::InvalidArgument(format!(
                        "cannot update field {path:?} of snapshot {key:?}"
                    )));
                }
            }
        }
        rec.labels = non_empty(std::mem::take(&mut rec.labels));
        rec.updated = now_nanos();
        self.put(key, &rec)?;
        Ok(rec)
    }

    pub fn ids(&self) -> Result<HashSet<u64>> {
        Ok(all_from(&self.snapshots, self.path)?
            .into_iter()
            .map(|(_, r)| r.id)
            .collect())
    }
}

/// containerd stores no empty label values: setting one to "" deletes it.
fn non_empty(mut labels: HashMap<String, String>) -> HashMap<String, String> {
    labels.retain(|_, v| !v.is_empty());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("metadata.db")).unwrap();
        (dir, s)
    }

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_commit_chain_and_ids() {
        let (_d, s) = store();
        let a = s
            .write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
            .unwrap();
        assert!(a.parent_ids.is_empty());
        s.write(|t| t.commit("a", "base", (3, 4096), labels(&[("x", "1")])))
            .unwrap();
        let b = s
            .write(|t| t.create(Kind::Active, "b", "base", HashMap::new()))
            .unwrap();
        assert_eq!(b.parent_ids, vec![a.id]);
        s.write(|t| t.commit("b", "top", (1, 0), HashMap::new()))
            .unwrap();
        let v = s
            .write(|t| t.create(Kind::View, "v", "top", HashMap::new()))
            .unwrap();
        assert_eq!(v.parent_ids, vec![b.id, a.id]);
        let chain = s.read(|t| t.chain("v")).unwrap();
        assert_eq!(chain, v);
        let base = s.read(|t| t.get("base")).unwrap();
        assert_eq!((base.inodes, base.size), (3, 4096));
        assert_eq!(base.labels, labels(&[("x", "1")]));
        assert!(
            s.read(|t| t.get("a")).is_err(),
            "active key is gone after commit"
        );
        let ids = s.write(|t| t.ids()).unwrap();
        assert_eq!(ids, HashSet::from([a.id, b.id, v.id]));
    }

    #[test]
    fn error_kinds_follow_containerd() {
        let (_d, s) = store();
        s.write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
            .unwrap();
        let e = s
            .write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
            .unwrap_err();
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
        let e = s
            .write(|t| t.create(Kind::Active, "x", "missing", HashMap::new()))
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        let e = s
            .write(|t| t.create(Kind::Active, "x", "a", HashMap::new()))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        s.write(|t| t.create(Kind::View, "v", "", HashMap::new()))
            .unwrap();
        let e = s
            .write(|t| t.commit("v", "c", (0, 0), HashMap::new()))
            .unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e}");
        let e = s
            .write(|t| t.commit("a", "v", (0, 0), HashMap::new()))
            .unwrap_err();
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
        let e = s.write(|t| t.remove("nope")).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        s.write(|t| t.commit("a", "c", (0, 0), HashMap::new()))
            .unwrap();
        let e = s.read(|t| t.chain("c")).unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e}");
    }

    #[test]
    fn parent_cannot_be_removed_before_its_children() {
        let (_d, s) = store();
        s.write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
            .unwrap();
        s.write(|t| t.commit("a", "p", (0, 0), HashMap::new()))
            .unwrap();
        s.write(|t| t.create(Kind::Active, "child", "p", HashMap::new()))
            .unwrap();
        s.write(|t| t.commit("child", "child-c", (0, 0), HashMap::new()))
            .unwrap();
        let e = s.write(|t| t.remove("p")).unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e}");
        s.write(|t| t.remove("child-c")).unwrap();
        s.write(|t| t.remove("p")).unwrap();
        assert!(s.read(|t| t.all()).unwrap().is_empty());
    }

    #[test]
    fn failed_transaction_changes_nothing() {
        let (_d, s) = store();
        let e = s
            .write(|t| {
                t.create(Kind::Active, "a", "", HashMap::new())?;
                Err::<(), _>(Error::Other("fail after insert".into()))
            })
            .unwrap_err();
        assert!(matches!(e, Error::Other(_)));
        assert!(s.read(|t| t.all()).unwrap().is_empty());
        // the id sequence rolled back too
        let c = s
            .write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
            .unwrap();
        assert_eq!(c.id, 1);
    }

    #[test]
    fn label_updates_with_field_paths() {
        let (_d, s) = store();
        s.write(|t| t.create(Kind::Active, "a", "", labels(&[("keep", "k")])))
            .unwrap();
        let all = labels(&[("l1", "v1"), ("l2", "v2"), ("l3", "v3")]);
        let r = s.write(|t| t.update_labels("a", all, &[])).unwrap();
        assert_eq!(r.labels.len(), 3);
        let paths = ["labels.l1".to_string(), "labels.l2".to_string()];
        let r = s
            .write(|t| t.update_labels("a", labels(&[("l1", "new"), ("l4", "v4")]), &paths))
            .unwrap();
        assert_eq!(r.labels, labels(&[("l1", "new"), ("l3", "v3")]));
        let r = s
            .write(|t| t.update_labels("a", labels(&[("l4", "v4")]), &["labels".into()]))
            .unwrap();
        assert_eq!(r.labels, labels(&[("l4", "v4")]));
        assert!(r.updated >= r.created);
        let e = s
            .write(|t| t.update_labels("a", HashMap::new(), &["parent".into()]))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let stored = s.read(|t| t.get("a")).unwrap();
        assert_eq!(stored.labels, labels(&[("l4", "v4")]));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let s = Store::open(&path).unwrap();
            s.write(|t| t.create(Kind::Active, "a", "", HashMap::new()))
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.read(|t| t.get("a")).unwrap().kind, Kind::Active);
        let next = s
            .write(|t| t.create(Kind::Active, "b", "", HashMap::new()))
            .unwrap();
        assert_eq!(next.id, 2);
    }
}
