//! In-process IPAM (`"type": "polis-ipam"`), also shipped as the `polis-ipam`
//! binary, plus delegation to other IPAM plugins over the CNI protocol.

pub mod allocator;
pub mod config;
pub mod delegate;
pub mod standalone;
pub mod store;

use std::collections::HashSet;

use crate::config::Attachment;
use crate::error::{code, CniError, CniResult};
use crate::ipnet::IpNet;
use crate::result::{CniOutput, IpConfig};
use allocator::{allocate, AllocError};
use config::IpamConf;
use store::{DiskStore, Owner, Store, StoreError};

fn store_err(e: StoreError) -> CniError {
    CniError::new(code::IO_FAILURE, e.to_string())
}

fn alloc_err(e: AllocError) -> CniError {
    match e {
        AllocError::Exhausted { .. } => CniError::new(code::RANGE_EXHAUSTED, e.to_string()),
        AllocError::Store(s) => store_err(s),
    }
}

/// Allocates addresses for `owner` and returns them as an IPAM result
/// (no interfaces; gateways and routes filled in).
pub fn add(conf: &IpamConf, network: &str, owner: &Owner) -> CniResult<CniOutput> {
    let mut store = DiskStore::open(&conf.data_dir, network).map_err(store_err)?;
    let allocs = allocate(conf, network, &mut store, owner).map_err(alloc_err)?;
    Ok(CniOutput {
        interfaces: vec![],
        ips: allocs
            .iter()
            .map(|a| IpConfig {
                address: IpNet {
                    addr: a.ip,
                    prefix: a.range.subnet.prefix,
                },
                gateway: a.range.gateway,
                interface: None,
            })
            .collect(),
        routes: conf.routes.clone(),
        dns: conf.dns.clone(),
    })
}

/// Releases everything `owner` holds; releasing nothing is success.
pub fn del(conf: &IpamConf, network: &str, owner: &Owner) -> CniResult<()> {
    let mut store = DiskStore::open(&conf.data_dir, network).map_err(store_err)?;
    release_where(&mut store, |o| o == owner)
}

/// Fails unless `owner` holds an address in every range set.
pub fn check(conf: &IpamConf, network: &str, owner: &Owner) -> CniResult<()> {
    let store = DiskStore::open(&conf.data_dir, network).map_err(store_err)?;
    let held: Vec<_> = store
        .allocations()
        .map_err(store_err)?
        .into_iter()
        .filter(|(_, o)| o == owner)
        .map(|(ip, _)| ip)
        .collect();
    for (i, set) in conf.range_sets.iter().enumerate() {
        if !held.iter().any(|ip| set.iter().any(|r| r.contains(*ip))) {
            return Err(CniError::new(
                code::CHECK_MISMATCH,
                format!(
                    "container {} ({}) holds no address in range set {i} of network {network:?}",
                    owner.container_id, owner.ifname
                ),
            ));
        }
    }
    Ok(())
}

/// Releases the addresses of every attachment not in `valid`.
pub fn gc(conf: &IpamConf, network: &str, valid: &[Attachment]) -> CniResult<()> {
    let keep: HashSet<(String, String)> = valid
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let mut store = DiskStore::open(&conf.data_dir, network).map_err(store_err)?;
    release_where(&mut store, |o| {
        !keep.contains(&(o.container_id.clone(), o.ifname.clone()))
    })
}

fn release_where(store: &mut dyn Store, pred: impl Fn(&Owner) -> bool) -> CniResult<()> {
    for (ip, o) in store.allocations().map_err(store_err)? {
        if pred(&o) {
            store.release(ip).map_err(store_err)?;
        }
    }
    Ok(())
}

/// Fails when the store directory cannot be used (STATUS).
pub fn status(conf: &IpamConf, network: &str) -> CniResult<()> {
    DiskStore::open(&conf.data_dir, network)
        .map(|_| ())
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.to_string()))
}
