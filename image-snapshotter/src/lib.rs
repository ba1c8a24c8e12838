//! polis-snapshotter: containerd's Snapshots gRPC service on overlayfs (native copy fallback),
//! with metadata in a crash-safe redb store.

pub mod backend;
pub mod daemon;
pub mod error;
pub mod filter;
pub mod flatten;
pub mod fsutil;
pub mod mounts;
pub mod service;
pub mod snapshotter;
pub mod stage;
pub mod store;
