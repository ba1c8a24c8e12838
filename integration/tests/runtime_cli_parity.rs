//! runc's command line, habit by habit: each scenario is a sequence of invocations run through
//! runc and through polis-runc in fresh state roots on the same bundle; their exit codes, and
//! stdout where it is not id- or time-specific, must match. A summary table is printed; the
//! test fails on any difference.

use polis_integration::runtime::{stdout, Container, Runtime};
use serde_json::json;

/// What a step's result is compared on.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// The exit code.
    Code,
    /// The exit code and stdout (trimmed, the container id replaced by `<id>`).
    Out,
}

struct Scenario {
    name: &'static str,
    /// The container's command (a busybox bundle as runc's `spec` writes it, no terminal).
    args: &'static [&'static str],
    /// A change to the bundle's config.json, if any.
    edit: Option<fn(&mut serde_json::Value)>,
    /// Where runc's behaviour is a bug and ours is kept: why, and what polis-runc must give
    /// (every step's result, as compared).
    kept: Option<(&'static str, &'static [(i32, &'static str)])>,
    /// Invocations: `{id}` the container id, `{bundle}` its bundle, `{proc}` a process.json
    /// without `user` (written beside the bundle), `{missing}` an id that does not exist.
    steps: &'static [(&'static [&'static str], Cmp)],
}

const SLEEP: &[&str] = &["/bin/sleep", "300"];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "delete --force of a container that does not exist",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[(&["delete", "--force", "{missing}"], Cmp::Out)],
    },
    Scenario {
        name: "delete of a container that does not exist",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[(&["delete", "{missing}"], Cmp::Code)],
    },
    Scenario {
        name: "exec into a created, not started container",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/echo", "in-created"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exec --process with a process.json without user",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "--process", "{proc}", "{id}"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "kill with signal 0 checks liveness",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["kill", "{id}", "0"], Cmp::Code),
            (&["kill", "{id}", "KILL"], Cmp::Code),
            (&["delete", "{id}"], Cmp::Code),
            (&["kill", "{id}", "0"], Cmp::Code),
        ],
    },
    Scenario {
        name: "update with -1 (unlimited)",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--memory", "64m", "{id}"], Cmp::Code),
            (&["update", "--memory", "-1", "{id}"], Cmp::Code),
            (&["update", "--pids-limit", "-1", "{id}"], Cmp::Code),
            (&["update", "--memory", "-5", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exec --additional-gids and --cwd",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "exec",
                    "--additional-gids",
                    "10",
                    "--additional-gids",
                    "20",
                    "--cwd",
                    "/tmp",
                    "{id}",
                    "/bin/sh",
                    "-c",
                    "grep Groups: /proc/self/status; pwd",
                ],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "a paused container: exec refused, delete --force works",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["pause", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/true"], Cmp::Code),
            (&["delete", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
            (&["state", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "ps after the container stopped",
        args: &["/bin/true"],
        edit: None,
        kept: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["ps", "--format", "json", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "exit codes of run and exec",
        args: &["/bin/sh", "-c", "exit 7"],
        edit: None,
        kept: None,
        steps: &[
            (&["run", "--bundle", "{bundle}", "{id}"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "unknown command, --help, --version",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["frobnicate"], Cmp::Code),
            (&["--help"], Cmp::Code),
            (&["create", "--help"], Cmp::Code),
            (&["list", "-q"], Cmp::Out),
        ],
    },
    Scenario {
        name: "HOME of a user /etc/passwd does not know, and of root",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (
                &[
                    "exec",
                    "--user",
                    "1234:1234",
                    "{id}",
                    "/bin/sh",
                    "-c",
                    "echo $HOME",
                ],
                Cmp::Out,
            ),
            (&["exec", "{id}", "/bin/sh", "-c", "echo $HOME"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "update: cpu period alone, quota alone, cpuset, a paused container",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["update", "--cpu-period", "50000", "{id}"], Cmp::Code),
            (&["update", "--cpu-quota", "20000", "{id}"], Cmp::Code),
            (&["update", "--cpuset-cpus", "0", "{id}"], Cmp::Code),
            (&["pause", "{id}"], Cmp::Code),
            (&["update", "--pids-limit", "50", "{id}"], Cmp::Code),
            (&["resume", "{id}"], Cmp::Code),
            (
                &["exec", "{id}", "/bin/cat", "/sys/fs/cgroup/pids/pids.max"],
                Cmp::Out,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "events --stats once",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["events", "--stats", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "checkpoint and restore where CRIU is missing",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["checkpoint", "{id}"], Cmp::Code),
            (
                &["restore", "--bundle", "{bundle}", "{id}-restored"],
                Cmp::Code,
            ),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "umask from the spec",
        args: SLEEP,
        edit: Some(|s| s["process"]["user"]["umask"] = json!(0o027)),
        kept: Some((
            "runc 1.1.5 applies the spec's umask to the init but not to an exec (0022)",
            &[(0, ""), (0, "0027"), (0, "")],
        )),
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["exec", "{id}", "/bin/sh", "-c", "umask"], Cmp::Out),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "unified (cgroup v2) resources on a v1 host",
        args: SLEEP,
        edit: Some(|s| {
            s["linux"]["resources"]["unified"] = json!({"memory.high": "1000000"});
        }),
        kept: None,
        steps: &[
            (&["run", "-d", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
    Scenario {
        name: "start twice, kill unknown signal",
        args: SLEEP,
        edit: None,
        kept: None,
        steps: &[
            (&["create", "--bundle", "{bundle}", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["start", "{id}"], Cmp::Code),
            (&["kill", "{id}", "SIGNOPE"], Cmp::Code),
            (&["delete", "--force", "{id}"], Cmp::Code),
        ],
    },
];

/// Runs one scenario through `rt`: the result of each step (code, normalised stdout).
fn run(rt: &Runtime, s: &Scenario) -> Vec<(Option<i32>, String)> {
    let c = Container::new(rt, "cli", s.args);
    if let Some(edit) = s.edit {
        c.bundle.edit(edit).unwrap();
    }
    let proc_file = c.bundle.path().join("process.json");
    std::fs::write(
        &proc_file,
        json!({"args": ["/bin/echo", "no-user"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
    )
    .unwrap();
    let missing = format!("{}-missing", c.id);
    let mut results = Vec::new();
    for (argv, cmp) in s.steps {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| {
                a.replace("{id}", &c.id)
                    .replace("{bundle}", c.bundle_path())
                    .replace("{proc}", proc_file.to_str().unwrap())
                    .replace("{missing}", &missing)
            })
            .collect();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let o = rt.run(&argv);
        let out = match cmp {
            Cmp::Out => stdout(&o).trim().replace(&c.id, "<id>"),
            Cmp::Code => String::new(),
        };
        results.push((o.status.code(), out));
    }
    drop(c);
    results
}

#[test]
fn runcs_command_line_habits_work_the_same() {
    let polis = Runtime::polis();
    let runc = Runtime::runc();
    let mut differ = Vec::new();
    println!("{:<58} {:>6}", "scenario", "result");
    for s in SCENARIOS {
        let p = run(&polis, s);
        let r = run(&runc, s);
        if let Some((why, want)) = s.kept {
            let want: Vec<(Option<i32>, String)> = want
                .iter()
                .map(|(c, o)| (Some(*c), o.to_string()))
                .collect();
            println!("{:<58} {:>6}  ({why})", s.name, "kept");
            if p != want {
                differ.push(format!("{}: polis-runc {p:?}, want {want:?}", s.name));
            }
            continue;
        }
        let same = p == r;
        println!("{:<58} {:>6}", s.name, if same { "same" } else { "DIFFER" });
        if !same {
            differ.push(format!(
                "{}:\n  polis-runc {p:?}\n  runc       {r:?}",
                s.name
            ));
        }
    }
    let kept = SCENARIOS.iter().filter(|s| s.kept.is_some()).count();
    println!(
        "{} scenarios: {} as runc, {} kept where runc is wrong, {} different",
        SCENARIOS.len(),
        SCENARIOS.len() - kept - differ.len(),
        kept,
        differ.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
