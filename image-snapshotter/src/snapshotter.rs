//! The snapshotter's operations, with containerd overlayfs semantics. Every change of metadata
//! and of directories happens while holding the store's single write transaction, and a
//! directory becomes a snapshot's (renamed to its id) inside the transaction that records it:
//! after a crash, a directory either belongs to a committed record or is an orphan that
//! Cleanup (or the next use of its id) removes.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use containerd_snapshots::api::types::Mount;

use crate::backend::Backend;
use crate::error::{Error, IoContext, Result};
use crate::filter::{Fields, Filter};
use crate::flatten::ensure_flat;
use crate::fsutil::{copy_tree, disk_usage, mkdir_mode, remove_tree};
use crate::mounts::{native_mounts, overlay_mounts, plan_lowers, Layout};
use crate::stage::StagePool;
use crate::store::{Chain, Kind, Record, Store};

pub struct Snapshotter {
    layout: Layout,
    store: Store,
    backend: Backend,
    /// Serialises flattening outside write transactions (Mounts of long chains).
    flatten_lock: Mutex<()>,
    temp_seq: AtomicU64,
    deleter: Deleter,
    stage: StagePool,
}

/// One background thread deleting removed snapshots' directories, in order.
struct Deleter {
    tx: Mutex<std::sync::mpsc::Sender<PathBuf>>,
}

impl Deleter {
    fn start() -> Deleter {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        std::thread::Builder::new()
            .name("snapshot-deleter".into())
            .spawn(move || {
                for dir in rx {
                    if let Err(e) = remove_tree(&dir) {
                        tracing::warn!(error = %e, "directory of a removed snapshot stays; Cleanup retries");
                    }
                }
            })
            .expect("spawn the deleter thread");
        Deleter { tx: Mutex::new(tx) }
    }

    fn delete(&self, dir: PathBuf) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = tx.send(dir) {
            // the thread is gone: delete here instead
            let _ = remove_tree(&e.0);
        }
    }
}

/// A snapshot's name with its record, as Stat, Update and Walk return it.
pub type Named = (String, Record);

struct WalkItem<'a>(&'a str, &'a Record);

impl Fields for WalkItem<'_> {
    fn field(&self, fp: &[String]) -> Option<String> {
        let rec = self.1;
        match fp.first()?.as_str() {
            "kind" => Some(rec.kind.as_str().to_string()),
            "name" => Some(self.0.to_string()),
            "parent" => Some(rec.parent.clone()),
            "labels" => rec.labels.get(&fp[1..].join(".")).cloned(),
            _ => None,
        }
    }
}

impl Snapshotter {
    pub fn open(root: &Path, backend: Backend) -> Result<Self> {
        let layout = Layout::new(root);
        for dir in [root.to_path_buf(), layout.snapshots()] {
            match mkdir_mode(&dir, 0o700) {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        let store = Store::open(&root.join("metadata.db"))?;
        Snapshotter {
            layout: layout.clone(),
            store,
            backend,
            flatten_lock: Mutex::new(()),
            temp_seq: AtomicU64::new(0),
            deleter: Deleter::start(),
            stage: StagePool::start(
                &layout.staging(),
                &layout.snapshots(),
                matches!(backend, Backend::Overlay(_)),
            )?,
        }
        .recovered()
    }

    fn recovered(self) -> Result<Self> {
        self.recover()?;
        Ok(self)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn stat(&self, key: &str) -> Result<Record> {
        self.store.read(|t| t.get(key))
    }

    pub fn update(
        &self,
        key: &str,
        labels: HashMap<String, String>,
        fieldpaths: &[String],
    ) -> Result<Record> {
        self.store
            .write(|t| t.update_labels(key, labels, fieldpaths))
    }

    /// Usage of an active snapshot is measured now; a committed one's was measured at commit.
    pub fn usage(&self, key: &str) -> Result<(i64, i64)> {
        let rec = self.store.read(|t| t.get(key))?;
        match rec.kind {
            Kind::Active => disk_usage(&self.layout.upper(rec.id)),
            _ => Ok((rec.inodes, rec.size)),
        }
    }

    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let chain = self.store.read(|t| t.chain(key))?;
        self.mounts_of(&chain, || Some(self.lock_flatten()))
    }

    /// Lock order everywhere: this lock first, then the store's write transaction.
    fn lock_flatten(&self) -> std::sync::MutexGuard<'_, ()> {
        self.flatten_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mounts of `chain`; flattens the deep end of a too long chain first, under the
    /// flatten lock that `lock` takes (or that the caller already holds, when it returns None).
    fn mounts_of<'a>(
        &'a self,
        chain: &Chain,
        lock: impl FnOnce() -> Option<std::sync::MutexGuard<'a, ()>>,
    ) -> Result<Vec<Mount>> {
        match self.backend {
            Backend::Native => Ok(native_mounts(&self.layout, chain)),
            Backend::Overlay(opts) => {
                let mounts = overlay_mounts(&self.layout, opts, chain);
                let fixed = mounts[0]
                    .options
                    .iter()
                    .filter(|o| !o.starts_with("lowerdir="))
                    .map(|o| o.len())
                    .sum();
                let plan = plan_lowers(&chain.parent_ids, fixed);
                if plan.flat_from.is_some() {
                    let _guard = lock();
                    ensure_flat(&self.layout, &chain.parent_ids[plan.direct.len()..])?;
                }
                Ok(mounts)
            }
        }
    }

    pub fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let _guard = self.lock_flatten();
        let mut created: Option<PathBuf> = None;
        let result = self.store.write(|t| {
            let chain = t.create(kind, key, parent, labels)?;
            let staged = self.stage_dir(kind, &chain)?;
            let dir = self.layout.dir(chain.id);
            // An id is only reused after a crash between rename and commit: that dir is an orphan.
            remove_tree(&dir)?;
            if let Err(e) = fs::rename(&staged, &dir) {
                remove_tree(&staged)?;
                return Err(Error::io("rename staged snapshot dir to", &dir, e));
            }
            created = Some(dir);
            let mounts = self.mounts_of(&chain, || None)?;
            Ok(mounts)
        });
        self.stage.refill();
        if result.is_err() {
            if let Some(dir) = created {
                remove_tree(&dir)?;
            }
        }
        result
    }

    /// The new snapshot's directory under a temporary name, filled from its parent.
    fn stage_dir(&self, kind: Kind, chain: &Chain) -> Result<PathBuf> {
        let overlay = matches!(self.backend, Backend::Overlay(_));
        let staged = self.stage.take(overlay && kind == Kind::Active)?;
        let fill = || -> Result<()> {
            let Some(&parent) = chain.parent_ids.first() else {
                return Ok(());
            };
            let fs_dir = staged.join("fs");
            match self.backend {
                // The new layer's root must look like its parent's to the container.
                Backend::Overlay(_) => {
                    let upper = self.layout.upper(parent);
                    let md = fs::metadata(&upper).at("stat parent", &upper)?;
                    std::os::unix::fs::lchown(&fs_dir, Some(md.uid()), Some(md.gid()))
                        .at("chown", &fs_dir)
                }
                Backend::Native => copy_tree(&self.layout.upper(parent), &fs_dir),
            }
        };
        match fill() {
            Ok(()) => Ok(staged),
            Err(e) => {
                remove_tree(&staged)?;
                Err(e)
            }
        }
    }

    pub fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()> {
        self.store.write(|t| {
            let rec = t.get(key)?;
            let usage = disk_usage(&self.layout.upper(rec.id))?;
            t.commit(key, name, usage, labels).map(|_| ())
        })
    }

    /// Forgets `key`; its directory is deleted in the background (as containerd's overlayfs
    /// does with AsynchronousRemove), so the caller does not wait for it. The id is never
    /// handed out again, so the deletion cannot touch a newer snapshot; what a crash or a
    /// failure leaves is an orphan that Cleanup removes.
    pub fn remove(&self, key: &str) -> Result<()> {
        let rec = self.store.write(|t| t.remove(key))?;
        self.deleter.delete(self.layout.dir(rec.id));
        Ok(())
    }

    pub fn walk(&self, filters: &[String]) -> Result<Vec<Named>> {
        let filter = Filter::parse_all(filters)?;
        let all = self.store.read(|t| t.all())?;
        Ok(all
            .into_iter()
            .filter(|(name, rec)| filter.matches(&WalkItem(name, rec)))
            .collect())
    }

    /// Removes every directory under `snapshots/` that no snapshot owns. Orphans are moved
    /// aside while holding the write lock (so an id allocated right after cannot be hit) and
    /// deleted after it.
    pub fn cleanup(&self) -> Result<()> {
        let trash = self.store.locked(|t| {
            let ids = t.ids()?;
            let snapshots = self.layout.snapshots();
            let mut trash = Vec::new();
            for entry in fs::read_dir(&snapshots).at("read dir", &snapshots)? {
                let entry = entry.at("read dir", &snapshots)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.parse::<u64>().is_ok_and(|id| ids.contains(&id)) {
                    continue;
                }
                if name.starts_with("trash-") {
                    trash.push(entry.path());
                    continue;
                }
                let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
                let to = snapshots.join(format!("trash-{name}-{}-{seq}", std::process::id()));
                match fs::rename(entry.path(), &to) {
                    Ok(()) => trash.push(to),
                    // the deleter thread got there first
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("move orphan to", &to, e)),
                }
            }
            Ok(trash)
        })?;
        for dir in trash {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    /// At start-up, before serving: removes what a killed process left of its temporary work
    /// (flattening mounts and staging dirs, overlay probes) outside of any snapshot's data.
    fn recover(&self) -> Result<()> {
        let root = self.layout.root();
        for entry in fs::read_dir(root).at("read dir", root)? {
            let path = entry.at("read dir", root)?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("flatten-") || name.starts_with("overlay-probe-") {
                for m in mounts_below(&path)? {
                    nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
                        .map_err(|e| Error::io("unmount", &m, e.into()))?;
                }
                remove_tree(&path)?;
            }
        }
        let snapshots = self.layout.snapshots();
        for entry in fs::read_dir(&snapshots).at("read dir", &snapshots)? {
            let dir = entry.at("read dir", &snapshots)?.path();
            if !dir.is_dir() {
                continue;
            }
            for inner in fs::read_dir(&dir).at("read dir", &dir)? {
                let inner = inner.at("read dir", &dir)?;
                if inner.file_name().to_string_lossy().starts_with("flat.tmp-") {
                    remove_tree(&inner.path())?;
                }
            }
        }
        Ok(())
    }
}

/// Mount points at or below `dir` in this process's mount table, deepest first.
fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let table = fs::read_to_string("/proc/self/mountinfo").at("read", "/proc/self/mountinfo")?;
    let prefix = dir.display().to_string();
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    Ok(found)
}
