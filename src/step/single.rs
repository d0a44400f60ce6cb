//! The one-step build, for builds without a persistent store (NIX_PERSISTENT_STORE=false) and
//! packages whose outputs are unknown before they are built (content-addressed): the package
//! built, its runtime closure copied out each path as its own tree (`<base>/nix/store/<base>`),
//! what nixfront adds to the image, and the [`Manifest`] with the package's and the flake's
//! metadata.

use std::path::Path;

use super::nix::{Nix, json_or_null};
use super::outcome::{Outcome, Stop, say, write_json};
use super::{guard, store, tree};
use crate::plan::output::{
    EXTRAS_TREE, MANIFEST_FILE, META_DIR, OUT_DIR, ROOTS_FILE, SINGLE_MANIFEST_VERSION, TMP_DIR,
};
use crate::plan::spec::Manifest;

/// What the manifest says of the package.
const PACKAGE: &str = "p: { name = p.name or null; mainProgram = (p.meta or {}).mainProgram or null; }";

pub fn run(nix: &Nix, reference: &str, flake: &str, system: &str, extras: &[String]) -> Outcome<()> {
    if system != nix.native {
        say(&format!("building for {system} on a {} builder", nix.native));
    }
    store::prepare(nix)?;
    let links = tempfile::Builder::new().prefix("links.").tempdir_in(TMP_DIR)?;
    let result = links.path().join("result");
    let mut args = vec![
        "--no-write-lock-file".to_string(),
        "--print-build-logs".to_string(),
        "--out-link".to_string(),
        result.to_string_lossy().into_owned(),
        "--".to_string(),
        reference.to_string(),
    ];
    args.extend(extras.iter().cloned());
    let Some(locked) = guard::unshared(nix) else {
        return Err(Stop::new("the one-step build runs only in a store of the step's own"));
    };
    guard::build_for(nix, system, &args, &locked)?;
    // The main package's first output first (`result`; then `result-1`, `result-dev`...
    // sorted), each path once.
    let mut names: Vec<_> = std::fs::read_dir(links.path())?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("result"))
        .collect();
    names.sort();
    let mut results: Vec<String> = Vec::new();
    for name in names {
        let path = std::fs::canonicalize(links.path().join(name))?.to_string_lossy().into_owned();
        if !results.contains(&path) {
            results.push(path);
        }
    }
    store::record_roots(nix, &results)?;
    let (path_info, closure) = store::closure_of(nix, &results)?;
    std::fs::write(Path::new(META_DIR).join(ROOTS_FILE), tree::list_roots(&results))?;
    for path in &closure {
        let base = Path::new(path).file_name().unwrap_or_default();
        let dir = Path::new(OUT_DIR).join(base).join("nix/store");
        std::fs::create_dir_all(&dir)?;
        tree::copy(Path::new(path), &dir.join(base))?;
    }
    let mut eval = nix.nix_for(system);
    eval.args(["eval", "--json", "--no-write-lock-file", "--apply", PACKAGE, "--", reference]);
    let package = json_or_null(nix.quiet(&mut eval));
    let metadata =
        nix.quiet(nix.nix().args(["flake", "metadata", "--json", "--no-write-lock-file", "--", flake]));
    tree::make_extras(&Path::new(OUT_DIR).join(EXTRAS_TREE))?;
    let manifest = Manifest {
        manifest_version: SINGLE_MANIFEST_VERSION,
        results,
        laid_out: None,
        package: Some(package),
        flake: Some(json_or_null(metadata)),
        path_info,
    };
    write_json(&Path::new(META_DIR).join(MANIFEST_FILE), &manifest)?;
    say(&format!("closure of {} store paths copied", closure.len()));
    store::bound(nix)
}
