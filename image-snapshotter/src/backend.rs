//! The two ways of storing layers: overlayfs (a layer holds only its changes) and the native
//! copy fallback (every snapshot is a full copy), and the probes that choose between them.

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{mkdir_mode, remove_tree};
use crate::mounts::OverlayOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// overlayfs if the kernel can mount it on the root dir, else native
    Auto,
    Overlayfs,
    Native,
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Overlay(OverlayOptions),
    Native,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Overlay(_) => "overlayfs",
            Backend::Native => "native",
        }
    }

    /// Picks the backend for `root` (which must exist): an explicit choice is checked, not trusted.
    pub fn choose(kind: BackendKind, root: &Path) -> Result<Backend> {
        let overlay = || {
            Backend::Overlay(OverlayOptions {
                index_off: Path::new("/sys/module/overlay/parameters/index").exists(),
                userxattr: in_user_namespace(),
            })
        };
        match kind {
            BackendKind::Native => Ok(Backend::Native),
            BackendKind::Overlayfs => {
                probe_overlay(root)?;
                Ok(overlay())
            }
            BackendKind::Auto => match probe_overlay(root) {
                Ok(()) => Ok(overlay()),
                Err(e) => {
                    tracing::warn!(root = %root.display(), error = %e, "overlayfs unusable, using the native backend");
                    Ok(Backend::Native)
                }
            },
        }
    }
}

/// In a user namespace other than the initial one, overlay needs `userxattr`.
fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Mounts a two-layer overlay under `root` and unmounts it: the only sure test that overlayfs
/// works on this file system (tmpfs upper dirs, overlay on overlay, missing module, ...).
pub fn probe_overlay(root: &Path) -> Result<()> {
    let dir = root.join(format!("overlay-probe-{}", std::process::id()));
    remove_tree(&dir)?;
    mkdir_mode(&dir, 0o700)?;
    let result = (|| {
        for d in ["lower1", "lower2", "upper", "work", "merged"] {
            mkdir_mode(&dir.join(d), 0o755)?;
        }
        let data = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            dir.join("lower1").display(),
            dir.join("lower2").display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        let merged = dir.join("merged");
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| Error::io("mount overlay on", &merged, e.into()))?;
        umount2(&merged, MntFlags::MNT_DETACH).map_err(|e| Error::io("unmount", &merged, e.into()))
    })();
    let cleanup = fs::remove_dir_all(&dir).at("remove", &dir);
    result.and(cleanup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_is_taken_as_asked() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Backend::choose(BackendKind::Native, d.path()).unwrap(),
            Backend::Native
        ));
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            0,
            "left nothing behind"
        );
    }

    #[test]
    fn the_overlay_probe_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        // Tests run as root on a kernel with overlayfs (as CI does).
        probe_overlay(d.path()).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
