//! The crate's layers point one way: no file imports from a layer above
//! its own, and no two files depend on each other, directly or through
//! others. Read from the source (`use` lines and inline `crate::` /
//! `super::` / `self::` paths; `mod` declarations and `pub use` re-exports are
//! structure, not dependencies; nor are `#[cfg(test)]` modules), so a new
//! upward edge or cycle fails here.
//! Run alone: `cargo test --test it layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may use those at or
/// below its own rank, never above.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("backoff", 0),
    ("events", 1),
    ("config", 1),
    ("store", 2),
    ("runtime", 3),
    ("pipeline", 4),
    ("api", 5),
    ("server", 6),
    ("cli", 6),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path (`src/store/redis/mod.rs` → `store::redis`).
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file that holds the longest prefix of `path` that is a module.
fn file_of(path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| {
        let base = src().join(path[..n].join("/"));
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|candidate| candidate.is_file())
    })
}

/// The module paths a file depends on: each `crate::a::b` and `super::c`
/// it names outside comments, `mod` lines and `pub use` re-exports.
fn dependencies(file: &Path) -> BTreeSet<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let module = module_of(file);
    let mut found = BTreeSet::new();
    // A file's test module is not part of the crate's structure.
    for line in text
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
    {
        let code = line.trim_start();
        if code.starts_with("//") || code.starts_with("pub use") || code.starts_with("mod ") {
            continue;
        }
        let starts = ["crate::", "super::", "self::"]
            .into_iter()
            .flat_map(|prefix| code.match_indices(prefix).map(|(start, _)| start));
        for start in starts {
            if code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: Vec<String> = code[start..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let absolute = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("self") => module.iter().chain(&path[1..]).cloned().collect(),
                Some(_) => {
                    // `super` of a module (a file, or a directory's
                    // `mod.rs`) is its parent.
                    let supers = path.iter().take_while(|p| *p == "super").count();
                    let mut base = module.clone();
                    for _ in 0..supers {
                        base.pop();
                    }
                    base.extend(path[supers..].iter().cloned());
                    base
                }
                None => continue,
            };
            found.insert(absolute);
        }
    }
    found
}

fn layer(module: &[String]) -> Option<u8> {
    let top = module.first()?;
    LAYERS
        .iter()
        .find(|(name, _)| name == top)
        .map(|(_, rank)| *rank)
}

/// File → the files it depends on.
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph = BTreeMap::new();
    for file in files {
        let targets = dependencies(&file)
            .iter()
            .filter_map(|path| file_of(path))
            .filter(|target| *target != file)
            .collect();
        graph.insert(file, targets);
    }
    graph
}

#[test]
fn no_file_imports_from_a_layer_above_its_own() {
    let mut upward = Vec::new();
    for file in graph().keys() {
        let Some(own) = layer(&module_of(file)) else {
            continue;
        };
        for path in dependencies(file) {
            if let Some(target) = layer(&path).filter(|rank| *rank > own) {
                upward.push(format!(
                    "{} (layer {own}) uses {} (layer {target})",
                    file.strip_prefix(src()).unwrap().display(),
                    path.join("::")
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward edges:\n{}", upward.join("\n"));
}

#[test]
fn no_two_files_depend_on_each_other() {
    let graph = graph();
    // Depth-first search for a back edge; report each cycle found.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&PathBuf, Mark> = BTreeMap::new();
    let mut cycles = Vec::new();
    fn visit<'a>(
        file: &'a PathBuf,
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<&'a PathBuf, Mark>,
        stack: &mut Vec<&'a PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        marks.insert(file, Mark::Open);
        stack.push(file);
        for next in graph.get(file).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|f| *f == next).unwrap_or(0);
                    let names: Vec<String> = stack[from..]
                        .iter()
                        .chain(std::iter::once(&next))
                        .map(|f| f.strip_prefix(src()).unwrap().display().to_string())
                        .collect();
                    cycles.push(names.join(" -> "));
                }
                Some(Mark::Done) => {}
                None => visit(next, graph, marks, stack, cycles),
            }
        }
        stack.pop();
        marks.insert(file, Mark::Done);
    }
    for file in graph.keys() {
        if !marks.contains_key(file) {
            visit(file, &graph, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "cycles:\n{}", cycles.join("\n"));
}
