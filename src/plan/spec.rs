//! What a step is told and what it answers: the one contract between the frontend, which
//! writes a step's [`Spec`] into its definition (one file, [`SPEC_FILE`]), and the program
//! that runs inside the step (`nixfront step <name>`, [`crate::step`] in this same binary),
//! which reads it and writes its answer as one of the types below. Both sides are this
//! module's serde types, so a field has one name and one meaning; a spec another nixfront
//! wrote is refused by name (`deny_unknown_fields`), never half-read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The spec's file in the step's spec directory ([`super::output::SPEC_DIR`]).
pub const SPEC_FILE: &str = "spec.json";

/// A step's whole spec: the settings every Nix step shares, and its own work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// `None` for the steps that run no Nix (the image root, the failure report).
    pub settings: Option<Settings>,
    pub work: Work,
}

/// What every Nix step is told besides its work.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The Nix system the builder runs natively (the build platform's).
    pub native: String,
    /// Nix's own sandbox (NIX_SANDBOX=true: the step runs in BuildKit's insecure mode).
    pub sandbox: bool,
    /// NIX_VERIFY_STORE=true: check the store's contents before building.
    pub verify_store: bool,
    /// NIX_STORE_MAX, in bytes: collect garbage past it.
    pub store_max: Option<u64>,
    /// nixfront's defaults, as nix.conf lines (options::nixconf), which NIX_CONFIG overrides.
    pub nix_defaults: String,
    /// Whether the step keeps what it learns of the substituters in
    /// [`super::output::REACH_DIR`] (only with the persistent store).
    pub remember_reach: bool,
    /// Whether the step's store is the persistent one, which other projects' builds read: then
    /// Nix runs no builder but in the one locked build ([`crate::step`]'s store guard).
    pub shared_store: bool,
}

/// Each step's own work, by the name `nixfront step <name>` runs it under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Work {
    /// Fetches the locked inputs (`locked`: `builtins.fetchTree` attributes).
    Fetch { locked: Vec<Value> },
    /// Evaluates the package once: its [`Plan`].
    Evaluate(Evaluate),
    /// Realises the package's inputs (`(drv, output path)`).
    Realise { system: String, inputs: Vec<(String, String)> },
    /// Lays the dependencies' closure out as layers.
    LayOut { system: String, groups: Vec<Grouped> },
    /// Builds the package in a store of the step's own.
    Package(Package),
    /// Everything in one step (no persistent store, or content-addressed inputs).
    Single { reference: String, flake: String, system: String, extras: Vec<String> },
    /// Lists `packages.<system>` of a flake (the `frontend.targets` subrequest).
    Packages { attribute: String },
    /// Makes the image root's entries.
    ImageRoot { entries: Vec<RootEntry>, notices: Vec<String> },
    /// Reads the failures the build's steps left ([`Failure`]), in the frontend's image.
    Report { build: String },
    /// Signs and uploads the build's paths to the binary cache `NIX_CACHE_TO` names.
    CacheTo(CacheTo),
}

impl Work {
    /// The name the step runs under: `nixfront step <name>`.
    pub fn name(&self) -> &'static str {
        match self {
            Work::Fetch { .. } => "fetch",
            Work::Evaluate(_) => "evaluate",
            Work::Realise { .. } => "realise",
            Work::LayOut { .. } => "lay-out",
            Work::Package(_) => "package",
            Work::Single { .. } => "single",
            Work::Packages { .. } => "packages",
            Work::ImageRoot { .. } => "image-root",
            Work::Report { .. } => "report",
            Work::CacheTo(_) => "cache-to",
        }
    }
}

/// The evaluation's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evaluate {
    /// The reference to build, for Nix (`path:/nixfront/src#app`).
    pub reference: String,
    /// The same without its fragment.
    pub flake: String,
    pub system: String,
    /// Read the flake's metadata (a flake that is not the build context: its lastModified
    /// dates the image).
    pub metadata: bool,
    /// Flake inputs replaced by named contexts: `(input name, flake reference)`.
    pub overrides: Vec<(String, String)>,
    /// Warnings about the flake to print (BuildKit 0.8 shows no others).
    pub notices: Vec<String>,
    /// FLAKE's further packages.
    pub extras: Vec<Extra>,
}

/// One of FLAKE's further packages: its reference, its flake's, and the attribute paths Nix
/// would try for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Extra {
    /// As the user wrote it, for messages.
    pub written: String,
    /// For Nix.
    pub reference: String,
    pub flake: String,
    pub paths: Vec<Vec<String>>,
}

/// A store path of a dependency layer: the layer's name, the path, the derivation that
/// builds it (none for a source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grouped {
    pub layer: String,
    pub path: String,
    pub deriver: Option<String>,
}

/// The package step's work; the dependencies' registrations are the file
/// [`super::output::SPEC_RECORDS`] beside the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Package {
    pub drv: String,
    pub system: String,
    /// Its outputs, the main one first.
    pub outputs: Vec<String>,
    /// The dependencies' paths (their layers hold them).
    pub deps: Vec<String>,
    /// The closure of its input sources.
    pub sources: Vec<String>,
    /// The root packages: the outputs, then FLAKE's further packages'.
    pub roots: Vec<String>,
}

/// The cache-to step's work: the store paths to upload (the image's closure and the
/// dependencies', which its store holds) and where. The dependencies' registrations are the
/// file [`super::output::SPEC_RECORDS`] beside the spec, the closure's path-info
/// [`super::output::SPEC_PATH_INFO`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheTo {
    /// The binary cache's store URI, as the user gave it (`NIX_CACHE_TO`).
    pub uri: String,
    pub paths: Vec<String>,
}

/// An entry of the image root, made in this order (parents first), every one with
/// nixfront's fixed time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum RootEntry {
    Dir { path: String, mode: u32, uid: u32, gid: u32 },
    Link { path: String, target: String },
    File { path: String, mode: u32, uid: u32, gid: u32, text: String },
}

/// Why a step failed, in the user's terms: what the frontend's error says. The step writes
/// it where the frontend's report step finds it ([`super::output::FAILURES_DIR`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    /// The step's name ([`Work::name`]).
    pub step: String,
    /// What went wrong, one sentence.
    pub summary: String,
    /// A derivation that failed to build (its name, `hello-1.0`).
    pub derivation: Option<String>,
    /// The last lines of its log, or Nix's error.
    pub log: Vec<String>,
    /// An attribute the flake lacks, and the names it has where that was looked for.
    pub missing_attribute: Option<String>,
    pub names: Vec<String>,
    /// What to do about it, when nixfront knows.
    #[serde(default)]
    pub hint: Option<String>,
}

/// The evaluation's answer ([`super::output::PLAN_FILE`]), read by [`super::derivation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub plan_version: u64,
    pub drv: String,
    /// `nix derivation show` of the derivation and its inputs, as Nix wrote it.
    pub derivations: Value,
    pub source_closure: Vec<String>,
    /// `{drvPath, name, mainProgram, outputs: [{name, path}]}`.
    pub package: Value,
    /// `[{drvPath, outputs: [{name, path}]}]`.
    pub extras: Value,
    /// `nix flake metadata --json`, or null.
    pub flake: Value,
}

/// The package step's and the one-step build's answer ([`super::output::MANIFEST_FILE`]), read
/// by [`crate::closure`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub manifest_version: u64,
    pub results: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub laid_out: Option<crate::closure::Split>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flake: Option<Value>,
    /// `nix path-info --json --recursive`, as Nix wrote it.
    pub path_info: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_back_as_written_and_names_its_step() {
        let spec = Spec {
            settings: Some(Settings { native: "x86_64-linux".into(), ..Default::default() }),
            work: Work::Realise {
                system: "x86_64-linux".into(),
                inputs: vec![("/nix/store/a-x.drv".into(), "/nix/store/b-x".into())],
            },
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains(r#""step":"realise""#), "{text}");
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec);
        assert_eq!(spec.work.name(), "realise");
        let root = Work::ImageRoot {
            entries: vec![RootEntry::Link { path: "/bin".into(), target: "/nix/store/x/bin".into() }],
            notices: vec![],
        };
        let again: Work = serde_json::from_str(&serde_json::to_string(&root).unwrap()).unwrap();
        assert_eq!(again, root);
    }

    #[test]
    fn the_answers_the_steps_write_are_what_the_frontend_reads() {
        use serde_json::json;
        let (app, dep, src) = (
            "/nix/store/0s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-app-1.0",
            "/nix/store/1s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-dep-1.0",
            "/nix/store/2s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-src",
        );
        let info = |path: &str, refs: &[&str]| json!({"path": path, "narHash": "sha256-x", "narSize": 10, "references": refs});
        let manifest = Manifest {
            manifest_version: super::super::output::STEP_MANIFEST_VERSION,
            results: vec![app.into()],
            laid_out: Some(crate::closure::Split { sources: vec![src.into()], results: vec![app.into()] }),
            package: None,
            flake: None,
            path_info: json!([info(app, &[dep, src]), info(dep, &[]), info(src, &[])]),
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let read =
            crate::closure::read_manifest(&bytes, super::super::output::STEP_MANIFEST_VERSION).unwrap();
        assert_eq!(read.closure.main_result(), app);
        assert_eq!(read.closure.paths.len(), 3);
        assert_eq!(read.split, manifest.laid_out);

        let (drv, dep_drv) = (
            "/nix/store/3s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-app-1.0.drv",
            "/nix/store/4s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-dep-1.0.drv",
        );
        let plan = Plan {
            plan_version: super::super::output::PLAN_VERSION,
            drv: drv.into(),
            derivations: json!({
                drv: {"outputs": {"out": {"path": app}}, "inputDrvs": {dep_drv: ["out"]}},
                dep_drv: {"outputs": {"out": {"path": dep}}, "inputDrvs": {}},
            }),
            source_closure: vec![src.into()],
            package: json!({"drvPath": drv, "name": "app-1.0", "mainProgram": "app", "outputs": [{"name": "out", "path": app}]}),
            extras: json!([]),
            flake: serde_json::Value::Null,
        };
        let read =
            super::super::derivation::parse_plan(&serde_json::to_vec(&plan).unwrap()).unwrap().unwrap();
        assert_eq!(read.drv, drv);
        assert_eq!(read.inputs, [(dep_drv.to_string(), dep.to_string())]);
        assert_eq!(read.outputs, [app]);
        assert_eq!(read.package.main_program.as_deref(), Some("app"));
    }

    #[test]
    fn a_spec_of_another_shape_is_refused_not_half_read() {
        let unknown = r#"{"settings":null,"work":{"step":"realise","system":"x","inputs":[],"extra":1}}"#;
        assert!(serde_json::from_str::<Spec>(unknown).is_err());
        let other_step = r#"{"settings":null,"work":{"step":"format-disk"}}"#;
        assert!(serde_json::from_str::<Spec>(other_step).is_err());
    }
}
