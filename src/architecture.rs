//! Checks of the code's shape that the compiler does not make: no import circle between the
//! top-level modules of `src/` (a module's code, not its doc comments or tests, naming
//! `crate::<other>` is an edge), nor between the files of one folder (a file naming
//! `super::<sibling>` or an item of its `mod.rs` through `super::`, or `mod.rs` naming
//! `<child>::`; a glob `use super::*`, which hides what a file takes, is refused), so that each
//! concern can be read and tested from the bottom up;
//! no file with more than [`MAX_LINES`] lines of code besides its tests, so that each can be
//! read at a sitting. Files are read whole: only the items marked `#[cfg(test)]` are left out,
//! wherever they are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a file of `src/` belongs to (`plan` for `src/plan/steps.rs`).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// `text` without its `#[cfg(test)]` items (a `mod x;` line, or an item up to its closing
/// brace), wherever they are in the file.
fn without_tests(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            code.push_str(line);
            code.push('\n');
            continue;
        }
        let mut depth = 0i64;
        for item in lines.by_ref() {
            depth += item.matches('{').count() as i64 - item.matches('}').count() as i64;
            let ends = item.trim_end().ends_with(';') || item.trim_end().ends_with('}');
            if depth <= 0 && ends && !item.trim_start().starts_with("#[") {
                break;
            }
        }
    }
    code
}

/// The modules `text` names as `crate::<name>`, outside comments and `#[cfg(test)]` code.
fn uses(text: &str) -> BTreeSet<String> {
    let code = without_tests(text);
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

/// The most lines of code a file of `src/` has besides its `#[cfg(test)]` items.
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

/// The edges between the files of each folder (by folder, then file stem, `mod` for mod.rs),
/// and the files that import their parent with a glob.
type FolderEdges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn folder_edges() -> (FolderEdges, Vec<String>) {
    let files = sources();
    let mut edges: FolderEdges = BTreeMap::new();
    let mut globs = Vec::new();
    let stem = |rel: &Path| rel.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    for (rel, text) in &files {
        let Some(folder) = rel.parent().and_then(|p| p.to_str()).filter(|p| !p.is_empty()) else { continue };
        if rel.to_str().is_some_and(|r| r.ends_with("_tests.rs")) {
            continue;
        }
        let siblings: BTreeSet<String> = files
            .iter()
            .filter(|(r, _)| r.parent() == rel.parent())
            .map(|(r, _)| stem(r))
            .chain(
                files
                    .iter()
                    .filter_map(|(r, _)| r.strip_prefix(folder).ok()?.components().nth(1).map(|_| r.clone()))
                    .filter_map(|r| {
                        r.strip_prefix(folder)
                            .ok()?
                            .components()
                            .next()?
                            .as_os_str()
                            .to_str()
                            .map(String::from)
                    }),
            )
            .filter(|s| s != "mod")
            .collect();
        let me = stem(rel);
        let code: String = without_tests(text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let named = edges.entry(folder.to_string()).or_default().entry(me.clone()).or_default();
        if me == "mod" {
            for sibling in &siblings {
                let path = format!("{sibling}::");
                let starts = code.match_indices(&path).any(|(i, _)| {
                    !code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                });
                if starts {
                    named.insert(sibling.clone());
                }
            }
            continue;
        }
        for (i, _) in code.match_indices("super::") {
            let rest = &code[i + "super::".len()..];
            if rest.starts_with('*') {
                globs.push(rel.display().to_string());
                continue;
            }
            if rest.starts_with("super::") {
                continue;
            }
            let items: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect(),
                None => vec![rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()],
            };
            for item in items {
                named.insert(if siblings.contains(&item) { item } else { "mod".to_string() });
            }
        }
        named.remove(&me);
    }
    (edges, globs)
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
fn no_file_imports_a_file_of_its_folder_that_imports_it_back() {
    let (edges, globs) = folder_edges();
    assert!(globs.is_empty(), "`use super::*` hides what these files take from their folder: {globs:?}");
    assert!(
        edges
            .get("frontend/per_platform")
            .is_some_and(|f| f.get("in_steps").is_some_and(|e| e.contains("shared"))),
        "the scan sees a folder's edges: {edges:?}"
    );
    for (folder, files) in &edges {
        for (file, used) in files {
            for other in used {
                if let Some(back) = path_to(files, other, file) {
                    panic!("import circle in src/{folder}: {file} -> {}", back.join(" -> "));
                }
            }
        }
    }
}

#[test]
fn the_scan_reads_code_not_comments_or_tests() {
    let text = "use crate::a::X;\n/// see [`crate::b`]\nfn f() { crate::c::g() }\n#[cfg(test)]\nmod t { use crate::d; }\n";
    assert_eq!(uses(text).into_iter().collect::<Vec<_>>(), ["a", "c"]);
    // A test item early in the file hides nothing after it.
    let early = "#[cfg(test)]\nmod x_tests;\nuse crate::e::Y;\n#[cfg(test)]\nfn helper() {\n    crate::f::g();\n}\nfn h() { crate::g::i() }\n";
    assert_eq!(uses(early).into_iter().collect::<Vec<_>>(), ["e", "g"]);
    assert_eq!(without_tests(early).lines().count(), 2);
}

#[test]
fn no_file_is_longer_than_a_sitting_besides_its_tests() {
    for (rel, text) in sources() {
        let lines = without_tests(&text).lines().count();
        assert!(
            lines <= MAX_LINES,
            "src/{} has {lines} lines besides its tests (at most {MAX_LINES})",
            rel.display()
        );
    }
}
