//! A flake's `flake.lock`, read for what the fetch step fetches: the locked inputs (each
//! node's `locked` attributes, which `builtins.fetchTree` takes as they are), and what is not
//! locked. Inputs that come with the build context (`path` inputs) and inputs the client
//! replaces (`--build-context NAME=DIR`) are not fetched.

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
        if locked.get("type").and_then(Value::as_str) == Some("path") {
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
}
