//! The CNI result (interfaces, ips, routes, dns) and its per-version JSON shape.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{version_tuple, Dns};
use crate::error::{code, CniError, CniResult};
use crate::ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// A result in the latest shape; [`CniOutput::to_json`] renders older shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniOutput {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

impl CniOutput {
    /// Parses a result of any supported version (0.3.x/0.4.0 carry an ignored
    /// per-IP "version" field).
    pub fn from_value(v: &Value) -> CniResult<Self> {
        serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("result JSON is not a valid CNI result: {e}"),
            )
        })
    }

    pub fn to_value(&self, cni_version: &str) -> Value {
        let old = version_tuple(cni_version) < (1, 0, 0);
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = serde_json::to_value(ip).unwrap_or(Value::Null);
                if old {
                    let fam = if ip.address.is_ipv4() { "4" } else { "6" };
                    v["version"] = json!(fam);
                }
                v
            })
            .collect();
        // Interface "mtu" is a 1.1.0 field.
        let interfaces: Vec<Interface> = self
            .interfaces
            .iter()
            .map(|i| Interface {
                mtu: i.mtu.filter(|_| version_tuple(cni_version) >= (1, 1, 0)),
                ..i.clone()
            })
            .collect();
        let mut out = json!({
            "cniVersion": cni_version,
            "interfaces": interfaces,
            "ips": ips,
            "routes": self.routes,
        });
        if !self.dns.is_empty() {
            out["dns"] = serde_json::to_value(&self.dns).unwrap_or(Value::Null);
        } else {
            out["dns"] = json!({});
        }
        out
    }

    pub fn to_json(&self, cni_version: &str) -> String {
        self.to_value(cni_version).to_string()
    }

    /// Appends `other` (our own attachment) after this (a prevResult), shifting
    /// its interface indices so they still point at its interfaces.
    pub fn merged_with(mut self, other: CniOutput) -> CniOutput {
        let base = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + base);
            ip
        }));
        for r in other.routes {
            if !self.routes.contains(&r) {
                self.routes.push(r);
            }
        }
        if self.dns.is_empty() {
            self.dns = other.dns;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniOutput {
        CniOutput {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "aa:bb:cc:dd:ee:ff".into(),
                mtu: None,
                sandbox: Some("/run/netns/x".into()),
            }],
            ips: vec![IpConfig {
                address: "10.1.0.2/24".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn old_versions_carry_ip_version_field() {
        let v = sample().to_value("0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        let mut with_mtu = sample();
        with_mtu.interfaces[0].mtu = Some(1400);
        let v = with_mtu.to_value("1.0.0");
        assert!(v["ips"][0].get("version").is_none());
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert_eq!(with_mtu.to_value("1.1.0")["interfaces"][0]["mtu"], 1400);
        assert_eq!(v["ips"][0]["address"], "10.1.0.2/24");
    }

    #[test]
    fn round_trips_and_merges_with_shifted_indices() {
        let v = sample().to_value("0.4.0");
        let back = CniOutput::from_value(&v).unwrap();
        assert_eq!(back, sample());
        let merged = sample().merged_with(sample());
        assert_eq!(merged.interfaces.len(), 2);
        assert_eq!(merged.ips[1].interface, Some(1));
        assert_eq!(merged.routes.len(), 1);
    }
}
