//! bench/rpc.sh's driver: the shim's ttrpc Task API as containerd uses it, against one shim.
//! Measures the State round trip (p50, p99 over sequential calls) and the throughput of
//! State and Pids with 1, 10 and 50 concurrent clients, each on its own connection, for
//! SECONDS each. Prints one line per measure, `key value`, for the script to compare.
//!
//! Usage: polis-rpc-bench SOCKET CONTAINER_ID [SECONDS] [CALLS]   (defaults 2 and 5000)

use std::time::{Duration, Instant};

use containerd_shim_protos::api::{PidsRequest, PidsResponse, StateRequest, StateResponse};
use containerd_shim_protos::Client;
use ttrpc::context::Context;

/// The Task service as containerd 1.6 calls it: `containerd.task.v2.Task` (the generated
/// client of containerd-shim-protos speaks v3, which only containerd 2.x shims serve).
struct TaskV2 {
    client: Client,
}

impl TaskV2 {
    fn state(&self, ctx: Context, req: &StateRequest) -> ttrpc::Result<StateResponse> {
        let mut cres = StateResponse::new();
        ttrpc::client_request!(self, ctx, req, "containerd.task.v2.Task", "State", cres);
        Ok(cres)
    }

    fn pids(&self, ctx: Context, req: &PidsRequest) -> ttrpc::Result<PidsResponse> {
        let mut cres = PidsResponse::new();
        ttrpc::client_request!(self, ctx, req, "containerd.task.v2.Task", "Pids", cres);
        Ok(cres)
    }
}

type TaskClient = TaskV2;

fn connect(socket: &str) -> TaskClient {
    let addr = if socket.starts_with("unix://") {
        socket.to_string()
    } else {
        format!("unix://{socket}")
    };
    TaskV2 {
        client: Client::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}")),
    }
}

fn state(c: &TaskClient, id: &str) {
    let req = StateRequest {
        id: id.into(),
        ..Default::default()
    };
    let r = c.state(Context::default(), &req).expect("State");
    assert_eq!(r.id, id);
}

fn pids(c: &TaskClient, id: &str) {
    let req = PidsRequest {
        id: id.into(),
        ..Default::default()
    };
    let r = c.pids(Context::default(), &req).expect("Pids");
    assert!(!r.processes.is_empty());
}

/// Calls per second with `clients` threads, each with its own connection, for `secs`.
fn throughput(
    socket: &str,
    id: &str,
    clients: usize,
    secs: f64,
    call: fn(&TaskClient, &str),
) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let c = connect(socket);
            let id = id.to_string();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    call(&c, &id);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / secs
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (socket, id) = match (args.first(), args.get(1)) {
        (Some(s), Some(i)) => (s.clone(), i.clone()),
        _ => {
            eprintln!("usage: polis-rpc-bench SOCKET CONTAINER_ID [SECONDS] [CALLS]");
            std::process::exit(2);
        }
    };
    let secs: f64 = args
        .get(2)
        .map(|s| s.parse().expect("SECONDS"))
        .unwrap_or(2.0);
    let calls: usize = args
        .get(3)
        .map(|s| s.parse().expect("CALLS"))
        .unwrap_or(5000);

    let c = connect(&socket);
    for _ in 0..200 {
        state(&c, &id);
    }
    let mut lat: Vec<f64> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            state(&c, &id);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!("state_p50_us {:.1}", pct(0.50));
    println!("state_p99_us {:.1}", pct(0.99));
    for clients in [1, 10, 50] {
        println!(
            "state_per_s_{clients} {:.0}",
            throughput(&socket, &id, clients, secs, state)
        );
        println!(
            "pids_per_s_{clients} {:.0}",
            throughput(&socket, &id, clients, secs, pids)
        );
    }
}
