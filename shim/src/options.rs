//! The runtime settings of a container: from the task's runtime options (containerd's runc
//! `Options`, as ctr and the Go shim use them, or CRI's `runtimeoptions.v1.Options`, whose
//! `ConfigPath` names our config file), then the environment and the shim's config file.
//!
//! The config file is JSON with runc `Options`' fields in camelCase, all optional:
//! `{"runtime": "/path/to/polis-runc", "root": "/run/...", "systemdCgroup": false,
//!   "noPivotRoot": false, "noNewKeyring": false, "shimCgroup": "/polis-shims",
//!   "ioUid": 0, "ioGid": 0}`.

use std::path::{Path, PathBuf};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedInputStream, Message};
use containerd_shim_protos::shim::oci::Options;
use serde::Deserialize;

/// Where the runtime keeps its state unless the options say otherwise.
pub const DEFAULT_ROOT: &str = "/run/containerd/polis";
/// Environment override of the runtime binary (containerd passes its env to shims).
pub const RUNTIME_ENV: &str = "POLIS_RUNC";
/// The shim's config file, unless `$POLIS_SHIM_CONFIG` or the CRI options name another.
pub const CONFIG_FILE: &str = "/etc/polis/shim.json";

/// Why the runtime settings of a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("runtime options ({what}): {source}")]
    Decode {
        what: &'static str,
        source: containerd_shim_protos::protobuf::Error,
    },
    #[error("runtime options ({what}): bad wire type in tag {tag}")]
    WireType { what: &'static str, tag: u32 },
    #[error(
        "runtime options of type {0:?} are not understood (use {RUNC_OPTIONS} or {CRI_OPTIONS})"
    )]
    UnknownType(String),
    #[error("shim config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shim config file {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: serde_json::Error,
    },
}

type Result<T> = std::result::Result<T, OptionsError>;

const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
const CRI_OPTIONS: &str = "runtimeoptions.v1.Options";
const CREATE_OPTIONS: &str = "containerd.linux.runc.CreateOptions";

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigFile {
    runtime: Option<PathBuf>,
    root: Option<String>,
    systemd_cgroup: Option<bool>,
    no_pivot_root: Option<bool>,
    no_new_keyring: Option<bool>,
    shim_cgroup: Option<String>,
    io_uid: Option<u32>,
    io_gid: Option<u32>,
}

/// What the `delete` subcommand needs to run the runtime of a bundle.
#[derive(Debug, PartialEq, Eq)]
pub struct RuntimeRecord {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

/// What the shim needs to drive the runtime for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub binary: PathBuf,
    /// The runtime's `--root` base; the namespace is appended (`root()`).
    pub root_base: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub shim_cgroup: String,
    /// Owner given to the processes' stdio (fifos, log pipes and files), as the Go shim's
    /// IoUid/IoGid: a user-namespaced container's root can then reopen its own stdio.
    pub io_owner: Option<(u32, u32)>,
}

impl Settings {
    pub fn root(&self, namespace: &str) -> PathBuf {
        Path::new(&self.root_base).join(namespace)
    }

    /// What a container of `namespace` records for the `delete` subcommand.
    pub fn record(&self, namespace: &str) -> RuntimeRecord {
        RuntimeRecord {
            binary: self.binary.clone(),
            root: self.root(namespace),
            systemd_cgroup: self.systemd_cgroup,
        }
    }

    /// The settings when even the config file cannot be read.
    pub fn fallback() -> Self {
        Self {
            binary: runtime_binary("", None),
            root_base: DEFAULT_ROOT.into(),
            systemd_cgroup: false,
            no_pivot_root: false,
            no_new_keyring: false,
            shim_cgroup: String::new(),
            io_owner: None,
        }
    }

    /// Settings from the task's options (`None`: none given).
    pub fn from_any(any: Option<&Any>) -> Result<Self> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
            return Self::resolve(&Options::new(), &default_config()?);
        };
        let kind = any.type_url.rsplit('/').next().unwrap_or_default();
        match kind {
            RUNC_OPTIONS | "" => {
                let o = Options::parse_from_bytes(&any.value).map_err(|source| {
                    OptionsError::Decode {
                        what: RUNC_OPTIONS,
                        source,
                    }
                })?;
                Self::resolve(&o, &default_config()?)
            }
            CRI_OPTIONS => {
                let path = cri_config_path(&any.value)?;
                let config = match path {
                    Some(p) => read_config(Path::new(&p))?,
                    None => default_config()?,
                };
                Self::resolve(&Options::new(), &config)
            }
            CREATE_OPTIONS => Self::resolve(&from_create_options(&any.value)?, &default_config()?),
            other => Err(OptionsError::UnknownType(other.into())),
        }
    }

    /// The options' fields win; the config file fills in what they leave unset.
    fn resolve(o: &Options, c: &ConfigFile) -> Result<Self> {
        let root_base = if !o.root.is_empty() {
            o.root.clone()
        } else {
            c.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into())
        };
        let shim_cgroup = if !o.shim_cgroup.is_empty() {
            o.shim_cgroup.clone()
        } else {
            c.shim_cgroup.clone().unwrap_or_default()
        };
        Ok(Self {
            binary: runtime_binary(&o.binary_name, c.runtime.as_deref()),
            root_base,
            systemd_cgroup: o.systemd_cgroup || c.systemd_cgroup.unwrap_or(false),
            no_pivot_root: o.no_pivot_root || c.no_pivot_root.unwrap_or(false),
            no_new_keyring: o.no_new_keyring || c.no_new_keyring.unwrap_or(false),
            shim_cgroup,
            io_owner: io_owner(o, c),
        })
    }
}

/// The options' IoUid/IoGid when either is set, else the config file's.
fn io_owner(o: &Options, c: &ConfigFile) -> Option<(u32, u32)> {
    if o.io_uid != 0 || o.io_gid != 0 {
        return Some((o.io_uid, o.io_gid));
    }
    match (c.io_uid, c.io_gid) {
        (None, None) => None,
        (u, g) => Some((u.unwrap_or(0), g.unwrap_or(0))),
    }
}

/// The runtime binary: options' BinaryName, then `$POLIS_RUNC`, then the config file's
/// `runtime`, then `polis-runc` next to the shim, then `polis-runc` on PATH.
fn runtime_binary(binary_name: &str, configured: Option<&Path>) -> PathBuf {
    if !binary_name.is_empty() {
        return PathBuf::from(binary_name);
    }
    if let Some(p) = std::env::var_os(RUNTIME_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = configured.filter(|p| !p.as_os_str().is_empty()) {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        let next = exe.with_file_name("polis-runc");
        if next.is_file() {
            return next;
        }
    }
    PathBuf::from("polis-runc")
}

/// The default config file; it need not exist.
fn default_config() -> Result<ConfigFile> {
    let path = std::env::var_os("POLIS_SHIM_CONFIG").unwrap_or_else(|| CONFIG_FILE.into());
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        _ => read_config(Path::new(&path)),
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let data = std::fs::read(path).map_err(|source| OptionsError::ReadConfig {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| OptionsError::ParseConfig {
        path: path.into(),
        source,
    })
}

/// A field of a flat protobuf message: a varint or a string.
enum Field {
    Varint(u64),
    Text(String),
}

/// The varint and string fields of `bytes` by number; other fields are skipped.
fn fields(bytes: &[u8], what: &'static str) -> Result<Vec<(u32, Field)>> {
    use containerd_shim_protos::protobuf::rt::WireType;
    let err = |source| OptionsError::Decode { what, source };
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut out = Vec::new();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(err)? {
        let wire = WireType::new(tag & 7).ok_or(OptionsError::WireType { what, tag })?;
        match wire {
            WireType::Varint => out.push((
                tag >> 3,
                Field::Varint(input.read_raw_varint64().map_err(err)?),
            )),
            WireType::LengthDelimited => {
                out.push((tag >> 3, Field::Text(input.read_string().map_err(err)?)))
            }
            other => input.skip_field(other).map_err(err)?,
        }
    }
    Ok(out)
}

/// `config_path` (field 2) of CRI's `runtimeoptions.v1.Options`.
fn cri_config_path(bytes: &[u8]) -> Result<Option<String>> {
    Ok(fields(bytes, CRI_OPTIONS)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Text(p)) if !p.is_empty() => Some(p),
            _ => None,
        }))
}

/// The runc `Options` equivalent of the `CreateOptions` ctr sends runtimes other than
/// runc's for `--no-pivot` and `--uidmap`.
fn from_create_options(bytes: &[u8]) -> Result<Options> {
    let mut o = Options::new();
    for (n, f) in fields(bytes, CREATE_OPTIONS)? {
        match (n, f) {
            (1, Field::Varint(v)) => o.no_pivot_root = v != 0,
            (8, Field::Varint(v)) => o.no_new_keyring = v != 0,
            (9, Field::Text(t)) => o.shim_cgroup = t,
            (10, Field::Varint(v)) => o.io_uid = v as u32,
            (11, Field::Varint(v)) => o.io_gid = v as u32,
            _ => {}
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    fn any(type_url: &str, value: Vec<u8>) -> Any {
        let mut a = Any::new();
        a.type_url = type_url.into();
        a.value = value;
        a
    }

    fn cri_options(config_path: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut out = CodedOutputStream::vec(&mut buf);
        out.write_string(1, "io.containerd.polis.v1.Options")
            .unwrap();
        out.write_string(2, config_path).unwrap();
        out.flush().unwrap();
        drop(out);
        buf
    }

    #[test]
    fn runc_options_win_over_the_config_file() {
        let mut o = Options::new();
        o.binary_name = "/opt/bin/polis-runc".into();
        o.no_new_keyring = true;
        let c = ConfigFile {
            runtime: Some("/elsewhere".into()),
            root: Some("/r".into()),
            systemd_cgroup: Some(true),
            ..Default::default()
        };
        let s = Settings::resolve(&o, &c).unwrap();
        assert_eq!(s.binary, PathBuf::from("/opt/bin/polis-runc"));
        assert_eq!(s.root("k8s.io"), PathBuf::from("/r/k8s.io"));
        assert!(s.systemd_cgroup && s.no_new_keyring && !s.no_pivot_root);
        let s = Settings::resolve(&Options::new(), &ConfigFile::default()).unwrap();
        assert_eq!(
            s.root("default"),
            PathBuf::from("/run/containerd/polis/default")
        );
    }

    #[test]
    fn io_owner_from_options_else_config_file() {
        let mut o = Options::new();
        o.io_uid = 1000;
        let c = ConfigFile {
            io_uid: Some(7),
            io_gid: Some(8),
            ..Default::default()
        };
        assert_eq!(Settings::resolve(&o, &c).unwrap().io_owner, Some((1000, 0)));
        let s = Settings::resolve(&Options::new(), &c).unwrap();
        assert_eq!(s.io_owner, Some((7, 8)));
        let none = Settings::resolve(&Options::new(), &ConfigFile::default()).unwrap();
        assert_eq!(none.io_owner, None);
    }

    #[test]
    fn runc_options_any_is_decoded() {
        let mut o = Options::new();
        o.root = "/tmp/r".into();
        o.no_pivot_root = true;
        let a = any(
            "type.googleapis.com/containerd.runc.v1.Options",
            o.write_to_bytes().unwrap(),
        );
        let s = Settings::from_any(Some(&a)).unwrap();
        assert_eq!(s.root("ns"), PathBuf::from("/tmp/r/ns"));
        assert!(s.no_pivot_root);
    }

    #[test]
    fn cri_options_name_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("shim.json");
        std::fs::write(
            &cfg,
            r#"{"runtime": "/opt/polis/polis-runc", "noNewKeyring": true, "shimCgroup": "/s"}"#,
        )
        .unwrap();
        let a = any(CRI_OPTIONS, cri_options(cfg.to_str().unwrap()));
        let s = Settings::from_any(Some(&a)).unwrap();
        assert_eq!(s.binary, PathBuf::from("/opt/polis/polis-runc"));
        assert!(s.no_new_keyring);
        assert_eq!(s.shim_cgroup, "/s");
    }

    #[test]
    fn ctr_create_options_carry_no_pivot_and_keyring() {
        // no_pivot_root (1) = true, no_new_keyring (8) = true, shim_cgroup (9) = "/g"
        let a = any(
            "containerd.linux.runc.CreateOptions",
            vec![0x08, 1, 0x40, 1, 0x4a, 2, b'/', b'g'],
        );
        let s = Settings::from_any(Some(&a)).unwrap();
        assert!(s.no_pivot_root && s.no_new_keyring);
        assert_eq!(s.shim_cgroup, "/g");
    }

    #[test]
    fn bad_options_and_config_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("shim.json");
        std::fs::write(&cfg, r#"{"runtime": 7}"#).unwrap();
        let a = any(CRI_OPTIONS, cri_options(cfg.to_str().unwrap()));
        let e = Settings::from_any(Some(&a)).unwrap_err();
        assert!(e.to_string().contains("shim.json"), "{e}");
        std::fs::write(&cfg, r#"{"runtim": "/x"}"#).unwrap();
        let e = Settings::from_any(Some(&a)).unwrap_err();
        assert!(e.to_string().contains("runtim"), "{e}");
        let missing = dir.path().join("missing.json");
        let a = any(CRI_OPTIONS, cri_options(missing.to_str().unwrap()));
        let e = Settings::from_any(Some(&a)).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
        let a = any("containerd.example.Options", vec![8, 1]);
        let e = Settings::from_any(Some(&a)).unwrap_err();
        assert!(e.to_string().contains("containerd.example.Options"), "{e}");
        let a = any(RUNC_OPTIONS, vec![0xff, 0xff]);
        assert!(Settings::from_any(Some(&a)).is_err());
    }
}
