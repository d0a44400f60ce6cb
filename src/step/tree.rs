//! Store paths copied into a step's outputs as the image's layers hold them
//! (`nix/store/<base>`): modes, owners and times kept, links copied as links, and nixfront's
//! fixed time on the directories it makes, so that the same paths give a byte-identical tree.
//! Also what the root packages hold (the listing the image root is planned from) and the size
//! of a tree on disk.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

use crate::plan::output::{FIXED_TIME_NS, LISTING_DEPTH};

/// nixfront's fixed time: 1 s after the epoch, as Nix gives store files.
fn fixed_time() -> FileTime {
    FileTime::from_unix_time(FIXED_TIME_NS / 1_000_000_000, 0)
}

/// Gives `path` (a link itself, not its target) nixfront's fixed time.
pub fn fix_time(path: &Path) -> std::io::Result<()> {
    filetime::set_symlink_file_times(path, fixed_time(), fixed_time())
}

/// Copies `source` (a file, directory or link) to `dest`, which does not exist yet, as
/// `cp -a` does: contents, mode, owner and times; links as links.
pub fn copy(source: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(source)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(source)?, dest)?;
    } else if kind.is_dir() {
        std::fs::create_dir(dest)?;
        let mut entries: Vec<_> = std::fs::read_dir(source)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy(&entry.path(), &dest.join(entry.file_name()))?;
        }
    } else if kind.is_file() {
        std::fs::copy(source, dest)?;
    } else {
        return Err(std::io::Error::other(format!(
            "{} is neither a file, a directory nor a link",
            source.display()
        )));
    }
    std::os::unix::fs::lchown(dest, Some(meta.uid()), Some(meta.gid()))?;
    if !kind.is_symlink() {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let (atime, mtime) =
        (FileTime::from_last_access_time(&meta), FileTime::from_last_modification_time(&meta));
    filetime::set_symlink_file_times(dest, atime, mtime)
}

/// Places `paths` in `dir` as `nix/store/<base>` (a layer's tree), with nixfront's fixed time
/// on the directories it makes.
pub fn place(paths: &[String], dir: &Path) -> std::io::Result<()> {
    let store = dir.join("nix/store");
    std::fs::create_dir_all(&store)?;
    for path in paths {
        let base = Path::new(path)
            .file_name()
            .ok_or_else(|| std::io::Error::other(format!("{path} has no name")))?;
        copy(Path::new(path), &store.join(base))?;
    }
    fix_time(&store)?;
    fix_time(&dir.join("nix"))
}

/// What nixfront adds to the image root, in `dir`: `tmp`, mode 1777, with the fixed time.
pub fn make_extras(dir: &Path) -> std::io::Result<()> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    fix_time(&tmp)
}

/// What the root packages `roots` hold, for nixfront to link into the image root: `INDEX d
/// ./REL` for a directory, `INDEX f ./REL` for anything else, INDEX counting the packages
/// from 0, down to [`LISTING_DEPTH`] levels (the listing `layers::roots` reads).
pub fn list_roots(roots: &[String]) -> String {
    let mut text = String::new();
    for (i, root) in roots.iter().enumerate() {
        if !Path::new(root).is_dir() {
            continue;
        }
        let mut found = Vec::new();
        walk(Path::new(root), Path::new("."), LISTING_DEPTH, &mut found);
        found.sort();
        for (rel, is_dir) in found {
            let kind = if is_dir { 'd' } else { 'f' };
            text.push_str(&format!("{i} {kind} {}\n", rel.display()));
        }
    }
    text
}

fn walk(dir: &Path, rel: &Path, depth: usize, found: &mut Vec<(std::path::PathBuf, bool)>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let rel = rel.join(entry.file_name());
        found.push((rel.clone(), is_dir));
        if is_dir {
            walk(&entry.path(), &rel, depth - 1, found);
        }
    }
}

/// The space `path` takes on disk, in bytes, on its own filesystem, links not followed.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().filter_map(Result::ok) {
            let same_fs = entry.metadata().is_ok_and(|m| m.dev() == meta.dev());
            if same_fs {
                total += disk_usage(&entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_laid_out_tree_keeps_modes_links_and_times_and_is_the_same_each_time() {
        let store = tempfile::tempdir().unwrap();
        let path = store.path().join("abc-hello-1.0");
        std::fs::create_dir_all(path.join("bin")).unwrap();
        std::fs::write(path.join("bin/hello"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path.join("bin/hello"), std::fs::Permissions::from_mode(0o555)).unwrap();
        std::os::unix::fs::symlink("hello", path.join("bin/hi")).unwrap();
        for p in [path.join("bin/hello"), path.join("bin/hi"), path.join("bin"), path.clone()] {
            fix_time(&p).unwrap();
        }
        let paths = vec![path.to_string_lossy().into_owned()];
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        place(&paths, one.path()).unwrap();
        place(&paths, two.path()).unwrap();
        let copied = one.path().join("nix/store/abc-hello-1.0");
        let meta = std::fs::metadata(copied.join("bin/hello")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o555);
        assert_eq!(meta.mtime(), 1);
        assert_eq!(std::fs::read_link(copied.join("bin/hi")).unwrap(), Path::new("hello"));
        assert_eq!(std::fs::symlink_metadata(copied.join("bin/hi")).unwrap().mtime(), 1);
        assert_eq!(std::fs::metadata(one.path().join("nix/store")).unwrap().mtime(), 1);
        assert_eq!(list(one.path()), list(two.path()));
    }

    fn list(dir: &Path) -> Vec<(String, u32, i64)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, m.mode(), m.mtime()));
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_roots_listing_names_directories_and_the_rest_down_to_its_depth() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("bin/app"), "").unwrap();
        std::fs::create_dir_all(root.path().join("a/b/c/d/e/f")).unwrap();
        let text = list_roots(&[root.path().to_string_lossy().into_owned(), "/nonexistent".into()]);
        assert!(text.contains("0 d ./bin\n") && text.contains("0 f ./bin/app\n"), "{text}");
        assert!(text.contains("0 d ./a/b/c/d/e\n") && !text.contains("./a/b/c/d/e/f"), "{text}");
    }

    #[test]
    fn extras_are_a_sticky_tmp_with_the_fixed_time() {
        let dir = tempfile::tempdir().unwrap();
        make_extras(dir.path()).unwrap();
        let meta = std::fs::metadata(dir.path().join("tmp")).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o1777, 1));
    }
}
