//! No source file of a crate imports a file that imports it back, directly or through
//! others: the "read bottom up" order of each `lib.rs` map can then be true.
//!
//! The check reads the sources as text: every `use crate::…`, `use super::…` and inline
//! `crate::…` path names the deepest module file it reaches, and the graph of those
//! edges between files must have no cycle. A parent's `mod child;` is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules: module path (`["transport", "sse"]`) → file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            found.insert(module, path);
        }
    }
    found
}

/// The code of a file without comments and string contents that could look like paths.
fn code(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every module path a file refers to (before resolving to a file), from `use` trees and
/// inline `crate::` paths.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = code(text);
    let mut paths = Vec::new();
    // `use` statements, with their `{…}` groups expanded.
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(start) = statement.find("use ") else { continue };
        let before = &statement[..start];
        if !(before.trim().is_empty() || before.trim().starts_with("pub")) {
            continue;
        }
        let tree: String = statement[start + 4..].chars().filter(|c| !c.is_whitespace()).collect();
        expand(&tree, &mut paths);
    }
    // Inline paths such as `crate::edge::is_loopback_host(..)`.
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        paths.push(rest[..end].to_string());
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = match segments.first() {
                Some(&"crate") => Vec::new(),
                Some(&"super") => {
                    let mut parent = module.to_vec();
                    while segments.first() == Some(&"super") {
                        parent.pop();
                        segments.remove(0);
                    }
                    segments.insert(0, "super");
                    parent
                }
                Some(&"self") => module.to_vec(),
                _ => return None,
            };
            base.extend(segments.iter().skip(1).map(|s| s.to_string()));
            Some(base)
        })
        .collect()
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, out: &mut Vec<String>) {
    let Some(open) = tree.find('{') else {
        out.push(tree.split(" as ").next().unwrap_or(tree).to_string());
        return;
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut depth = 0;
    let mut part = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !part.is_empty() {
                    expand(&format!("{prefix}{part}"), out);
                }
                part.clear();
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
}

/// The deepest module of `modules` that `path` reaches.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains_key(prefix))
}

/// The cycles of a crate's import graph, as lists of files.
fn cycles(src: &Path) -> Vec<Vec<String>> {
    let modules = modules(src);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for reference in references(module, &text) {
            if let Some(target) = resolve(&reference, &modules) {
                if &target != module && !target.is_empty() {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    // A cycle exists when some module reaches itself.
    let name = |m: &Vec<String>| modules[m].strip_prefix(src).unwrap().display().to_string();
    let mut found = Vec::new();
    for start in modules.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let mut cycle: Vec<String> = trail.iter().map(name).collect();
                    cycle.push(name(start));
                    found.push(cycle);
                } else if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = Vec::new();
    for src in ["protocol/src", "server/src", "loadgen/src", "src"] {
        for cycle in cycles(&root.join(src)) {
            report.push(format!("{src}: {}", cycle.join(" → ")));
        }
    }
    report.sort();
    report.dedup();
    assert!(report.is_empty(), "import cycles:\n{}", report.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_expands_use_groups() {
    let mut out = Vec::new();
    expand("crate::{a::B,c::{d,e}}", &mut out);
    assert_eq!(out, ["crate::a::B", "crate::c::d", "crate::c::e"]);
    let module = vec!["transport".to_string(), "ws".to_string()];
    let refs = references(&module, "use super::follower::Follower;\nfn f() { crate::edge::x(); }");
    assert!(refs.contains(&vec!["transport".into(), "follower".into(), "Follower".into()]), "{refs:?}");
    assert!(refs.contains(&vec!["edge".into(), "x".into()]), "{refs:?}");
}
