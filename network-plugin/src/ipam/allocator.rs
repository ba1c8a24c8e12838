//! Picks free addresses from range sets, round-robin after the last one handed
//! out (as host-local does, so a released address is not reused at once).

use std::net::IpAddr;

use super::config::{IpamConf, Range};
use super::store::{Owner, Store, StoreError};
use crate::ipnet::{from_u128, to_u128};

/// Bound on addresses probed per range set, so a huge, nearly full IPv6
/// range reports exhaustion instead of scanning forever.
const MAX_PROBES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("no free address left in range set {set} ({ranges}) of network {network:?}")]
    Exhausted {
        network: String,
        set: usize,
        ranges: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One allocated address with the range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub range: Range,
}

/// Allocates one address per range set; an owner that already holds an
/// address in a set gets it back (a repeated ADD is not a second lease).
/// On failure nothing stays reserved.
pub fn allocate(
    conf: &IpamConf,
    network: &str,
    store: &mut dyn Store,
    owner: &Owner,
) -> Result<Vec<Allocation>, AllocError> {
    let existing: Vec<IpAddr> = store
        .allocations()?
        .into_iter()
        .filter(|(_, o)| o == owner)
        .map(|(ip, _)| ip)
        .collect();
    let mut done: Vec<Allocation> = Vec::new();
    let mut fresh: Vec<IpAddr> = Vec::new();
    for (set_idx, set) in conf.range_sets.iter().enumerate() {
        if let Some(a) = find_existing(set, &existing) {
            done.push(a);
            continue;
        }
        match allocate_in_set(conf, set_idx, set, store, owner) {
            Ok(Some(a)) => {
                fresh.push(a.ip);
                done.push(a);
            }
            Ok(None) => {
                rollback(store, &fresh);
                return Err(AllocError::Exhausted {
                    network: network.to_string(),
                    set: set_idx,
                    ranges: describe(set),
                });
            }
            Err(e) => {
                rollback(store, &fresh);
                return Err(e.into());
            }
        }
    }
    Ok(done)
}

fn rollback(store: &mut dyn Store, ips: &[IpAddr]) {
    for ip in ips {
        let _ = store.release(*ip);
    }
}

fn describe(set: &[Range]) -> String {
    set.iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_existing(set: &[Range], existing: &[IpAddr]) -> Option<Allocation> {
    existing.iter().find_map(|ip| {
        set.iter().find(|r| r.contains(*ip)).map(|r| Allocation {
            ip: *ip,
            range: r.clone(),
        })
    })
}

fn allocate_in_set(
    conf: &IpamConf,
    set_idx: usize,
    set: &[Range],
    store: &mut dyn Store,
    owner: &Owner,
) -> Result<Option<Allocation>, StoreError> {
    let last = store.last_reserved(set_idx)?;
    // Start just after the last handed-out address, in its range.
    let (mut ri, mut cur) =
        match last.and_then(|ip| set.iter().position(|r| r.contains(ip)).map(|i| (i, ip))) {
            Some((i, ip)) => (i, to_u128(ip) + 1),
            None => (0, to_u128(set[0].start)),
        };
    let mut probes = 0u64;
    let total: u128 = set
        .iter()
        .map(|r| to_u128(r.end) - to_u128(r.start) + 1)
        .sum();
    let limit = total.min(MAX_PROBES as u128) as u64;
    while probes < limit {
        let r = &set[ri];
        if cur > to_u128(r.end) || cur < to_u128(r.start) {
            ri = (ri + 1) % set.len();
            cur = to_u128(set[ri].start);
            continue;
        }
        probes += 1;
        let ip = from_u128(cur, r.subnet.is_ipv4());
        cur += 1;
        if Some(ip) == r.gateway || ip == r.subnet.network() || conf.reserved.contains(&ip) {
            continue;
        }
        if r.subnet.is_ipv4() && ip == r.subnet.last() {
            continue;
        }
        if store.is_allocated(ip)? {
            continue;
        }
        if store.reserve(ip, owner, set_idx)? {
            return Ok(Some(Allocation {
                ip,
                range: r.clone(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::store::MemStore;
    use serde_json::json;

    fn owner(id: &str) -> Owner {
        Owner {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn skips_gateway_and_reserved_and_round_robins() {
        let conf = IpamConf::from_value(
            "n",
            &json!({"subnet":"10.0.0.0/29","reserved":["10.0.0.2"]}),
        )
        .unwrap();
        let mut s = MemStore::default();
        let a = allocate(&conf, "n", &mut s, &owner("a")).unwrap();
        assert_eq!(a[0].ip.to_string(), "10.0.0.3");
        let b = allocate(&conf, "n", &mut s, &owner("b")).unwrap();
        assert_eq!(b[0].ip.to_string(), "10.0.0.4");
        s.release(a[0].ip).unwrap();
        // The released address is not reused while later ones are free.
        let c = allocate(&conf, "n", &mut s, &owner("c")).unwrap();
        assert_eq!(c[0].ip.to_string(), "10.0.0.5");
    }

    #[test]
    fn exhaustion_reports_and_rolls_back_other_sets() {
        let conf = IpamConf::from_value(
            "n",
            &json!({"ranges":[[{"subnet":"fd00::/120"}],[{"subnet":"10.0.0.0/30"}]]}),
        )
        .unwrap();
        let mut s = MemStore::default();
        // /30: .1 is the gateway, .3 broadcast: only .2 is usable.
        allocate(&conf, "n", &mut s, &owner("a")).unwrap();
        let before = s.ips.len();
        let e = allocate(&conf, "n", &mut s, &owner("b")).unwrap_err();
        assert!(matches!(e, AllocError::Exhausted { set: 1, .. }), "{e}");
        assert_eq!(
            s.ips.len(),
            before,
            "the IPv6 address of the failed ADD must be released"
        );
    }

    #[test]
    fn same_owner_gets_same_addresses() {
        let conf = IpamConf::from_value(
            "n",
            &json!({"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.20"}),
        )
        .unwrap();
        let mut s = MemStore::default();
        let a = allocate(&conf, "n", &mut s, &owner("a")).unwrap();
        assert_eq!(a[0].ip.to_string(), "10.0.0.10");
        let again = allocate(&conf, "n", &mut s, &owner("a")).unwrap();
        assert_eq!(a, again);
        assert_eq!(s.ips.len(), 1);
    }
}
