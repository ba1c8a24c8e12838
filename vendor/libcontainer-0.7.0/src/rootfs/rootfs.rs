use std::collections::HashSet;
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::{Linux, Spec};

use super::device::Device;
use super::mount::{Mount, MountOptions};
use super::symlink::Symlink;
use super::utils::default_devices;
use super::{Result, RootfsError};
use crate::error::MissingSpecError;
use crate::syscall::Syscall;
use crate::syscall::syscall::create_syscall;

/// Holds information about rootfs
pub struct RootFS {
    syscall: Box<dyn Syscall>,
}

impl Default for RootFS {
    fn default() -> Self {
        Self::new()
    }
}

impl RootFS {
    pub fn new() -> RootFS {
        RootFS {
            syscall: create_syscall(),
        }
    }

    pub fn mount_to_rootfs(
        &self,
        linux: &Linux,
        spec: &Spec,
        rootfs: &Path,
        cgroup_ns: bool,
    ) -> Result<()> {
        // polis patch: the `r` forms (rshared, rslave, rprivate, runbindable) that CRI writes
        // for Bidirectional and HostToContainer mounts are taken as runc takes them; they were
        // refused as unknown.
        let mut flags = MsFlags::MS_REC;
        match linux.rootfs_propagation().as_deref() {
            Some("shared" | "rshared") => flags |= MsFlags::MS_SHARED,
            Some("private" | "rprivate") => flags |= MsFlags::MS_PRIVATE,
            Some("slave" | "rslave" | "unbindable" | "runbindable") | None => {
                flags |= MsFlags::MS_SLAVE
            }
            Some(unknown) => {
                return Err(RootfsError::UnknownRootfsPropagation(unknown.to_string()));
            }
        }

        self.syscall
            .mount(None, Path::new("/"), None, flags, None)
            .map_err(|err| {
                tracing::error!(
                    ?err,
                    ?flags,
                    "failed to change the mount propagation type of the root"
                );

                err
            })?;

        let mounter = Mount::new();

        mounter.make_parent_mount_private(rootfs)?;

        tracing::debug!("mount root fs {:?}", rootfs);
        self.syscall
            .mount(
                Some(rootfs),
                rootfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|err| {
                tracing::error!(?rootfs, ?err, "failed to bind mount rootfs");
                err
            })?;

        let global_options = MountOptions {
            root: rootfs,
            label: linux.mount_label().as_deref(),
            cgroup_ns,
        };

        if let Some(mounts) = spec.mounts() {
            for mount in mounts {
                // polis patch: the error names the mount (see RootfsError::MountOf)
                mounter
                    .setup_mount(mount, &global_options)
                    .map_err(|source| RootfsError::MountOf {
                        what: describe_mount(mount),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    pub fn prepare_rootfs(
        &self,
        spec: &Spec,
        rootfs: &Path,
        bind_devices: bool,
        cgroup_ns: bool,
    ) -> Result<()> {
        tracing::debug!(?rootfs, "prepare rootfs");
        let linux = spec.linux().as_ref().ok_or(MissingSpecError::Linux)?;

        self.mount_to_rootfs(linux, spec, rootfs, cgroup_ns)?;

        let symlinker = Symlink::new();
        symlinker.setup_kcore_symlink(rootfs)?;
        symlinker.setup_default_symlinks(rootfs)?;

        let devicer = Device::new();
        if let Some(added_devices) = linux.devices() {
            let mut path_set = HashSet::new();
            let devices = default_devices();
            added_devices.iter().for_each(|d| {
                path_set.insert(d.path());
            });
            let default = devices.iter().filter(|d| !path_set.contains(d.path()));
            devicer.create_devices(rootfs, added_devices.iter().chain(default), bind_devices)
        } else {
            devicer.create_devices(rootfs, &default_devices(), bind_devices)
        }?;

        symlinker.setup_ptmx(rootfs)?;
        Ok(())
    }

    /// Change propagation type of rootfs as specified in spec.
    pub fn adjust_root_mount_propagation(&self, linux: &Linux) -> Result<()> {
        let rootfs_propagation = linux.rootfs_propagation().as_deref();
        let flags = match rootfs_propagation {
            Some("shared" | "rshared") => Some(MsFlags::MS_SHARED),
            Some("unbindable" | "runbindable") => Some(MsFlags::MS_UNBINDABLE),
            _ => None,
        };

        if let Some(flags) = flags {
            self.syscall
                .mount(None, Path::new("/"), None, flags, None)
                .map_err(|err| {
                    tracing::error!(
                        ?err,
                        ?flags,
                        "failed to adjust the mount propagation type of the root"
                    );
                    err
                })?;
        }

        Ok(())
    }
}

// polis patch (vendor/patches/012): the `r` forms of rootfsPropagation are taken as runc takes
// them (upstream refused them or ignored them).
#[cfg(test)]
mod polis_tests {
    use nix::mount::MsFlags;
    use oci_spec::runtime::LinuxBuilder;

    use super::*;
    use crate::syscall::test::TestHelperSyscall;

    #[test]
    fn test_adjust_root_mount_propagation_r_forms() {
        for (propagation, flags) in [
            ("rshared", MsFlags::MS_SHARED),
            ("runbindable", MsFlags::MS_UNBINDABLE),
        ] {
            let rootfs = RootFS::new();
            let linux = LinuxBuilder::default()
                .rootfs_propagation(propagation)
                .build()
                .unwrap();
            rootfs
                .adjust_root_mount_propagation(&linux)
                .expect(propagation);
            let mounts = rootfs
                .syscall
                .as_any()
                .downcast_ref::<TestHelperSyscall>()
                .unwrap()
                .get_mount_args();
            assert_eq!(mounts.len(), 1, "{propagation}");
            assert_eq!(mounts[0].flags, flags, "{propagation}");
            assert_eq!(mounts[0].target, Path::new("/"));
        }
    }
}

/// polis patch: "SOURCE on DESTINATION (type T)", the way a failed mount is named in errors.
fn describe_mount(mount: &oci_spec::runtime::Mount) -> String {
    let source = mount
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| mount.typ().clone().unwrap_or_default());
    match mount.typ() {
        Some(t) if t != &source => format!(
            "{source} on {} (type {t})",
            mount.destination().display()
        ),
        _ => format!("{source} on {}", mount.destination().display()),
    }
}
