//! The image-root step, which runs no Nix: the package's own store paths copied in from the
//! seed when there is one (so that they and the image root are one layer), then the entries
//! nixfront planned (layers/roots.rs), parents first, each with its owner and mode and
//! nixfront's fixed time, so that the same plan makes the same layer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::outcome::{Outcome, Stop, say};
use super::tree;
use crate::plan::output::{ROOT_OUT_DIR, ROOT_SEED_DIR};
use crate::plan::spec::RootEntry;

pub fn run(entries: &[RootEntry], notices: &[String]) -> Outcome<()> {
    for notice in notices {
        say(&format!("warning: {notice}"));
    }
    make(entries, Path::new(ROOT_SEED_DIR), Path::new(ROOT_OUT_DIR))
}

/// Makes `entries` in `out`, on a copy of `seed` when it is there.
pub fn make(entries: &[RootEntry], seed: &Path, out: &Path) -> Outcome<()> {
    std::fs::create_dir_all(out)?;
    if seed.is_dir() {
        for entry in std::fs::read_dir(seed)? {
            let entry = entry?;
            tree::copy(&entry.path(), &out.join(entry.file_name()))?;
        }
    }
    for entry in entries {
        match entry {
            RootEntry::Dir { path, mode, uid, gid } => {
                let at = inside(out, path)?;
                std::fs::create_dir_all(&at)?;
                own(&at, *mode, *uid, *gid)?;
            }
            RootEntry::Link { path, target } => std::os::unix::fs::symlink(target, inside(out, path)?)?,
            RootEntry::File { path, mode, uid, gid, text } => {
                let at = inside(out, path)?;
                std::fs::write(&at, text)?;
                own(&at, *mode, *uid, *gid)?;
            }
        }
    }
    for entry in entries {
        let (RootEntry::Dir { path, .. } | RootEntry::Link { path, .. } | RootEntry::File { path, .. }) =
            entry;
        tree::fix_time(&inside(out, path)?)?;
    }
    Ok(())
}

fn own(path: &Path, mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// `path` (absolute, in the image) under `out`; a path that climbs out is refused.
fn inside(out: &Path, path: &str) -> Outcome<PathBuf> {
    let rel = Path::new(path);
    if !rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Stop::new(format!("the image root's entry {path:?} is not a plain absolute path")));
    }
    Ok(out.join(rel.strip_prefix("/").unwrap_or(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn entries_are_made_parents_first_with_their_modes_and_the_fixed_time() {
        let (out, seed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(seed.path().join("nix/store/abc-app/bin")).unwrap();
        let entries = vec![
            RootEntry::Dir { path: "/etc".into(), mode: 0o755, uid: 0, gid: 0 },
            RootEntry::File {
                path: "/etc/passwd".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                text: "root:x:0:0::/:\n".into(),
            },
            RootEntry::Link { path: "/bin".into(), target: "/nix/store/abc-app/bin".into() },
            RootEntry::Dir { path: "/data".into(), mode: 0o700, uid: 1000, gid: 1000 },
        ];
        make(&entries, seed.path(), out.path()).unwrap();
        let o = out.path();
        assert!(o.join("nix/store/abc-app/bin").is_dir(), "the seed is copied in");
        assert_eq!(std::fs::read_to_string(o.join("etc/passwd")).unwrap(), "root:x:0:0::/:\n");
        assert_eq!(std::fs::read_link(o.join("bin")).unwrap(), Path::new("/nix/store/abc-app/bin"));
        let data = std::fs::metadata(o.join("data")).unwrap();
        assert_eq!((data.mode() & 0o7777, data.uid(), data.mtime()), (0o700, 1000, 1));
        assert_eq!(std::fs::symlink_metadata(o.join("bin")).unwrap().mtime(), 1);
    }

    #[test]
    fn an_entry_that_climbs_out_is_refused() {
        let out = tempfile::tempdir().unwrap();
        let entries = vec![RootEntry::Link { path: "/../escape".into(), target: "/x".into() }];
        assert!(make(&entries, Path::new("/nonexistent"), out.path()).is_err());
        assert!(!out.path().parent().unwrap().join("escape").exists());
    }
}
