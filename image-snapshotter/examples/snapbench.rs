//! Benchmark client for bench/snapshotter.sh: Prepare+Commit+Remove cycles through containerd's
//! Snapshots API (the same service and messages the proxy speaks), on a chosen snapshotter.
//!
//! usage: snapbench CONTAINERD_SOCK SNAPSHOTTER CYCLES
//! prints: cycles_per_sec=<f64>

use std::collections::HashMap;
use std::time::Instant;

use containerd_snapshots::api::snapshots::v1::snapshots_client::SnapshotsClient;
use containerd_snapshots::api::snapshots::v1::*;
use containerd_snapshots::tonic::transport::Endpoint;
use containerd_snapshots::tonic::Request;

const NAMESPACE: &str = "polis-bench";

fn req<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("containerd-namespace", NAMESPACE.parse().unwrap());
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, sock, snapshotter, cycles] = args.as_slice() else {
        anyhow::bail!("usage: snapbench CONTAINERD_SOCK SNAPSHOTTER CYCLES");
    };
    let cycles: usize = cycles.parse()?;
    let path = std::path::PathBuf::from(sock);
    let channel = Endpoint::try_from("http://[::]:0")?
        .connect_with_connector(tower::service_fn(move |_| {
            tokio::net::UnixStream::connect(path.clone())
        }))
        .await?;
    let mut c = SnapshotsClient::new(channel);
    // GC must not collect what the loop has not removed yet.
    let labels = HashMap::from([("containerd.io/gc.root".to_string(), "bench".to_string())]);
    let sn = snapshotter.clone();
    let run = format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let start = Instant::now();
    for i in 0..cycles {
        let (key, name) = (format!("bench-{run}-a{i}"), format!("bench-{run}-c{i}"));
        c.prepare(req(PrepareSnapshotRequest {
            snapshotter: sn.clone(),
            key: key.clone(),
            parent: String::new(),
            labels: labels.clone(),
        }))
        .await?;
        c.commit(req(CommitSnapshotRequest {
            snapshotter: sn.clone(),
            name: name.clone(),
            key,
            labels: labels.clone(),
        }))
        .await?;
        c.remove(req(RemoveSnapshotRequest {
            snapshotter: sn.clone(),
            key: name,
        }))
        .await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("cycles_per_sec={:.1}", cycles as f64 / secs);
    Ok(())
}
