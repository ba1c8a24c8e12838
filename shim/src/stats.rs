//! Task metrics: the cgroup of the init process, in containerd's Metrics types (v1 or v2),
//! packed as the `Any` containerd's `ctr task metrics` decodes.
//!
//! The files are read here rather than through the `containerd-shim` crate's collector: that one
//! pulls in cgroups-rs (and zbus for its systemd support), some 150 KB of code in every
//! long-lived shim, and on v1 reads cpu usage from the v2 file names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};

const V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
const V2_TYPE: &str = "io.containerd.cgroups.v2.Metrics";
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no {controller:?} cgroup for pid {pid}")]
    NoCgroup { controller: &'static str, pid: u32 },
    #[error("encode metrics: {0}")]
    Encode(#[from] containerd_shim_protos::protobuf::Error),
}

type Result<T> = std::result::Result<T, StatsError>;

fn read_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StatsError {
    let path = path.into();
    move |source| StatsError::Read { path, source }
}

/// USER_HZ: cpuacct.stat counts in these ticks.
const TICKS_PER_SECOND: u64 = 100;

pub fn collect(pid: u32) -> Result<Any> {
    let cg = cgroups_of(pid)?;
    let (type_url, value) = match (cg.dir(""), cg.paths.len()) {
        (Some(dir), 1) => (V2_TYPE, metrics_v2(&dir).write_to_bytes()),
        _ => (V1_TYPE, metrics_v1(|c: &str| cg.dir(c)).write_to_bytes()),
    };
    let mut any = Any::new();
    any.type_url = type_url.into();
    any.value = value?;
    Ok(any)
}

/// The pids in the cgroup of process `pid` and in its sub-cgroups, read from `cgroup.procs`
/// as the runtime's `ps` reads them (pure v2: the unified hierarchy; v1: the devices
/// hierarchy, as runc's manager, or pids), without running the runtime.
pub fn cgroup_pids(pid: u32) -> Result<Vec<u32>> {
    let cg = cgroups_of(pid)?;
    let key = if cg.paths.len() == 1 && cg.paths.contains_key("") {
        ""
    } else if cg.dir("devices").is_some() {
        "devices"
    } else {
        "pids"
    };
    let dir = cg.dir(key).ok_or(StatsError::NoCgroup {
        controller: key,
        pid,
    })?;
    let mut pids = Vec::new();
    collect_procs(&dir, &mut pids)?;
    Ok(pids)
}

fn collect_procs(dir: &Path, pids: &mut Vec<u32>) -> Result<()> {
    let procs_file = dir.join("cgroup.procs");
    let procs = std::fs::read_to_string(&procs_file).map_err(read_error(procs_file))?;
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for e in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let e = e.map_err(read_error(dir))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_procs(&e.path(), pids)?;
        }
    }
    Ok(())
}

/// The cgroups of process `pid` and the hierarchies' mount points.
fn cgroups_of(pid: u32) -> Result<polis_sys::cgroup::Cgroups> {
    polis_sys::cgroup::Cgroups::of_pid(pid).map_err(|source| StatsError::Read {
        path: format!("/proc/{pid}/cgroup").into(),
        source,
    })
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single number; "max" (no limit) reads as 0, as containerd reports it.
fn number(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A v2 limit file: "max" (no limit) reads as u64::MAX, as containerd's own v2 stats (and so
/// the Go shim) report it; a missing file reads as 0.
fn v2_limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Some(s) if s.trim() == "max" => u64::MAX,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// The `key value` lines of a stat file; a key it lacks reads as 0.
#[derive(Default)]
struct Counters(HashMap<String, u64>);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

fn keyed(dir: &Path, file: &str) -> Counters {
    Counters(
        read(dir, file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

fn metrics_v1(dir: impl Fn(&str) -> Option<PathBuf>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = dir("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: number(&d, "pids.current"),
            limit: number(&d, "pids.max"),
            ..Default::default()
        });
    }
    if let Some(d) = dir("cpuacct") {
        let stat = keyed(&d, "cpuacct.stat");
        let ns = |ticks: u64| ticks * (1_000_000_000 / TICKS_PER_SECOND);
        let usage = v1::CPUUsage {
            total: number(&d, "cpuacct.usage"),
            user: ns(stat.get("user")),
            kernel: ns(stat.get("system")),
            per_cpu: read(&d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
            ..Default::default()
        };
        let throttle = dir("cpu")
            .map(|c| keyed(&c, "cpu.stat"))
            .unwrap_or_default();
        m.cpu = MessageField::some(v1::CPUStat {
            usage: MessageField::some(usage),
            throttling: MessageField::some(v1::Throttle {
                periods: throttle.get("nr_periods"),
                throttled_periods: throttle.get("nr_throttled"),
                throttled_time: throttle.get("throttled_time"),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(d) = dir("memory") {
        m.memory = MessageField::some(memory_v1(&d));
        let oom = keyed(&d, "memory.oom_control");
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable"),
            under_oom: oom.get("under_oom"),
            oom_kill: oom.get("oom_kill"),
            ..Default::default()
        });
    }
    if let Some(d) = dir("blkio") {
        m.blkio = MessageField::some(v1::BlkIOStat {
            io_service_bytes_recursive: blkio(&d, "blkio.throttle.io_service_bytes"),
            io_serviced_recursive: blkio(&d, "blkio.throttle.io_serviced"),
            ..Default::default()
        });
    }
    m
}

fn memory_entry(d: &Path, prefix: &str) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        usage: number(d, &format!("{prefix}usage_in_bytes")),
        limit: number(d, &format!("{prefix}limit_in_bytes")),
        max: number(d, &format!("{prefix}max_usage_in_bytes")),
        failcnt: number(d, &format!("{prefix}failcnt")),
        ..Default::default()
    })
}

fn memory_v1(d: &Path) -> v1::MemoryStat {
    let s = keyed(d, "memory.stat");
    v1::MemoryStat {
        cache: s.get("cache"),
        rss: s.get("rss"),
        rss_huge: s.get("rss_huge"),
        mapped_file: s.get("mapped_file"),
        dirty: s.get("dirty"),
        writeback: s.get("writeback"),
        pg_pg_in: s.get("pgpgin"),
        pg_pg_out: s.get("pgpgout"),
        pg_fault: s.get("pgfault"),
        pg_maj_fault: s.get("pgmajfault"),
        inactive_anon: s.get("inactive_anon"),
        active_anon: s.get("active_anon"),
        inactive_file: s.get("inactive_file"),
        active_file: s.get("active_file"),
        unevictable: s.get("unevictable"),
        hierarchical_memory_limit: s.get("hierarchical_memory_limit"),
        hierarchical_swap_limit: s.get("hierarchical_memsw_limit"),
        total_cache: s.get("total_cache"),
        total_rss: s.get("total_rss"),
        total_rss_huge: s.get("total_rss_huge"),
        total_mapped_file: s.get("total_mapped_file"),
        total_dirty: s.get("total_dirty"),
        total_writeback: s.get("total_writeback"),
        total_pg_pg_in: s.get("total_pgpgin"),
        total_pg_pg_out: s.get("total_pgpgout"),
        total_pg_fault: s.get("total_pgfault"),
        total_pg_maj_fault: s.get("total_pgmajfault"),
        total_inactive_anon: s.get("total_inactive_anon"),
        total_active_anon: s.get("total_active_anon"),
        total_inactive_file: s.get("total_inactive_file"),
        total_active_file: s.get("total_active_file"),
        total_unevictable: s.get("total_unevictable"),
        usage: memory_entry(d, "memory."),
        swap: memory_entry(d, "memory.memsw."),
        kernel: memory_entry(d, "memory.kmem."),
        kernel_tcp: memory_entry(d, "memory.kmem.tcp."),
        ..Default::default()
    }
}

/// `MAJ:MIN Op value` lines of a blkio file (its `Total` lines are left out, as containerd does).
fn blkio(d: &Path, file: &str) -> Vec<v1::BlkIOEntry> {
    read(d, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(v1::BlkIOEntry {
                op: op.to_string(),
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                value: value.parse().ok()?,
                ..Default::default()
            })
        })
        .collect()
}

fn metrics_v2(d: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = MessageField::some(v2::PidsStat {
        current: number(d, "pids.current"),
        limit: v2_limit(d, "pids.max"),
        ..Default::default()
    });
    let cpu = keyed(d, "cpu.stat");
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: cpu.get("usage_usec"),
        user_usec: cpu.get("user_usec"),
        system_usec: cpu.get("system_usec"),
        nr_periods: cpu.get("nr_periods"),
        nr_throttled: cpu.get("nr_throttled"),
        throttled_usec: cpu.get("throttled_usec"),
        ..Default::default()
    });
    let s = keyed(d, "memory.stat");
    m.memory = MessageField::some(v2::MemoryStat {
        anon: s.get("anon"),
        file: s.get("file"),
        kernel_stack: s.get("kernel_stack"),
        slab: s.get("slab"),
        sock: s.get("sock"),
        shmem: s.get("shmem"),
        file_mapped: s.get("file_mapped"),
        file_dirty: s.get("file_dirty"),
        file_writeback: s.get("file_writeback"),
        anon_thp: s.get("anon_thp"),
        inactive_anon: s.get("inactive_anon"),
        active_anon: s.get("active_anon"),
        inactive_file: s.get("inactive_file"),
        active_file: s.get("active_file"),
        unevictable: s.get("unevictable"),
        slab_reclaimable: s.get("slab_reclaimable"),
        slab_unreclaimable: s.get("slab_unreclaimable"),
        pgfault: s.get("pgfault"),
        pgmajfault: s.get("pgmajfault"),
        usage: number(d, "memory.current"),
        usage_limit: v2_limit(d, "memory.max"),
        max_usage: number(d, "memory.peak"),
        swap_usage: number(d, "memory.swap.current"),
        swap_limit: v2_limit(d, "memory.swap.max"),
        ..Default::default()
    });
    m.io = MessageField::some(v2::IOStat {
        usage: read(d, "io.stat")
            .map(|data| parse_io_stat(&data))
            .unwrap_or_default(),
        ..Default::default()
    });
    let ev = keyed(d, "memory.events");
    m.memory_events = MessageField::some(v2::MemoryEvents {
        low: ev.get("low"),
        high: ev.get("high"),
        max: ev.get("max"),
        oom: ev.get("oom"),
        oom_kill: ev.get("oom_kill"),
        ..Default::default()
    });
    m
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...`.
fn parse_io_stat(data: &str) -> Vec<v2::IOEntry> {
    data.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let mut e = v2::IOEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for kv in fields {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let v = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => e.rbytes = v,
                    "wbytes" => e.wbytes = v,
                    "rios" => e.rios = v,
                    "wios" => e.wios = v,
                    _ => {}
                }
            }
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgroup_pids_lists_this_process() {
        let me = std::process::id();
        let pids = super::cgroup_pids(me).unwrap();
        assert!(pids.contains(&me), "{me} not in {pids:?}");
    }

    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (f, c) in files {
            std::fs::write(dir.join(f), c).unwrap();
        }
    }

    #[test]
    fn v1_files_fill_the_metrics() {
        let t = tempfile::tempdir().unwrap();
        let mem = t.path().join("memory");
        write(
            &mem,
            &[
                ("memory.stat", "cache 4096\nrss 8192\ntotal_rss 8192\n"),
                ("memory.usage_in_bytes", "12288\n"),
                ("memory.limit_in_bytes", "16777216\n"),
                ("memory.max_usage_in_bytes", "20000\n"),
                ("memory.failcnt", "3\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
        let cpu = t.path().join("cpuacct");
        write(
            &cpu,
            &[
                ("cpuacct.usage", "5000000\n"),
                ("cpuacct.usage_percpu", "3000000 2000000 \n"),
                ("cpuacct.stat", "user 3\nsystem 1\n"),
                (
                    "cpu.stat",
                    "nr_periods 10\nnr_throttled 4\nthrottled_time 99\n",
                ),
            ],
        );
        let pids = t.path().join("pids");
        write(&pids, &[("pids.current", "2\n"), ("pids.max", "max\n")]);
        let dirs: HashMap<&str, PathBuf> = [
            ("memory", mem),
            ("cpuacct", cpu.clone()),
            ("cpu", cpu),
            ("pids", pids),
        ]
        .into();
        let m = metrics_v1(|c| dirs.get(c).cloned());
        let memory = m.memory.as_ref().unwrap();
        assert_eq!(
            (memory.cache, memory.rss, memory.total_rss),
            (4096, 8192, 8192)
        );
        let usage = memory.usage.as_ref().unwrap();
        assert_eq!(
            (usage.usage, usage.limit, usage.max, usage.failcnt),
            (12288, 16777216, 20000, 3)
        );
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        let cpu = m.cpu.as_ref().unwrap();
        let u = cpu.usage.as_ref().unwrap();
        assert_eq!(
            (u.total, u.user, u.kernel),
            (5000000, 30_000_000, 10_000_000)
        );
        assert_eq!(u.per_cpu, vec![3000000, 2000000]);
        assert_eq!(cpu.throttling.throttled_periods, 4);
        assert_eq!((m.pids.current, m.pids.limit), (2, 0));
        assert!(m.blkio.is_none());
    }

    #[test]
    fn v2_files_fill_the_metrics() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            &[
                (
                    "cpu.stat",
                    "usage_usec 700\nuser_usec 500\nsystem_usec 200\n",
                ),
                ("memory.stat", "anon 4096\nfile 8192\n"),
                ("memory.current", "12288\n"),
                ("memory.max", "max\n"),
                ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
                ("pids.current", "3\n"),
                ("pids.max", "100\n"),
                (
                    "io.stat",
                    "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
                ),
            ],
        );
        let m = metrics_v2(t.path());
        assert_eq!(m.io.usage.len(), 1);
        let io = &m.io.usage[0];
        assert_eq!(
            (io.major, io.minor, io.rbytes, io.wbytes, io.rios, io.wios),
            (254, 0, 4096, 8192, 1, 2)
        );
        assert_eq!(
            (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec),
            (700, 500, 200)
        );
        assert_eq!(
            (m.memory.anon, m.memory.file, m.memory.usage),
            (4096, 8192, 12288)
        );
        assert_eq!(m.memory.usage_limit, u64::MAX);
        assert_eq!(m.memory.swap_limit, 0, "no memory.swap.max file");
        assert_eq!((m.memory_events.max, m.memory_events.oom_kill), (5, 1));
        assert_eq!((m.pids.current, m.pids.limit), (3, 100));
    }
}
