//! The network configuration a runtime passes on stdin.

use serde::{Deserialize, Serialize};

use crate::error::{code, CniError, CniResult};

/// Versions whose configuration we accept and whose result shape we emit.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST_VERSION: &str = "1.1.0";
const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

fn default_protocol() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The bridge plugin's configuration (reference `bridge` field names).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default = "default_bridge")]
    pub bridge: String,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub ip_masq: bool,
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub ipam: serde_json::Value,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}

impl NetConf {
    /// Parses and validates; nothing on the host is touched before this passes.
    pub fn parse(bytes: &[u8]) -> CniResult<Self> {
        let mut conf: NetConf = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("network configuration on stdin is not valid: {e}"),
            )
        })?;
        check_version(&conf.cni_version)?;
        if conf.is_default_gateway {
            // As the reference: a default gateway must be a gateway.
            conf.is_gateway = true;
        }
        conf.validate()?;
        Ok(conf)
    }

    fn validate(&self) -> CniResult<()> {
        let invalid = |m: String| Err(CniError::new(code::INVALID_CONFIG, m));
        // The name becomes a directory under dataDir and part of rule tags:
        // the spec's character set keeps it a single safe path component.
        if !is_spec_name(&self.name) || self.name.len() > 128 {
            return invalid(format!(
                "network name {:?} must be 1-128 characters of [A-Za-z0-9_.-]",
                self.name
            ));
        }
        if let Err(e) = crate::args::validate_ifname(&self.bridge) {
            return invalid(format!(
                "bridge name {:?} of network {:?} is invalid: {}",
                self.bridge, self.name, e.msg
            ));
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return invalid(format!(
                    "mtu {mtu} of network {:?} is out of range 68..65535",
                    self.name
                ));
            }
        }
        if let Some(vlan) = self.vlan {
            if vlan > 4094 {
                return invalid(format!(
                    "vlan {vlan} of network {:?} is out of range 0..4094",
                    self.name
                ));
            }
        }
        for pm in &self.runtime_config.port_mappings {
            if pm.host_port == 0 || pm.container_port == 0 {
                return invalid(format!("port mapping {pm:?} has a zero port"));
            }
            if !matches!(pm.protocol.to_ascii_lowercase().as_str(), "tcp" | "udp") {
                return invalid(format!(
                    "port mapping protocol {:?} is not tcp or udp",
                    pm.protocol
                ));
            }
            if !pm.host_ip.is_empty() && pm.host_ip.parse::<std::net::IpAddr>().is_err() {
                return invalid(format!(
                    "port mapping hostIP {:?} is not an IP address",
                    pm.host_ip
                ));
            }
        }
        Ok(())
    }

    /// The `ipam.type`, empty when there is no IPAM section.
    pub fn ipam_type(&self) -> &str {
        self.ipam.get("type").and_then(|t| t.as_str()).unwrap_or("")
    }

    /// Spec versions are compared numerically: "0.4.0" < "1.0.0".
    pub fn version_at_least(&self, min: &str) -> bool {
        version_tuple(&self.cni_version) >= version_tuple(min)
    }
}

/// The spec's character set for network names and container IDs; "." and
/// ".." alone are refused since they are path components.
pub fn is_spec_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The `cni.dev/valid-attachments` list GC needs: without it, "everything not valid" would be
/// everything, so its absence is a configuration error.
pub fn require_valid_attachments<'a>(
    network: &str,
    list: Option<&'a Vec<Attachment>>,
) -> CniResult<&'a [Attachment]> {
    list.map(Vec::as_slice).ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("GC of network {network:?} needs cni.dev/valid-attachments"),
        )
    })
}

pub fn check_version(v: &str) -> CniResult<()> {
    if SUPPORTED_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {v:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ))
    }
}

pub fn version_tuple(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// Reads just `cniVersion` so an error can be reported in the caller's version
/// even when the rest of the configuration does not parse.
pub fn sniff_version(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion")]
        v: String,
    }
    serde_json::from_slice::<V>(bytes)
        .ok()
        .map(|v| v.v)
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_reference_bridge() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"polis-bridge","isDefaultGateway":true}"#,
        )
        .unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(c.is_gateway);
        assert!(!c.ip_masq);
    }

    #[test]
    fn rejects_unknown_version_and_bad_json() {
        let e = NetConf::parse(br#"{"cniVersion":"9.9.9","name":"n"}"#).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = NetConf::parse(b"{not json").unwrap_err();
        assert_eq!(e.code, code::DECODE_FAILURE);
    }

    #[test]
    fn rejects_long_bridge_name_and_bad_vlan() {
        let e = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","bridge":"this-name-is-too-long"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("this-name-is-too-long"));
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","vlan":5000}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
    }

    #[test]
    fn parses_port_mappings_and_gc_attachments() {
        let c = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n",
            "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},
            "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#).unwrap();
        assert_eq!(c.runtime_config.port_mappings[0].host_port, 8080);
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "a");
        let e = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n",
            "runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":80,"protocol":"sctp"}]}}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
    }

    #[test]
    fn rejects_names_that_are_not_path_safe() {
        for bad in ["../etc", "a/b", "..", "", "sp ace"] {
            let conf = format!(r#"{{"cniVersion":"1.0.0","name":{bad:?}}}"#);
            let e = NetConf::parse(conf.as_bytes()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad:?}");
        }
        assert!(NetConf::parse(br#"{"cniVersion":"1.0.0","name":"k8s-pod_net.1"}"#).is_ok());
    }

    #[test]
    fn version_ordering_is_numeric() {
        assert!(version_tuple("1.0.0") > version_tuple("0.4.0"));
        assert_eq!(sniff_version(br#"{"cniVersion":"0.4.0"}"#), "0.4.0");
        assert_eq!(sniff_version(b"garbage"), LATEST_VERSION);
    }
}
