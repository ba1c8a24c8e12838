//! Runs another IPAM plugin (host-local, static, dhcp, ...) the way the CNI
//! protocol says: found on `CNI_PATH`, same stdin, `CNI_COMMAND` set.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use crate::args::{CniArgs, Command};
use crate::error::{code, CniError, CniResult};
use crate::result::CniOutput;

/// Finds `plugin` in the runtime's `CNI_PATH`.
pub fn find_plugin(plugin: &str, args: &CniArgs) -> CniResult<PathBuf> {
    if plugin.is_empty() || plugin.contains('/') {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam type {plugin:?} is not a plugin name"),
        ));
    }
    args.path
        .iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "IPAM plugin {plugin:?} not found in CNI_PATH {:?}",
                    args.path
                ),
            )
        })
}

/// Executes the delegate; returns its stdout, or its CNI error.
pub fn exec(plugin: &str, cmd: Command, args: &CniArgs, stdin: &[u8]) -> CniResult<Vec<u8>> {
    let path = find_plugin(plugin, args)?;
    let cni_args: Vec<String> = args.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cni_path = std::env::join_paths(&args.path).unwrap_or_default();
    let mut child = Process::new(&path)
        .env("CNI_COMMAND", cmd.as_str())
        .env("CNI_CONTAINERID", &args.container_id)
        .env("CNI_NETNS", &args.netns)
        .env("CNI_IFNAME", &args.ifname)
        .env("CNI_ARGS", cni_args.join(";"))
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                format!("cannot run IPAM plugin {}: {e}", path.display()),
            )
        })?;
    if let Some(mut sin) = child.stdin.take() {
        // A delegate may answer without reading its config (host-local's VERSION does) and be
        // gone before we finish writing: like libcni, let its exit status and output decide.
        match sin.write_all(stdin) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(CniError::new(
                    code::IO_FAILURE,
                    format!("writing to IPAM plugin {}: {e}", path.display()),
                ));
            }
            _ => {}
        }
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("waiting for IPAM plugin {}: {e}", path.display()),
        )
    })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(delegate_error(&path, &out.stdout, &out.stderr))
}

fn delegate_error(path: &std::path::Path, stdout: &[u8], stderr: &[u8]) -> CniError {
    #[derive(serde::Deserialize)]
    struct Err {
        code: u32,
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<Err>(stdout) {
        Ok(e) => CniError::new(e.code, format!("IPAM plugin {}: {}", path.display(), e.msg))
            .with_details(e.details),
        Err(_) => CniError::new(
            code::DELEGATE_FAILURE,
            format!(
                "IPAM plugin {} failed: {}",
                path.display(),
                String::from_utf8_lossy(stderr).trim()
            ),
        ),
    }
}

/// ADD through a delegate; parses its result.
pub fn add(plugin: &str, args: &CniArgs, stdin: &[u8]) -> CniResult<CniOutput> {
    let out = exec(plugin, Command::Add, args, stdin)?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            format!("IPAM plugin {plugin:?} printed no JSON result: {e}"),
        )
    })?;
    CniOutput::from_value(&v)
}

/// Whether the delegate speaks spec `version` (asked through VERSION), so
/// verbs it cannot know (GC, STATUS before 1.1.0) are not sent to it.
pub fn supports(plugin: &str, args: &CniArgs, version: &str) -> CniResult<bool> {
    let probe = format!("{{\"cniVersion\":\"{version}\"}}");
    let out = exec(plugin, Command::Version, args, probe.as_bytes())?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::DECODE_FAILURE,
            format!("IPAM plugin {plugin:?} answered VERSION without JSON: {e}"),
        )
    })?;
    Ok(v["supportedVersions"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|x| x.as_str() == Some(version))))
}
