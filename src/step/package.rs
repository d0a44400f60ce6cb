//! The package step: the derivation built in a store of the step's own, which goes with it.
//! `/nix/store` is mounted from the dependency layers (with the builder image's own store
//! where Nix lives there); the evaluation's tree adds the derivation's closure (its
//! derivations and sources), and the registrations of both make them valid. No evaluation,
//! nothing fetched or copied from the dependencies, and nothing this step registers reaches the
//! persistent store. Its outputs: the package's own paths of the closure, its input sources in
//! the closure, what nixfront adds to the image, and the [`Manifest`].

use std::collections::BTreeSet;
use std::path::Path;

use super::nix::Nix;
use super::outcome::{Outcome, say, write_json};
use super::{guard, store, tree};
use crate::closure::Split;
use crate::plan::output::{
    EXTRAS_DIR, MANIFEST_FILE, META_DIR, PKG_DIR, RESULTS_DIR, ROOTS_FILE, SOURCES_DIR, SPEC_DIR,
    SPEC_RECORDS, STEP_MANIFEST_VERSION,
};
use crate::plan::spec::{Manifest, Package};

pub fn run(nix: &Nix, work: &Package) -> Outcome<()> {
    if work.system != nix.native {
        say(&format!("building for {} on a {} builder", work.system, nix.native));
    }
    // The evaluation's paths, into a store no builder has run in yet.
    let pkg_store = Path::new(PKG_DIR).join("nix/store");
    std::fs::create_dir_all(store::STORE)?;
    for entry in std::fs::read_dir(&pkg_store)? {
        let entry = entry?;
        let dest = Path::new(store::STORE).join(entry.file_name());
        if std::fs::symlink_metadata(&dest).is_err() {
            tree::copy(&entry.path(), &dest)?;
        }
    }
    let records = std::fs::read(Path::new(SPEC_DIR).join(SPEC_RECORDS))?;
    nix.run_with(nix.nix_store().arg("--load-db"), Some(&records))?;
    let own = std::fs::read(Path::new(PKG_DIR).join("db"))?;
    nix.run_with(nix.nix_store().arg("--load-db"), Some(&own))?;
    say(&format!("{} dependencies from the dependency layers", work.deps.len()));

    guard::realise_locked(nix, &work.system, std::slice::from_ref(&work.drv))?;
    let (path_info, closure) = store::closure_of(nix, &work.roots)?;
    std::fs::write(Path::new(META_DIR).join(ROOTS_FILE), tree::list_roots(&work.roots))?;
    let (sources, results) = split(&closure, &work.deps, &work.sources);
    tree::place(&results, Path::new(RESULTS_DIR))?;
    tree::place(&sources, Path::new(SOURCES_DIR))?;
    tree::make_extras(Path::new(EXTRAS_DIR))?;
    let own = sources.len() + results.len();
    let manifest = Manifest {
        manifest_version: STEP_MANIFEST_VERSION,
        results: work.outputs.clone(),
        laid_out: Some(Split { sources, results }),
        package: None,
        flake: None,
        path_info,
    };
    write_json(&Path::new(META_DIR).join(MANIFEST_FILE), &manifest)?;
    say(&format!(
        "closure of {} store paths ({own} the package's own, the rest in dependency layers)",
        closure.len()
    ));
    Ok(())
}

/// The closure's paths no dependency layer holds, split into the input sources and the rest
/// (the package's own), each sorted.
pub fn split(closure: &[String], deps: &[String], sources: &[String]) -> (Vec<String>, Vec<String>) {
    let deps: BTreeSet<&String> = deps.iter().collect();
    let sources: BTreeSet<&String> = sources.iter().collect();
    let own: BTreeSet<&String> = closure.iter().filter(|p| !deps.contains(p)).collect();
    let (s, r): (Vec<&String>, Vec<&String>) = own.into_iter().partition(|p| sources.contains(p));
    (s.into_iter().cloned().collect(), r.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_splits_into_sources_and_the_package_s_own_beyond_the_dependencies() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let closure = s(&["/nix/store/c-app", "/nix/store/a-lib", "/nix/store/b-src", "/nix/store/d-data"]);
        let (sources, results) =
            split(&closure, &s(&["/nix/store/a-lib"]), &s(&["/nix/store/b-src", "/nix/store/z"]));
        assert_eq!(sources, s(&["/nix/store/b-src"]));
        assert_eq!(results, s(&["/nix/store/c-app", "/nix/store/d-data"]));
    }
}
