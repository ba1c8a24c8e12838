//! Empty directories ready to become new snapshots, made ahead of time by a background thread.
//!
//! Making a snapshot's directory takes two or three `mkdir`s, and on a busy ext4 each one waits
//! for the journal (measured here: 0.3 ms each, most of a Prepare). Made ahead (and made again
//! after each Prepare), a Prepare only renames one into `snapshots/`. The ready directories live in `root/staging`, outside
//! `snapshots/`, so Cleanup never sees them; nothing in them is data, so a crash loses nothing
//! and the next start empties the directory. If `snapshots/` is another file system (a volume
//! mounted there), a rename cannot cross over: then each Prepare makes its directory inside
//! `snapshots/` on the spot, as it always did.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{mkdir_mode, remove_tree};

/// How many directories wait ready: enough for a burst of Prepares (an image's layers are
/// prepared one after the other, so one or two are used at a time).
const DEPTH: usize = 4;

/// Makes directories with the layout of a new snapshot: `fs` (and `work` if asked) inside.
#[derive(Debug, Clone)]
pub struct Maker {
    dir: PathBuf,
    /// Before the sequence number: none in `staging/`, a non-id `new-<pid>-` in `snapshots/`.
    prefix: String,
    seq: Arc<AtomicU64>,
}

impl Maker {
    pub fn make(&self, with_work: bool) -> Result<PathBuf> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let staged = self.dir.join(format!("{}{seq}", self.prefix));
        let made = (|| {
            mkdir_mode(&staged, 0o700)?;
            mkdir_mode(&staged.join("fs"), 0o755)?;
            if with_work {
                mkdir_mode(&staged.join("work"), 0o711)?;
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(staged),
            Err(e) => {
                remove_tree(&staged)?;
                Err(e)
            }
        }
    }
}

pub struct StagePool {
    maker: Maker,
    /// Whether the ready directories have a `work` dir (those of overlay's active snapshots).
    with_work: bool,
    ready: Mutex<Receiver<PathBuf>>,
    queued: Arc<AtomicUsize>,
    /// Wakes the filler; None when nothing is made ahead.
    wake: Option<SyncSender<()>>,
}

impl StagePool {
    /// Empties `dir` (what an earlier process left) and starts filling it with directories
    /// that become snapshots by a rename into `snapshots`.
    pub fn start(dir: &Path, snapshots: &Path, with_work: bool) -> Result<StagePool> {
        remove_tree(dir)?;
        mkdir_mode(dir, 0o700)?;
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).at("stat", p);
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        if dev(dir)? != dev(snapshots)? {
            tracing::info!(snapshots = %snapshots.display(), "snapshots/ is another file system; new snapshot dirs are made on demand there");
            remove_tree(dir)?;
            return Ok(StagePool {
                maker: Maker {
                    dir: snapshots.to_path_buf(),
                    prefix: format!("new-{}-", std::process::id()),
                    seq: Arc::new(AtomicU64::new(0)),
                },
                with_work,
                // the sender is gone: never anything ready
                ready: Mutex::new(rx),
                queued,
                wake: None,
            });
        }
        let maker = Maker {
            dir: dir.to_path_buf(),
            prefix: String::new(),
            seq: Arc::new(AtomicU64::new(0)),
        };
        let (wake, woken) = sync_channel::<()>(1);
        let (filler, count) = (maker.clone(), queued.clone());
        std::thread::Builder::new()
            .name("snapshot-stager".into())
            .spawn(move || loop {
                while count.load(Ordering::Acquire) < DEPTH {
                    match filler.make(with_work) {
                        Ok(staged) => {
                            // fails once the pool is dropped
                            if let Err(e) = tx.send(staged) {
                                let _ = remove_tree(&e.0);
                                return;
                            }
                            count.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => {
                            // Prepare makes its own directories from now on and reports errors.
                            tracing::warn!(error = %e, "stopped making snapshot directories ahead");
                            return;
                        }
                    }
                }
                if woken.recv().is_err() {
                    return;
                }
            })
            .map_err(|e| Error::io("spawn the stager thread for", dir, e))?;
        Ok(StagePool {
            maker,
            with_work,
            ready: Mutex::new(rx),
            queued,
            wake: Some(wake),
        })
    }

    /// Asks for the taken directories to be made again. Called once a Prepare is done, not
    /// when it takes one: a `mkdir` in `staging/` holds the directory's lock, which the
    /// Prepare's rename out of it would wait for (strace: 1.2 ms renames during imports).
    pub fn refill(&self) {
        if let Some(wake) = &self.wake {
            // a full channel means a wake-up is already pending
            let _ = wake.try_send(());
        }
    }

    /// A directory for a new snapshot: a ready one if there is one of the right shape, else
    /// one made now.
    pub fn take(&self, with_work: bool) -> Result<PathBuf> {
        if with_work == self.with_work {
            let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(staged) = ready.try_recv() {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Ok(staged);
            }
        }
        self.maker.make(with_work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn wait_for_entries(dir: &Path, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_dir(dir).unwrap().count() < n {
            assert!(
                Instant::now() < deadline,
                "pool never filled {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn ready_dirs_have_the_snapshot_layout_and_modes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("staging");
        let pool = StagePool::start(&dir, d.path(), true).unwrap();
        wait_for_entries(&dir, DEPTH);
        let a = pool.take(true).unwrap();
        assert_eq!(a.parent(), Some(dir.as_path()));
        assert_eq!(mode(&a), 0o700);
        assert_eq!(mode(&a.join("fs")), 0o755);
        assert_eq!(mode(&a.join("work")), 0o711);
        // another shape is made on demand, never taken from the pool
        let v = pool.take(false).unwrap();
        assert!(v.join("fs").is_dir() && !v.join("work").exists());
        let b = pool.take(true).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn start_empties_what_an_earlier_process_left() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("staging");
        fs::create_dir_all(dir.join("77/fs/junk")).unwrap();
        let _pool = StagePool::start(&dir, d.path(), false).unwrap();
        assert!(!dir.join("77").exists());
    }

    #[test]
    fn taking_more_than_ready_still_gives_fresh_dirs() {
        let d = tempfile::tempdir().unwrap();
        let pool = StagePool::start(&d.path().join("staging"), d.path(), false).unwrap();
        let taken: std::collections::HashSet<_> =
            (0..3 * DEPTH).map(|_| pool.take(false).unwrap()).collect();
        assert_eq!(taken.len(), 3 * DEPTH);
        assert!(taken.iter().all(|p| p.join("fs").is_dir()));
        for p in &taken {
            fs::remove_dir_all(p).unwrap();
        }
        // made again only when asked, and then up to DEPTH
        pool.refill();
        wait_for_entries(&d.path().join("staging"), DEPTH);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            fs::read_dir(d.path().join("staging")).unwrap().count(),
            DEPTH
        );
    }

    /// Unmounts on drop, so a failed assertion leaves no mount behind.
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn snapshots_on_another_file_system_get_dirs_made_there() {
        let d = tempfile::tempdir().unwrap();
        let snapshots = d.path().join("snapshots");
        fs::create_dir(&snapshots).unwrap();
        // Tests run as root (as CI does): a tmpfs makes snapshots/ another file system.
        nix::mount::mount(
            Some("polis-stage-test"),
            &snapshots,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let _m = Mounted(snapshots.clone());
        let staging = d.path().join("staging");
        let pool = StagePool::start(&staging, &snapshots, true).unwrap();
        let a = pool.take(true).unwrap();
        assert_eq!(a.parent(), Some(snapshots.as_path()));
        assert!(a.join("fs").is_dir() && a.join("work").is_dir());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.parse::<u64>().is_err(),
            "{name} looks like a snapshot id"
        );
        assert!(!staging.exists(), "nothing is made ahead");
    }
}
