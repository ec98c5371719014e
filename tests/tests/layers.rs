//! The core crate's layers import only downward (docs/architecture.md, "Layers"):
//!
//! | layer | modules of `shared/src` |
//! |---|---|
//! | 0 domain | `domain`, `error` |
//! | 1 adapters | `store`, `queue`, `secrets`, `payments`, `mailer`, `clock` |
//! | 2 use cases | `auth`, `billing`, `webhooks`, `mail`, `usage`, `admin` |
//! | 3 edge | `config`, `state`, `http`, `lambda` |
//!
//! Every `crate::<module>` path in every source file (imports and inline paths; comments are
//! skipped) is an edge from the file's top-level module to `<module>`. No edge may go to a higher
//! layer, the graph of top-level modules may have no cycle, and the domain does no I/O and reads
//! no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [(&str, u8); 20] = [
    ("domain", 0),
    ("error", 0),
    ("store", 1),
    ("queue", 1),
    ("secrets", 1),
    ("payments", 1),
    ("mailer", 1),
    ("idp", 1),
    ("hooks", 1),
    ("clock", 1),
    ("auth", 2),
    ("billing", 2),
    ("webhooks", 2),
    ("mail", 2),
    ("usage", 2),
    ("admin", 2),
    ("config", 3),
    ("state", 3),
    ("http", 3),
    ("lambda", 3),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(file's top-level module, file, code with comments removed)` for every source file but
/// `lib.rs` (which only declares the modules).
fn files() -> Vec<(String, String, String)> {
    // The core crate, `shared/` beside this `tests/` crate in the workspace.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("shared/src");
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "lib.rs"))
        .map(|path| {
            let relative = path.strip_prefix(&root).expect("under src");
            let first = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .expect("component");
            let module = first.trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&path).expect("read");
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (module, relative.display().to_string(), code)
        })
        .collect()
}

/// Every `crate::<module>` a piece of code names, including inside `use crate::{a, b}` groups.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `tollgate_crate::` or similar
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            for item in body.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn no_module_imports_from_a_higher_layer_and_there_is_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for (module, file, code) in files() {
        let from = layer(&module).unwrap_or_else(|| panic!("{file}: module {module} has no layer"));
        for target in references(&code) {
            if target == module {
                continue;
            }
            let Some(to) = layer(&target) else {
                // Crate-root re-exports (`crate::Clock`) are not allowed either: name the module.
                violations.push(format!(
                    "{file}: crate::{target} is not a module of a layer"
                ));
                continue;
            };
            if to > from {
                violations.push(format!(
                    "{file}: {module} (layer {from}) imports {target} (layer {to})"
                ));
            }
            graph.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // Depth-first search for a cycle among the top-level modules.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "import cycle: {:?}", cycle);
    }
}

#[test]
fn the_domain_does_no_io_and_reads_no_clock() {
    const FORBIDDEN: [&str; 10] = [
        "tokio::",
        "std::fs",
        "std::net",
        "std::env",
        "aws_sdk",
        "reqwest",
        "redb",
        "SystemTime",
        "now_utc",
        "async fn",
    ];
    for (module, file, code) in files() {
        if layer(&module) != Some(0) {
            continue;
        }
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for word in FORBIDDEN {
            assert!(!code.contains(word), "{file}: the domain uses {word}");
        }
    }
}

#[test]
fn the_reference_reader_sees_groups_and_paths() {
    let found = references(
        "use crate::domain::{A, B};\nuse crate::{store::X, auth};\nlet x = crate::clock::now();",
    );
    let want: BTreeSet<String> = ["domain", "store", "auth", "clock"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(found, want);
}
