//! What the build tells its user at the end: the image's layers and size, the largest store
//! paths, and, when an image the build imports cache from (`--cache-from` with inline cache)
//! carries its package's closure in its memo, what changed since: paths added and removed and
//! the bytes a redeploy moves (the added paths' NAR sizes: what a registry pull of the new
//! layers is made of, before compression). It is shown as the name of a tiny step, so that
//! every progress display (plain, tty, rawjson) has it where BuildKit shows step names.

use crate::closure::{self, Closure};
use crate::layers::human_size;

/// How many of the largest store paths the summary names.
const LARGEST: usize = 3;

/// The summary line for one platform's image.
pub fn line(platform: &str, layers: usize, closure: &Closure, previous: Option<&Closure>) -> String {
    let mut by_size: Vec<_> = closure.paths.iter().collect();
    by_size.sort_by(|a, b| b.nar_size.cmp(&a.nar_size).then(a.path.cmp(&b.path)));
    let largest: Vec<String> = by_size
        .iter()
        .take(LARGEST)
        .map(|p| format!("{} {}", closure::name_part(p.base_name()), human_size(p.nar_size)))
        .collect();
    let mut text = format!(
        "[nixfront] {platform}: {layers} layers, {} in {} store paths; largest: {}",
        human_size(closure.total_size()),
        closure.paths.len(),
        largest.join(", ")
    );
    if let Some(before) = previous {
        let added: Vec<_> = closure.paths.iter().filter(|p| before.get(&p.path).is_none()).collect();
        let removed = before.paths.iter().filter(|p| closure.get(&p.path).is_none()).count();
        let moved: u64 = added.iter().map(|p| p.nar_size).sum();
        let names: Vec<&str> =
            added.iter().take(LARGEST).map(|p| closure::name_part(p.base_name())).collect();
        let more = if added.len() > LARGEST { ", ..." } else { "" };
        if added.is_empty() && removed == 0 {
            text.push_str("; the same store paths as the --cache-from image: a redeploy moves 0 B");
            return text;
        }
        text.push_str(&format!(
            "; since the --cache-from image: {} paths added ({}{more}), {removed} removed, a redeploy moves {}",
            added.len(),
            names.join(", "),
            human_size(moved)
        ));
    }
    text
}

/// The closure of the package an imported memo answered for (the image the cache came from:
/// its previous version), one other than this build's when there is one.
pub fn previous_closure(memo: &crate::memo::Memo, current: &Closure) -> Option<Closure> {
    let mut closures: Vec<Closure> = memo
        .package_answers()
        .filter_map(|answer| closure::parse_manifest(answer.manifest.as_bytes()).ok())
        .collect();
    let index = closures.iter().position(|c| c.results != current.results).unwrap_or(0);
    (index < closures.len()).then(|| closures.swap_remove(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::StorePath;

    fn closure(paths: &[(&str, u64)]) -> Closure {
        let mut paths: Vec<StorePath> = paths
            .iter()
            .map(|(name, size)| StorePath {
                path: format!("/nix/store/{}-{name}", "a".repeat(32)).replacen('a', &name[..1], 1),
                nar_size: *size,
                nar_hash: None,
                references: Vec::new(),
                deriver: None,
            })
            .collect();
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Closure { results: vec![paths[0].path.clone()], main_program: None, flake_last_modified: None, paths }
    }

    #[test]
    fn the_summary_names_size_largest_paths_and_the_change() {
        let before = closure(&[("app-1.0", 2048), ("lib-1.0", 10 << 20), ("tzdata-1", 3 << 20)]);
        let now = closure(&[("app-1.1", 4096), ("lib-1.0", 10 << 20), ("tzdata-1", 3 << 20)]);
        assert_eq!(
            line("linux/amd64", 5, &now, None),
            "[nixfront] linux/amd64: 5 layers, 13.0 MiB in 3 store paths; largest: lib-1.0 10.0 MiB, \
             tzdata-1 3.0 MiB, app-1.1 4.0 KiB"
        );
        let changed = line("linux/amd64", 5, &now, Some(&before));
        assert!(
            line("linux/amd64", 5, &now, Some(&now))
                .ends_with("the same store paths as the --cache-from image: a redeploy moves 0 B")
        );
        assert!(
            changed.ends_with(
                "since the --cache-from image: 1 paths added (app-1.1), 1 removed, a redeploy moves 4.0 KiB"
            ),
            "{changed}"
        );
    }
}
