//! What the build tells its user at the end: the image's layers and size, the largest store
//! paths, and, when the build can name an image it follows ([`crate::previous`]: an image
//! among `--cache-from`, or `NIX_PREVIOUS_IMAGE`) that records its closure, what changed
//! since: paths added and removed and the bytes a redeploy moves (the added paths' NAR sizes:
//! what a registry pull of the new layers is made of, before compression). It is shown as the
//! name of a tiny step, so that every progress display (plain, tty, rawjson) has it where
//! BuildKit shows step names, and returned as result metadata (`frontend/result.rs`), which
//! `--metadata-file` writes.

use serde::Serialize;

use crate::closure::{self, Closure};
use crate::layers::human_size;
use crate::previous::Previous;

/// How many of the largest store paths the summary names.
const LARGEST: usize = 3;

/// What one platform's image is, and what changed since the previous image: shown as a
/// line ([`Summary::line`]) and returned as result metadata (`--metadata-file`), as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub platform: String,
    pub layers: usize,
    /// The closure's NAR bytes.
    pub size: u64,
    pub store_paths: usize,
    /// The largest store paths, largest first.
    pub largest: Vec<SizedPath>,
    /// Against the previous image's closure, when the build can name one that records it.
    pub change: Option<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizedPath {
    pub path: String,
    pub nar_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The image the earlier closure came from.
    pub against: String,
    pub added: Vec<SizedPath>,
    pub removed: Vec<String>,
    /// The added paths' NAR bytes: what a redeploy moves, before compression.
    pub redeploy_bytes: u64,
}

impl Summary {
    pub fn new(platform: &str, layers: usize, closure: &Closure, previous: Option<&Previous>) -> Summary {
        let sized = |p: &closure::StorePath| SizedPath { path: p.path.clone(), nar_size: p.nar_size };
        let mut by_size: Vec<_> = closure.paths.iter().collect();
        by_size.sort_by(|a, b| b.nar_size.cmp(&a.nar_size).then(a.path.cmp(&b.path)));
        let change = previous.map(|Previous { image, closure: before }| {
            let added: Vec<SizedPath> =
                closure.paths.iter().filter(|p| before.get(&p.path).is_none()).map(sized).collect();
            Change {
                against: image.clone(),
                redeploy_bytes: added.iter().map(|p| p.nar_size).sum(),
                added,
                removed: before
                    .paths
                    .iter()
                    .filter(|p| closure.get(&p.path).is_none())
                    .map(|p| p.path.clone())
                    .collect(),
            }
        });
        Summary {
            platform: platform.to_string(),
            layers,
            size: closure.total_size(),
            store_paths: closure.paths.len(),
            largest: by_size.into_iter().take(LARGEST).map(sized).collect(),
            change,
        }
    }

    /// The summary as the progress output shows it.
    pub fn line(&self) -> String {
        let name = |p: &SizedPath| closure::name_part(closure::base_name(&p.path)).to_string();
        let largest: Vec<String> =
            self.largest.iter().map(|p| format!("{} {}", name(p), human_size(p.nar_size))).collect();
        let mut text = format!(
            "[nixfront] {}: {} layers, {} in {} store {}; largest: {}",
            self.platform,
            self.layers,
            human_size(self.size),
            self.store_paths,
            if self.store_paths == 1 { "path" } else { "paths" },
            largest.join(", ")
        );
        let Some(change) = &self.change else { return text };
        if change.added.is_empty() && change.removed.is_empty() {
            text.push_str(&format!("; the same store paths as {}: a redeploy moves 0 B", change.against));
            return text;
        }
        let names: Vec<String> = change.added.iter().take(LARGEST).map(name).collect();
        let more = if change.added.len() > LARGEST { ", ..." } else { "" };
        text.push_str(&format!(
            "; since {}: {} added ({}{more}), {} removed, a redeploy moves {}",
            change.against,
            paths(change.added.len()),
            names.join(", "),
            change.removed.len(),
            human_size(change.redeploy_bytes)
        ));
        text
    }
}

/// `1 path`, `2 paths`.
fn paths(count: usize) -> String {
    if count == 1 { "1 path".to_string() } else { format!("{count} paths") }
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
        Closure { results: vec![paths[0].path.clone()], paths }
    }

    #[test]
    fn the_summary_names_size_largest_paths_and_the_change() {
        let before = closure(&[("app-1.0", 2048), ("lib-1.0", 10 << 20), ("tzdata-1", 3 << 20)]);
        let now = closure(&[("app-1.1", 4096), ("lib-1.0", 10 << 20), ("tzdata-1", 3 << 20)]);
        let previous = |c: &Closure| Previous { image: "reg/app:1".into(), closure: c.clone() };
        let line = |now, before: Option<&Closure>| {
            Summary::new("linux/amd64", 5, now, before.map(previous).as_ref()).line()
        };
        assert_eq!(
            line(&now, None),
            "[nixfront] linux/amd64: 5 layers, 13.0 MiB in 3 store paths; largest: lib-1.0 10.0 MiB, \
             tzdata-1 3.0 MiB, app-1.1 4.0 KiB"
        );
        let changed = line(&now, Some(&before));
        assert!(line(&now, Some(&now)).ends_with("the same store paths as reg/app:1: a redeploy moves 0 B"));
        assert!(
            changed.ends_with("since reg/app:1: 1 path added (app-1.1), 1 removed, a redeploy moves 4.0 KiB"),
            "{changed}"
        );
        let data =
            serde_json::to_value(Summary::new("linux/amd64", 5, &now, Some(&previous(&before)))).unwrap();
        assert_eq!(data["change"]["against"], "reg/app:1");
        assert_eq!(data["change"]["redeployBytes"], 4096);
        assert_eq!(data["change"]["added"][0]["path"], now.paths[0].path.as_str());
        assert_eq!(data["change"]["removed"][0], before.paths[0].path.as_str());
        assert_eq!(
            (data["storePaths"].clone(), data["size"].clone()),
            (3.into(), (13u64 << 20 | 4096).into())
        );
        assert_eq!(data["largest"][0]["narSize"], 10 << 20);
    }
}
