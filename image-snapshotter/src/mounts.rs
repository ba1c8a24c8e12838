//! Where snapshots live on disk and which mounts make them: pure functions of the snapshot's
//! kind and parent chain, so they are tested without mounting anything.
//!
//! Layout under the root: `snapshots/<id>/fs` (the layer, or the upperdir), `snapshots/<id>/work`
//! (overlay workdir of an active snapshot), `snapshots/<id>/flat` (the merged content of this
//! committed snapshot and all below it, made only for chains too long for one overlay mount).

use std::path::{Path, PathBuf};

use containerd_snapshots::api::types::Mount;

use crate::store::{Chain, Kind};

/// The kernel's limit of overlay lower layers (OVL_MAX_STACK).
pub const KERNEL_MAX_LOWERS: usize = 500;
/// Mount data is one page; containerd starts compacting lowerdirs to relative paths past
/// `page - 512` and then needs the result to fit the page. We keep well inside it.
const OPTION_BUDGET: usize = 4096 - 512;
/// Granularity of flattening (see `plan_lowers`).
pub const FLAT_CHUNK: usize = 64;

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    /// Directories made ahead for new snapshots (see `stage`).
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    pub fn dir(&self, id: u64) -> PathBuf {
        self.snapshots().join(id.to_string())
    }
    pub fn upper(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }
    pub fn work(&self, id: u64) -> PathBuf {
        self.dir(id).join("work")
    }
    pub fn flat(&self, id: u64) -> PathBuf {
        self.dir(id).join("flat")
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OverlayOptions {
    /// `index=off`, as containerd sets whenever the kernel has the parameter.
    pub index_off: bool,
    /// `userxattr`, needed when running in a user namespace.
    pub userxattr: bool,
}

/// Which lower directories an overlay mount of a chain uses: the nearest parents directly and,
/// when the chain is too long for one mount, the `flat` directory standing for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerPlan {
    pub direct: Vec<u64>,
    /// Flatten `parent_ids[direct.len()..]` into `Layout::flat(that first id)`.
    pub flat_from: Option<u64>,
}

/// Splits a parent chain (nearest first) into what fits one mount and what must be flattened.
/// `fixed` is the byte length of the options other than lowerdir.
pub fn plan_lowers(parent_ids: &[u64], fixed: usize) -> LowerPlan {
    // containerd rewrites lowerdirs relative to `snapshots/`: "<id>/fs" plus a ':' each.
    let mut used = fixed + "lowerdir=".len();
    let mut fit = 0;
    for id in parent_ids {
        let len = id.to_string().len() + "/fs:".len();
        if fit == KERNEL_MAX_LOWERS || used + len > OPTION_BUDGET {
            break;
        }
        used += len;
        fit += 1;
    }
    if fit == parent_ids.len() {
        return LowerPlan {
            direct: parent_ids.to_vec(),
            flat_from: None,
        };
    }
    // One slot (and "<id>/flat:") goes to the flattened rest; "flat" is no longer than "fs"+2.
    // The flattened part is a multiple of FLAT_CHUNK layers counted from the bottom, so the
    // next FLAT_CHUNK children of a growing chain reuse the same flat directory.
    let n = parent_ids.len();
    let at_most = fit.saturating_sub(1).max(1);
    let deep = (n - at_most).div_ceil(FLAT_CHUNK) * FLAT_CHUNK;
    let keep = n.saturating_sub(deep).max(1);
    LowerPlan {
        direct: parent_ids[..keep].to_vec(),
        flat_from: Some(parent_ids[keep]),
    }
}

fn join(paths: impl Iterator<Item = PathBuf>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn bind(source: PathBuf, rw: bool) -> Mount {
    Mount {
        r#type: "bind".into(),
        source: source.display().to_string(),
        target: String::new(),
        options: vec![if rw { "rw" } else { "ro" }.into(), "rbind".into()],
    }
}

/// Mounts of a snapshot on overlayfs, as containerd's overlay snapshotter returns them.
pub fn overlay_mounts(layout: &Layout, opts: OverlayOptions, chain: &Chain) -> Vec<Mount> {
    let active = chain.kind == Kind::Active;
    match chain.parent_ids.as_slice() {
        // Overlay needs a lower layer: a lone layer is a bind mount of its own directory.
        [] => return vec![bind(layout.upper(chain.id), active)],
        // A view of one layer is that layer, read-only.
        [only] if !active => return vec![bind(layout.upper(*only), false)],
        _ => {}
    }
    let mut options = Vec::new();
    if opts.index_off {
        options.push("index=off".to_string());
    }
    if opts.userxattr {
        options.push("userxattr".to_string());
    }
    if active {
        options.push(format!("workdir={}", layout.work(chain.id).display()));
        options.push(format!("upperdir={}", layout.upper(chain.id).display()));
    }
    let fixed = options.iter().map(|o| o.len()).sum();
    let plan = plan_lowers(&chain.parent_ids, fixed);
    let lowers = plan
        .direct
        .iter()
        .map(|id| layout.upper(*id))
        .chain(plan.flat_from.map(|id| layout.flat(id)));
    options.push(format!("lowerdir={}", join(lowers)));
    vec![Mount {
        r#type: "overlay".into(),
        source: "overlay".into(),
        target: String::new(),
        options,
    }]
}

/// Mounts of a snapshot on the native backend: every snapshot is a full copy, bound as is.
pub fn native_mounts(layout: &Layout, chain: &Chain) -> Vec<Mount> {
    vec![bind(layout.upper(chain.id), chain.kind == Kind::Active)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(kind: Kind, id: u64, parents: &[u64]) -> Chain {
        Chain {
            id,
            kind,
            parent_ids: parents.to_vec(),
        }
    }

    #[test]
    fn lone_layers_are_bind_mounts() {
        let l = Layout::new(Path::new("/r"));
        let o = OverlayOptions::default();
        let m = overlay_mounts(&l, o, &chain(Kind::Active, 3, &[]));
        assert_eq!(m[0].r#type, "bind");
        assert_eq!(m[0].source, "/r/snapshots/3/fs");
        assert_eq!(m[0].options, ["rw", "rbind"]);
        let m = overlay_mounts(&l, o, &chain(Kind::View, 3, &[]));
        assert_eq!(m[0].options, ["ro", "rbind"]);
        let m = overlay_mounts(&l, o, &chain(Kind::View, 4, &[2]));
        assert_eq!(m[0].source, "/r/snapshots/2/fs");
        assert_eq!(m[0].options, ["ro", "rbind"]);
    }

    #[test]
    fn active_with_parents_is_an_overlay_nearest_parent_first() {
        let l = Layout::new(Path::new("/r"));
        let o = OverlayOptions {
            index_off: true,
            userxattr: false,
        };
        let m = overlay_mounts(&l, o, &chain(Kind::Active, 9, &[5, 2]));
        assert_eq!(m[0].r#type, "overlay");
        assert_eq!(
            m[0].options,
            [
                "index=off",
                "workdir=/r/snapshots/9/work",
                "upperdir=/r/snapshots/9/fs",
                "lowerdir=/r/snapshots/5/fs:/r/snapshots/2/fs"
            ]
        );
        let m = overlay_mounts(&l, o, &chain(Kind::View, 9, &[5, 2]));
        assert_eq!(
            m[0].options,
            ["index=off", "lowerdir=/r/snapshots/5/fs:/r/snapshots/2/fs"]
        );
    }

    #[test]
    fn short_chains_need_no_flattening() {
        let ids: Vec<u64> = (1..=128).rev().collect();
        let plan = plan_lowers(&ids, 200);
        assert_eq!(plan.direct, ids);
        assert_eq!(plan.flat_from, None);
    }

    #[test]
    fn long_chains_are_cut_to_what_one_mount_takes() {
        let ids: Vec<u64> = (1..=700).rev().collect();
        let plan = plan_lowers(&ids, 200);
        let keep = plan.direct.len();
        assert!(keep < KERNEL_MAX_LOWERS, "{keep}");
        assert_eq!(plan.direct, ids[..keep]);
        assert_eq!(plan.flat_from, Some(ids[keep]));
        // the relative lowerdir option containerd builds fits the budget
        let rel: usize = plan
            .direct
            .iter()
            .map(|i| format!("{i}/fs:").len())
            .sum::<usize>()
            + format!("{}/flat", ids[keep]).len();
        assert!(200 + "lowerdir=".len() + rel <= OPTION_BUDGET, "{rel}");
        // the flattened part is whole chunks, and the children of the next layers reuse it
        assert_eq!((ids.len() - keep) % FLAT_CHUNK, 0);
        let grown: Vec<u64> = (1..=701).rev().collect();
        assert_eq!(plan_lowers(&grown, 200).flat_from, plan.flat_from);
        // and the kernel's stack limit holds even with tiny ids
        let tiny: Vec<u64> = vec![1; 900];
        assert!(plan_lowers(&tiny, 0).direct.len() < KERNEL_MAX_LOWERS);
    }

    #[test]
    fn native_mounts_bind_the_own_copy() {
        let l = Layout::new(Path::new("/r"));
        let m = native_mounts(&l, &chain(Kind::View, 7, &[3]));
        assert_eq!(m[0].source, "/r/snapshots/7/fs");
        assert_eq!(m[0].options, ["ro", "rbind"]);
    }
}
