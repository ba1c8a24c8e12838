use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::unistd;
use oci_spec::runtime::LinuxCpu;
use unistd::Pid;

use super::controller::Controller;
use super::util;
use crate::common::{self, ControllerOpt, WrapIoResult, WrappedIoError};

const CGROUP_CPUSET_CPUS: &str = "cpuset.cpus";
const CGROUP_CPUSET_MEMS: &str = "cpuset.mems";

#[derive(thiserror::Error, Debug)]
pub enum V1CpuSetControllerError {
    #[error("io error: {0}")]
    WrappedIo(#[from] WrappedIoError),
    #[error("cpuset parent value is empty")]
    EmptyParent,
}

pub struct CpuSet {}

impl Controller for CpuSet {
    type Error = V1CpuSetControllerError;
    type Resource = LinuxCpu;

    fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), Self::Error> {
        fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;

        Self::ensure_not_empty(cgroup_path, CGROUP_CPUSET_CPUS)?;
        Self::ensure_not_empty(cgroup_path, CGROUP_CPUSET_MEMS)?;

        common::write_cgroup_file(cgroup_path.join(util::task_file(pid)), pid)?;
        Ok(())
    }

    fn apply(controller_opt: &ControllerOpt, cgroup_path: &Path) -> Result<(), Self::Error> {
        tracing::debug!("Apply CpuSet cgroup config");

        if let Some(cpuset) = Self::needs_to_handle(controller_opt) {
            Self::apply(cgroup_path, cpuset)?;
        }

        Ok(())
    }

    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource> {
        if let Some(cpuset) = &controller_opt.resources.cpu() {
            if cpuset.cpus().is_some() || cpuset.mems().is_some() {
                return Some(cpuset);
            }
        }

        None
    }
}

impl CpuSet {
    fn apply(cgroup_path: &Path, cpuset: &LinuxCpu) -> Result<(), V1CpuSetControllerError> {
        if let Some(cpus) = &cpuset.cpus() {
            common::write_cgroup_file_str(cgroup_path.join(CGROUP_CPUSET_CPUS), cpus)?;
        }

        if let Some(mems) = &cpuset.mems() {
            common::write_cgroup_file_str(cgroup_path.join(CGROUP_CPUSET_MEMS), mems)?;
        }

        Ok(())
    }

    // if a task is moved into the cgroup and a value has not been set for cpus and mems
    // Errno 28 (no space left on device) will be returned. Therefore we set the value from the parent if required.
    //
    // polis patch: walks up from the cgroup to the nearest ancestor with a value and copies it
    // down into the empty ones; upstream found the hierarchy's mount point in mountinfo first
    // (once for cpus, once for mems, on every container start) and read each level twice. Above
    // the hierarchy's root there is no interface file, which ends the walk.
    fn ensure_not_empty(
        cgroup_path: &Path,
        interface_file: &str,
    ) -> Result<(), V1CpuSetControllerError> {
        let mut empty: Vec<PathBuf> = Vec::new();
        let mut dir = cgroup_path;
        let value = loop {
            let file = dir.join(interface_file);
            let value = match fs::read_to_string(&file) {
                Ok(value) => value,
                Err(err) if err.kind() == ErrorKind::NotFound && !empty.is_empty() => {
                    return Err(V1CpuSetControllerError::EmptyParent);
                }
                Err(err) => return Err(WrappedIoError::Read { err, path: file }.into()),
            };
            // the file can contain a newline character. Need to trim it away,
            // otherwise it is not considered empty and value will not be written
            if !value.trim().is_empty() {
                break value;
            }
            empty.push(file);
            dir = dir.parent().ok_or(V1CpuSetControllerError::EmptyParent)?;
        };
        for file in empty.iter().rev() {
            common::write_cgroup_file_str(file, &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use oci_spec::runtime::LinuxCpuBuilder;

    use super::*;
    use crate::test::setup;

    #[test]
    fn test_set_cpus() {
        // arrange
        let (tmp, cpus) = setup(CGROUP_CPUSET_CPUS);
        let cpuset = LinuxCpuBuilder::default()
            .cpus("1-3".to_owned())
            .build()
            .unwrap();

        // act
        CpuSet::apply(tmp.path(), &cpuset).expect("apply cpuset");

        // assert
        let content = fs::read_to_string(cpus)
            .unwrap_or_else(|_| panic!("read {CGROUP_CPUSET_CPUS} file content"));
        assert_eq!(content, "1-3");
    }

    #[test]
    fn test_set_mems() {
        // arrange
        let (tmp, mems) = setup(CGROUP_CPUSET_MEMS);
        let cpuset = LinuxCpuBuilder::default()
            .mems("1-3".to_owned())
            .build()
            .unwrap();

        // act
        CpuSet::apply(tmp.path(), &cpuset).expect("apply cpuset");

        // assert
        let content = fs::read_to_string(mems)
            .unwrap_or_else(|_| panic!("read {CGROUP_CPUSET_MEMS} file content"));
        assert_eq!(content, "1-3");
    }

    // polis patch: the walk up, on a fake hierarchy (a directory above it has no cpuset files)
    fn hierarchy(values: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = tmp.path().join("cpuset");
        let mut dirs = Vec::new();
        for value in values {
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(CGROUP_CPUSET_CPUS), value).unwrap();
            dirs.push(dir.clone());
            dir.push("sub");
        }
        (tmp, dirs)
    }

    fn cpus(dir: &Path) -> String {
        fs::read_to_string(dir.join(CGROUP_CPUSET_CPUS)).unwrap()
    }

    #[test]
    fn test_ensure_not_empty_copies_the_nearest_value_down() {
        let (_tmp, dirs) = hierarchy(&["0-3\n", "1\n", "", "\n"]);
        CpuSet::ensure_not_empty(&dirs[3], CGROUP_CPUSET_CPUS).unwrap();
        let got: Vec<String> = dirs.iter().map(|d| cpus(d)).collect();
        assert_eq!(got, ["0-3\n", "1\n", "1\n", "1\n"]);
    }

    #[test]
    fn test_ensure_not_empty_keeps_a_value() {
        let (_tmp, dirs) = hierarchy(&["0-3\n", "2\n"]);
        CpuSet::ensure_not_empty(&dirs[1], CGROUP_CPUSET_CPUS).unwrap();
        assert_eq!(cpus(&dirs[1]), "2\n");
    }

    #[test]
    fn test_ensure_not_empty_refuses_an_empty_hierarchy() {
        let (_tmp, dirs) = hierarchy(&["", "\n"]);
        let err = CpuSet::ensure_not_empty(&dirs[1], CGROUP_CPUSET_CPUS).unwrap_err();
        assert!(matches!(err, V1CpuSetControllerError::EmptyParent), "{err}");
        assert_eq!(cpus(&dirs[1]), "\n");
    }

    #[test]
    fn test_ensure_not_empty_names_a_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = CpuSet::ensure_not_empty(tmp.path(), CGROUP_CPUSET_CPUS).unwrap_err();
        assert!(err.to_string().contains(CGROUP_CPUSET_CPUS), "{err}");
    }
}
