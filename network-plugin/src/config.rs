//! The network configuration a runtime passes on stdin.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{code, CniError, CniResult};
use crate::names::is_spec_name;
use crate::names::validate_ifname;

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

/// One `runtimeConfig.portMappings` entry, normalized: `protocol` is "tcp" or
/// "udp", `host_ip` is empty for "every local address".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
}

/// What this plugin reads of `runtimeConfig`. Any other key a runtime sends
/// (`bandwidth`, `dns`, `ipRanges`, `ips`, `mac`, `cgroupPath`,
/// `io.kubernetes.cri.pod-annotations`, ...) is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMapping>,
}

impl RuntimeConfig {
    /// Reads `runtimeConfig` the way a Go plugin (the reference `portmap`)
    /// decodes it with encoding/json: object keys match field names ignoring
    /// case, a null value is the field's default. containerd's CRI relies on
    /// that: it sends go-cni's `PortMapping`, a struct without json tags, so
    /// the keys arrive as `HostPort`, `ContainerPort`, `Protocol`, `HostIP`.
    /// The message of an error names the entry, the key as sent and its value.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = match v {
            Value::Null => return Ok(Self::default()),
            Value::Object(o) => o,
            other => return Err(format!("runtimeConfig {other} is not an object")),
        };
        let list = match go_field(obj, "portMappings", "runtimeConfig")? {
            None => return Ok(Self::default()),
            Some((_, Value::Array(list))) => list,
            Some((key, other)) => return Err(format!("runtimeConfig.{key} {other} is not a list")),
        };
        let port_mappings = list
            .iter()
            .enumerate()
            .map(|(i, m)| PortMapping::from_value(&format!("runtimeConfig.portMappings[{i}]"), m))
            .collect::<Result<_, _>>()?;
        Ok(RuntimeConfig { port_mappings })
    }
}

impl PortMapping {
    fn from_value(what: &str, v: &Value) -> Result<Self, String> {
        let Value::Object(obj) = v else {
            return Err(format!("{what} {v} is not an object"));
        };
        let port = |field: &str| match go_field(obj, field, what)? {
            None => Err(format!("{what} has no {field}")),
            Some((key, v)) => v
                .as_u64()
                .filter(|p| (1..=65535).contains(p))
                .map(|p| p as u16)
                .ok_or_else(|| format!("{what}: {key} {v} is not a port number (1-65535)")),
        };
        let string = |field: &str| match go_field(obj, field, what)? {
            None => Ok(None),
            Some((key, Value::String(s))) => Ok(Some((key, s.as_str()))),
            Some((key, v)) => Err(format!("{what}: {key} {v} is not a string")),
        };
        let host_port = port("hostPort")?;
        let container_port = port("containerPort")?;
        // Absent and "" (Go's zero value) both mean tcp; CRI sends "tcp",
        // other clients "TCP".
        let protocol = match string("protocol")? {
            None => "tcp".to_string(),
            Some((key, p)) => match p.to_ascii_lowercase().as_str() {
                "" | "tcp" => "tcp".to_string(),
                "udp" => "udp".to_string(),
                _ => return Err(format!("{what}: {key} {p:?} is not tcp or udp")),
            },
        };
        // Absent and "" (what CRI sends for a pod without hostIP) both mean
        // every local address.
        let host_ip = match string("hostIP")? {
            None => String::new(),
            Some((key, ip)) => {
                if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
                    return Err(format!("{what}: {key} {ip:?} is not an IP address"));
                }
                ip.to_string()
            }
        };
        Ok(PortMapping {
            host_port,
            container_port,
            protocol,
            host_ip,
        })
    }
}

/// The value of `field` in `obj`, keys compared ignoring ASCII case as Go's
/// encoding/json compares them; a null value counts as absent, as Go leaves
/// the field at its zero value. Two keys for the same field (`hostPort` and
/// `HostPort`) are refused: Go would keep whichever comes last.
fn go_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
    what: &str,
) -> Result<Option<(&'a str, &'a Value)>, String> {
    let mut found = obj.iter().filter(|(k, _)| k.eq_ignore_ascii_case(field));
    let first = found.next();
    if let (Some((a, _)), Some((b, _))) = (first, found.next()) {
        return Err(format!("{what} has both {a:?} and {b:?}"));
    }
    Ok(first
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.as_str(), v)))
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
    /// `runtimeConfig` as sent; [`NetConf::parse`] reads it into `runtime_config`.
    #[serde(default, rename = "runtimeConfig")]
    raw_runtime_config: Value,
    #[serde(skip)]
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
        conf.runtime_config = RuntimeConfig::from_value(&conf.raw_runtime_config).map_err(|m| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("{m} (network {:?})", conf.name),
            )
        })?;
        Ok(conf)
    }

    /// DEL's reading of the configuration. What an attachment owns is found
    /// from the network name, `CNI_CONTAINERID` and `CNI_IFNAME` (host veth
    /// name, rule tags, store entries) and the IPAM section, never from port
    /// mappings or bridge settings; so when the full parse fails (port
    /// mappings ADD would refuse, a bad mtu, ...) DEL still runs on just the
    /// version, name and IPAM section, as the spec asks DEL to be as tolerant
    /// as it can. The full parse's error comes back as the second value, for
    /// a warning.
    pub fn parse_for_del(bytes: &[u8]) -> CniResult<(Self, Option<CniError>)> {
        let full = match Self::parse(bytes) {
            Ok(conf) => return Ok((conf, None)),
            Err(e) => e,
        };
        let Ok(Value::Object(all)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(full);
        };
        let essentials: serde_json::Map<String, Value> = ["cniVersion", "name", "type", "ipam"]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), all.get(k)?.clone())))
            .collect();
        let Ok(conf) = serde_json::from_value::<NetConf>(Value::Object(essentials)) else {
            return Err(full);
        };
        check_version(&conf.cni_version)?;
        conf.validate()?;
        Ok((conf, Some(full)))
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
        if let Err(e) = validate_ifname(&self.bridge) {
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

/// VERSION's answer: the caller's version back, and every version we speak.
pub fn version_answer(stdin: &[u8]) -> String {
    serde_json::json!({
        "cniVersion": sniff_version(stdin),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_answers_in_callers_version() {
        let v: serde_json::Value =
            serde_json::from_str(&super::version_answer(br#"{"cniVersion":"0.4.0"}"#)).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert!(v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "1.1.0"));
    }

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

    /// The port mappings of a configuration with this `runtimeConfig`.
    fn mappings(runtime_config: &str) -> Vec<PortMapping> {
        let conf =
            format!(r#"{{"cniVersion":"1.0.0","name":"n","runtimeConfig":{runtime_config}}}"#);
        NetConf::parse(conf.as_bytes())
            .unwrap_or_else(|e| panic!("{runtime_config}: {e}"))
            .runtime_config
            .port_mappings
    }

    fn pm(host_port: u16, container_port: u16, protocol: &str, host_ip: &str) -> PortMapping {
        PortMapping {
            host_port,
            container_port,
            protocol: protocol.into(),
            host_ip: host_ip.into(),
        }
    }

    #[test]
    fn accepts_the_go_field_names_containerd_cri_sends() {
        // containerd 1.6 CRI: go-cni's PortMapping has no json tags.
        let got = mappings(
            r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]}"#,
        );
        assert_eq!(got, [pm(8080, 80, "tcp", "")]);
    }

    #[test]
    fn port_mapping_keys_match_ignoring_case_as_go_does() {
        let got = mappings(
            r#"{"PortMappings":[
                {"hostport":1,"CONTAINERPORT":2,"pRoToCoL":"udp","hostip":"10.0.0.1"},
                {"hostPort":3,"containerPort":4,"protocol":"tcp","hostIP":"fd00::1"},
                {"HostPort":5,"containerPort":6,"Protocol":"udp","HostIp":"10.0.0.2"}]}"#,
        );
        assert_eq!(
            got,
            [
                pm(1, 2, "udp", "10.0.0.1"),
                pm(3, 4, "tcp", "fd00::1"),
                pm(5, 6, "udp", "10.0.0.2")
            ]
        );
    }

    #[test]
    fn empty_or_null_host_ip_means_every_address() {
        let absent = mappings(r#"{"portMappings":[{"hostPort":8080,"containerPort":80}]}"#);
        for rc in [
            r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"HostIP":""}]}"#,
            r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"HostIP":null,"Protocol":null}]}"#,
            r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":""}]}"#,
        ] {
            assert_eq!(mappings(rc), absent, "{rc}");
        }
        assert_eq!(absent, [pm(8080, 80, "tcp", "")]);
        // No hostIP: DNAT matches any local address, in both families.
        let ips = [
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let rules = crate::nft::rules::plan(&ips, false, &absent);
        let dnat: Vec<_> = rules
            .iter()
            .filter(|r| matches!(r.action, crate::nft::rules::Action::Dnat { .. }))
            .collect();
        assert_eq!(dnat.len(), 4);
        assert!(dnat.iter().all(|r| !r
            .matches
            .iter()
            .any(|m| matches!(m, crate::nft::rules::Match::DaddrIs(_)))));
    }

    #[test]
    fn protocol_is_accepted_in_any_case() {
        let got = mappings(
            r#"{"portMappings":[{"HostPort":53,"ContainerPort":53,"Protocol":"UDP"},
                                {"HostPort":80,"ContainerPort":80,"Protocol":"TCP"}]}"#,
        );
        assert_eq!(got, [pm(53, 53, "udp", ""), pm(80, 80, "tcp", "")]);
        assert_eq!(crate::nft::rules::proto_number(&got[0].protocol), 17);
    }

    #[test]
    fn unknown_runtime_config_keys_are_ignored() {
        // Everything containerd's CRI and other runtimes may put in
        // runtimeConfig, in go-cni's spelling where it has no json tags.
        let got = mappings(
            r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}],
                "bandwidth":{"IngressRate":1000,"IngressBurst":4294967295,"EgressRate":0,"EgressBurst":0},
                "dns":{"Servers":["10.96.0.10"],"Searches":["svc.cluster.local"],"Options":["ndots:5"]},
                "ipRanges":[[{"subnet":"10.1.0.0/24"}]],
                "ips":["10.1.0.9/24"],
                "mac":"c2:11:22:33:44:55",
                "cgroupPath":"/kubepods/pod1",
                "infinibandGUID":"x",
                "deviceID":"0000:00:1f.0",
                "aliases":["a"],
                "io.kubernetes.cri.pod-annotations":{"k":"v"},
                "somethingNew":[1,{"x":null}]}"#,
        );
        assert_eq!(got, [pm(8080, 80, "tcp", "")]);
        assert!(mappings("null").is_empty());
        assert!(mappings(r#"{"portMappings":null}"#).is_empty());
        assert!(mappings(r#"{"bandwidth":{}}"#).is_empty());
    }

    #[test]
    fn malformed_port_mappings_name_the_field_and_value() {
        for (rc, wants) in [
            (
                r#"{"portMappings":[{"HostPort":"eighty","ContainerPort":80}]}"#,
                &[r#"portMappings[0]"#, r#"HostPort "eighty""#][..],
            ),
            (
                r#"{"portMappings":[{"hostPort":1,"containerPort":1},{"HostPort":70000,"ContainerPort":80}]}"#,
                &["portMappings[1]", "HostPort 70000"],
            ),
            (
                r#"{"portMappings":[{"HostPort":8080,"ContainerPort":0}]}"#,
                &["ContainerPort 0"],
            ),
            (
                r#"{"portMappings":[{"HostPort":8080,"ContainerPort":80.5}]}"#,
                &["ContainerPort 80.5"],
            ),
            (
                r#"{"portMappings":[{"ContainerPort":80}]}"#,
                &["portMappings[0] has no hostPort"],
            ),
            (
                r#"{"portMappings":[{"HostPort":1,"ContainerPort":80,"Protocol":"sctp"}]}"#,
                &[r#"Protocol "sctp""#],
            ),
            (
                r#"{"portMappings":[{"HostPort":1,"ContainerPort":80,"Protocol":6}]}"#,
                &["Protocol 6 is not a string"],
            ),
            (
                r#"{"portMappings":[{"HostPort":1,"ContainerPort":80,"HostIP":"localhost"}]}"#,
                &[r#"HostIP "localhost""#],
            ),
            (
                r#"{"portMappings":[{"hostPort":1,"HostPort":2,"ContainerPort":80}]}"#,
                &["HostPort", "hostPort"],
            ),
            (r#"{"portMappings":[null]}"#, &["portMappings[0] null"]),
            (r#"{"portMappings":{"HostPort":1}}"#, &["is not a list"]),
            ("[1]", &["runtimeConfig [1] is not an object"]),
        ] {
            let conf = format!(r#"{{"cniVersion":"1.0.0","name":"n","runtimeConfig":{rc}}}"#);
            let e = NetConf::parse(conf.as_bytes()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{rc}: {e}");
            for want in wants {
                assert!(e.msg.contains(want), "{rc}: {:?} lacks {want:?}", e.msg);
            }
        }
    }

    #[test]
    fn del_reads_past_what_add_refuses() {
        let bad = br#"{"cniVersion":"1.0.0","name":"n","mtu":"big",
            "ipam":{"type":"polis-ipam","dataDir":"/d"},
            "runtimeConfig":{"portMappings":[{"HostPort":"eighty"}]}}"#;
        assert!(NetConf::parse(bad).is_err());
        let (c, ignored) = NetConf::parse_for_del(bad).unwrap();
        assert_eq!(c.name, "n");
        assert_eq!(c.ipam_type(), "polis-ipam");
        assert!(c.runtime_config.port_mappings.is_empty());
        assert!(ignored.is_some());
        let good = br#"{"cniVersion":"1.0.0","name":"n"}"#;
        assert!(NetConf::parse_for_del(good).unwrap().1.is_none());
        // What DEL cannot do without is still checked.
        for (conf, want) in [
            (
                &br#"{"cniVersion":"1.0.0","name":"../x","mtu":"big"}"#[..],
                code::INVALID_CONFIG,
            ),
            (
                br#"{"cniVersion":"9.0.0","name":"n","mtu":"big"}"#,
                code::INCOMPATIBLE_VERSION,
            ),
            (
                br#"{"cniVersion":"1.0.0","mtu":"big"}"#,
                code::DECODE_FAILURE,
            ),
            (b"{not json", code::DECODE_FAILURE),
        ] {
            let e = NetConf::parse_for_del(conf).unwrap_err();
            assert_eq!(e.code, want, "{}: {e}", String::from_utf8_lossy(conf));
        }
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
