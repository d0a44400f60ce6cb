//! The layer step on the persistent store: each dependency layer's store paths copied out of
//! the store, one output (or directory) per layer, byte-identical whenever it holds the same
//! paths; an instance of the store that lacks some builds or fetches them again first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::nix::Nix;
use super::outcome::{Outcome, Stop, say};
use super::{guard, store, tree};
use crate::plan::output::{DEPS_INFO_FILE, DEPS_META_DIR, DRVS_DIR, LAYERS_DIR};
use crate::plan::spec::Grouped;

pub fn run(nix: &Nix, system: &str, groups: &[Grouped]) -> Outcome<()> {
    if !Path::new(DEPS_META_DIR).join(DEPS_INFO_FILE).exists() {
        return Err(Stop::new("the dependency step's output is missing"));
    }
    store::prepare(nix)?;
    let paths: Vec<String> = groups.iter().map(|g| g.path.clone()).collect();
    let missing: BTreeSet<String> = store::invalid(nix, &paths)?.into_iter().collect();
    if !missing.is_empty() {
        say(&format!(
            "{} dependencies are not in this store; building or fetching them again",
            missing.len()
        ));
        let (mut sources, mut derivers) = (Vec::new(), BTreeSet::new());
        for group in groups.iter().filter(|g| missing.contains(&g.path)) {
            match &group.deriver {
                Some(drv) => _ = derivers.insert(drv.clone()),
                None => sources.push(group.path.clone()),
            }
        }
        for source in &sources {
            let base = source.rsplit('/').next().unwrap_or_default();
            let hash = base.split('-').next().unwrap_or_default();
            if !Path::new(DRVS_DIR).join(format!("{hash}.narinfo")).exists() {
                return Err(Stop::new(format!(
                    "cannot lay out {source}: this store lacks it, no derivation builds it and the \
                     evaluation's cache does not have it"
                )));
            }
        }
        store::copy_content_addressed(nix, DRVS_DIR, &sources)?;
        let derivers: Vec<String> = derivers.into_iter().collect();
        if !derivers.is_empty() {
            store::copy_content_addressed(nix, DRVS_DIR, &derivers)?;
            guard::realise_locked(nix, system, &derivers)?;
        }
        if let Some(still) = store::invalid(nix, &paths)?.first() {
            return Err(Stop::new(format!("cannot lay out {still}: it is not valid in the store")));
        }
    }
    let mut layers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for group in groups {
        layers.entry(&group.layer).or_default().push(group.path.clone());
    }
    for (layer, paths) in &layers {
        if !valid_layer_name(layer) {
            return Err(Stop::new(format!("layer name {layer:?} is not nixfront's")));
        }
        tree::place(paths, &Path::new(LAYERS_DIR).join(layer))?;
    }
    say(&format!("{} store paths laid out in {} layers", paths.len(), layers.len()));
    Ok(())
}

/// A layer's name as the frontend makes them (`000`): never a path.
fn valid_layer_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 6 && name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn layer_names_are_numbers_not_paths() {
        assert!(super::valid_layer_name("000"));
        assert!(!super::valid_layer_name("../x"));
        assert!(!super::valid_layer_name(""));
    }
}
