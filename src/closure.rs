//! The runtime closure of a build, read from the manifest the build script writes.
//!
//! `nix path-info --json -r` changed shape across Nix releases: an array of objects with a
//! `path` field (2.8 and for years after), then an object keyed by store path; newer releases
//! may also give references as bare `hash-name`s. All of them parse to one [`Closure`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const STORE_DIR: &str = "/nix/store";
/// Nix's base-32 alphabet, in which store path hashes are written.
pub const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
/// The characters of a store path's hash part, before the `-` and the name.
pub const HASH_CHARS: usize = 32;
/// The characters a store path's name may hold besides ASCII letters and digits (it may not
/// begin with a `.`), and their most (Nix's rules).
const NAME_CHARS: &str = "+-._?=";
const MAX_NAME_CHARS: usize = 211;

/// One store path of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePath {
    /// `/nix/store/<hash>-<name>`.
    pub path: String,
    pub nar_size: u64,
    pub nar_hash: Option<String>,
    /// Other store paths this one refers to, self-references left out, sorted.
    pub references: Vec<String>,
    /// The derivation that built it, when Nix knows one (a source has none).
    pub deriver: Option<String>,
}

impl StorePath {
    /// `<hash>-<name>`, the entry under /nix/store.
    pub fn base_name(&self) -> &str {
        base_name(&self.path)
    }
}

/// `<hash>-<name>` of `/nix/store/<hash>-<name>`.
pub fn base_name(store_path: &str) -> &str {
    store_path.rsplit('/').next().unwrap_or(store_path)
}

/// `<name>` of `<hash>-<name>` (all of it when it is too short to have a hash part).
pub fn name_part(base_name: &str) -> &str {
    base_name.get(HASH_CHARS + 1..).unwrap_or(base_name)
}

/// The value of a Nix base-32 digit.
pub fn base32_digit(c: u8) -> Option<u8> {
    NIX_BASE32.bytes().position(|a| a == c).map(|i| i as u8)
}

/// What the build produced and everything it needs at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The built outputs (`result`, `result-dev`, ...), the first being the main one.
    pub results: Vec<String>,
    /// Every path of the runtime closure, sorted by path.
    pub paths: Vec<StorePath>,
}

/// What the image takes from the package and its flake besides the closure: from the
/// evaluation's plan, or from the one-step build's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    /// `meta.mainProgram`.
    pub main_program: Option<String>,
    /// The flake's `lastModified` (Unix seconds), when Nix knows it.
    pub flake_last_modified: Option<i64>,
}

/// A build step's manifest (plan/output.rs's MANIFEST_FILE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its format's version (`manifestVersion`): which step wrote it, and which nixfront.
    pub version: Option<u64>,
    pub closure: Closure,
    /// The one-step build's reading of the package (the step-by-step build has it from the
    /// evaluation's plan).
    pub package: Package,
    /// Where the package step laid out the closure's paths that no dependency layer holds
    /// (its output trees), as the step partitioned them: the one record of that split.
    pub split: Option<Split>,
}

/// The package step's split of the closure's paths beyond the dependencies (`laidOut` in its
/// manifest): the step writes it, the frontend reads it, the one record of that split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Input sources of the derivation that are in the closure: the sources tree.
    pub sources: Vec<String>,
    /// The rest, the package's own: the results tree.
    pub results: Vec<String>,
}

impl Closure {
    /// The main built output (`""` for a closure of dependencies, which has no results).
    pub fn main_result(&self) -> &str {
        self.results.first().map_or("", String::as_str)
    }

    pub fn total_size(&self) -> u64 {
        self.paths.iter().map(|p| p.nar_size).sum()
    }

    /// The closure's entry for `path` (a binary search: the paths are sorted).
    pub fn get(&self, path: &str) -> Option<&StorePath> {
        self.paths.binary_search_by(|p| p.path.as_str().cmp(path)).ok().map(|i| &self.paths[i])
    }
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default, rename = "manifestVersion")]
    version: Option<u64>,
    results: Vec<String>,
    #[serde(default, rename = "laidOut")]
    laid_out: Option<Split>,
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(rename = "pathInfo")]
    path_info: Value,
    #[serde(default)]
    flake: Option<RawFlake>,
}

#[derive(Deserialize)]
struct RawFlake {
    #[serde(default, rename = "lastModified")]
    last_modified: Option<i64>,
}

#[derive(Deserialize)]
struct RawPackage {
    #[serde(default, rename = "mainProgram")]
    main_program: Option<String>,
}

#[derive(Deserialize)]
struct RawPathInfo {
    #[serde(default)]
    path: Option<String>,
    #[serde(default, rename = "narSize")]
    nar_size: u64,
    #[serde(default, rename = "narHash")]
    nar_hash: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    deriver: Option<String>,
}

/// Reads the manifest a build step wrote in format `version` (plan/output.rs): a manifest of
/// another version was written by another nixfront's step, whose records this one does not read.
pub fn read_manifest(bytes: &[u8], version: u64) -> Result<Manifest> {
    let manifest = parse_manifest(bytes)?;
    if manifest.version != Some(version) {
        bail!(
            "the build step wrote a manifest of version {}, and this nixfront reads version {version} \
             (a step of another nixfront release?)",
            manifest.version.map_or("none".to_string(), |v| v.to_string())
        );
    }
    Ok(manifest)
}

/// The path-info of a build step's manifest as the step wrote it (`nix path-info --json`, in
/// either shape): what registers its paths in another store (the upload step's).
pub fn manifest_path_info(bytes: &[u8]) -> Result<Value> {
    let raw: RawManifest = serde_json::from_slice(bytes).context("reading the build manifest")?;
    Ok(raw.path_info)
}

/// Parses the manifest JSON written by a build step, whatever its version.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let raw: RawManifest = serde_json::from_slice(bytes).context("reading the build manifest")?;
    if raw.results.is_empty() {
        bail!("nix build produced no output path");
    }
    let paths = parse_path_info(raw.path_info)?;
    for result in &raw.results {
        if !paths.iter().any(|p| &p.path == result) {
            bail!("the build output {result} is missing from its own closure");
        }
    }
    if let Some(laid) = &raw.laid_out {
        for p in laid.sources.iter().chain(&laid.results) {
            if paths.binary_search_by(|sp| sp.path.as_str().cmp(p)).is_err() {
                bail!("the package step laid out {p}, which is not in the closure");
            }
        }
    }
    let package = Package {
        main_program: raw.package.and_then(|p| p.main_program),
        flake_last_modified: raw.flake.and_then(|f| f.last_modified),
    };
    Ok(Manifest {
        version: raw.version,
        closure: Closure { results: raw.results, paths },
        package,
        split: raw.laid_out,
    })
}

/// What `nix path-info --json` tells of a store path that belongs to one store, not to the
/// path: when it was registered there, whether it was built there, the signatures it came
/// with. Left out of every path-info a step writes ([`keep_what_the_paths_decide`]), so that
/// the same closure gives the same answer, the same memo and the same image config on any
/// builder.
const PER_STORE_FIELDS: &[&str] = &["registrationTime", "ultimate", "signatures"];

/// Removes [`PER_STORE_FIELDS`] from every entry of `nix path-info --json`, in either shape.
pub fn keep_what_the_paths_decide(value: &mut Value) {
    let entries: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => Vec::new(),
    };
    for entry in entries.into_iter().filter_map(Value::as_object_mut) {
        for field in PER_STORE_FIELDS {
            entry.remove(*field);
        }
    }
}

/// The registrations of the paths of `nix path-info --json` output (either shape) that
/// `skip` lacks, as `nix-store --load-db` reads them: path, NAR hash (as path-info writes it,
/// which Nix's hash parser takes in every form), NAR size, deriver (or an empty line), the
/// number of references and each, the path's own included.
pub fn registrations(value: &Value, skip: &std::collections::BTreeSet<String>) -> Result<String> {
    let mut text = String::new();
    for (path, raw) in path_info_entries(value)? {
        let path = full_store_path(&path)?;
        if skip.contains(&path) {
            continue;
        }
        let Some(hash) = raw.nar_hash else { bail!("nix path-info gives {path} no narHash") };
        let deriver = raw
            .deriver
            .as_deref()
            .filter(|d| d.ends_with(".drv"))
            .map(full_store_path)
            .transpose()?
            .unwrap_or_default();
        let references: Vec<String> =
            raw.references.iter().map(|r| full_store_path(r)).collect::<Result<_>>()?;
        text.push_str(&format!("{path}\n{hash}\n{}\n{deriver}\n{}\n", raw.nar_size, references.len()));
        for reference in references {
            text.push_str(&reference);
            text.push('\n');
        }
    }
    Ok(text)
}

/// `nix path-info --json --recursive` output, in either shape, as a closure's store paths
/// (sorted), every reference inside it.
pub fn parse_path_info(value: Value) -> Result<Vec<StorePath>> {
    let mut paths = BTreeMap::new();
    for (path, info) in path_info_entries(&value)? {
        let path = full_store_path(&path)?;
        let mut references: Vec<String> =
            info.references.iter().map(|r| full_store_path(r)).collect::<Result<_>>()?;
        references.retain(|r| *r != path);
        references.sort();
        references.dedup();
        // Nix writes no deriver, `unknown-deriver`, or a bare or full .drv path.
        let deriver =
            info.deriver.as_deref().filter(|d| d.ends_with(".drv")).and_then(|d| full_store_path(d).ok());
        paths.insert(
            path.clone(),
            StorePath { path, nar_size: info.nar_size, nar_hash: info.nar_hash, references, deriver },
        );
    }
    for p in paths.values() {
        if let Some(missing) = p.references.iter().find(|r| !paths.contains_key(*r)) {
            bail!("{} refers to {missing}, which is missing from the closure", p.path);
        }
    }
    Ok(paths.into_values().collect())
}

/// Each entry of `nix path-info --json` output, in either shape (an array of objects with a
/// `path`, or an object keyed by path, `null` for a path that is not valid): the path as Nix
/// wrote it and what it says of it.
fn path_info_entries(value: &Value) -> Result<Vec<(String, RawPathInfo)>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let info = RawPathInfo::deserialize(item)?;
                Ok((info.path.clone().unwrap_or_default(), info))
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(path, item)| {
                if item.is_null() {
                    bail!("nix path-info reports {path} as not valid");
                }
                Ok((path.clone(), RawPathInfo::deserialize(item)?))
            })
            .collect(),
        other => bail!("unexpected `nix path-info --json` output: {other}"),
    }
}

/// Accepts `/nix/store/<hash>-<name>` or a bare `<hash>-<name>`, and checks it is a plain
/// store path (one component, Nix's own character set), as it is used in file operations.
pub fn full_store_path(path: &str) -> Result<String> {
    let base = path.strip_prefix("/nix/store/").unwrap_or(path);
    let valid = base.len() > HASH_CHARS + 1
        && base.len() <= HASH_CHARS + 1 + MAX_NAME_CHARS
        && base.as_bytes()[HASH_CHARS] == b'-'
        && base[..HASH_CHARS].bytes().all(|b| NIX_BASE32.as_bytes().contains(&b))
        && base[HASH_CHARS + 1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || NAME_CHARS.as_bytes().contains(&b))
        && !base[HASH_CHARS + 1..].starts_with('.');
    if !valid {
        bail!("`{path}` is not a store path under {STORE_DIR}");
    }
    Ok(format!("{STORE_DIR}/{base}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";
    const DEP: &str = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-libdemo-1.0";
    const TOOLS: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-tools";

    /// `nix path-info --json -r` as Nix 2.8 prints it (taken from a real run).
    fn nix_2_8() -> String {
        format!(
            r#"{{"results":["{APP}"],"package":{{"name":"hello-0.1","mainProgram":"hello"}},"flake":{{"lastModified":1700000000,"path":"/nix/store/x"}},"pathInfo":[
            {{"path":"{DEP}","narHash":"sha256-ObNt","narSize":456,"references":[],"deriver":"x.drv","registrationTime":1,"ultimate":true}},
            {{"path":"{TOOLS}","narHash":"sha256-9CPb","narSize":1982568,"references":[],"ca":"fixed:r:sha256:08f8"}},
            {{"path":"{APP}","narHash":"sha256-XHYr","narSize":624,"references":["{DEP}","{TOOLS}","{APP}"]}}]}}"#
        )
    }

    /// The object-keyed shape of recent Nix, with bare references.
    fn nix_recent() -> String {
        let bare = |p: &str| p.trim_start_matches("/nix/store/").to_string();
        format!(
            r#"{{"results":["{APP}"],"package":null,"pathInfo":{{
            "{DEP}":{{"narHash":"sha256-ObNt","narSize":456,"references":[]}},
            "{TOOLS}":{{"narHash":"sha256-9CPb","narSize":1982568,"references":[]}},
            "{APP}":{{"narHash":"sha256-XHYr","narSize":624,"references":["{}","{}"]}}}}}}"#,
            bare(DEP),
            bare(TOOLS)
        )
    }

    #[test]
    fn registrations_are_written_as_nix_store_load_db_reads_them() {
        const DRV: &str = "/nix/store/dddddddddddddddddddddddddddddddd-dep.drv";
        let info = serde_json::json!({
            DEP: {"narHash": "sha256-K4cx", "narSize": 688, "deriver": DRV, "references": [DEP]},
            "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1": {"narHash": "sha256:1ri1", "narSize": 5, "references": []}
        });
        let skip = std::collections::BTreeSet::from([
            "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1".to_string(),
        ]);
        let text = registrations(&info, &skip).unwrap();
        assert_eq!(text, format!("{DEP}\nsha256-K4cx\n688\n{DRV}\n1\n{DEP}\n"));
        let all = registrations(&info, &Default::default()).unwrap();
        assert!(all.ends_with("-hello-0.1\nsha256:1ri1\n5\n\n0\n"), "{all}");
        let array = serde_json::json!([{"path": DEP, "narSize": 1, "references": []}]);
        assert!(registrations(&array, &Default::default()).is_err(), "no narHash");
    }

    #[test]
    fn what_belongs_to_one_store_is_left_out_of_a_path_info() {
        let mut array = serde_json::json!([
            {"path": DEP, "narSize": 1, "registrationTime": 5, "ultimate": true, "signatures": ["k:s"]}
        ]);
        keep_what_the_paths_decide(&mut array);
        assert_eq!(array, serde_json::json!([{"path": DEP, "narSize": 1}]));
        let mut object = serde_json::json!({ DEP: {"narSize": 1, "registrationTime": 7, "ultimate": false} });
        keep_what_the_paths_decide(&mut object);
        assert_eq!(object, serde_json::json!({ DEP: {"narSize": 1} }));
    }

    #[test]
    fn both_path_info_shapes_give_the_same_closure() {
        let old = parse_manifest(nix_2_8().as_bytes()).unwrap();
        let new = parse_manifest(nix_recent().as_bytes()).unwrap();
        assert_eq!(old.closure.paths, new.closure.paths);
        assert_eq!(old.package.main_program.as_deref(), Some("hello"));
        assert_eq!(new.package.main_program, None);
        assert_eq!(
            (old.package.flake_last_modified, new.package.flake_last_modified),
            (Some(1700000000), None)
        );
        let old = old.closure;
        let app = old.paths.iter().find(|p| p.path == APP).unwrap();
        assert_eq!(app.references, [DEP, TOOLS], "sorted, self-reference dropped");
        assert_eq!(old.total_size(), 456 + 1982568 + 624);
        assert_eq!(app.base_name(), "bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1");
    }

    #[test]
    fn inconsistent_manifests_are_rejected() {
        let missing_ref = nix_2_8().replace(
            &format!(r#"{{"path":"{DEP}""#),
            r#"{"path":"/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-other""#,
        );
        assert!(
            parse_manifest(missing_ref.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("missing from the closure")
        );
        let escaping = nix_2_8().replace(DEP, "/nix/store/../../etc/passwd");
        assert!(parse_manifest(escaping.as_bytes()).is_err());
        assert!(parse_manifest(br#"{"results":[],"pathInfo":[]}"#).is_err());
        let stray = nix_2_8().replace(
            r#""results":"#,
            r#""laidOut":{"sources":[],"results":["/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-x"]},"results":"#,
        );
        let e = parse_manifest(stray.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("laid out /nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-x"), "{e}");
    }

    #[test]
    fn a_manifest_of_another_version_is_refused_by_name() {
        let v4 = nix_2_8().replacen('{', r#"{"manifestVersion":4,"#, 1);
        assert!(read_manifest(v4.as_bytes(), 4).is_ok());
        let e = read_manifest(v4.as_bytes(), 5).unwrap_err().to_string();
        assert!(e.contains("version 4") && e.contains("reads version 5"), "{e}");
        let e = read_manifest(nix_2_8().as_bytes(), 4).unwrap_err().to_string();
        assert!(e.contains("version none"), "{e}");
    }
}
