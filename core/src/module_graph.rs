//! A test that core's top-level modules form no cycle: it reads `src/`, takes every
//! `crate::<module>` a module names outside comments and its `#[cfg(test)] mod tests` (through
//! the re-exports of `lib.rs` for `crate::Engine` and the like), and fails naming a cycle.
//! Methods of `Engine` are defined across modules; the rule it keeps is that `engine` and the
//! stores below it never name the modules that build on them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Each top-level module's source files (a module directory's files together).
fn modules(src: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name == "bin" {
                continue;
            }
            let mut files = Vec::new();
            let mut stack = vec![path];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(dir).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "rs") {
                        files.push(std::fs::read_to_string(p).unwrap());
                    }
                }
            }
            out.insert(name, files);
        } else if path.extension().is_some_and(|x| x == "rs") && name != "lib" {
            out.insert(name, vec![std::fs::read_to_string(&path).unwrap()]);
        }
    }
    out
}

/// Code without comments and without the unit tests at the end of the file.
fn code(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim_start());
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod tests") {
            // Unit tests may use anything (an engine to test a store); stop at them.
            break;
        }
        if !line.trim_start().starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `name -> module` for what `lib.rs` re-exports (`pub use engine::Engine;`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.rsplit(" as ").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// The top-level modules each module names.
fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let reexports = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let resolve = |name: &str| -> Option<String> {
        if modules.contains_key(name) {
            Some(name.to_owned())
        } else {
            reexports.get(name).cloned()
        }
    };
    let mut graph = Graph::new();
    for (module, files) in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for file in files {
            let code = code(file);
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or(""),
                    ],
                };
                for target in names.into_iter().filter_map(resolve) {
                    if &target != module {
                        edges.insert(target);
                    }
                }
            }
        }
    }
    graph
}

/// One cycle of `graph`, as a path that returns to its start, if there is any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn core_has_no_module_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 30, "the modules of core/src were not found: {graph:?}");
    assert!(
        graph["sessions"].contains("engine") && graph["engine"].contains("meta"),
        "the scan finds `use crate::` lines: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("core's modules form a cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_scan_sees_cycles_through_groups_and_reexports() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
    let r = reexports("pub use engine::Engine;\npub use error::{Error, ErrorKind as Kind, Result};");
    assert_eq!(r["Engine"], "engine");
    assert_eq!(r["Kind"], "error");
    assert_eq!(
        code("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}\n"),
        "use crate::a;\n"
    );
}
