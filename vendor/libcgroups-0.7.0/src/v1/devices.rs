use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use super::controller::Controller;
use crate::common::{self, ControllerOpt, WrappedIoError, default_allow_devices, default_devices};

pub struct Devices {}

impl Controller for Devices {
    type Error = WrappedIoError;
    type Resource = ();

    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error> {
        tracing::debug!("Apply Devices cgroup config");

        // polis patch: the rules start from "deny all" unless the spec's own rules do (as
        // runc: upstream left a spec without device rules with the kernel's allow-all), and
        // when the kernel's list already is what they make (an `update`, which re-applies
        // the container's rules) nothing is written: writing them again opens a moment where
        // every device is denied to the running container. runc makes the same minimal
        // transitions.
        let rules = full_rules(controller_opt.resources.devices().as_deref().unwrap_or(&[]));
        if let Some(target) = whitelist(&rules) {
            let list = cgroup_root.join("devices.list");
            if let Ok(current) = std::fs::read_to_string(&list) {
                if normalise_list(&current) == target {
                    tracing::debug!("device rules unchanged");
                    return Ok(());
                }
            }
        }
        for d in &rules {
            Self::apply_device(d, cgroup_root)?;
        }

        Ok(())
    }

    // always needs to be called due to default devices
    fn needs_to_handle<'a>(_controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource> {
        Some(&())
    }
}

impl Devices {
    fn apply_device(device: &LinuxDeviceCgroup, cgroup_root: &Path) -> Result<(), WrappedIoError> {
        let path = if device.allow() {
            cgroup_root.join("devices.allow")
        } else {
            cgroup_root.join("devices.deny")
        };

        common::write_cgroup_file_str(path, &device.to_string())?;
        Ok(())
    }
}

/// polis patch: the rules to write: deny all first (unless the spec starts with a rule for
/// all devices), the spec's, then the default devices' and the default allowed ones.
fn full_rules(spec: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    let mut rules = Vec::new();
    if !spec.first().is_some_and(is_all_devices) {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::A)
                .access("rwm")
                .build()
                .expect("a valid rule"),
        );
    }
    rules.extend(spec.iter().cloned());
    rules.extend(default_devices().iter().map(LinuxDeviceCgroup::from));
    rules.extend(default_allow_devices());
    rules
}

fn is_all_devices(d: &LinuxDeviceCgroup) -> bool {
    matches!(d.typ(), None | Some(LinuxDeviceType::A)) && d.major().is_none() && d.minor().is_none()
}

/// polis patch: the kernel's `devices.list` after `rules` are written to a fresh cgroup, when
/// it ends in deny-by-default mode (where the list is the whole state); None otherwise.
fn whitelist(rules: &[LinuxDeviceCgroup]) -> Option<std::collections::BTreeSet<String>> {
    let mut deny_default = false;
    // (type, major, minor) -> access letters, in the kernel's order of exceptions
    let mut exceptions: Vec<((String, String, String), String)> = Vec::new();
    for r in rules {
        if is_all_devices(r) {
            deny_default = !r.allow();
            exceptions.clear();
            continue;
        }
        let key = (
            r.typ().unwrap_or_default().as_str().to_string(),
            r.major().map_or("*".into(), |m| m.to_string()),
            r.minor().map_or("*".into(), |m| m.to_string()),
        );
        let access = r.access().clone().unwrap_or_default();
        // an exception is what the default mode does not give: an allow in deny mode
        let adds = r.allow() == deny_default;
        let pos = exceptions.iter().position(|(k, _)| *k == key);
        match (adds, pos) {
            (true, Some(i)) => exceptions[i].1.push_str(&access),
            (true, None) => exceptions.push((key, access)),
            (false, Some(i)) => {
                exceptions[i].1.retain(|c| !access.contains(c));
                if exceptions[i].1.is_empty() {
                    exceptions.remove(i);
                }
            }
            (false, None) => {}
        }
    }
    if !deny_default {
        return None;
    }
    Some(
        exceptions
            .iter()
            .map(|((t, ma, mi), a)| format!("{t} {ma}:{mi} {}", access_letters(a)))
            .collect(),
    )
}

fn access_letters(a: &str) -> String {
    "rwm".chars().filter(|c| a.contains(*c)).collect()
}

/// polis patch: `devices.list` as a set of lines with the access letters in one order.
fn normalise_list(list: &str) -> std::collections::BTreeSet<String> {
    list.lines()
        .filter_map(|l| {
            let (rule, access) = l.trim().rsplit_once(' ')?;
            Some(format!("{rule} {}", access_letters(access)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs::read_to_string;

    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    use super::*;
    use crate::test::set_fixture;

    // polis patch (vendor/patches/032): a spec without device rules still denies every device
    // but the default ones (upstream left the kernel's allow-all). Against a real cgroup under
    // the host's v1 devices hierarchy (as root); anywhere else it says so and returns.
    #[test]
    fn test_apply_without_rules_denies_by_default() {
        use nix::sys::statfs::{CGROUP_SUPER_MAGIC, statfs};
        let root = std::path::Path::new("/sys/fs/cgroup/devices");
        if !statfs(root).is_ok_and(|s| s.filesystem_type() == CGROUP_SUPER_MAGIC)
            || !nix::unistd::geteuid().is_root()
        {
            eprintln!("skipped: needs root and a cgroup v1 devices hierarchy at {root:?}");
            return;
        }
        let dir = root.join(format!("polis-vendor-test-devices-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("make cgroup");
        let resources = oci_spec::runtime::LinuxResources::default();
        let opt = ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        let applied = Devices::apply(&opt, &dir);
        let list = read_to_string(dir.join("devices.list")).expect("read devices.list");
        let _ = std::fs::remove_dir(&dir);
        applied.expect("apply");
        assert!(!list.lines().any(|l| l.starts_with("a ")), "{list}");
        assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    }

    #[test]
    fn test_set_default_devices() {
        let tmp = tempfile::tempdir().unwrap();

        default_allow_devices().iter().for_each(|d| {
            // NOTE: We reset the fixtures every iteration because files aren't appended
            // so what happens in the tests is you get strange overwrites which can contain
            // remaining bytes from the last iteration. Resetting the files more appropriately
            // mocks the behavior of cgroup files.
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");

            Devices::apply_device(d, tmp.path()).expect("Apply default device");
            println!("Device: {}", d);
            if d.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                assert_eq!(allowed_content, d.to_string());
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                assert_eq!(denied_content, d.to_string());
            }
        });
    }

    #[test]
    fn test_set_mock_devices() {
        let tmp = tempfile::tempdir().unwrap();
        [
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(10)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .minor(200)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::P)
                .major(10)
                .minor(200)
                .access("m")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::U)
                .access("rw")
                .build()
                .unwrap(),
        ]
        .iter()
        .for_each(|d| {
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");

            Devices::apply_device(d, tmp.path()).expect("Apply default device");
            println!("Device: {}", d);
            if d.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                assert_eq!(allowed_content, d.to_string());
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                assert_eq!(denied_content, d.to_string());
            }
        });
    }

    quickcheck! {
        fn property_test_apply_device(device: LinuxDeviceCgroup) -> bool {
            let tmp = tempfile::tempdir().unwrap();
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");
            Devices::apply_device(&device, tmp.path()).expect("Apply default device");
            if device.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                allowed_content == device.to_string()
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                denied_content == device.to_string()
            }
        }

        fn property_test_apply_multiple_devices(devices: Vec<LinuxDeviceCgroup>) -> bool {
            let tmp = tempfile::tempdir().unwrap();
            devices.iter()
                .all(|device| {
                    set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
                    set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");
                    Devices::apply_device(device, tmp.path()).expect("Apply default device");
                    if device.allow() {
                        let allowed_content =
                            read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                        allowed_content == device.to_string()
                    } else {
                        let denied_content =
                            read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                        denied_content == device.to_string()
                    }
                })
        }
    }
}
