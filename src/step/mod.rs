//! The program inside BuildKit's steps: `nixfront step <name>`, this same static binary,
//! mounted from the frontend's own image into the builder image, where it needs nothing but
//! `nix`. It reads the step's spec ([`crate::plan::spec`]), calls Nix with plain arguments
//! ([`nix`]), and writes the step's answer with serde. A failure is told twice: in full on
//! stderr, which BuildKit's progress shows as the step's log, and as a
//! [`Failure`](crate::plan::spec::Failure) in the build's failure box
//! ([`crate::plan::output::FAILURES_DIR`]), which the frontend reads back (the report step) to
//! make its error say what failed, in the user's terms.
//!
//! One module per step; [`nix`] is how every step calls Nix (on the shared store, a Nix that
//! builds nothing), [`guard`] the one way a step runs builders (the lock file of every path
//! they may make root write, made first), [`store`] what steps do to the persistent store
//! (sweep, copies, roots, bound), [`conf`] what Nix is given before it runs, [`tree`] places
//! store paths in outputs; one module per step, named as [`Work::name`] names it.

mod cache_to;
mod conf;
mod evaluate;
mod failure;
mod fetch;
mod guard;
mod lay_out;
mod nix;
mod outcome;
mod package;
mod realise;
mod report;
mod root;
mod single;
mod store;
mod tree;

use std::path::Path;

use crate::plan::output::{SPEC_DIR, TMP_DIR};
use crate::plan::spec::{Spec, Work};
use outcome::{Outcome, Stop};

/// Runs `nixfront step <name>`: the exit code.
pub fn main(args: &[String]) -> i32 {
    let Some(name) = args.first() else {
        eprintln!("nixfront step: which step? (nixfront runs its steps itself, inside BuildKit)");
        return 2;
    };
    let spec = match read_spec(Path::new(SPEC_DIR)) {
        Ok(spec) if spec.work.name() == name => spec,
        Ok(spec) => {
            eprintln!("nixfront step {name}: the spec is for step {}", spec.work.name());
            return 2;
        }
        Err(e) => {
            eprintln!("nixfront step {name}: {e}");
            return 2;
        }
    };
    match run(&spec) {
        Ok(()) => 0,
        Err(mut stop) => {
            stop.failure.step = name.clone();
            failure::tell(&stop.failure);
            stop.code
        }
    }
}

fn read_spec(dir: &Path) -> Result<Spec, String> {
    let path = dir.join(crate::plan::spec::SPEC_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read the step's spec: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the step's spec is not this nixfront's: {e}"))
}

fn run(spec: &Spec) -> Outcome<()> {
    std::fs::create_dir_all(TMP_DIR)?;
    let nix = || match &spec.settings {
        Some(settings) => nix::Nix::setup(settings),
        None => Err(Stop::new("the step's spec has no Nix settings")),
    };
    match &spec.work {
        Work::Fetch { locked } => fetch::run(&nix()?, locked),
        Work::Evaluate(work) => evaluate::run(&nix()?, work),
        Work::Realise { system, inputs } => realise::run(&nix()?, system, inputs),
        Work::LayOut { system, groups } => lay_out::run(&nix()?, system, groups),
        Work::Package(work) => package::run(&nix()?, work),
        Work::Single { reference, flake, system, extras } => {
            single::run(&nix()?, reference, flake, system, extras)
        }
        Work::Packages { attribute } => evaluate::packages(&nix()?, attribute),
        Work::ImageRoot { entries, notices } => root::run(entries, notices),
        Work::Report { build } => report::run(build),
        Work::CacheTo(work) => cache_to::run(&nix()?, work),
    }
}
