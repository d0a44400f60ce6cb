//! The dependency step on the persistent store: the package's direct inputs built or fetched
//! (their derivations taken from the evaluation's binary cache where this instance of the
//! store lacks them), and their runtime closure's path-info and registrations written for the
//! package step.

use std::collections::BTreeSet;
use std::path::Path;

use super::nix::Nix;
use super::outcome::{Outcome, say, write_json};
use super::{guard, store};
use crate::plan::output::{DEPS_DB_FILE, DEPS_INFO_FILE, DRVS_DIR, META_DIR};

pub fn run(nix: &Nix, system: &str, inputs: &[(String, String)]) -> Outcome<()> {
    store::prepare(nix)?;
    let drvs: Vec<String> =
        inputs.iter().map(|(d, _)| d.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let outputs: Vec<String> =
        inputs.iter().map(|(_, o)| o.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    store::copy_content_addressed(nix, DRVS_DIR, &drvs)?;
    guard::realise_locked(nix, system, &drvs)?;
    store::record_roots(nix, &outputs)?;
    let (info, closure) = store::closure_of(nix, &outputs)?;
    write_json(&Path::new(META_DIR).join(DEPS_INFO_FILE), &info)?;
    std::fs::write(Path::new(META_DIR).join(DEPS_DB_FILE), store::dump_db(nix, &closure)?)?;
    say(&format!("{} inputs realised, closure of {} store paths", drvs.len(), closure.len()));
    store::bound(nix)
}
