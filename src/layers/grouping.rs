//! Grouping a closure's store paths into at most N layers so that a redeploy moves little.
//!
//! The published algorithms (nixpkgs' dockerTools auto-layering, Nixery, nix2container) rank
//! paths by popularity, give the top ones their own layers and pile the rest into one last
//! layer. That last layer usually holds the application itself together with everything
//! that did not make the cut, so an app-only edit re-ships all of it. Here:
//!
//! - the built outputs (what changes on every edit) always get a layer of their own, on top;
//! - when every other path fits, each gets its own layer: a path's layer changes only when
//!   the path does;
//! - otherwise the largest paths get their own layers, and the small rest is spread over a
//!   few buckets chosen by each path's own hash, so a changed small path re-ships one small
//!   bucket, and which bucket a path lands in never depends on the rest of the closure.
//!
//! Layers go from most stable to least: dependencies most depended upon first (base
//! libraries), then buckets, then the outputs. Every choice is a pure function of the
//! closure, so the same closure gives the same groups in every build.

use std::collections::{BTreeMap, BTreeSet};

use crate::closure::{Closure, StorePath};

/// What one layer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub kind: GroupKind,
    /// Store paths (`/nix/store/...`), sorted.
    pub paths: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// One dependency alone.
    Single,
    /// Small dependencies sharing a layer, by hash bucket.
    Bucket(usize),
    /// The built outputs.
    Outputs,
    /// Everything, when only one layer is allowed for the store.
    Everything,
}

/// The most buckets the small paths are spread over.
const MAX_BUCKETS: usize = 16;

/// Groups `closure` into at most `store_layers` layers (at least 1), bottom to top.
pub fn group(closure: &Closure, store_layers: usize) -> Vec<Group> {
    let store_layers = store_layers.max(1);
    let by_path: BTreeMap<&str, &StorePath> = closure.paths.iter().map(|p| (p.path.as_str(), p)).collect();
    let make = |kind, paths: Vec<&str>| {
        let mut paths: Vec<String> = paths.into_iter().map(str::to_string).collect();
        paths.sort();
        let size = paths.iter().map(|p| by_path.get(p.as_str()).map_or(0, |sp| sp.nar_size)).sum();
        Group { kind, paths, size }
    };
    if store_layers == 1 {
        return vec![make(GroupKind::Everything, by_path.keys().copied().collect())];
    }

    let outputs: BTreeSet<&str> = closure.results.iter().map(String::as_str).collect();
    let deps: Vec<&StorePath> = closure.paths.iter().filter(|p| !outputs.contains(p.path.as_str())).collect();
    let budget = store_layers - 1; // one layer is the outputs'
    let popularity = popularity(closure);
    let stable_order = |a: &&StorePath, b: &&StorePath| {
        let pa = popularity.get(a.path.as_str()).copied().unwrap_or(0);
        let pb = popularity.get(b.path.as_str()).copied().unwrap_or(0);
        pb.cmp(&pa).then_with(|| a.path.cmp(&b.path))
    };

    let mut groups = Vec::new();
    if deps.len() <= budget {
        let mut singles = deps;
        singles.sort_by(stable_order);
        groups.extend(singles.into_iter().map(|p| make(GroupKind::Single, vec![p.path.as_str()])));
    } else {
        let buckets = (budget / 4).clamp(1, MAX_BUCKETS);
        let own = budget - buckets;
        let mut by_size = deps;
        by_size.sort_by(|a, b| b.nar_size.cmp(&a.nar_size).then_with(|| a.path.cmp(&b.path)));
        let small = by_size.split_off(own);
        let mut singles = by_size;
        singles.sort_by(stable_order);
        groups.extend(singles.into_iter().map(|p| make(GroupKind::Single, vec![p.path.as_str()])));
        let mut bucketed: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for p in small {
            bucketed.entry(bucket_of(&p.path, buckets)).or_default().push(p.path.as_str());
        }
        groups.extend(bucketed.into_iter().map(|(b, paths)| make(GroupKind::Bucket(b), paths)));
    }
    if !outputs.is_empty() {
        groups.push(make(GroupKind::Outputs, outputs.into_iter().collect()));
    }
    groups
}

/// Above this many paths, popularity counts direct dependants only: the exact count keeps a
/// bit per pair of paths (50 MB at this size).
const EXACT_POPULARITY_PATHS: usize = 20_000;

/// How many closure paths depend on each path, directly or not (for very large closures,
/// directly). Each path's reach is a bit set, made from its references' in post-order, so the
/// work is a few word operations per reference rather than a walk per path. References form a
/// DAG in a real closure; a cycle in a forged manifest gives an undercount, never a hang.
fn popularity(closure: &Closure) -> BTreeMap<&str, usize> {
    let n = closure.paths.len();
    let index = |r: &String| closure.paths.binary_search_by(|q| q.path.as_str().cmp(r)).ok();
    let refs: Vec<Vec<usize>> = closure
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| p.references.iter().filter_map(index).filter(|&j| j != i).collect())
        .collect();
    let mut count = vec![0usize; n];
    if n > EXACT_POPULARITY_PATHS {
        refs.iter().flatten().for_each(|&j| count[j] += 1);
    } else {
        let words = n.div_ceil(64);
        let mut reach = vec![0u64; n * words];
        let mut row = vec![0u64; words];
        for v in post_order(&refs) {
            for &w in &refs[v] {
                row.copy_from_slice(&reach[w * words..(w + 1) * words]);
                row[w / 64] |= 1 << (w % 64);
                reach[v * words..(v + 1) * words].iter_mut().zip(&row).for_each(|(a, b)| *a |= b);
            }
            reach[v * words + v / 64] &= !(1 << (v % 64));
        }
        for bits in reach.chunks(words.max(1)) {
            for (k, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    count[k * 64 + word.trailing_zeros() as usize] += 1;
                    word &= word - 1;
                }
            }
        }
    }
    closure.paths.iter().zip(count).filter(|(_, c)| *c > 0).map(|(p, c)| (p.path.as_str(), c)).collect()
}

/// The nodes of the graph `refs` (each node's successors) with every node after those it
/// reaches (a back edge of a cycle is skipped).
fn post_order(refs: &[Vec<usize>]) -> Vec<usize> {
    let mut order = Vec::with_capacity(refs.len());
    let mut seen = vec![false; refs.len()];
    for root in 0..refs.len() {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some((v, next)) = stack.last_mut() {
            match refs[*v].get(*next) {
                Some(&w) => {
                    *next += 1;
                    if !seen[w] {
                        seen[w] = true;
                        stack.push((w, 0));
                    }
                }
                None => {
                    order.push(*v);
                    stack.pop();
                }
            }
        }
    }
    order
}

/// A bucket chosen by the path's own hash (its first characters, Nix base-32): stable for
/// the path whatever else the closure holds.
fn bucket_of(path: &str, buckets: usize) -> usize {
    let base = crate::closure::base_name(path);
    let digit = |c: u8| usize::from(crate::closure::base32_digit(c).unwrap_or(0));
    let value = base.bytes().take(6).fold(0usize, |acc, c| acc * 32 + digit(c));
    value % buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk per path that [`popularity`] replaces, as its reference.
    fn popularity_by_walking(closure: &Closure) -> BTreeMap<&str, usize> {
        let refs: BTreeMap<&str, &[String]> =
            closure.paths.iter().map(|p| (p.path.as_str(), p.references.as_slice())).collect();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &closure.paths {
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            let mut stack: Vec<&str> = refs[p.path.as_str()].iter().map(String::as_str).collect();
            while let Some(next) = stack.pop() {
                if next != p.path && seen.insert(next) {
                    stack.extend(refs.get(next).into_iter().flat_map(|r| r.iter()).map(String::as_str));
                }
            }
            for dep in seen {
                *count.entry(dep).or_default() += 1;
            }
        }
        count
    }

    #[test]
    fn popularity_counts_every_dependant_as_a_walk_would() {
        for seed in 1..20u64 {
            let mut x = seed;
            let mut rnd = |below: usize| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as usize) % below.max(1)
            };
            let n = 5 + rnd(150);
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let deps: Vec<(String, u64, Vec<String>)> = (0..n)
                .map(|i| {
                    let refs = (0..rnd(5)).filter(|_| i > 0).map(|_| sp(&names[rnd(i)])).collect();
                    (names[i].clone(), 1, refs)
                })
                .collect();
            let mut c = closure("app", &[]);
            c.paths = deps
                .iter()
                .map(|(name, size, refs)| {
                    let mut references: Vec<String> = refs.clone();
                    references.sort();
                    references.dedup();
                    StorePath { path: sp(name), nar_size: *size, nar_hash: None, references, deriver: None }
                })
                .collect();
            c.paths.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(popularity(&c), popularity_by_walking(&c), "seed {seed}");
        }
    }

    /// A store path name whose hash part is derived from `name` (valid characters only).
    fn sp(name: &str) -> String {
        let alphabet = crate::closure::NIX_BASE32.as_bytes();
        let mut h: u64 = 1469598103934665603;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(1099511628211);
        }
        let hash: String =
            (0..32).map(|i| alphabet[((h >> (i % 13 * 4)) as usize + i) % 32] as char).collect();
        format!("/nix/store/{hash}-{name}")
    }

    fn closure(app: &str, deps: &[(&str, u64, &[&str])]) -> Closure {
        let mut paths: Vec<StorePath> = deps
            .iter()
            .map(|(n, size, refs)| StorePath {
                path: sp(n),
                nar_size: *size,
                nar_hash: None,
                references: refs.iter().map(|r| sp(r)).collect(),
                deriver: None,
            })
            .collect();
        paths.push(StorePath {
            path: sp(app),
            nar_size: 10,
            nar_hash: None,
            references: deps.iter().map(|(n, _, _)| sp(n)).collect(),
            deriver: None,
        });
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Closure { results: vec![sp(app)], paths }
    }

    fn names(g: &Group) -> Vec<String> {
        g.paths.iter().map(|p| p[44..].to_string()).collect()
    }

    fn assert_partition(c: &Closure, groups: &[Group], limit: usize) {
        assert!(groups.len() <= limit, "{} groups for a limit of {limit}", groups.len());
        let mut all: Vec<&String> = groups.iter().flat_map(|g| &g.paths).collect();
        all.sort();
        let expected: Vec<&String> = c.paths.iter().map(|p| &p.path).collect();
        assert_eq!(all, expected, "every path in exactly one group");
    }

    #[test]
    fn one_path_is_one_layer() {
        let c = closure("app", &[]);
        let g = group(&c, 100);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Outputs);
    }

    #[test]
    fn when_everything_fits_each_dependency_is_alone_most_depended_upon_first() {
        let c = closure(
            "app",
            &[("glibc", 30_000, &[]), ("libssl", 5_000, &["glibc"]), ("zlib", 100, &["glibc"])],
        );
        let g = group(&c, 100);
        assert_partition(&c, &g, 100);
        let order: Vec<Vec<String>> = g.iter().map(names).collect();
        assert_eq!(order[0], ["glibc"], "depended on by libssl, zlib and app");
        assert_eq!(order.last().unwrap(), &["app"]);
        assert!(g[..g.len() - 1].iter().all(|g| g.kind == GroupKind::Single));
    }

    #[test]
    fn more_paths_than_layers_keeps_the_limit_and_the_app_alone() {
        let deps: Vec<(String, u64)> = (0..300).map(|i| (format!("dep{i}"), 1000 + i as u64 * 7)).collect();
        let refs: Vec<(&str, u64, &[&str])> = deps.iter().map(|(n, s)| (n.as_str(), *s, &[][..])).collect();
        let c = closure("app", &refs);
        for limit in [2, 3, 5, 10, 100] {
            let g = group(&c, limit);
            assert_partition(&c, &g, limit);
            let last = g.last().unwrap();
            assert_eq!(
                (last.kind, names(last)),
                (GroupKind::Outputs, vec!["app".to_string()]),
                "limit {limit}"
            );
        }
        // The largest dependencies are alone.
        let g = group(&c, 100);
        let singles: Vec<&Group> = g.iter().filter(|g| g.kind == GroupKind::Single).collect();
        assert_eq!(singles.len(), 99 - 16);
        assert!(singles.iter().any(|g| names(g) == ["dep299"]));
    }

    #[test]
    fn a_store_limit_of_one_puts_everything_together() {
        let c = closure("app", &[("a", 1, &[]), ("b", 2, &[])]);
        let g = group(&c, 1);
        assert_eq!((g.len(), g[0].kind), (1, GroupKind::Everything));
        assert_partition(&c, &g, 1);
    }

    #[test]
    fn a_path_bigger_than_all_others_together_is_alone() {
        let deps: Vec<(String, u64)> = (0..50).map(|i| (format!("small{i}"), 10)).collect();
        let mut refs: Vec<(&str, u64, &[&str])> =
            deps.iter().map(|(n, s)| (n.as_str(), *s, &[][..])).collect();
        refs.push(("huge", 1_000_000, &[]));
        let c = closure("app", &refs);
        let g = group(&c, 8);
        assert_partition(&c, &g, 8);
        assert!(g.iter().any(|g| g.kind == GroupKind::Single && names(g) == ["huge"]));
    }

    #[test]
    fn grouping_is_deterministic_and_an_app_edit_moves_only_the_app() {
        let deps: Vec<(String, u64)> =
            (0..200).map(|i| (format!("d{i}"), 500 + (i as u64 * 37) % 900)).collect();
        let refs: Vec<(&str, u64, &[&str])> = deps.iter().map(|(n, s)| (n.as_str(), *s, &[][..])).collect();
        let before = group(&closure("app-1", &refs), 50);
        assert_eq!(before, group(&closure("app-1", &refs), 50));
        let after = group(&closure("app-2", &refs), 50);
        let changed: Vec<&Group> = after.iter().filter(|g| !before.contains(g)).collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].kind, GroupKind::Outputs);
    }

    #[test]
    fn a_changed_small_dependency_moves_one_bucket() {
        let mk = |changed: &str| -> Vec<Group> {
            let deps: Vec<(String, u64)> = (0..200)
                .map(|i| (if i == 7 { changed.to_string() } else { format!("d{i}") }, 100 + i as u64))
                .collect();
            let refs: Vec<(&str, u64, &[&str])> =
                deps.iter().map(|(n, s)| (n.as_str(), *s, &[][..])).collect();
            group(&closure("app", &refs), 50)
        };
        let (before, after) = (mk("cfg-1"), mk("cfg-2"));
        let changed: Vec<&Group> = after.iter().filter(|g| !before.contains(g)).collect();
        assert!(!changed.is_empty() && changed.len() <= 2, "the bucket it left and the one it joined");
        assert!(changed.iter().all(|g| matches!(g.kind, GroupKind::Bucket(_))));
    }
}
