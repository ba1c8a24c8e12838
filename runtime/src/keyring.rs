//! A new session keyring for each container, as runc makes one unless `--no-new-keyring`:
//! keyrings are not namespaced, so without it every container would share its caller's session
//! keyring. libcontainer has no such step, so the init joins `_ses.<id>` in our executor, just
//! before it runs the container process.

use std::path::{Path, PathBuf};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEYCTL_SETPERM: libc::c_long = 5;
const KEYCTL_DESCRIBE: libc::c_long = 6;
/// "possessor may search", added the way runc does so the container can use its keyring.
const KEY_POS_SEARCH: u32 = 0x0008_0000;

/// Also the executor of every other process (exec, `--no-new-keyring`), without the keyring:
/// libcontainer's default one refuses a process whose env has no PATH even when args[0] is a
/// path, which runc runs.
#[derive(Clone)]
pub struct KeyringExecutor {
    name: Option<String>,
    inner: DefaultExecutor,
}

impl KeyringExecutor {
    pub fn new(container_id: &str) -> Self {
        Self {
            name: Some(format!("_ses.{container_id}")),
            inner: DefaultExecutor {},
        }
    }

    /// Resolves the program as runc does, and joins no keyring.
    pub fn without_keyring() -> Self {
        Self {
            name: None,
            inner: DefaultExecutor {},
        }
    }
}

impl Executor for KeyringExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(name) = &self.name {
            join_session_keyring(name).map_err(ExecutorError::Other)?;
        }
        self.inner.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let process = spec.process().as_ref();
        let args = process
            .and_then(|p| p.args().as_deref())
            .unwrap_or_default();
        let env = process.and_then(|p| p.env().as_deref()).unwrap_or_default();
        resolve_executable(args, env)
            .map(drop)
            .map_err(ExecutorValidationError::ArgValidationError)
    }
}

/// Where the container's `args[0]` is, found as runc finds it (Go's `exec.LookPath` with the
/// process's own environment): a name with a slash is used as it is, with no need of PATH
/// (a pause image has no Env at all); a bare name is searched in the spec's PATH. The file
/// must be a regular file with an execute bit.
pub fn resolve_executable(args: &[String], env: &[String]) -> Result<PathBuf, String> {
    let name = args
        .first()
        .filter(|a| !a.is_empty())
        .ok_or("process.args must name the program to run")?;
    if name.contains('/') {
        let path = PathBuf::from(name);
        return check_executable(&path).map(|_| path);
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("");
    let mut refused = None;
    for dir in path_var.split(':') {
        // an empty PATH element is the current directory, as in a shell
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(name);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if candidate.exists() => refused = Some(e),
            Err(_) => {}
        }
    }
    Err(refused.unwrap_or_else(|| {
        if path_var.is_empty() {
            format!("executable {name:?} not found: process.env has no PATH (give args[0] as an absolute path, or set PATH)")
        } else {
            format!("executable {name:?} not found in $PATH ({path_var})")
        }
    }))
}

fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("executable {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "executable {} is not a regular file",
            path.display()
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "executable {} has no execute permission",
            path.display()
        ));
    }
    Ok(())
}

/// Joins (creating) the named session keyring. A kernel without keyrings, or a seccomp profile
/// that forbids keyctl (Docker's default does, since keyrings are not namespaced), leaves the
/// container without one, as runc does for ENOSYS; anything else is an error.
fn join_session_keyring(name: &str) -> Result<(), String> {
    let cname = std::ffi::CString::new(name).map_err(|_| format!("bad keyring name {name:?}"))?;
    // SAFETY: keyctl with a valid NUL-terminated name.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    if id < 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES) => Ok(()),
            _ => Err(format!("failed to join session keyring {name}: {err}")),
        };
    }
    let perm = current_perm(id).map_err(|e| format!("keyring {name}: {e}"))?;
    // SAFETY: keyctl on the keyring id we just joined.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, perm | KEY_POS_SEARCH) };
    if r < 0 {
        let err = std::io::Error::last_os_error();
        return Err(format!(
            "failed to set permissions of keyring {name}: {err}"
        ));
    }
    Ok(())
}

/// The permission mask of a key, from KEYCTL_DESCRIBE's "type;uid;gid;perm;description".
fn current_perm(id: libc::c_long) -> Result<u32, String> {
    let mut buf = [0u8; 512];
    // SAFETY: keyctl writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(format!(
            "describe failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let len = (n as usize).min(buf.len());
    parse_perm(&String::from_utf8_lossy(&buf[..len]))
}

fn parse_perm(description: &str) -> Result<u32, String> {
    let field = description
        .trim_end_matches('\0')
        .split(';')
        .nth(3)
        .ok_or_else(|| format!("unexpected key description {description:?}"))?;
    u32::from_str_radix(field, 16).map_err(|_| format!("bad permission field {field:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_come_from_the_fourth_field() {
        assert_eq!(
            parse_perm("keyring;0;0;3f010000;_ses.x\0").unwrap(),
            0x3f01_0000
        );
        assert!(parse_perm("keyring;0;0").is_err());
        assert!(parse_perm("keyring;0;0;zz;_ses").is_err());
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_absolute_program_needs_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("pause");
        std::fs::write(&prog, "#!/bin/true\n").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let args = vec![prog.display().to_string()];
        assert_eq!(resolve_executable(&args, &[]).unwrap(), prog);
        // a bare name without PATH is refused, with the reason
        let err = resolve_executable(&strings(&["pause"]), &strings(&["A=1"])).unwrap_err();
        assert!(err.contains("no PATH"), "{err}");
    }

    #[test]
    fn a_bare_name_is_searched_in_the_spec_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let prog = bin.join("tool");
        std::fs::write(&prog, "").unwrap();
        let env = vec![format!("PATH=/nonexistent:{}", bin.display())];
        // found but not executable: the reason names the file
        let err = resolve_executable(&strings(&["tool"]), &env).unwrap_err();
        assert!(err.contains("execute permission"), "{err}");
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(resolve_executable(&strings(&["tool"]), &env).unwrap(), prog);
        let err = resolve_executable(&strings(&["missing"]), &env).unwrap_err();
        assert!(err.contains("not found in $PATH"), "{err}");
        assert!(resolve_executable(&[], &env).is_err());
    }
}
