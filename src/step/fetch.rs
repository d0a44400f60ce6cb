//! The fetch step: each locked input of flake.lock fetched as Nix fetches a flake's inputs
//! (`builtins.fetchTree` of its locked attributes) into a `file://` binary cache (its
//! output, content-addressed: a store takes a path in only if its content matches). Nothing
//! of the flake is evaluated here; its nixConfig is read by the frontend ([`crate::flakenix`]).

use std::path::Path;

use serde_json::Value;

use super::nix::Nix;
use super::outcome::{Outcome, Stop, say, write_json};
use super::store;
use crate::plan::output::{FETCHED_DIR, TMP_DIR};

/// Where the fetched inputs' paths are listed in the output, for the evaluation step.
pub const FETCHED_PATHS: &str = "paths.json";
/// The binary cache of them, in the output.
pub const FETCHED_CACHE: &str = "cache";

/// The inputs' store paths, from their locked attributes in `./locked.json`.
const FETCH_ALL: &str =
    "map (a: (builtins.fetchTree a).outPath) (builtins.fromJSON (builtins.readFile ./locked.json))";

pub fn run(nix: &Nix, locked: &[Value]) -> Outcome<()> {
    store::prepare(nix)?;
    let out = Path::new(FETCHED_DIR);
    std::fs::create_dir_all(out.join(FETCHED_CACHE))?;
    let mut paths: Vec<String> = Vec::new();
    if !locked.is_empty() {
        let work = tempfile::Builder::new().prefix("fetch.").tempdir_in(TMP_DIR)?;
        write_json(&work.path().join("locked.json"), &locked)?;
        let expr = in_dir(work.path(), FETCH_ALL);
        let json = nix.run(nix.nix().args(["eval", "--impure", "--json", "--expr", &expr]))?;
        paths = serde_json::from_slice(&json)
            .map_err(|e| Stop::new(format!("Nix's list of fetched inputs: {e}")))?;
        let to = format!("file://{}?compression=none", out.join(FETCHED_CACHE).display());
        nix.run(nix.nix().args(["copy", "--to", &to]).args(&paths))?;
    }
    write_json(&out.join(FETCHED_PATHS), &paths)?;
    say(&format!("{} locked inputs fetched", paths.len()));
    Ok(())
}

/// `expr` with `./` meaning `dir` (a directory of nixfront's own: no user text in Nix code).
fn in_dir(dir: &Path, expr: &str) -> String {
    expr.replace("./", &format!("{}/", dir.display()))
}
