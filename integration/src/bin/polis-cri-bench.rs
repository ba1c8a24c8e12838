//! bench/cri.sh's driver: pod start and teardown through containerd's CRI (the calls kubelet
//! makes), handler `polis` against containerd's Go runc shim + runc (`runc`) and the Go shim
//! driving polis-runc (`polis-go`), interleaved in one run, in a private containerd and node
//! network namespace (see polis_integration::cri). Then the memory of the pods' shims.
//!
//! Usage: polis-cri-bench [ROUNDS] [PODS]   (defaults 20 and 10)

use std::time::Instant;

use k8s_cri::v1::ContainerState;
use polis_integration::cri::Cri;

const HANDLERS: [&str; 3] = ["polis", "runc", "polis-go"];
/// The six orders of the three handlers, by index into HANDLERS.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// RunPodSandbox + CreateContainer + StartContainer; returns the pod id and the ms each of the
/// three took (the container calls summed over `containers`).
fn start_pod(cri: &mut Cri, name: &str, handler: &str, containers: usize) -> (String, [f64; 3]) {
    let cfg = cri.pod_config(name, &[]);
    let t = Instant::now();
    let pod = cri.run_pod(&cfg, handler);
    let mut phases = [ms(t), 0.0, 0.0];
    for i in 0..containers {
        let c = cri.container_config(&format!("c{i}"), "exec sleep 3600");
        let t = Instant::now();
        let id = cri.create_container(&pod, &cfg, c);
        phases[1] += ms(t);
        let t = Instant::now();
        cri.start_container(&id);
        phases[2] += ms(t);
    }
    (pod, phases)
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: polis-cri-bench [ROUNDS] [PODS]"))
        .collect();
    let rounds = args.first().copied().unwrap_or(20);
    let pods = args.get(1).copied().unwrap_or(10);
    let mut cri = Cri::start("bench");

    // one warm-up pod per handler: first-use costs (image unpack, CNI conf load) are not timed
    for h in HANDLERS {
        let (p, _) = start_pod(&mut cri, &format!("warm-{h}"), h, 1);
        cri.stop_pod(&p);
        cri.remove_pod(&p);
    }

    let mut start: Vec<Vec<f64>> = vec![Vec::new(); HANDLERS.len()];
    let mut teardown: Vec<Vec<f64>> = vec![Vec::new(); HANDLERS.len()];
    let mut stop: Vec<Vec<f64>> = vec![Vec::new(); HANDLERS.len()];
    let mut phases: Vec<[Vec<f64>; 3]> = vec![Default::default(); HANDLERS.len()];
    for round in 0..rounds {
        // Each round takes the next of the six orders of the three handlers: with a plain
        // rotation one handler always followed the same other one and paid for what that one's
        // teardown left running (the Go shim's exit and its `shim delete` cleanup landed on
        // polis's pod start: CNI setup 14-22 ms instead of 6-7). No pause between pods: on
        // these VMs everything runs 2-3x slower after ~100 ms idle (a `create` 4 -> 12 ms),
        // which would time the machine waking up rather than the handlers.
        for i in ORDERS[round % ORDERS.len()] {
            let h = HANDLERS[i];
            let name = format!("b{round}-{h}");
            let t = Instant::now();
            let (pod, ph) = start_pod(&mut cri, &name, h, 1);
            start[i].push(ms(t));
            for (v, x) in phases[i].iter_mut().zip(ph) {
                v.push(x);
            }
            let t = Instant::now();
            cri.stop_pod(&pod);
            stop[i].push(ms(t));
            cri.remove_pod(&pod);
            teardown[i].push(ms(t));
        }
    }
    println!("pod start = RunPodSandbox + CreateContainer + StartContainer (busybox); teardown = StopPodSandbox + RemovePodSandbox");
    println!("median of {rounds} interleaved rounds, ms:");
    let med = |v: &mut Vec<f64>| median(v);
    let s: Vec<f64> = start.iter_mut().map(med).collect();
    let d: Vec<f64> = teardown.iter_mut().map(med).collect();
    let st: Vec<f64> = stop.iter_mut().map(med).collect();
    for (i, h) in HANDLERS.iter().enumerate() {
        println!(
            "  {h:9} start {:7.1}   teardown {:7.1} (of which StopPodSandbox {:6.1})",
            s[i], d[i], st[i]
        );
    }
    for (i, h) in HANDLERS.iter().enumerate() {
        let [r, c, st] = phases[i].clone().map(|mut v| median(&mut v));
        println!("  {h:9} RunPodSandbox {r:6.1}  CreateContainer {c:6.1}  StartContainer {st:6.1}");
    }
    println!(
        "ratio polis/runc: start {:.2}x, teardown {:.2}x   (polis-go/runc: start {:.2}x, teardown {:.2}x)",
        s[0] / s[1],
        d[0] / d[1],
        s[2] / s[1],
        d[2] / d[1]
    );

    // memory: PODS pods of 2 containers per handler, every shim's RSS
    println!("shim memory with {pods} pods of 2 containers each:");
    for h in ["polis", "runc"] {
        let before = cri.shim_pids();
        let ids: Vec<String> = (0..pods)
            .map(|n| start_pod(&mut cri, &format!("m{n}-{h}"), h, 2).0)
            .collect();
        for c in cri.list_containers() {
            if c.state != ContainerState::ContainerRunning as i32 {
                panic!("container not running: {c:?}");
            }
        }
        let shims: Vec<i32> = cri
            .shim_pids()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        let rss: Vec<u64> = shims.iter().map(|&p| rss_kib(p)).collect();
        let total: u64 = rss.iter().sum();
        println!(
            "  {h:9} {} shims, RSS per shim {} KiB (total {} KiB)",
            shims.len(),
            total / shims.len().max(1) as u64,
            total
        );
        for p in ids {
            cri.stop_pod(&p);
            cri.remove_pod(&p);
        }
    }
    cri.assert_nothing_left();
    if std::env::var_os("POLIS_CRI_DEBUG").is_some() {
        std::fs::write("/tmp/polis-cri-bench-containerd.log", cri.log()).unwrap();
    }
}
