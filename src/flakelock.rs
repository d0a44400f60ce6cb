//! A flake's `flake.lock`, read for what the fetch step fetches: the locked inputs (each
//! node's `locked` attributes, which `builtins.fetchTree` takes as they are), and what is not
//! locked. Inputs that come with the build context (relative `path` inputs) and inputs the
//! client replaces (`--build-context NAME=DIR`) are not fetched.
//!
//! The fetch step runs `builtins.fetchTree` as root on a store other builds share, so this
//! module also owns which kinds of input it may fetch ([`REMOTE_KINDS`]): remote sources only,
//! never the builder's own files (a `file://` URL, a local git repository, an absolute path).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct RawLock {
    nodes: BTreeMap<String, RawNode>,
    #[serde(default = "root_name")]
    root: String,
    version: u32,
}

fn root_name() -> String {
    "root".to_string()
}

#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
    #[serde(default)]
    locked: Option<serde_json::Map<String, Value>>,
}

/// What the lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The root's own inputs, by name.
    pub root_inputs: BTreeSet<String>,
    /// `fetchTree` attributes of every locked node to fetch, sorted and each once.
    pub fetch: Vec<serde_json::Map<String, Value>>,
    /// Inputs whose lock names no content hash: Nix fetches them as it finds them.
    pub unlocked: Vec<String>,
}

/// The lock file versions this reads (Nix 2.4 and later write 7).
const VERSIONS: std::ops::RangeInclusive<u32> = 5..=7;

/// The kinds of locked input the fetch step fetches, as flake locking writes them: the `type`,
/// and the schemes its `url` may have (none: a forge, which has no `url`). Nix locks `git+https`,
/// `hg+ssh` and the like with the scheme alone (`https`, `ssh`).
const REMOTE_KINDS: &[(&str, &[&str])] = &[
    ("github", &[]),
    ("gitlab", &[]),
    ("sourcehut", &[]),
    ("tarball", &["http", "https"]),
    ("file", &["http", "https"]),
    ("git", &["http", "https", "ssh"]),
    ("hg", &["http", "https", "ssh"]),
];

/// [`REMOTE_KINDS`] in words, for errors.
fn remote_kinds_text() -> String {
    let kinds: Vec<String> = REMOTE_KINDS
        .iter()
        .map(|(kind, schemes)| match schemes {
            [] => kind.to_string(),
            _ => format!("{kind} over {}", schemes.join("/")),
        })
        .collect();
    kinds.join(", ")
}

/// What the fetch step does with a node's `locked` attributes.
enum Source {
    /// A remote source of [`REMOTE_KINDS`]: fetched.
    Remote,
    /// A `path` inside the flake's directory: it comes with the build context.
    InContext,
}

/// Whether the locked input `name` is a remote source or comes with the context; the error
/// names the input and what to do.
fn source_of(name: &str, locked: &serde_json::Map<String, Value>) -> Result<Source> {
    let kind = locked.get("type").and_then(Value::as_str).unwrap_or("");
    let url = locked.get("url").and_then(Value::as_str);
    let what = match (kind, url) {
        ("path", _) => {
            let path = locked.get("path").and_then(Value::as_str).unwrap_or("");
            let inside = !path.is_empty()
                && std::path::Path::new(path)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
            if inside {
                return Ok(Source::InContext);
            }
            format!("a path outside the flake's directory ({path:?})")
        }
        ("", _) => "of no type".to_string(),
        (kind, None) if REMOTE_KINDS.iter().any(|(k, schemes)| *k == kind && schemes.is_empty()) => {
            return Ok(Source::Remote);
        }
        (kind, Some(url)) => {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            let remote = REMOTE_KINDS
                .iter()
                .any(|(k, schemes)| *k == kind && scheme.as_deref().is_some_and(|s| schemes.contains(&s)));
            if remote {
                return Ok(Source::Remote);
            }
            format!("of type {kind} with url {url}")
        }
        (kind, None) => format!("of type {kind}"),
    };
    bail!(
        "flake.lock input {name} is {what}: nixfront fetches only remote inputs ({}), never files of \
         the builder; lock it to a remote source, or put it in the build context as a relative path \
         input",
        remote_kinds_text()
    )
}

/// Reads `flake.lock`; `replaced` are root inputs the client replaces.
pub fn parse(bytes: &[u8], replaced: &[String]) -> Result<Lock> {
    let raw: RawLock = serde_json::from_slice(bytes).context("reading flake.lock")?;
    if !VERSIONS.contains(&raw.version) {
        bail!("flake.lock has version {}; nixfront reads versions 5 to 7", raw.version);
    }
    let root =
        raw.nodes.get(&raw.root).with_context(|| format!("flake.lock has no root node {}", raw.root))?;
    let root_inputs: BTreeSet<String> = root.inputs.keys().cloned().collect();
    for name in replaced {
        if !root_inputs.contains(name) {
            let known: Vec<&str> = root_inputs.iter().map(String::as_str).collect();
            bail!("--build-context {name}: the flake has no input {name} (its inputs: {})", known.join(", "));
        }
    }
    // The nodes the replaced inputs name directly are not fetched (what they in turn use
    // may still be, through other inputs).
    let skipped: BTreeSet<&str> =
        replaced.iter().filter_map(|n| root.inputs.get(n)).filter_map(Value::as_str).collect();
    let mut fetch = Vec::new();
    let mut unlocked = Vec::new();
    for (name, node) in &raw.nodes {
        if *name == raw.root || skipped.contains(name.as_str()) {
            continue;
        }
        let Some(locked) = &node.locked else {
            unlocked.push(name.clone());
            continue;
        };
        if let Source::InContext = source_of(name, locked)? {
            continue;
        }
        if !locked.contains_key("narHash") {
            unlocked.push(name.clone());
            continue;
        }
        let mut attrs = locked.clone();
        attrs.remove("dir");
        // Nix fetches a flake's git input whole unless its lock says `shallow`, but
        // `builtins.fetchTree` of the same attributes makes a shallow clone since Nix 2.19,
        // which dumb-HTTP servers cannot serve (and whose narHash may differ).
        if attrs.get("type").and_then(Value::as_str) == Some("git") {
            attrs.entry("shallow").or_insert(Value::Bool(false));
        }
        fetch.push(attrs);
    }
    fetch.sort_by_key(|a| Value::Object(a.clone()).to_string());
    fetch.dedup();
    Ok(Lock { root_inputs, fetch, unlocked })
}

impl Lock {
    /// The fetch step's spec: the `fetchTree` attributes.
    pub fn fetch_list(&self) -> Vec<Value> {
        self.fetch.iter().cloned().map(Value::Object).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock as Nix 2.8 writes it: a tarball, a git input whose own input follows the
    /// first, a relative path input, and a non-flake input.
    const LOCK: &str = r#"{
      "nodes": {
        "lib": {"locked": {"lastModified": 1, "narHash": "sha256-AAA=", "path": "./lib", "type": "path"}},
        "pkgs": {"locked": {"narHash": "sha256-BBB=", "type": "tarball", "url": "http://172.17.0.1:8080/pkgs.tar.gz"},
                 "original": {"type": "tarball", "url": "http://172.17.0.1:8080/pkgs.tar.gz"}},
        "data": {"flake": false, "locked": {"narHash": "sha256-DDD=", "type": "tarball", "url": "http://x/d.tar.gz"}},
        "utils": {"inputs": {"pkgs": ["pkgs"]},
                  "locked": {"lastModified": 2, "narHash": "sha256-CCC=", "ref": "main", "rev": "abc", "revCount": 1,
                             "type": "git", "url": "http://172.17.0.1:8080/utils.git", "dir": "sub"}},
        "root": {"inputs": {"data": "data", "lib": "lib", "pkgs": "pkgs", "utils": "utils"}}
      },
      "root": "root",
      "version": 7
    }"#;

    #[test]
    fn locked_inputs_are_fetched_and_path_inputs_come_with_the_context() {
        let lock = parse(LOCK.as_bytes(), &[]).unwrap();
        assert_eq!(lock.root_inputs.len(), 4);
        let types: Vec<&str> = lock.fetch.iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["git", "tarball", "tarball"], "no path input, each node once");
        assert!(lock.fetch.iter().all(|a| !a.contains_key("dir")), "fetchTree takes no dir");
        // A git input is cloned whole, as Nix fetches a flake's input (fetchTree would make a
        // shallow clone since Nix 2.19); a lock that says shallow keeps its word.
        assert_eq!(lock.fetch[0]["shallow"], Value::Bool(false));
        assert!(lock.fetch[1..].iter().all(|a| !a.contains_key("shallow")), "only git inputs");
        let shallow =
            parse(LOCK.replace(r#""revCount": 1,"#, r#""revCount": 1, "shallow": true,"#).as_bytes(), &[]);
        assert_eq!(shallow.unwrap().fetch[0]["shallow"], Value::Bool(true));
        assert!(lock.unlocked.is_empty());
        let json = Value::Array(lock.fetch_list());
        assert_eq!(json.as_array().unwrap().len(), 3);
        assert_eq!(lock.fetch_list(), parse(LOCK.as_bytes(), &[]).unwrap().fetch_list(), "stable");
    }

    #[test]
    fn a_replaced_input_is_not_fetched_and_must_exist() {
        let lock = parse(LOCK.as_bytes(), &["utils".to_string()]).unwrap();
        assert!(lock.fetch.iter().all(|a| a["type"] != "git"));
        let e = parse(LOCK.as_bytes(), &["nope".to_string()]).unwrap_err().to_string();
        assert!(e.contains("no input nope") && e.contains("pkgs, utils"), "{e}");
    }

    #[test]
    fn inputs_without_a_hash_are_told_and_odd_locks_refused() {
        let unlocked = LOCK.replace(r#""narHash": "sha256-BBB=", "#, "");
        assert_eq!(parse(unlocked.as_bytes(), &[]).unwrap().unlocked, ["pkgs"]);
        assert!(parse(LOCK.replace("\"version\": 7", "\"version\": 99").as_bytes(), &[]).is_err());
        assert!(parse(b"{}", &[]).is_err());
        assert!(parse(b"\xff", &[]).is_err());
    }

    /// A lock of one root input, `evil`, locked as `locked` (JSON attributes).
    fn lock_of(locked: &str) -> String {
        format!(
            r#"{{"nodes": {{"evil": {{"locked": {locked}}}, "root": {{"inputs": {{"evil": "evil"}}}}}}, "version": 7}}"#
        )
    }

    #[test]
    fn remote_inputs_are_fetched() {
        for locked in [
            r#"{"type": "github", "owner": "o", "repo": "r", "rev": "abc", "narHash": "sha256-A="}"#,
            r#"{"type": "gitlab", "owner": "o", "repo": "r", "rev": "abc", "narHash": "sha256-A="}"#,
            r#"{"type": "sourcehut", "owner": "~o", "repo": "r", "rev": "abc", "narHash": "sha256-A="}"#,
            r#"{"type": "tarball", "url": "https://x.example/a.tar.gz", "narHash": "sha256-A="}"#,
            r#"{"type": "file", "url": "http://x.example/a.nix", "narHash": "sha256-A="}"#,
            r#"{"type": "git", "url": "ssh://git@x.example/r.git", "rev": "abc", "narHash": "sha256-A="}"#,
            r#"{"type": "git", "url": "HTTPS://x.example/r.git", "rev": "abc", "narHash": "sha256-A="}"#,
            r#"{"type": "hg", "url": "https://x.example/r", "rev": "abc", "narHash": "sha256-A="}"#,
        ] {
            let lock = parse(lock_of(locked).as_bytes(), &[]).unwrap_or_else(|e| panic!("{locked}: {e}"));
            assert_eq!(lock.fetch.len(), 1, "{locked}");
        }
        for path in ["./lib", "lib/sub", "."] {
            let locked = format!(r#"{{"type": "path", "path": "{path}", "narHash": "sha256-A="}}"#);
            let lock = parse(lock_of(&locked).as_bytes(), &[]).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(lock.fetch.is_empty(), "{path} comes with the context");
        }
    }

    #[test]
    fn inputs_from_the_builders_files_are_refused() {
        for (locked, shown) in [
            (
                r#"{"type": "file", "url": "file:///etc/shadow", "narHash": "sha256-A="}"#,
                "file:///etc/shadow",
            ),
            (
                r#"{"type": "tarball", "url": "file:///root/a.tar", "narHash": "sha256-A="}"#,
                "file:///root/a.tar",
            ),
            (r#"{"type": "git", "url": "file:///root/repo", "narHash": "sha256-A="}"#, "type git"),
            (r#"{"type": "git", "url": "/root/repo", "narHash": "sha256-A="}"#, "/root/repo"),
            (r#"{"type": "git", "url": "git@x.example:r.git", "narHash": "sha256-A="}"#, "git@x.example"),
            (r#"{"type": "hg", "url": "file:///root/repo", "narHash": "sha256-A="}"#, "type hg"),
            (r#"{"type": "git", "narHash": "sha256-A="}"#, "of type git"),
            (r#"{"type": "path", "path": "/etc", "narHash": "sha256-A="}"#, "\"/etc\""),
            (r#"{"type": "path", "path": "../secrets", "narHash": "sha256-A="}"#, "../secrets"),
            (r#"{"type": "path", "path": "lib/../../x", "narHash": "sha256-A="}"#, "lib/../../x"),
            (r#"{"type": "path", "narHash": "sha256-A="}"#, "outside the flake's directory"),
            (r#"{"type": "indirect", "id": "nixpkgs"}"#, "type indirect"),
            (r#"{"type": "made-up", "url": "https://x.example"}"#, "type made-up"),
            (r#"{"narHash": "sha256-A="}"#, "of no type"),
            (r#"{"type": "github", "url": "file:///etc", "owner": "o"}"#, "type github"),
        ] {
            let e = parse(lock_of(locked).as_bytes(), &[]).unwrap_err().to_string();
            assert!(e.contains("flake.lock input evil is ") && e.contains(shown), "{locked}: {e}");
            assert!(e.contains("as a relative path input") && e.contains("git over http/https/ssh"), "{e}");
        }
        // An input the client replaces is the client's, whatever its lock says.
        let lock = lock_of(r#"{"type": "path", "path": "/home/me/lib"}"#);
        assert!(parse(lock.as_bytes(), &["evil".to_string()]).unwrap().fetch.is_empty());
    }
}
