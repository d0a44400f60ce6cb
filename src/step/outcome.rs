//! How a step ends and what it says: [`Stop`] (a failure the user reads, and the exit code),
//! [`say`] for the step's log, [`write_json`] for its answer.

use std::path::Path;

use crate::plan::output::{EXIT_CANNOT_RUN, EXIT_NO_NIX, SELF_DIR};
use crate::plan::spec::Failure;

/// Why a step stops: a failure the user reads ([`Failure`]), with the exit code BuildKit
/// shows (the frontend reads the cause from the failure, not from the code).
#[derive(Debug)]
pub struct Stop {
    pub failure: Box<Failure>,
    pub code: i32,
}

impl Stop {
    /// A failure that is ours to explain: `summary` says it.
    pub fn new(summary: impl Into<String>) -> Stop {
        Stop { failure: Box::new(Failure { summary: summary.into(), ..Default::default() }), code: 1 }
    }

    /// The builder image has no `nix` on `path` (the image's PATH, after nixfront's own
    /// directory, which is left out of the message).
    pub fn no_nix(path: &str) -> Stop {
        let theirs: Vec<&str> = path.split(':').filter(|dir| *dir != SELF_DIR).collect();
        let summary = format!("the builder image has no `nix` on its PATH ({})", theirs.join(":"));
        Stop { code: EXIT_NO_NIX, ..Stop::new(summary) }
    }

    pub fn cannot_run(system: &str, native: &str) -> Stop {
        let summary =
            format!("this {native} builder cannot run {system} programs, and Nix had to build some");
        Stop { code: EXIT_CANNOT_RUN, ..Stop::new(summary) }
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Stop {
        Stop::new(format!("nixfront's step could not read or write its files: {e}"))
    }
}

pub type Outcome<T> = Result<T, Stop>;

/// Writes `value` as JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Outcome<()> {
    let text =
        serde_json::to_vec(value).map_err(|e| Stop::new(format!("cannot write {}: {e}", path.display())))?;
    std::fs::write(path, text)?;
    Ok(())
}

/// Says `text` in the step's log, as nixfront.
pub fn say(text: &str) {
    eprintln!("nixfront: {text}");
}
