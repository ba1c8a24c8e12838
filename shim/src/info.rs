//! `-info`: containerd 2.x asks a shim binary to describe its runtime before any shim runs
//! (`RuntimeInfo` on stdout), and checks container specs against the runtime's features.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::options::Settings;

/// The type URL containerd's typeurl registry gives runtime-spec's `features.Features` (JSON).
const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// Writes our `RuntimeInfo`, with the runtime's `features` document when it has one.
pub fn print(runtime_id: &str) -> Result<()> {
    let options = crate::start::read_options()?;
    let settings = Settings::from_any(options.as_ref())?;
    let info = runtime_info(runtime_id, options, runtime_features(&settings));
    let mut out = std::io::stdout().lock();
    out.write_all(&info.write_to_bytes()?)?;
    out.flush().context("write the runtime info")
}

fn runtime_info(runtime_id: &str, options: Option<Any>, features: Option<Vec<u8>>) -> RuntimeInfo {
    let mut version = RuntimeVersion::new();
    version.version = env!("CARGO_PKG_VERSION").into();
    let mut info = RuntimeInfo::new();
    info.name = runtime_id.into();
    info.version = MessageField::some(version);
    info.options = options.into();
    info.features = features
        .map(|json| {
            let mut any = Any::new();
            any.type_url = FEATURES_TYPE.into();
            any.value = json;
            any
        })
        .into();
    info
}

/// `<runtime> features`, if the runtime answers it with JSON. As the Go shim, a runtime without
/// the command only leaves the features out (containerd then checks nothing against them).
fn runtime_features(settings: &Settings) -> Option<Vec<u8>> {
    let out = Command::new(&settings.binary)
        .arg("features")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o)
            if o.status.success()
                && serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok() =>
        {
            Some(o.stdout)
        }
        Ok(o) => {
            eprintln!(
                "{} features: {}; the runtime info has no features",
                settings.binary.display(),
                o.status
            );
            None
        }
        Err(e) => {
            eprintln!(
                "{} features: {e}; the runtime info has no features",
                settings.binary.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_the_runtime_and_carries_features_and_options() {
        let mut opts = Any::new();
        opts.type_url = "containerd.runc.v1.Options".into();
        let info = runtime_info(
            "io.containerd.polis.v2",
            Some(opts.clone()),
            Some(b"{}".to_vec()),
        );
        let back = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(back.name, "io.containerd.polis.v2");
        assert_eq!(back.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(back.options.type_url, opts.type_url);
        assert_eq!(back.features.type_url, FEATURES_TYPE);
        assert_eq!(back.features.value, b"{}");
        let bare = runtime_info("x", None, None);
        assert!(bare.options.is_none() && bare.features.is_none());
    }
}
