//! The gRPC face: containerd's Snapshots service on top of [`Snapshotter`]. Every call blocks
//! (file-system work, the store's write lock), so it runs where blocking is allowed.

// The containerd-snapshots trait fixes the error type to tonic's (large) Status.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use containerd_snapshots::api::types::Mount;
use containerd_snapshots::tonic::{self, Status};
use containerd_snapshots::{Info, Kind as ApiKind, Usage};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::Error;
use crate::snapshotter::Snapshotter;
use crate::store::{from_nanos, Kind, Record};

pub struct Service {
    inner: Arc<Snapshotter>,
}

impl Service {
    pub fn new(inner: Arc<Snapshotter>) -> Self {
        Service { inner }
    }

    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Snapshotter) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let inner = self.inner.clone();
        let start = std::time::Instant::now();
        // On the multi-threaded runtime the call runs on this worker thread, whose other tasks
        // move to another thread meanwhile: unlike spawn_blocking, no hand-off to a pool thread
        // and back sits on the path of every request (measured: ~15% more cycles/s through
        // containerd). Other runtimes cannot block in place, so they use the pool.
        let out = if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            let call = std::panic::AssertUnwindSafe(move || f(&inner));
            tokio::task::block_in_place(|| std::panic::catch_unwind(call))
                .map_err(|_| Status::internal(format!("{op}: worker panicked")))?
        } else {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| Status::internal(format!("{op}: worker failed: {e}")))?
        };
        let micros = start.elapsed().as_micros() as u64;
        match out {
            Ok(v) => {
                tracing::debug!(op, micros, "done");
                Ok(v)
            }
            Err(e) => {
                tracing::debug!(op, micros, error = %e, "failed");
                Err(Status::from(e))
            }
        }
    }
}

pub fn to_info(name: String, rec: Record) -> Info {
    Info {
        kind: match rec.kind {
            Kind::View => ApiKind::View,
            Kind::Active => ApiKind::Active,
            Kind::Committed => ApiKind::Committed,
        },
        name,
        parent: rec.parent,
        labels: rec.labels,
        created_at: from_nanos(rec.created),
        updated_at: from_nanos(rec.updated),
    }
}

type InfoStream = futures::stream::Iter<std::vec::IntoIter<Result<Info, Status>>>;

#[tonic::async_trait]
impl containerd_snapshots::Snapshotter for Service {
    type Error = Status;

    async fn stat(&self, key: String) -> Result<Info, Status> {
        self.run("stat", move |s| Ok(to_info(key.clone(), s.stat(&key)?)))
            .await
    }

    async fn update(&self, info: Info, fieldpaths: Option<Vec<String>>) -> Result<Info, Status> {
        self.run("update", move |s| {
            let rec = s.update(&info.name, info.labels, &fieldpaths.unwrap_or_default())?;
            Ok(to_info(info.name, rec))
        })
        .await
    }

    async fn usage(&self, key: String) -> Result<Usage, Status> {
        self.run("usage", move |s| {
            let (inodes, size) = s.usage(&key)?;
            Ok(Usage { inodes, size })
        })
        .await
    }

    async fn mounts(&self, key: String) -> Result<Vec<Mount>, Status> {
        self.run("mounts", move |s| s.mounts(&key)).await
    }

    async fn prepare(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, Status> {
        self.run("prepare", move |s| {
            s.create(Kind::Active, &key, &parent, labels)
        })
        .await
    }

    async fn view(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, Status> {
        self.run("view", move |s| s.create(Kind::View, &key, &parent, labels))
            .await
    }

    async fn commit(
        &self,
        name: String,
        key: String,
        labels: HashMap<String, String>,
    ) -> Result<(), Status> {
        self.run("commit", move |s| s.commit(&name, &key, labels))
            .await
    }

    async fn remove(&self, key: String) -> Result<(), Status> {
        self.run("remove", move |s| s.remove(&key)).await
    }

    async fn clear(&self) -> Result<(), Status> {
        self.run("cleanup", |s| s.cleanup()).await
    }

    type InfoStream = InfoStream;

    async fn list(&self, _snapshotter: String, filters: Vec<String>) -> Result<InfoStream, Status> {
        let all = self.run("list", move |s| s.walk(&filters)).await?;
        let infos: Vec<_> = all
            .into_iter()
            .map(|(name, rec)| Ok(to_info(name, rec)))
            .collect();
        Ok(futures::stream::iter(infos))
    }
}
