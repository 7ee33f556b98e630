//! The module graph: silver's engine imports nothing of the reference
//! workload, and no crate of the workspace has modules that import each
//! other in a circle.
//!
//! Read from the sources: an edge `a -> b` is a line of code (comments
//! aside) under module `a` of a crate that names `crate::b`. The crate root
//! (`lib.rs`, `main.rs`) only declares and re-exports, so it is no node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to, `None` for the root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        other => Some(other.trim_end_matches(".rs").to_string()),
    }
}

/// The modules a line of code names as `crate::{module}`.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // Not `lake_crate::`, `$crate::` and the like.
            !code[..*at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for line in text.lines() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in named_modules(line) {
                if to != from && modules.contains(&to) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    edges
}

/// A cycle of `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_engine_imports_nothing_of_the_reference_workload() {
    let edges = graph(&workspace().join("lake-silver/src"));
    let engine = edges.get("engine").cloned().unwrap_or_default();
    for workload in ["reference", "orders", "stage"] {
        assert!(
            !engine.contains(workload),
            "lake-silver's engine imports `crate::{workload}`: {engine:?}"
        );
    }
    for foundation in ["spec", "scd2"] {
        let imports = edges.get(foundation).cloned().unwrap_or_default();
        assert!(
            imports.is_empty(),
            "lake-silver's `{foundation}` imports {imports:?}"
        );
    }
    // The check sees edges at all: the reference workload uses the engine.
    assert!(
        edges.get("reference").is_some_and(|r| r.contains("engine")),
        "{edges:?}"
    );
}

#[test]
fn no_crate_has_modules_importing_each_other_in_a_circle() {
    let root = workspace();
    let mut crates = 0;
    for entry in std::fs::read_dir(&root).expect("the workspace").flatten() {
        let src = entry.path().join("src");
        if !entry.path().join("Cargo.toml").is_file() || !src.is_dir() {
            continue;
        }
        crates += 1;
        let edges = graph(&src);
        assert_eq!(
            cycle(&edges),
            None,
            "modules of {} import each other in a circle",
            entry.path().display()
        );
    }
    assert!(
        crates >= 8,
        "found {crates} crates under {}",
        root.display()
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(from, to)| {
        (
            from.to_string(),
            to.into_iter().map(str::to_string).collect(),
        )
    })
    .collect();
    assert_eq!(
        cycle(&edges),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    assert_eq!(
        named_modules("use crate::engine::{Typer}; // crate::orders"),
        vec!["engine"]
    );
    assert!(named_modules("lake_crate::x $crate::y").is_empty());
}
