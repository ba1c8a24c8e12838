//! CNI plugins under test: network namespaces that delete themselves, an invoker that runs
//! a plugin binary in a "host" namespace as a runtime would, and leak checks. Nothing here
//! touches the machine's own network namespace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{require_tool, run_ok};

/// Where the reference plugins (Debian's containernetworking-plugins) are.
pub const REFERENCE_CNI_DIR: &str = "/usr/lib/cni";

pub fn require_reference_plugin(name: &str) -> PathBuf {
    let p = Path::new(REFERENCE_CNI_DIR).join(name);
    assert!(
        p.is_file(),
        "this test needs the reference CNI plugin {} (Debian package containernetworking-plugins)",
        p.display()
    );
    p
}

/// The plugins under test. Their paths come from the test binary (`env!("CARGO_BIN_EXE_...")`
/// in the test file), so that a test runs the build cargo made for it.
#[derive(Clone, Copy, Debug)]
pub struct Plugins {
    pub bridge: &'static str,
    pub ipam: &'static str,
}

impl Plugins {
    /// Our plugins' directory, where a plugin finds its delegates.
    pub fn dir(&self) -> &'static Path {
        Path::new(self.bridge)
            .parent()
            .expect("plugin has a directory")
    }

    /// CNI_PATH: our plugins first, then the reference ones.
    pub fn cni_path(&self) -> String {
        format!("{}:{REFERENCE_CNI_DIR}", self.dir().display())
    }

    /// Runs the CNI plugin binary `bin` in `host` as a runtime would.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        bin: &str,
        host: &Netns,
        cmd: &str,
        cid: &str,
        netns: &str,
        ifname: &str,
        conf: &str,
    ) -> CniOut {
        let mut child = host
            .cmd(&[bin])
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", cid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("wait plugin");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(stdout.trim())
                .unwrap_or_else(|e| panic!("plugin printed non-JSON {stdout:?}: {e}"))
        };
        CniOut {
            ok: out.status.success(),
            json,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// polis-bridge on `eth0`.
    pub fn cni(&self, host: &Netns, cmd: &str, cid: &str, netns: &str, conf: &Value) -> CniOut {
        self.run(
            self.bridge,
            host,
            cmd,
            cid,
            netns,
            "eth0",
            &conf.to_string(),
        )
    }
}

/// A network namespace under /run/netns, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace named `polis-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Netns {
        for t in ["ip", "nsenter"] {
            require_tool(t);
        }
        let name = crate::unique_name(tag);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.run_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command that runs inside this namespace.
    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).arg("--").args(argv);
        c
    }

    pub fn run(&self, argv: &[&str]) -> Output {
        self.cmd(argv)
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in {}: {e}", self.name))
    }

    pub fn run_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The link names in this namespace, once the veths a DEL detached are gone: DEL leaves
    /// deleting them to a child of its own, so a host end off its bridge and down with our
    /// alias, or a container end without carrier, is waited for (3 s at most) before it counts.
    pub fn links(&self) -> Vec<String> {
        let mut out = self.run_ok(&["ip", "-o", "link", "show"]);
        for _ in 0..30 {
            let pending = out.lines().any(|l| {
                l.contains("NO-CARRIER") || (l.contains("alias polis/") && !l.contains(" master "))
            });
            if !pending {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            out = self.run_ok(&["ip", "-o", "link", "show"]);
        }
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// The `nft list ruleset` text of this namespace.
    pub fn ruleset(&self) -> String {
        require_tool("nft");
        self.run_ok(&["nft", "list", "ruleset"])
    }

    pub fn ping(&self, dst: &str) -> bool {
        let applet = if dst.contains(':') { "ping6" } else { "ping" };
        self.run(&["busybox", applet, "-c", "1", "-W", "2", dst])
            .status
            .success()
    }

    /// Starts a long-running process in this namespace, killed on drop.
    pub fn spawn(&self, argv: &[&str]) -> ChildGuard {
        let child = self
            .cmd(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?} in {}: {e}", self.name));
        ChildGuard(child)
    }

    /// HTTP GET through `busybox nc`; the body's last line, or None.
    pub fn http_get(&self, host: &str, port: u16) -> Option<String> {
        let mut child = self
            .cmd(&["busybox", "nc", "-w", "3", host, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox nc");
        // A refused connection ends nc before the request is written (EPIPE):
        // that is "no answer", not a test failure.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
        let out = child.wait_with_output().expect("wait busybox nc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("200 OK")
            .then(|| text.lines().last().unwrap_or("").to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one plugin run returned.
#[derive(Debug)]
pub struct CniOut {
    pub ok: bool,
    pub json: Value,
    pub stderr: String,
}

impl CniOut {
    pub fn expect_ok(self, what: &str) -> Value {
        assert!(self.ok, "{what} failed: {} {}", self.json, self.stderr);
        self.json
    }

    pub fn expect_err(self, what: &str, code: u64) -> Value {
        assert!(!self.ok, "{what} unexpectedly succeeded: {}", self.json);
        assert_eq!(
            self.json["code"].as_u64(),
            Some(code),
            "{what}: wrong error {}",
            self.json
        );
        assert!(
            !self.json["msg"].as_str().unwrap_or("").is_empty(),
            "{what}: empty msg"
        );
        self.json
    }
}

/// A bridge network configuration with in-process IPAM in `data_dir`.
pub fn net_conf(name: &str, data_dir: &Path, ranges: Value, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0",
        "name": name,
        "type": "polis-bridge",
        "bridge": "pbr0",
        "isDefaultGateway": true,
        "ipam": {"type": "polis-ipam", "ranges": ranges, "dataDir": data_dir},
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

/// The addresses of a successful ADD, as "a.b.c.d" without prefix.
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .expect("result has ips")
        .iter()
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Everything an attachment can leave behind in `host` and `data_dir`.
pub fn leftovers(host: &Netns, data_dir: &Path, network: &str, cid: &str) -> Vec<String> {
    let mut found = Vec::new();
    let tag = format!("polis/{network}/{cid}/");
    for line in host.ruleset().lines() {
        if line.contains(&tag) {
            found.push(format!("nft rule: {}", line.trim()));
        }
    }
    let out = host.run_ok(&["ip", "-o", "link", "show"]);
    for line in out.lines() {
        if line.contains(&tag) {
            found.push(format!("link: {line}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir(data_dir.join(network)) {
        for e in entries.flatten() {
            let content = std::fs::read_to_string(e.path()).unwrap_or_default();
            if content.starts_with(&format!("{cid}\r\n")) {
                found.push(format!("allocation {}", e.path().display()));
            }
        }
    }
    found
}

/// DEL leaves deleting the (already detached) veth to a child of its own: what is left is
/// polled for a while before it counts.
pub fn assert_no_leftovers(host: &Netns, data_dir: &Path, network: &str, cid: &str) {
    let mut l = leftovers(host, data_dir, network, cid);
    for _ in 0..30 {
        if l.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        l = leftovers(host, data_dir, network, cid);
    }
    assert!(l.is_empty(), "container {cid} left behind: {l:#?}");
}
