//! The workspace's structure, held by a test: no crate of ours has an import cycle between its
//! top-level modules (a module that uses another which, directly or not, uses it back). A
//! cycle makes every module in it a unit that can be neither understood nor tested alone.
//!
//! Uses are found in the sources: `crate::m` paths (also inside `crate::{..}` groups) and
//! `super::m` from a top-level module; unit-test modules are left out, since a test may use
//! whatever it checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polis_integration::workspace_root;

const CRATES: &[&str] = &[
    "runtime",
    "shim",
    "network-plugin",
    "image-snapshotter",
    "sys",
    "integration",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to and whether it is that module's own file;
/// none for the crate roots and the extra binaries under `src/bin`.
fn top_module(src: &Path, file: &Path) -> Option<(String, bool)> {
    let rel = file.strip_prefix(src).ok()?;
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    match parts.as_slice() {
        ["lib.rs" | "main.rs"] | ["bin", ..] => None,
        [single] => Some((single.trim_end_matches(".rs").to_string(), true)),
        [dir, "mod.rs"] => Some((dir.to_string(), true)),
        [dir, ..] => Some((dir.to_string(), false)),
        [] => None,
    }
}

/// The source without its unit-test module (by our convention the file's last item).
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        if text[at + "#[cfg(test)]".len()..]
            .trim_start()
            .starts_with("mod ")
        {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level names used through `prefix` (`crate::` or `super::`).
fn used_through(text: &str, prefix: &str, out: &mut BTreeSet<String>) {
    for (i, _) in text.match_indices(prefix) {
        // `foo_crate::` or `self::super::` are not ours to follow.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each path in the group, at the group's own nesting level.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident_at(&group[j..]).to_string());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest).to_string());
        }
    }
}

/// Each top-level module of the crate and the other top-level modules it uses.
fn module_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join(krate).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some((module, own_file)) = top_module(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let text = without_tests(&text);
        let used = uses.entry(module).or_default();
        used_through(text, "crate::", used);
        if own_file {
            used_through(text, "super::", used);
        }
    }
    let modules: BTreeSet<String> = uses.keys().cloned().collect();
    for (module, used) in uses.iter_mut() {
        used.retain(|m| modules.contains(m) && m != module);
    }
    uses
}

/// A path from `from` back to itself, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        target: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in &g[at] {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, target, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(from.to_string());
        path
    })
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut cycles = Vec::new();
    for krate in CRATES {
        let graph = module_graph(krate);
        assert!(graph.len() > 1, "{krate}: no modules found");
        let mut reported = BTreeSet::new();
        for module in graph.keys() {
            if reported.contains(module) {
                continue;
            }
            if let Some(cycle) = cycle_through(&graph, module) {
                reported.extend(cycle.iter().cloned());
                cycles.push(format!("{krate}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scanner_sees_each_form_of_use() {
    let mut used = BTreeSet::new();
    let text = "use crate::a::X;\nuse crate::{b, c::{D, E}, d};\nlet x = crate::e::f();\n\
                let y = other_crate::g::h; use self::super::i;";
    used_through(text, "crate::", &mut used);
    assert_eq!(used, ["a", "b", "c", "d", "e"].map(String::from).into());
    let src = Path::new("/s");
    assert_eq!(top_module(src, Path::new("/s/lib.rs")), None);
    assert_eq!(top_module(src, Path::new("/s/bin/x.rs")), None);
    assert_eq!(
        top_module(src, Path::new("/s/a.rs")),
        Some(("a".into(), true))
    );
    assert_eq!(
        top_module(src, Path::new("/s/a/mod.rs")),
        Some(("a".into(), true))
    );
    assert_eq!(
        top_module(src, Path::new("/s/a/b.rs")),
        Some(("a".into(), false))
    );
    let code = "fn f() {}\n#[cfg(test)]\nmod tests { use crate::z; }";
    assert_eq!(without_tests(code), "fn f() {}\n");
    // A two-module cycle is found from either end.
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("p".to_string(), ["q".to_string()].into()),
        ("q".to_string(), ["p".to_string()].into()),
        ("r".to_string(), ["p".to_string()].into()),
    ]
    .into();
    assert_eq!(cycle_through(&g, "p").unwrap(), ["p", "q", "p"]);
    assert_eq!(cycle_through(&g, "r"), None);
}
