//! bench/soak.sh's exec driver: COUNT execs into one running container, each as a liveness
//! probe through containerd would be (Exec, Start, Wait, Delete on the shim's ttrpc Task API,
//! stdout and stderr on fresh fifos that are read to their end), without a `ctr` process per
//! exec. Samples the shim's VmRSS, open fds and threads before the first exec and after every
//! EVERY execs (and after the last); prints one line per sample:
//! `execs rss_kb fds threads anon_kb file_kb heap_kb` (RssAnon, RssFile: pages of the binary
//! faulted in, heap: the resident part of malloc's main arena, `[heap]` in smaps), then
//! `errors N` and `seconds S`.
//!
//! Usage: polis-exec-probe SOCKET CONTAINER_ID SHIM_PID COUNT [EVERY] [FIFO_DIR]
//!   (EVERY defaults to 1000; FIFO_DIR to /tmp)

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use containerd_shim_protos::api::{
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, StartRequest, StartResponse,
    WaitRequest, WaitResponse,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::Client;
use ttrpc::context::Context;

/// The Task service as containerd 1.6 calls it (`containerd.task.v2.Task`).
struct TaskV2 {
    client: Client,
}

macro_rules! call {
    ($name:ident, $req:ty, $res:ty, $method:literal) => {
        fn $name(&self, req: &$req) -> ttrpc::Result<$res> {
            let mut cres = <$res>::new();
            let ctx = Context::default();
            ttrpc::client_request!(self, ctx, req, "containerd.task.v2.Task", $method, cres);
            Ok(cres)
        }
    };
}

impl TaskV2 {
    call!(exec, ExecProcessRequest, Empty, "Exec");
    call!(start, StartRequest, StartResponse, "Start");
    call!(wait, WaitRequest, WaitResponse, "Wait");
    call!(delete, DeleteRequest, DeleteResponse, "Delete");
}

/// `(VmRSS, open fds, threads, RssAnon, RssFile, [heap] Rss)` of `pid`, sizes in kB.
fn sample(pid: u32) -> (u64, usize, u64, u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let heap = smaps
        .split_inclusive('\n')
        .skip_while(|l| !l.trim_end().ends_with("[heap]"))
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (
        field("VmRSS:"),
        fds,
        field("Threads:"),
        field("RssAnon:"),
        field("RssFile:"),
        heap,
    )
}

/// A fifo opened for reading without blocking (the shim opens its write end on Start).
fn fifo(path: &Path) -> File {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Reads a fifo to its end (every writer closed), blocking.
fn drain(mut f: File) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    out
}

fn probe(c: &TaskV2, id: &str, n: u64, dir: &Path) -> Result<(), String> {
    let exec_id = format!("probe-{n}");
    let (out_p, err_p): (PathBuf, PathBuf) = (
        dir.join(format!("{exec_id}-stdout")),
        dir.join(format!("{exec_id}-stderr")),
    );
    let (out_f, err_f) = (fifo(&out_p), fifo(&err_p));
    let spec =
        r#"{"args":["/bin/echo","ok"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}"#;
    let req = ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.clone(),
        stdout: out_p.to_string_lossy().into_owned(),
        stderr: err_p.to_string_lossy().into_owned(),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: spec.as_bytes().to_vec(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let result = (|| {
        c.exec(&req).map_err(|e| format!("Exec: {e}"))?;
        let start = StartRequest {
            id: id.into(),
            exec_id: exec_id.clone(),
            ..Default::default()
        };
        c.start(&start).map_err(|e| format!("Start: {e}"))?;
        let wait = WaitRequest {
            id: id.into(),
            exec_id: exec_id.clone(),
            ..Default::default()
        };
        let w = c.wait(&wait).map_err(|e| format!("Wait: {e}"))?;
        let out = drain(out_f);
        let _ = drain(err_f);
        let del = DeleteRequest {
            id: id.into(),
            exec_id: exec_id.clone(),
            ..Default::default()
        };
        c.delete(&del).map_err(|e| format!("Delete: {e}"))?;
        if w.exit_status != 0 || out != b"ok\n" {
            return Err(format!(
                "exit {} output {:?}",
                w.exit_status,
                String::from_utf8_lossy(&out)
            ));
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&out_p);
    let _ = std::fs::remove_file(&err_p);
    result
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: polis-exec-probe SOCKET CONTAINER_ID SHIM_PID COUNT [EVERY] [FIFO_DIR]");
        std::process::exit(2);
    }
    let socket = &args[0];
    let id = &args[1];
    let pid: u32 = args[2].parse().expect("SHIM_PID");
    let count: u64 = args[3].parse().expect("COUNT");
    let every: u64 = args.get(4).map_or(1000, |s| s.parse().expect("EVERY"));
    let dir = PathBuf::from(args.get(5).map_or("/tmp", |s| s.as_str()));
    let addr = if socket.starts_with("unix://") {
        socket.clone()
    } else {
        format!("unix://{socket}")
    };
    let c = TaskV2 {
        client: Client::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}")),
    };
    let print = |n: u64| {
        let (rss, fds, threads, anon, file, heap) = sample(pid);
        println!("{n} {rss} {fds} {threads} {anon} {file} {heap}");
    };
    let t0 = Instant::now();
    let mut errors = 0u64;
    print(0);
    for n in 1..=count {
        if let Err(e) = probe(&c, id, n, &dir) {
            errors += 1;
            if errors <= 10 {
                eprintln!("exec {n}: {e}");
            }
        }
        if n % every == 0 || n == count {
            print(n);
        }
    }
    println!("errors {errors}");
    println!("seconds {:.1}", t0.elapsed().as_secs_f64());
}
