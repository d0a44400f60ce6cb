//! The report step, run in the frontend's own image after a step failed: the failures the
//! build's steps left in the failure box, read (as data: each must parse as a
//! [`Failure`]) into one answer, and taken out of the box, with what builds of the last days
//! left there and never collected.

use std::path::Path;

use super::failure::valid_id;
use super::outcome::{Outcome, Stop, write_json};
use crate::plan::output::{FAILURES_DIR, FAILURES_FILE, META_DIR};
use crate::plan::spec::Failure;

/// How long a failure nobody collected stays in the box.
const KEPT_SECONDS: u64 = 24 * 3600;

pub fn run(build: &str) -> Outcome<()> {
    if !valid_id(build) {
        return Err(Stop::new(format!("{build:?} is not a build id")));
    }
    let found = collect(Path::new(FAILURES_DIR), build);
    write_json(&Path::new(META_DIR).join(FAILURES_FILE), &found)
}

/// The failures under `<dir>/<build>`, taken out; stale builds' removed too.
pub fn collect(dir: &Path, build: &str) -> Vec<Failure> {
    let mine = dir.join(build);
    let mut found = Vec::new();
    if std::fs::symlink_metadata(&mine).is_ok_and(|m| m.is_dir()) {
        let mut files: Vec<_> =
            std::fs::read_dir(&mine).into_iter().flatten().filter_map(Result::ok).collect();
        files.sort_by_key(|e| e.file_name());
        for file in files {
            let plain =
                std::fs::symlink_metadata(file.path()).is_ok_and(|m| m.is_file() && m.len() < 1 << 20);
            let read = plain.then(|| std::fs::read(file.path()).ok()).flatten();
            found.extend(read.and_then(|bytes| serde_json::from_slice::<Failure>(&bytes).ok()));
        }
        let _ = std::fs::remove_dir_all(&mine);
    }
    let now = std::time::SystemTime::now();
    for entry in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age.as_secs() > KEPT_SECONDS));
        if old && valid_id(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_collects_its_own_failures_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mine, theirs) = ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        let failure = |step: &str| Failure { step: step.into(), summary: "s".into(), ..Default::default() };
        super::super::failure::leave(dir.path(), mine, &failure("evaluate")).unwrap();
        super::super::failure::leave(dir.path(), theirs, &failure("package")).unwrap();
        std::fs::write(dir.path().join(mine).join("forged.json"), "not json").unwrap();
        assert_eq!(collect(dir.path(), mine), [failure("evaluate")]);
        assert!(collect(dir.path(), mine).is_empty(), "taken out");
        assert!(dir.path().join(theirs).is_dir(), "another build's stays");
    }
}
