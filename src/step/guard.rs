//! The store guard: the one way a step runs builders (or any untrusted process) where root
//! then writes. On the persistent store, which other projects read, every Nix process builds
//! nothing and imports nothing built while evaluating ([`Nix::nix`]); a build that runs
//! builders needs a [`Locked`], which only [`lock_writes`] makes there: the lock file of
//! every path the build may write, made fresh by root before any builder runs. A store that
//! is the step's own needs no lock ([`unshared`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::nix::{Nix, lines_of};
use super::outcome::{Outcome, Stop, say};
use super::store::{CHUNK, STORE, invalid, requisites, sweep};
use crate::plan::output::TMP_DIR;

/// Proof that the lock file of every store path a build may write exists and is root's alone
/// ([`lock_writes`]), or that the step's store is its own ([`unshared`]): the one way a step
/// gets a Nix that runs builders ([`Nix::locked_build`]). Nothing else makes one.
#[derive(Debug)]
pub struct Locked(());

/// The store guard, for a step on the store other projects read: before any builder of the
/// step runs, root makes the lock file of every path building `drvs` could write (a build
/// user cannot remove a root's file from the sticky store, nor plant a link where one is).
/// The paths are every output of every derivation in the closure of `drvs` that the store
/// lacks (a superset of what Nix plans, whatever a substituter answers), and every source
/// there that it lacks; a derivation whose outputs are known only once built
/// (content-addressed, impure) cannot be locked first, and is refused.
pub fn lock_writes(nix: &Nix, drvs: &[String]) -> Outcome<Locked> {
    let closure = requisites(nix, drvs)?;
    let (derivations, sources): (Vec<String>, Vec<String>) =
        closure.into_iter().partition(|p| p.ends_with(".drv"));
    let mut writes = sources;
    for chunk in derivations.chunks(CHUNK) {
        let outputs = nix.quiet(nix.nix_store().args(["--query", "--outputs"]).args(chunk));
        match outputs {
            Ok(outputs) => writes.extend(lines_of(&outputs)),
            Err(why) => {
                return Err(Stop::new(format!(
                    "a derivation to build has store paths Nix knows only once it is built ({why}); \
                     nixfront builds those only in a store of the step's own: build with \
                     --build-arg NIX_PERSISTENT_STORE=false"
                )));
            }
        }
    }
    prelock(&invalid(nix, &writes)?)
}

/// The proof for a step whose store nobody else reads (the package step's, the one-step
/// build's, or any step without the persistent store).
pub fn unshared(nix: &Nix) -> Option<Locked> {
    (!nix.shared).then_some(Locked(()))
}

/// Builds the derivations `drvs` for `system` (their outputs; fetched where a substituter has
/// them): on the shared store only after [`lock_writes`].
pub fn realise_locked(nix: &Nix, system: &str, drvs: &[String]) -> Outcome<()> {
    let locked = match unshared(nix) {
        Some(own) => own,
        None => lock_writes(nix, drvs)?,
    };
    let mut args = vec!["--no-link".to_string(), "--print-build-logs".to_string()];
    args.extend(drvs.iter().map(|d| nix.facts.outputs_of(d)));
    let built = build_for(nix, system, &args, &locked);
    if nix.shared {
        // The builders are gone (Nix ends a build user's processes with its build): what
        // they left goes before root does anything more in this step (roots, the bound's
        // garbage collection), whether the build succeeded or not.
        sweep(Path::new(STORE))?;
    }
    built
}

/// `nix build ARGS` for `system`. A builder that cannot run the system's programs may still
/// substitute them or hand them to remote builders: Nix builds nothing locally then
/// (max-jobs 0), and when something had to be, the step says so.
pub fn build_for(nix: &Nix, system: &str, args: &[String], locked: &Locked) -> Outcome<()> {
    if runs_here(nix, system) {
        return nix.run(locked_build(nix, system, locked).arg("build").args(args)).map(drop);
    }
    say(&format!(
        "this {} builder cannot run {system} programs; substituting and remote builders only",
        nix.native
    ));
    let mut build = locked_build(nix, system, locked);
    build.args(["--option", "max-jobs", "0", "build"]).args(args);
    nix.run(&mut build).map(drop).map_err(|stop| {
        let mut cannot = Stop::cannot_run(system, &nix.native);
        cannot.failure.log = stop.failure.log;
        cannot
    })
}

/// Whether this builder runs `system`'s programs: its own system's always; another's when
/// nixfront's probe for it ([`crate::probe`]) runs, natively or through an emulator the
/// builder's host registered. A system without a probe is left to Nix to try.
fn runs_here(nix: &Nix, system: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if system == nix.native {
        return true;
    }
    let Some(elf) = crate::probe::executable(system) else { return true };
    let probe = Path::new(TMP_DIR).join(crate::probe::file_name(system));
    let written = std::fs::write(&probe, elf)
        .and_then(|()| std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o555)));
    if written.is_err() {
        return true;
    }
    let status = std::process::Command::new(&probe).stdin(std::process::Stdio::null()).output();
    status.is_ok_and(|s| s.status.code() == Some(i32::from(crate::probe::STATUS)))
}

/// Makes a lock file, root's own, for every store path in `paths`, before any builder runs:
/// Nix opens `<path>.lock` when it writes a path and follows a symlink there. A build user
/// cannot remove a root's file from the store (it is sticky). One that is there already, a
/// plain file of root's alone, was left by an earlier step and serves as it is. Mode 0600, as
/// Nix makes them: a build user cannot open one to hold its lock.
fn prelock(paths: &[String]) -> Outcome<Locked> {
    use std::os::unix::fs::OpenOptionsExt;
    for path in paths {
        let lock = format!("{path}.lock");
        if std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&lock).is_ok() {
            continue;
        }
        let meta = std::fs::symlink_metadata(&lock)?;
        if !meta.is_file() || meta.uid() != 0 || meta.nlink() != 1 {
            return Err(Stop::new(format!(
                "{lock} exists before Nix ran and is not root's alone; refusing to build over it"
            )));
        }
    }
    Ok(Locked(()))
}

/// `nix` for `system` that may run builders: with the proof that what it may write is locked
/// ([`lock_writes`]) or that the store is the step's own. On the shared store it still
/// imports nothing built while evaluating.
pub fn locked_build(nix: &Nix, system: &str, _locked: &Locked) -> Command {
    nix.nix_with_builders(system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_is_made_fresh_or_kept_only_when_root_s_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc-x").to_string_lossy().into_owned();
        prelock(std::slice::from_ref(&path)).unwrap();
        assert!(Path::new(&format!("{path}.lock")).is_file());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(format!("{path}.lock")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "no build user opens it");
        prelock(std::slice::from_ref(&path)).unwrap();
        let planted = dir.path().join("def-y").to_string_lossy().into_owned();
        std::os::unix::fs::symlink("/etc/passwd", format!("{planted}.lock")).unwrap();
        let stop = prelock(&[planted]).unwrap_err();
        assert!(stop.failure.summary.contains("refusing"), "{}", stop.failure.summary);
        let shared = dir.path().join("ghi-z").to_string_lossy().into_owned();
        std::fs::write(dir.path().join("target"), "").unwrap();
        std::fs::hard_link(dir.path().join("target"), format!("{shared}.lock")).unwrap();
        assert!(prelock(&[shared]).is_err(), "a hard link shares its file");
    }

    #[test]
    fn only_the_guard_gets_a_nix_that_runs_builders() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/step");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            // The code, not its tests (which come last in each file).
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let calls = code.matches("nix_with_builders(").count();
            match name.as_str() {
                "guard.rs" => assert_eq!(calls, 1, "the one call"),
                "nix.rs" => assert_eq!(calls, 1, "its definition"),
                _ => assert_eq!(calls, 0, "{name} runs builders without the guard"),
            }
        }
    }
}
