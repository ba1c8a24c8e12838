//! The `ipam` section for `"type": "polis-ipam"` (host-local's field names).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Dns;
use crate::error::{code, CniError, CniResult};
use crate::ipnet::{from_u128, to_u128, IpNet};
use crate::result::Route;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    pub subnet: Option<IpNet>,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpamConf {
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    #[serde(flatten)]
    single: RangeConf,
    #[serde(default)]
    routes: Vec<Route>,
    data_dir: Option<PathBuf>,
    #[serde(default, alias = "reservedIPs")]
    reserved: Vec<IpAddr>,
    #[serde(default)]
    dns: Dns,
}

/// One usable range: addresses `start..=end` of `subnet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(ip)
            && to_u128(ip) >= to_u128(self.start)
            && to_u128(ip) <= to_u128(self.end)
    }
}

#[derive(Debug, Clone)]
pub struct IpamConf {
    /// Each set yields one address (one set per family for dual stack).
    pub range_sets: Vec<Vec<Range>>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub reserved: Vec<IpAddr>,
    pub dns: Dns,
}

impl IpamConf {
    pub fn from_value(network: &str, v: &serde_json::Value) -> CniResult<Self> {
        let raw: RawIpamConf = serde_json::from_value(v.clone()).map_err(|e| {
            invalid(format!(
                "ipam section of network {network:?} is invalid: {e}"
            ))
        })?;
        let mut sets = raw.ranges.clone();
        if raw.single.subnet.is_some() {
            sets.insert(0, vec![raw.single.clone()]);
        }
        if sets.is_empty() || sets.iter().any(|s| s.is_empty()) {
            return Err(invalid(format!(
                "ipam of network {network:?} ({}) has no ranges",
                raw.plugin_type
            )));
        }
        let range_sets = sets
            .iter()
            .map(|set| {
                set.iter()
                    .map(|r| resolve_range(network, r))
                    .collect::<CniResult<Vec<_>>>()
            })
            .collect::<CniResult<Vec<_>>>()?;
        for set in &range_sets {
            if set
                .iter()
                .any(|r| r.subnet.is_ipv4() != set[0].subnet.is_ipv4())
            {
                return Err(invalid(format!(
                    "a range set of network {network:?} mixes IPv4 and IPv6"
                )));
            }
        }
        Ok(IpamConf {
            range_sets,
            routes: raw.routes,
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            reserved: raw.reserved,
            dns: raw.dns,
        })
    }

    /// For DEL: releasing an attachment's addresses needs only the store,
    /// found from `dataDir`; an ipam section whose ranges no longer parse
    /// (edited since ADD) still releases. Fails only when `dataDir` itself
    /// is unreadable, with the full parse's error.
    pub fn for_release(network: &str, v: &serde_json::Value) -> CniResult<Self> {
        let full = match Self::from_value(network, v) {
            Ok(conf) => return Ok(conf),
            Err(e) => e,
        };
        let data_dir = match v.get("dataDir") {
            None | Some(serde_json::Value::Null) => PathBuf::from(DEFAULT_DATA_DIR),
            Some(serde_json::Value::String(d)) => PathBuf::from(d),
            Some(_) => return Err(full),
        };
        Ok(IpamConf {
            range_sets: Vec::new(),
            routes: Vec::new(),
            data_dir,
            reserved: Vec::new(),
            dns: Dns::default(),
        })
    }
}

fn invalid(msg: String) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn resolve_range(network: &str, r: &RangeConf) -> CniResult<Range> {
    let subnet = r
        .subnet
        .ok_or_else(|| invalid(format!("a range of network {network:?} has no subnet")))?
        .truncated();
    let v4 = subnet.is_ipv4();
    let host_bits = if v4 {
        32 - subnet.prefix
    } else {
        128 - subnet.prefix
    };
    if host_bits < 2 {
        return Err(invalid(format!(
            "subnet {subnet} of network {network:?} is too small"
        )));
    }
    let net = to_u128(subnet.network());
    let last = to_u128(subnet.last());
    let start = r.range_start.unwrap_or_else(|| from_u128(net + 1, v4));
    // IPv4 broadcast is never handed out; IPv6 has no broadcast.
    let end = r
        .range_end
        .unwrap_or_else(|| from_u128(if v4 { last - 1 } else { last }, v4));
    let gateway = Some(r.gateway.unwrap_or_else(|| from_u128(net + 1, v4)));
    for (what, ip) in [("rangeStart", start), ("rangeEnd", end)] {
        if !subnet.contains(ip) {
            return Err(invalid(format!(
                "{what} {ip} is not in subnet {subnet} of network {network:?}"
            )));
        }
    }
    if to_u128(start) > to_u128(end) {
        return Err(invalid(format!(
            "rangeStart {start} is after rangeEnd {end} in network {network:?}"
        )));
    }
    if let Some(gw) = gateway {
        if !subnet.contains(gw) {
            return Err(invalid(format!(
                "gateway {gw} is not in subnet {subnet} of network {network:?}"
            )));
        }
    }
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shorthand_and_dual_stack_ranges() {
        let c = IpamConf::from_value(
            "n",
            &json!({"type":"polis-ipam","subnet":"10.1.0.0/24",
                    "ranges":[[{"subnet":"fd00:1::/64"}]],
                    "dataDir":"/tmp/x","reserved":["10.1.0.9"]}),
        )
        .unwrap();
        assert_eq!(c.range_sets.len(), 2);
        let r = &c.range_sets[0][0];
        assert_eq!(r.start.to_string(), "10.1.0.1");
        assert_eq!(r.end.to_string(), "10.1.0.254");
        assert_eq!(r.gateway.unwrap().to_string(), "10.1.0.1");
        assert_eq!(
            c.range_sets[1][0].end.to_string(),
            "fd00:1::ffff:ffff:ffff:ffff"
        );
        assert_eq!(c.reserved.len(), 1);
    }

    #[test]
    fn rejects_ranges_outside_subnet_and_mixed_families() {
        let e = IpamConf::from_value(
            "n",
            &json!({"subnet":"10.1.0.0/24","rangeStart":"10.2.0.1"}),
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("10.2.0.1"));
        let e = IpamConf::from_value(
            "n",
            &json!({"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]}),
        )
        .unwrap_err();
        assert!(e.msg.contains("mixes"));
        assert!(IpamConf::from_value("n", &json!({"type":"polis-ipam"})).is_err());
    }

    #[test]
    fn release_needs_only_the_data_dir() {
        let broken = json!({"type":"polis-ipam","ranges":"garbage","dataDir":"/tmp/x"});
        assert!(IpamConf::from_value("n", &broken).is_err());
        let c = IpamConf::for_release("n", &broken).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let c = IpamConf::for_release("n", &json!({"type":"polis-ipam"})).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        // Where the store is cannot be guessed: the parse error stands.
        let e = IpamConf::for_release("n", &json!({"ranges":"garbage","dataDir":5})).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
    }
}
