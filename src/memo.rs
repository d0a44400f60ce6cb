//! What a build read from its steps, carried in the image config so that a fresh runner whose
//! only cache is the image itself (inline cache: `--cache-from IMAGE`, the one kind Docker
//! 20.10 has) need not run those steps again to read it.
//!
//! Inline cache is BuildKit's `mode=min`: it holds the image's own layers and the cache keys
//! that lead to them, but no other step output. nixfront reads three outputs before it can
//! name the layers (the dependencies' path-info, the package's manifest, its `bin/`), and a
//! read makes BuildKit run the step, with everything below it: on a fresh runner that was the
//! whole closure built again. With the memo, the steps are not read, so BuildKit finds the
//! layers from their cache keys alone and runs nothing but the evaluation.
//!
//! This module owns the config field, its format, its keys and its size. A key is the digest
//! of what determines the answer: the step's LLB (which pins the builder image, the frontend's
//! image whose binary runs in the step, and the settings) and, for the package, its derivation. An entry that does not parse is
//! ignored (the step runs); so is one that does not fit the evaluation ([`check_package`],
//! [`check_dependencies`]) or names a program that is no plain file name ([`BinEntry`]). One
//! that passes is trusted as far as the cache it comes with.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use crate::limits::MAX_MEMO_BYTES;
use crate::llb::State;
use crate::llb::definition::digest_of;

/// An entry of the package's `bin/` (the package step's answer the entrypoint comes from).
/// One read from a memo has a plain file name ([`crate::names::Kind::Program`]), or the
/// package answer it is part of does not parse and the step runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawBinEntry")]
pub struct BinEntry {
    pub name: String,
    /// A file with an execute bit, or a symlink (Nix links executables into bin/).
    pub executable: bool,
}

/// A [`BinEntry`] as a memo holds it, before its name is checked.
#[derive(Deserialize)]
struct RawBinEntry {
    name: String,
    executable: bool,
}

impl TryFrom<RawBinEntry> for BinEntry {
    type Error = String;

    fn try_from(raw: RawBinEntry) -> Result<BinEntry, String> {
        crate::names::check(crate::names::Kind::Program, &raw.name)
            .map_err(|why| format!("an entry of bin/: {why}"))?;
        Ok(BinEntry { name: raw.name, executable: raw.executable })
    }
}

/// The image config's top-level field that holds the memo.
pub const CONFIG_FIELD: &str = "org.nixfront.memo.v1";

/// Answers by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo(BTreeMap<String, String>);

/// What the dependency step's output told: the path-info and the registrations of the
/// dependencies' closure, as it wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependenciesAnswer {
    pub path_info: String,
    pub db: String,
}

/// What the package step's outputs told: its manifest, what the root packages hold (for the
/// image root's links) and its main result's `bin/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageAnswer {
    pub manifest: String,
    #[serde(default)]
    pub roots: String,
    pub bin: Vec<BinEntry>,
}

impl Memo {
    /// The memos of the given image configs (the cache sources'), merged. A config without
    /// one, or with one that does not parse, adds nothing.
    pub fn from_configs<'a>(configs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Memo {
        let mut memo = Memo::default();
        for (source, config) in configs {
            let field = serde_json::from_slice::<Value>(config)
                .ok()
                .and_then(|mut v| v.get_mut(CONFIG_FIELD).map(Value::take));
            let Some(field) = field else { continue };
            match serde_json::from_value::<Memo>(field) {
                Ok(found) => {
                    info!(entries = found.0.len(), "nixfront's memo from the cache source {source}");
                    memo.0.extend(found.0);
                }
                Err(e) => warn!("ignoring the nixfront memo of {source}: {e}"),
            }
        }
        memo
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The answer kept under `key`, if there is one of that kind.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let text = self.0.get(key)?;
        serde_json::from_str(text).inspect_err(|e| warn!("ignoring the memo's entry {key}: {e}")).ok()
    }

    /// The answer under `key` with what `parse` makes of it (`what` names it in the warning);
    /// `None` when absent or unreadable, and then the step runs.
    pub fn answer<T: DeserializeOwned, P>(
        &self,
        key: &str,
        what: &str,
        parse: impl FnOnce(&T) -> anyhow::Result<P>,
    ) -> Option<(P, T)> {
        let answer: T = self.get(key)?;
        let parsed = parse(&answer).inspect_err(|e| warn!("ignoring the memo's {what}: {e:#}")).ok()?;
        Some((parsed, answer))
    }

    pub fn record<T: Serialize>(&mut self, key: String, answer: &T) {
        let text = serde_json::to_string(answer).expect("an answer serializes");
        self.0.insert(key, text);
    }

    /// The config field's value, or `None` when it would exceed [`MAX_MEMO_BYTES`] (the
    /// image is then made without it, and a fresh runner runs the steps).
    pub fn to_config_value(&self) -> Option<Value> {
        let size: usize = self.0.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_MEMO_BYTES {
            info!(
                size,
                "the memo exceeds MAX_MEMO_BYTES ({MAX_MEMO_BYTES}); the image config goes without it"
            );
            return None;
        }
        Some(serde_json::to_value(self).expect("a memo serializes"))
    }
}

/// Whether a package answer fits the evaluation: its results must be the evaluated
/// derivation's outputs (a memo is taken from an image anyone can make).
pub fn check_package(results: &[String], outputs: &[String]) -> anyhow::Result<()> {
    if results != outputs {
        anyhow::bail!("its results are not the evaluated derivation's outputs ({})", outputs.join(", "));
    }
    Ok(())
}

/// Whether a dependencies answer fits the evaluation: its paths must be the closure of the
/// inputs' outputs over its own references, exactly: every input's output, and nothing that
/// no input refers to, directly or not (a memo is taken from an image anyone can make, and its
/// paths become the package step's store). `paths` is sorted, each once.
pub fn check_dependencies(
    paths: &[crate::closure::StorePath],
    inputs: &[(String, String)],
) -> anyhow::Result<()> {
    let index = |p: &str| paths.binary_search_by(|sp| sp.path.as_str().cmp(p)).ok();
    let mut reached = vec![false; paths.len()];
    let mut todo = Vec::new();
    for (_, out) in inputs {
        let Some(i) = index(out) else { anyhow::bail!("it lacks the input {out}") };
        todo.push(i);
    }
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        for reference in &paths[i].references {
            let Some(j) = index(reference) else {
                anyhow::bail!("its path {} refers to {reference}, which it lacks", paths[i].path)
            };
            todo.push(j);
        }
    }
    match paths.iter().zip(&reached).find(|(_, reached)| !**reached) {
        Some((extra, _)) => {
            anyhow::bail!("it holds {}, which is not in the closure of the inputs", extra.path)
        }
        None => Ok(()),
    }
}

/// The key of the dependency step's answer: its LLB, which names the input derivations.
pub fn dependencies_key(realise: &State) -> String {
    key(&["dependencies", &realise.key()])
}

/// The key of the package step's answer: its LLB (the builder, the frontend's image,
/// settings, the dependencies), made with a placeholder for the context (whose definition names the client's
/// session), and the derivation it builds, which is what the context decides.
pub fn package_key(package_meta: &State, drv: &str) -> String {
    key(&["package", &package_meta.key(), drv])
}

fn key(parts: &[&str]) -> String {
    digest_of(parts.join("\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::file::FileOp;
    use serde_json::json;

    fn state(name: &str) -> State {
        FileOp::on(&State::scratch()).mkdir(&format!("/{name}"), 0o755, 0).build(name)
    }

    #[test]
    fn a_memo_goes_into_a_config_and_comes_back() {
        let mut memo = Memo::default();
        let deps = dependencies_key(&state("realise"));
        let dependencies = DependenciesAnswer {
            path_info: r#"[{"path":"/nix/store/a-x"}]"#.into(),
            db: "/nix/store/a-x\n".into(),
        };
        memo.record(deps.clone(), &dependencies);
        let package = package_key(&state("package"), "/nix/store/d-app.drv");
        let answer = PackageAnswer {
            manifest: "{}".into(),
            roots: "0 d ./bin\n".into(),
            bin: vec![BinEntry { name: "app".into(), executable: true }],
        };
        memo.record(package.clone(), &answer);
        let config = json!({ "config": {}, CONFIG_FIELD: memo.to_config_value().unwrap() }).to_string();
        let back = Memo::from_configs([("app:v1", config.as_bytes())]);
        assert_eq!(back, memo);
        assert_eq!(back.get(&deps), Some(dependencies));
        assert_eq!(back.get(&package), Some(answer));
        assert_eq!(back.get::<PackageAnswer>(&deps), None, "an entry of the other kind does not parse");
        assert_eq!(back.get::<PackageAnswer>("sha256:none"), None);
        let parsed = back.answer(&deps, "dependencies", |a: &DependenciesAnswer| Ok(a.db.len()));
        assert_eq!(parsed.map(|(n, _)| n), Some("/nix/store/a-x\n".len()));
        let unreadable: Option<((), _)> =
            back.answer(&deps, "dependencies", |_: &DependenciesAnswer| anyhow::bail!("bad"));
        assert!(unreadable.is_none(), "an answer its parser refuses is not taken");
    }

    #[test]
    fn answers_that_do_not_fit_the_evaluation_are_refused() {
        let out = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1".to_string();
        let other = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-victim-1.0".to_string();
        assert!(check_package(std::slice::from_ref(&out), std::slice::from_ref(&out)).is_ok());
        let e = check_package(std::slice::from_ref(&other), std::slice::from_ref(&out)).unwrap_err();
        assert!(e.to_string().contains("not the evaluated derivation's outputs"), "{e}");
        let path = |p: &str| crate::closure::StorePath {
            path: p.to_string(),
            nar_size: 1,
            nar_hash: None,
            references: Vec::new(),
            deriver: None,
        };
        let inputs = [("/nix/store/x.drv".to_string(), out.clone())];
        assert!(check_dependencies(&[path(&out)], &inputs).is_ok());
        assert!(
            check_dependencies(&[path(&other)], &inputs).unwrap_err().to_string().contains("lacks the input")
        );
    }

    fn store_path(path: &str, references: &[&str]) -> crate::closure::StorePath {
        crate::closure::StorePath {
            path: path.to_string(),
            nar_size: 1,
            nar_hash: None,
            references: references.iter().map(|r| r.to_string()).collect(),
            deriver: None,
        }
    }

    #[test]
    fn a_dependencies_answer_is_the_inputs_closure_exactly() {
        let glibc = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc-2.40";
        let lib = "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-lib-1.0";
        let tool = "/nix/store/2ccccccccccccccccccccccccccccccc-tool-1.0";
        let extra = "/nix/store/3ddddddddddddddddddddddddddddddd-planted-1.0";
        let inputs = [
            ("/nix/store/x-lib.drv".to_string(), lib.to_string()),
            ("/nix/store/y-tool.drv".to_string(), tool.to_string()),
        ];
        // The inputs and what they refer to, directly or through each other.
        let closure = [store_path(glibc, &[]), store_path(lib, &[glibc]), store_path(tool, &[lib])];
        assert!(check_dependencies(&closure, &inputs).is_ok());
        assert!(check_dependencies(&closure[1..], &inputs[..1]).is_err(), "lib refers to glibc");
        // A path no input refers to is refused, even when it refers to them.
        let mut planted = closure.to_vec();
        planted.push(store_path(extra, &[glibc]));
        let e = check_dependencies(&planted, &inputs).unwrap_err().to_string();
        assert!(e.contains(extra) && e.contains("not in the closure of the inputs"), "{e}");
        let e = check_dependencies(&closure, &inputs[..1]).unwrap_err().to_string();
        assert!(e.contains(tool), "an input of another package is not this one's: {e}");
        // A reference to a path the answer lacks.
        let dangling = [store_path(glibc, &[]), store_path(lib, &[glibc, extra]), store_path(tool, &[])];
        let e = check_dependencies(&dangling, &inputs).unwrap_err().to_string();
        assert!(e.contains(&format!("{lib} refers to {extra}, which it lacks")), "{e}");
    }

    #[test]
    fn a_package_answer_whose_bin_names_no_plain_file_is_not_taken() {
        let answer = |bin: Vec<BinEntry>| PackageAnswer { manifest: "{}".into(), roots: String::new(), bin };
        let mut memo = Memo::default();
        let good = answer(vec![
            BinEntry { name: "hello".into(), executable: true },
            BinEntry { name: "[".into(), executable: true },
            BinEntry { name: ".hidden".into(), executable: false },
        ]);
        memo.record("good".into(), &good);
        assert_eq!(memo.get("good"), Some(good));
        for bad in ["../../etc/passwd", "a/b", "/bin/sh", "..", ".", "", "a\u{0}b", "x\ny"] {
            memo.record(bad.into(), &answer(vec![BinEntry { name: bad.into(), executable: true }]));
            assert_eq!(memo.get::<PackageAnswer>(bad), None, "{bad:?}");
            let taken: Option<((), PackageAnswer)> = memo.answer(bad, "package manifest", |_| Ok(()));
            assert!(taken.is_none(), "the step runs: {bad:?}");
        }
        let readable = memo.0.keys().filter(|k| memo.get::<PackageAnswer>(k).is_some()).count();
        assert_eq!(readable, 1, "only the good one");
    }

    #[test]
    fn keys_follow_the_step_and_the_derivation() {
        let (a, b) = (state("a"), state("b"));
        assert_eq!(package_key(&a, "/nix/store/x.drv"), package_key(&a, "/nix/store/x.drv"));
        assert_ne!(package_key(&a, "/nix/store/x.drv"), package_key(&a, "/nix/store/y.drv"));
        assert_ne!(package_key(&a, "/nix/store/x.drv"), package_key(&b, "/nix/store/x.drv"));
        assert_ne!(dependencies_key(&a), dependencies_key(&b));
    }

    #[test]
    fn configs_without_a_usable_memo_add_nothing() {
        let configs: [(&str, &[u8]); 4] = [
            ("plain", br#"{"config":{}}"#),
            ("wrong", br#"{"org.nixfront.memo.v1":[1,2]}"#),
            ("not json", b"\xff"),
            ("empty", b""),
        ];
        assert!(Memo::from_configs(configs).is_empty());
    }

    #[test]
    fn an_oversized_memo_stays_out_of_the_config() {
        let mut memo = Memo::default();
        memo.record("k".into(), &"x".repeat(MAX_MEMO_BYTES));
        assert!(memo.to_config_value().is_none());
    }
}
