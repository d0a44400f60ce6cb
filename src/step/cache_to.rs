//! The cache-to step (`NIX_CACHE_TO`): the paths of the build, signed with the
//! `nix-signing-key` secret and uploaded to the binary cache the user names, those it lacks
//! only (Nix asks it first). It runs in a store of its own made of the dependency layers and
//! the package's own paths (the image's closure and the build-time dependencies), which it
//! registers from what the steps answered; it builds and evaluates nothing, so no derivation
//! runs where the key is. The key and the cache's credentials are secrets mounted in this step
//! alone.

use std::collections::BTreeSet;
use std::path::Path;

use super::conf::non_empty;
use super::nix::Nix;
use super::outcome::{Outcome, Stop, say};
use crate::plan::output::{META_DIR, SPEC_DIR, SPEC_PATH_INFO, SPEC_RECORDS, UPLOADED_FILE};
use crate::plan::secrets::{AWS_CREDENTIALS, SECRETS_DIR, SIGNING_KEY};
use crate::plan::spec::CacheTo;

pub fn run(nix: &Nix, work: &CacheTo) -> Outcome<()> {
    let key = Path::new(SECRETS_DIR).join(SIGNING_KEY);
    if !non_empty(&key) {
        return Err(Stop::new(format!(
            "NIX_CACHE_TO needs the key that signs what it uploads: build with --secret \
             id={SIGNING_KEY},src=FILE (a secret key made by `nix-store --generate-binary-cache-key`); \
             nothing was uploaded"
        )));
    }
    let records = std::fs::read(Path::new(SPEC_DIR).join(SPEC_RECORDS))?;
    nix.run_with(nix.nix_store().arg("--load-db"), Some(&records))?;
    let registered: BTreeSet<String> = registered_paths(&String::from_utf8_lossy(&records));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(SPEC_DIR).join(SPEC_PATH_INFO))?)
            .map_err(|e| Stop::new(format!("the closure's path-info is not JSON: {e}")))?;
    let own = crate::closure::registrations(&info, &registered)
        .map_err(|e| Stop::new(format!("the closure's path-info is not what this nixfront reads: {e:#}")))?;
    nix.run_with(nix.nix_store().arg("--load-db"), Some(own.as_bytes()))?;

    let to = upload_uri(&work.uri, &key.to_string_lossy());
    say(&format!("signing and uploading what {} lacks of {} store paths", work.uri, work.paths.len()));
    let mut copy = nix.nix();
    copy.args(["copy", "--to", &to, "--"]).args(&work.paths);
    let credentials = Path::new(SECRETS_DIR).join(AWS_CREDENTIALS);
    if non_empty(&credentials) {
        copy.env("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    }
    nix.run(&mut copy)?;
    let line = format!("{} store paths are in {}", work.paths.len(), work.uri);
    say(&line);
    std::fs::write(Path::new(META_DIR).join(UPLOADED_FILE), line)?;
    Ok(())
}

/// The paths of a `nix-store --dump-db` stream: each record is its path, hash, size, deriver,
/// the number of references and the references.
fn registered_paths(records: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut lines = records.lines();
    while let Some(path) = lines.next() {
        let mut fields = lines.by_ref().take(4);
        let count = fields.nth(3).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        lines.by_ref().take(count).for_each(drop);
        paths.insert(path.to_string());
    }
    paths
}

/// The store URI Nix uploads to: the user's, with the signing key, and zstd compression
/// unless the user chose one (xz, Nix's default, takes minutes for a closure of GBs).
fn upload_uri(uri: &str, key: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    let mut to = format!("{uri}{separator}secret-key={key}");
    if !uri.contains("compression=") {
        to.push_str("&compression=zstd");
    }
    to
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_name_their_paths() {
        let records =
            "/nix/store/a-x\nabc\n10\n\n1\n/nix/store/b-y\n/nix/store/b-y\ndef\n5\n/nix/store/d.drv\n0\n";
        let paths: Vec<String> = registered_paths(records).into_iter().collect();
        assert_eq!(paths, ["/nix/store/a-x", "/nix/store/b-y"]);
    }

    #[test]
    fn the_upload_uri_carries_the_key_and_zstd_unless_chosen() {
        assert_eq!(
            upload_uri("https://c.example/fleet", "/k"),
            "https://c.example/fleet?secret-key=/k&compression=zstd"
        );
        assert_eq!(
            upload_uri("s3://bucket?region=eu-west-1&compression=xz", "/k"),
            "s3://bucket?region=eu-west-1&compression=xz&secret-key=/k"
        );
    }
}
