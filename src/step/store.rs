//! What the steps do to a Nix store beyond asking Nix: the persistent store swept of what
//! build users left and of planted lock files, paths taken from a step's `file://` binary
//! cache (content-addressed only), closures and registrations read, garbage-collector roots
//! and the bound. Builds go through [`super::guard`].

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::nix::{Nix, lines_of};
use super::outcome::{Outcome, Stop, say};

/// The store every Nix step works in.
pub const STORE: &str = "/nix/store";
/// Where nixfront records each build's garbage-collector roots.
const ROOTS: &str = "/nix/var/nix/gcroots/nixfront";
/// How many paths one Nix process gets on its command line.
pub const CHUNK: usize = 500;

/// What every step on the persistent store does first: sweep it, then verify it if asked.
pub fn prepare(nix: &Nix) -> Outcome<()> {
    sweep(Path::new(STORE))?;
    if nix.verify_store {
        say("verifying the Nix store (NIX_VERIFY_STORE=true)");
        if nix.run(nix.nix_store().args(["--verify", "--check-contents"])).is_err() {
            return Err(Stop::new(
                "the persistent Nix store is damaged; drop it with 'docker builder prune --filter \
                 type=exec.cachemount' and build again",
            ));
        }
        say("the Nix store is consistent");
    }
    Ok(())
}

/// The persistent store is mounted with sharing=private: this step has its instance to
/// itself. Nix gives every valid path to root, so what a build user owns in the store is junk
/// (a killed or failed build's output, or a plant), and a lock file that is not a plain file
/// of root's, alone, was planted (Nix, as root, would follow a symlink there, or write into the
/// file a hard link shares). Both go before any builder of this step runs; root's own entries
/// stay. Nothing is followed: entries are removed as the links or files they are.
pub fn sweep(store: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(store) else { return Ok(()) };
    let (mut count, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".links" {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let lock = name.to_string_lossy().ends_with(".lock");
        if meta.uid() != 0 || (lock && (!meta.is_file() || meta.nlink() > 1)) {
            bytes += super::tree::disk_usage(&entry.path());
            remove(&entry.path(), &meta)?;
            count += 1;
        }
    }
    if count > 0 {
        say(&format!(
            "swept {count} entries that earlier builds left in the Nix store ({} KiB)",
            bytes / 1024
        ));
    }
    Ok(())
}

fn remove(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

/// `nix copy ARGS` of `paths`, a `.drv` taken as itself, never as the derivation's outputs.
pub fn copy_paths(nix: &Nix, paths: &[String], args: &[&str]) -> Outcome<()> {
    let (drvs, plain): (Vec<&String>, Vec<&String>) = paths.iter().partition(|p| p.ends_with(".drv"));
    for chunk in plain.chunks(CHUNK) {
        nix.run(nix.nix().args(["copy", "--quiet"]).args(args).args(chunk))?;
    }
    for chunk in drvs.chunks(CHUNK) {
        nix.run(nix.nix().args(["copy", "--quiet", "--derivation"]).args(args).args(chunk))?;
    }
    Ok(())
}

/// The paths of `paths` this store lacks.
pub fn invalid(nix: &Nix, paths: &[String]) -> Outcome<Vec<String>> {
    let mut missing = Vec::new();
    for chunk in paths.chunks(CHUNK) {
        let mut check = nix.nix_store();
        check.args(["--check-validity", "--print-invalid"]).args(chunk);
        missing.extend(lines_of(&nix.run(&mut check)?));
    }
    Ok(missing)
}

/// Copies the paths of `paths` this store lacks from the `file://` binary cache in `dir` (a
/// step wrote it). Only content-addressed paths are taken: Nix computes their place from their
/// content, and refuses every other path of such a cache, which has no signature.
pub fn copy_content_addressed(nix: &Nix, dir: &str, paths: &[String]) -> Outcome<()> {
    let missing = invalid(nix, paths)?;
    if missing.is_empty() {
        return Ok(());
    }
    let from = format!("file://{dir}");
    copy_paths(nix, &missing, &["--option", "require-sigs", "true", "--from", &from])
}

/// The runtime closure of `paths`: `nix path-info --json` of it (what the paths decide, the same
/// in any store), and its paths (sorted).
pub fn closure_of(nix: &Nix, paths: &[String]) -> Outcome<(serde_json::Value, Vec<String>)> {
    let json = nix.run(nix.nix().args(["path-info", "--json", "--recursive", "--"]).args(paths))?;
    let mut info: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| Stop::new(format!("Nix's path-info is not JSON this nixfront reads: {e}")))?;
    crate::closure::keep_what_the_paths_decide(&mut info);
    // The paths, from the same answer (every shape Nix writes it in, as the frontend reads it).
    let list = crate::closure::parse_path_info(info.clone())
        .map_err(|e| Stop::new(format!("Nix's path-info is not what this nixfront reads: {e:#}")))?
        .into_iter()
        .map(|p| p.path)
        .collect();
    Ok((info, list))
}

/// Every path of `closure` and its registration, from `nix-store --query --requisites` of
/// `paths`, sorted.
pub fn requisites(nix: &Nix, paths: &[String]) -> Outcome<Vec<String>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut all = lines_of(&nix.run(nix.nix_store().args(["--query", "--requisites"]).args(paths))?);
    all.sort();
    all.dedup();
    Ok(all)
}

/// The registrations of `paths` (one `nix-store --dump-db` stream).
pub fn dump_db(nix: &Nix, paths: &[String]) -> Outcome<Vec<u8>> {
    let mut db = Vec::new();
    for chunk in paths.chunks(CHUNK) {
        db.extend(nix.run(nix.nix_store().arg("--dump-db").args(chunk))?);
    }
    Ok(db)
}

/// Records `paths`, and their derivations, as garbage-collector roots of one build (with
/// keep-outputs a derivation keeps its build-time inputs), so that a bounded store keeps what
/// the latest builds need.
pub fn record_roots(nix: &Nix, paths: &[String]) -> Outcome<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tag: String = paths.concat().chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let dir = Path::new(ROOTS).join(format!("{now}-{}", tag.to_ascii_lowercase()));
    std::fs::create_dir_all(&dir)?;
    for (i, path) in paths.iter().enumerate() {
        std::os::unix::fs::symlink(path, dir.join(format!("path-{i}")))?;
        let deriver = nix.quiet(nix.nix_store().args(["--query", "--deriver", path])).unwrap_or_default();
        let deriver = String::from_utf8_lossy(&deriver).trim().to_string();
        if deriver.starts_with("/nix/store/") && deriver.ends_with(".drv") && Path::new(&deriver).exists() {
            std::os::unix::fs::symlink(&deriver, dir.join(format!("drv-{i}")))?;
        }
    }
    Ok(())
}

/// A bounded store (NIX_STORE_MAX): past the bound, drops the roots of all but the most
/// recent builds and collects garbage, keeping their closures and build-time inputs.
pub fn bound(nix: &Nix) -> Outcome<()> {
    let Some(max) = nix.store_max else { return Ok(()) };
    let mut size = super::tree::disk_usage(Path::new(STORE));
    if size <= max {
        return Ok(());
    }
    for keep in [3, 1] {
        say(&format!(
            "the Nix store holds {size} bytes, over NIX_STORE_MAX={max}: collecting garbage, keeping the \
             {keep} most recent builds"
        ));
        let mut builds: Vec<_> =
            std::fs::read_dir(ROOTS)?.filter_map(Result::ok).map(|e| e.file_name()).collect();
        builds.sort();
        builds.reverse();
        for old in builds.iter().skip(keep) {
            std::fs::remove_dir_all(Path::new(ROOTS).join(old))?;
        }
        let mut gc = nix.nix_store();
        gc.args(["--gc", "--option", "keep-outputs", "true", "--option", "keep-derivations", "true"]);
        let _ = nix.quiet(&mut gc);
        size = super::tree::disk_usage(Path::new(STORE));
        if size <= max {
            break;
        }
    }
    say(&format!("the Nix store holds {size} bytes after collecting garbage"));
    if size > max {
        say(&format!("warning: this build's own closure and inputs exceed NIX_STORE_MAX={max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_takes_planted_locks_and_keeps_root_s_own() {
        let store = tempfile::tempdir().unwrap();
        let s = store.path();
        std::fs::create_dir(s.join("abc-kept")).unwrap();
        std::fs::write(s.join("abc-kept.lock"), "").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", s.join("def-planted.lock")).unwrap();
        std::fs::write(s.join("target"), "").unwrap();
        std::fs::hard_link(s.join("target"), s.join("ghi-linked.lock")).unwrap();
        std::fs::create_dir(s.join(".links")).unwrap();
        sweep(s).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(s)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // Running as root in the tests' sandbox: the hard-linked target survives as a file.
        assert_eq!(left, [".links", "abc-kept", "abc-kept.lock", "target"]);
        assert!(Path::new("/etc/shadow").exists(), "a link is removed, never followed");
    }
}
