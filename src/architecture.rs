//! Checks of the code's shape that the compiler does not make: no import circle between the
//! top-level modules of `src/` (a module's code, not its doc comments or tests, naming
//! `crate::<other>` is an edge), so that each concern can be read and tested from the bottom up;
//! no file longer than [`MAX_LINES`] before its tests, so that each can be read at a sitting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a file of `src/` belongs to (`plan` for `src/plan/steps.rs`).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The modules `text` names as `crate::<name>`, outside comments and `#[cfg(test)]` code.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut names = BTreeSet::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
    }
    names
}

/// The most lines a file of `src/` has before its `#[cfg(test)]` code.
const MAX_LINES: usize = 400;

/// Every `.rs` file under `src/`, with its path relative to it.
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path.strip_prefix(&src).unwrap().to_path_buf(), text));
            }
        }
    }
    files
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let is_test = rel.to_str().is_some_and(|r| r.ends_with("_tests.rs") || r == "architecture.rs");
        let Some(module) = module_of(&rel).filter(|_| !is_test) else {
            continue;
        };
        edges.entry(module.clone()).or_default().extend(uses(&text).into_iter().filter(|u| *u != module));
    }
    edges
}

/// A path of edges from `from` back to `to`, if there is one.
fn path_to(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_string()]];
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap().clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = edges();
    assert!(
        edges.contains_key("frontend") && edges["frontend"].contains("plan"),
        "the scan sees imports: {edges:?}"
    );
    for (module, used) in &edges {
        for other in used {
            if let Some(back) = path_to(&edges, other, module) {
                panic!("import circle: {module} -> {}", back.join(" -> "));
            }
        }
    }
}

#[test]
fn the_scan_reads_code_not_comments_or_tests() {
    let text = "use crate::a::X;\n/// see [`crate::b`]\nfn f() { crate::c::g() }\n#[cfg(test)]\nmod t { use crate::d; }\n";
    assert_eq!(uses(text).into_iter().collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn no_file_is_longer_than_a_sitting_before_its_tests() {
    for (rel, text) in sources() {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let lines = code.lines().count();
        assert!(
            lines <= MAX_LINES,
            "src/{} has {lines} lines before its tests (at most {MAX_LINES})",
            rel.display()
        );
    }
}
