//! Chains longer than one overlay mount can take: the deep end of the chain is merged once into
//! `snapshots/<id>/flat` of its top layer, and mounts use that directory in its place.
//!
//! The merge mounts the layers read-only (overlay resolves whiteouts and opaque directories)
//! and copies the merged view out. Committed layers never change, so the result stays valid for
//! as long as its owner exists, and it is removed together with the owner's directory.

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{copy_tree, mkdir_mode, remove_tree};
use crate::mounts::{Layout, KERNEL_MAX_LOWERS};

/// Our own mount call gets absolute paths (no chdir in a multi-threaded process), so it packs
/// fewer layers than containerd's compacted form.
const OWN_MOUNT_BUDGET: usize = 4096 - 256;

/// Makes sure `layout.flat(chain[0])` holds the merged content of `chain` (top layer first).
pub fn ensure_flat(layout: &Layout, chain: &[u64]) -> Result<()> {
    let Some(&owner) = chain.first() else {
        return Ok(());
    };
    let target = layout.flat(owner);
    if target.exists() {
        return Ok(());
    }
    let mut used = "ro,lowerdir=".len();
    let mut direct = 0;
    for id in chain {
        let len = layout.upper(*id).as_os_str().len() + 1;
        if direct == KERNEL_MAX_LOWERS - 1 || used + len > OWN_MOUNT_BUDGET {
            break;
        }
        used += len;
        direct += 1;
    }
    let mut lowers: Vec<_> = chain[..direct].iter().map(|id| layout.upper(*id)).collect();
    if direct < chain.len() {
        ensure_flat(layout, &chain[direct..])?;
        lowers.push(layout.flat(chain[direct]));
    }
    merge_into(layout, &lowers, &target)
}

fn merge_into(layout: &Layout, lowers: &[std::path::PathBuf], target: &Path) -> Result<()> {
    let tag = format!("{}-{}", std::process::id(), crate::store::now_nanos());
    let staging = target.with_file_name(format!("flat.tmp-{tag}"));
    let mnt = layout.root().join(format!("flatten-{tag}"));
    mkdir_mode(&mnt, 0o700)?;
    let result = (|| {
        mkdir_mode(&staging, 0o755)?;
        let data = match lowers {
            // overlay wants two lowers when it has no upper; a single one is copied as is
            [single] => return copy_tree(single, &staging),
            _ => format!(
                "lowerdir={}",
                lowers
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        };
        mount(
            Some("overlay"),
            &mnt,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map_err(|e| Error::io("mount overlay for flattening on", &mnt, e.into()))?;
        let copied = copy_tree(&mnt, &staging);
        let unmounted =
            umount2(&mnt, MntFlags::MNT_DETACH).map_err(|e| Error::io("unmount", &mnt, e.into()));
        copied.and(unmounted)
    })();
    let removed = fs::remove_dir(&mnt).at("remove", &mnt);
    match result.and(removed) {
        Ok(()) => fs::rename(&staging, target).at("rename flattened dir to", target),
        Err(e) => {
            remove_tree(&staging)?;
            Err(e)
        }
    }
}
