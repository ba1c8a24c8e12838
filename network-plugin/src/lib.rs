//! polis-bridge: a CNI plugin giving a container network namespace a veth on a
//! Linux bridge, addresses from an in-process IPAM, routes, outbound
//! masquerade and host port mappings — all through netlink.

pub mod args;
pub mod commands;
pub mod config;
pub mod error;
pub mod ipam;
pub mod ipnet;
pub mod names;
pub mod net;
pub mod nft;
pub mod result;
