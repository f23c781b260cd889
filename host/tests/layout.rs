//! The module map holds: no module of `host/src` imports from a module that
//! imports it, directly or through others. Read from the source, at the
//! granularity of top-level modules (`delivery/` counts as one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name as `crate::…`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
            let module = top.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `from`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut path = vec![from.to_string()];
    fn walk(graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        let here = path.last().unwrap().clone();
        for next in graph.get(&here).into_iter().flatten() {
            if *next == path[0] {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_imports_from_a_module_that_imports_it() {
    let graph = imports();
    assert!(graph.len() > 15, "the source was read: {graph:?}");
    assert!(graph["gateway"].contains("delivery"), "imports are found: {graph:?}");
    for module in graph.keys() {
        if let Some(cycle) = cycle(&graph, module) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

/// The compiler keeps the generated bindings inside `runtime`: `wit` is a
/// private module of it, so a generated type named anywhere else fails to
/// compile. This test keeps that module private.
#[test]
fn the_generated_bindings_are_private_to_the_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let runtime = std::fs::read_to_string(src.join("runtime/mod.rs")).unwrap();
    assert!(runtime.lines().any(|l| l == "mod wit;"), "runtime declares `wit` privately");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(!lib.contains("mod wit"), "the crate root does not expose `wit`");
    let wit = std::fs::read_to_string(src.join("runtime/wit.rs")).unwrap();
    assert!(
        !wit.contains("pub use generated") && !wit.contains("pub mod generated"),
        "nothing generated is re-exported"
    );
    assert!(!wit.contains("pub(crate)"), "nothing in `wit` is visible to the crate");
}

#[test]
fn no_source_file_holds_more_than_500_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut long = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 500 {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "files past 500 lines hold a second concern: {long:?}");
}
