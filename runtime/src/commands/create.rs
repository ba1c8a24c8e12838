//! `create`: set up a container and leave its init waiting for `start`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::Spec;

use crate::cli::{Create, CreateOpts, GlobalOpts};

pub fn create(args: Create, g: &GlobalOpts) -> Result<i32> {
    crate::seal::ensure_sealed()?;
    super::check_id(&args.opts.container_id)?;
    let spec = check_bundle(&args.opts.bundle)?;
    build_init(&args.opts, &spec, g, true)?;
    Ok(0)
}

/// Builds the init container from a bundle that passed `check_bundle`; on failure removes
/// whatever this call left under `--root`, so a bad bundle never leaves a half-created
/// container behind.
pub fn build_init(
    opts: &CreateOpts,
    spec: &Spec,
    g: &GlobalOpts,
    detach: bool,
) -> Result<Container> {
    let id = &opts.container_id;
    let dir = super::container_dir(g, id)?;
    if dir.exists() {
        bail!("container {id:?} already exists");
    }
    if !g.systemd_cgroup {
        refuse_frozen_cgroup(spec, id)?;
    }
    let executor = if opts.no_new_keyring {
        crate::keyring::KeyringExecutor::without_keyring()
    } else {
        crate::keyring::KeyringExecutor::new(id)
    };
    let builder = ContainerBuilder::new(id.clone(), SyscallType::default()).with_executor(executor);
    let result = builder
        .with_root_path(&g.root)
        .and_then(|b| b.with_pid_file(opts.pid_file.as_ref()))
        .map(|b| {
            b.with_console_socket(opts.console_socket.as_ref())
                .with_preserved_fds(opts.preserve_fds)
        })
        .and_then(|b| b.validate_id())
        .map(|b| {
            b.as_init(&opts.bundle)
                .with_systemd(g.systemd_cgroup)
                .with_detach(detach)
                .with_no_pivot(opts.no_pivot)
        })
        .and_then(|b| b.build());
    match result {
        Ok(container) => Ok(container),
        Err(err) => {
            remove_leftovers(&dir);
            Err(err).with_context(|| format!("failed to create container {id:?}"))
        }
    }
}

/// The checks runc makes up front, with errors that name the path at fault; returns the spec.
pub fn check_bundle(bundle: &Path) -> Result<Spec> {
    let config = bundle.join("config.json");
    if !config.is_file() {
        bail!("bundle {}: config.json not found", bundle.display());
    }
    let spec =
        Spec::load(&config).with_context(|| format!("invalid config.json {}", config.display()))?;
    let root = spec
        .root()
        .as_ref()
        .with_context(|| format!("{}: root is missing", config.display()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        bail!(
            "rootfs {} does not exist or is not a directory",
            rootfs.display()
        );
    }
    let Some(process) = spec.process() else {
        bail!("{}: process is missing", config.display());
    };
    super::check_selinux_label(process.selinux_label().as_deref())
        .with_context(|| format!("invalid configuration: {}", config.display()))?;
    let unified = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref())
        .is_some_and(|u| !u.is_empty());
    if unified && !polis_sys::cgroup::cgroup2_host() {
        // runc's v1 manager refuses them too: they would be silently dropped otherwise
        bail!(
            "invalid configuration: {}: linux.resources.unified needs a cgroup v2 host (this one is v1 or hybrid)",
            config.display()
        );
    }
    Ok(spec)
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (a unified host).
/// A container is not created in a cgroup someone froze, as runc refuses it: its init would
/// stop at its first instruction and `create` wait for it forever. (The cgroup need not be
/// ours: cgroupsPath may name an existing one.)
fn refuse_frozen_cgroup(spec: &Spec, id: &str) -> Result<()> {
    let path = match spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) {
        Some(p) => p,
        None => libcontainer::utils::runc_default_cgroup_path(id),
    };
    let rel = path.strip_prefix("/").unwrap_or(&path);
    let (file, frozen): (PathBuf, &[&str]) = if polis_sys::cgroup::cgroup2_host() {
        (
            Path::new("/sys/fs/cgroup").join(rel).join("cgroup.freeze"),
            &["1"],
        )
    } else {
        // where every distribution mounts it; mountinfo is read only when it is elsewhere
        let usual = Path::new("/sys/fs/cgroup/freezer");
        let mount = if usual.join("freezer.state").exists() || usual.join("tasks").exists() {
            usual.to_path_buf()
        } else {
            match libcgroups::v1::util::get_subsystem_mount_point(
                &libcgroups::v1::ControllerType::Freezer,
            ) {
                Ok(m) => m,
                Err(_) => return Ok(()),
            }
        };
        (
            mount.join(rel).join("freezer.state"),
            &["FROZEN", "FREEZING"],
        )
    };
    match std::fs::read_to_string(&file) {
        Ok(state) if frozen.contains(&state.trim()) => bail!(
            "container {id:?}: its cgroup is unexpectedly frozen ({} is {})",
            file.display(),
            state.trim()
        ),
        _ => Ok(()),
    }
}

fn remove_leftovers(dir: &Path) {
    if !dir.exists() {
        return;
    }
    if let Ok(mut c) = Container::load(dir.to_path_buf()) {
        if c.delete(true).is_ok() {
            return;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
