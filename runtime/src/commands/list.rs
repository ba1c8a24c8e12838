//! `list`: the containers under `--root`, as runc's table, JSON, or ids only.

use anyhow::{Context, Result};
use libcontainer::container::Container;

use super::state::{runc_state, RuncState};
use crate::cli::{GlobalOpts, List, OutputFormat};

pub fn list(args: List, g: &GlobalOpts) -> Result<i32> {
    let states = load_all(g)?;
    if args.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match args.format {
        OutputFormat::Json => {
            // runc encodes an empty list as null.
            if states.is_empty() {
                println!("null");
            } else {
                println!("{}", serde_json::to_string(&states)?);
            }
        }
        OutputFormat::Table => print!("{}", table(&states)),
    }
    Ok(0)
}

fn load_all(g: &GlobalOpts) -> Result<Vec<RuncState>> {
    let entries = match std::fs::read_dir(&g.root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", g.root.display())),
    };
    let mut states = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.join("state.json").exists() {
            continue;
        }
        // A container being deleted concurrently is not an error for list.
        if let Ok(c) = Container::load(path) {
            states.push(runc_state(&c));
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(states)
}

/// runc's tabwriter layout: columns padded to the widest cell plus three spaces.
fn table(states: &[RuncState]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for s in states {
        rows.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i].max(9) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_runc_header_and_aligned_columns() {
        let s = RuncState {
            oci_version: "1.2.0".into(),
            id: "polis-a".into(),
            pid: 42,
            status: "running",
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
        };
        let t = table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID "));
        assert!(lines[0].ends_with("OWNER"));
        assert_eq!(lines[0].find("PID"), lines[1].find("42"));
        assert_eq!(lines[0].find("STATUS"), lines[1].find("running"));
    }
}
