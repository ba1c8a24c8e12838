//! `spec`: write runc's default config.json (or the rootless variant) into the bundle.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceType, Mount, Spec};

use crate::cli::Spec as SpecArgs;

pub fn spec(args: SpecArgs) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some("polis".into()));
    let spec = if args.rootless { rootless(spec)? } else { spec };
    write(&spec, &path)?;
    Ok(0)
}

fn write(spec: &Spec, path: &Path) -> Result<()> {
    let data = serde_json::to_string_pretty(spec)?;
    std::fs::write(path, data + "\n").with_context(|| format!("failed to write {}", path.display()))
}

/// The rootless changes runc makes: a user namespace mapping the caller to root, no network
/// namespace, no cgroup limits, and sysfs/mqueue/cgroup mounts a user cannot make.
fn rootless(mut spec: Spec) -> Result<Spec> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .host_id(host)
            .container_id(0u32)
            .size(1u32)
            .build()
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        let mut ns = oci_spec::runtime::LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::User);
        namespaces.push(ns);
    }
    linux
        .set_namespaces(Some(namespaces))
        .set_uid_mappings(Some(vec![map(uid)?]))
        .set_gid_mappings(Some(vec![map(gid)?]))
        .set_resources(None);
    spec.set_linux(Some(linux));
    let mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            let d = m.destination().to_string_lossy();
            d != "/sys/fs/cgroup" && d != "/dev/mqueue"
        })
        .map(|mut m| {
            if m.destination() == Path::new("/sys") {
                m.set_typ(Some("none".into()))
                    .set_source(Some("/sys".into()))
                    .set_options(Some(
                        ["rbind", "nosuid", "noexec", "nodev", "ro"]
                            .map(String::from)
                            .to_vec(),
                    ));
            }
            if let Some(opts) = m.options().clone() {
                m.set_options(Some(
                    opts.into_iter()
                        .filter(|o| !o.starts_with("gid="))
                        .collect(),
                ));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_spec_maps_the_caller_and_drops_netns() {
        let s = rootless(Spec::default()).unwrap();
        let linux = s.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].container_id(), 0);
        assert!(linux.resources().is_none());
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = spec(SpecArgs {
            bundle: dir.path().into(),
            rootless: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("exists"));
    }
}
