use std::fs;
use std::path::Path;

use nix::unistd::Pid;

use super::util;
use crate::common::{self, ControllerOpt, WrapIoResult, WrappedIoError};

pub(super) trait Controller {
    type Error: From<WrappedIoError>;
    type Resource;

    /// Adds a new task specified by its pid to the cgroup
    fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), Self::Error> {
        fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;
        common::write_cgroup_file(cgroup_path.join(util::task_file(pid)), pid)?;
        Ok(())
    }

    /// Applies resource restrictions to the cgroup
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error>;

    /// Checks if the controller needs to handle this request
    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource>;
}

// polis patch (vendor/patches/004): pid 0 (the calling thread) goes to `tasks`, any other pid to
// `cgroup.procs`.
#[cfg(test)]
mod polis_tests {
    use nix::unistd::Pid;

    use super::Controller;
    use crate::common::CGROUP_PROCS;
    use crate::test::set_fixture;
    use crate::v1::pids::Pids;

    #[test]
    fn test_add_task_self_thread_through_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        set_fixture(tmp.path(), "tasks", "").unwrap();
        set_fixture(tmp.path(), CGROUP_PROCS, "").unwrap();

        Pids::add_task(Pid::from_raw(0), tmp.path()).expect("add task 0");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("tasks")).unwrap(),
            "0"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(CGROUP_PROCS)).unwrap(),
            ""
        );

        Pids::add_task(Pid::from_raw(4242), tmp.path()).expect("add task 4242");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(CGROUP_PROCS)).unwrap(),
            "4242"
        );
    }
}
