//! What the evaluation step found (its plan.json): the package's derivation, the outputs of
//! its direct inputs it uses, the closure of its input sources, and the package and flake
//! metadata. `nix derivation show` changed shape across Nix releases (input derivations as
//! output lists, then as `{outputs, dynamicOutputs}`; store paths with or without
//! `/nix/store/`): every shape reads to one [`EvalPlan`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::closure::full_store_path;

/// The package as evaluated, before anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalPlan {
    /// The package's derivation.
    pub drv: String,
    /// The outputs of its direct input derivations that it uses: `(drv, output path)`,
    /// sorted. Their runtime closure is what it is built on.
    pub inputs: Vec<(String, String)>,
    /// The closure of its input sources, sorted.
    pub sources: Vec<String>,
    /// `meta.mainProgram` and the flake's `lastModified`.
    pub package: crate::closure::Package,
    /// The package's outputs that are built, the main one first.
    pub outputs: Vec<String>,
    /// What the flake reference resolved to (through the flake registry, for a name), when
    /// Nix's metadata of the flake was read.
    pub resolved: Option<String>,
    /// The outputs FLAKE's further packages install, in order: root packages of the image
    /// beside the program's outputs. Their derivations are among `inputs`.
    pub extra_roots: Vec<String>,
}

/// Why a plan cannot drive the step-by-step build (the one-step build is used instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplannable {
    /// An input's output path is only known once it is built (content-addressed).
    FloatingOutput(String),
}

impl std::fmt::Display for Unplannable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplannable::FloatingOutput(drv) => {
                write!(f, "the outputs of {drv} are only known once it is built (content-addressed)")
            }
        }
    }
}

#[derive(Deserialize)]
struct RawPlan {
    #[serde(default, rename = "planVersion")]
    version: Option<u64>,
    drv: String,
    derivations: BTreeMap<String, RawDerivation>,
    #[serde(default, rename = "sourceClosure")]
    source_closure: Vec<String>,
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    flake: Option<RawFlake>,
    #[serde(default)]
    extras: Vec<RawExtra>,
}

#[derive(Deserialize)]
struct RawExtra {
    #[serde(rename = "drvPath")]
    drv_path: String,
    #[serde(default)]
    outputs: Vec<RawNamedOutput>,
}

#[derive(Deserialize)]
struct RawDerivation {
    #[serde(default)]
    outputs: BTreeMap<String, RawOutput>,
    #[serde(default, rename = "inputDrvs")]
    input_drvs: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct RawOutput {
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    #[serde(default, rename = "mainProgram")]
    main_program: Option<String>,
    #[serde(default)]
    outputs: Vec<RawNamedOutput>,
}

#[derive(Deserialize)]
struct RawNamedOutput {
    path: String,
}

#[derive(Deserialize)]
struct RawFlake {
    #[serde(default, rename = "lastModified")]
    last_modified: Option<i64>,
    #[serde(default, rename = "resolvedUrl")]
    resolved_url: Option<String>,
}

/// The output names an `inputDrvs` entry uses: `["out"]`, or `{"outputs": ["out"], ...}`.
fn used_outputs(entry: &Value) -> Vec<String> {
    let list = match entry {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("outputs") {
            Some(Value::Array(items)) => items,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

/// Reads plan.json. `Ok(Err(_))` is a plan the step-by-step build cannot use.
pub fn parse_plan(bytes: &[u8]) -> Result<std::result::Result<EvalPlan, Unplannable>> {
    let raw: RawPlan = serde_json::from_slice(bytes).context("reading the evaluation plan")?;
    let version = super::output::PLAN_VERSION;
    if raw.version != Some(version) {
        bail!(
            "the evaluation step wrote a plan of version {}, and this nixfront reads version {version}",
            raw.version.map_or("none".to_string(), |v| v.to_string())
        );
    }
    let drv = full_store_path(&raw.drv)?;
    let derivations: BTreeMap<String, RawDerivation> = raw
        .derivations
        .into_iter()
        .map(|(path, d)| Ok((full_store_path(&path)?, d)))
        .collect::<Result<_>>()?;
    let Some(top) = derivations.get(&drv) else {
        bail!("the evaluation plan lacks the package's derivation {drv}");
    };
    let package = raw.package.unwrap_or(RawPackage { main_program: None, outputs: Vec::new() });
    if let Some((name, _)) = top.outputs.iter().find(|(_, o)| o.path.is_none()) {
        return Ok(Err(Unplannable::FloatingOutput(format!("{drv}^{name}"))));
    }
    let own: Vec<String> = top
        .outputs
        .values()
        .filter_map(|o| o.path.as_deref())
        .filter_map(|p| full_store_path(p).ok())
        .collect();
    let mut outputs = Vec::new();
    for output in &package.outputs {
        let path = full_store_path(&output.path)?;
        if !own.contains(&path) {
            bail!("the package's output {path} is not an output of its derivation {drv}");
        }
        outputs.push(path);
    }
    let mut inputs = Vec::new();
    for (input, entry) in &top.input_drvs {
        let input = full_store_path(input)?;
        let Some(derivation) = derivations.get(&input) else {
            bail!("the evaluation plan lacks the input derivation {input}");
        };
        for name in used_outputs(entry) {
            let path = derivation.outputs.get(&name).and_then(|o| o.path.as_deref());
            match path {
                Some(path) => inputs.push((input.clone(), full_store_path(path)?)),
                None => return Ok(Err(Unplannable::FloatingOutput(format!("{input}^{name}")))),
            }
        }
    }
    // FLAKE's further packages: each output one of its derivation's, built as an input.
    let mut extra_roots = Vec::new();
    for extra in &raw.extras {
        let extra_drv = full_store_path(&extra.drv_path)?;
        if extra_drv == drv {
            continue;
        }
        let Some(derivation) = derivations.get(&extra_drv) else {
            bail!("the evaluation plan lacks the derivation {extra_drv} of a package FLAKE names");
        };
        if let Some((name, _)) = derivation.outputs.iter().find(|(_, o)| o.path.is_none()) {
            return Ok(Err(Unplannable::FloatingOutput(format!("{extra_drv}^{name}"))));
        }
        for output in &extra.outputs {
            let path = full_store_path(&output.path)?;
            let own = derivation
                .outputs
                .values()
                .filter_map(|o| o.path.as_deref())
                .any(|p| full_store_path(p).ok() == Some(path.clone()));
            if !own {
                bail!("{path} is not an output of {extra_drv}");
            }
            inputs.push((extra_drv.clone(), path.clone()));
            if !extra_roots.contains(&path) && !outputs.contains(&path) {
                extra_roots.push(path);
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    let mut sources: Vec<String> =
        raw.source_closure.iter().map(|p| full_store_path(p)).collect::<Result<_>>()?;
    sources.sort();
    sources.dedup();
    if outputs.is_empty() {
        bail!("the evaluation plan names no output of {drv}");
    }
    let (flake_last_modified, resolved) = match raw.flake {
        Some(f) => (f.last_modified, f.resolved_url),
        None => (None, None),
    };
    Ok(Ok(EvalPlan {
        drv,
        inputs,
        sources,
        package: crate::closure::Package { main_program: package.main_program, flake_last_modified },
        outputs,
        resolved,
        extra_roots,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_DRV: &str = "/nix/store/0s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-hello-0.1.drv";
    const DEP_DRV: &str = "/nix/store/9bmxsyd8lzqj8a8s1x4m4c7w8hk0x0yz-greeting-1.0.drv";
    const DEP_OUT: &str = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-greeting-1.0";
    const DEP_DEV: &str = "/nix/store/6cm7mjwzb4sn2g0p820008k22m69xsrv-greeting-1.0-dev";
    const TOOLS: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-tools";
    const APP_OUT: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";

    /// `nix show-derivation` as Nix 2.8 prints it.
    fn nix_2_8() -> String {
        format!(
            r#"{{"planVersion":2,"drv":"{APP_DRV}","derivations":{{
              "{APP_DRV}":{{"outputs":{{"out":{{"path":"{APP_OUT}"}}}},
                "inputSrcs":["{TOOLS}"],"inputDrvs":{{"{DEP_DRV}":["out"]}},"platform":"x86_64-linux"}},
              "{DEP_DRV}":{{"outputs":{{"out":{{"path":"{DEP_OUT}"}},"dev":{{"path":"{DEP_DEV}"}}}},"inputSrcs":["{TOOLS}"],"inputDrvs":{{}}}}}},
             "sourceClosure":["{TOOLS}"],"package":{{"name":"hello-0.1","mainProgram":"hello","outputs":[{{"name":"out","path":"{APP_OUT}"}}]}},"flake":{{"lastModified":7}}}}"#
        )
    }

    #[test]
    fn inputs_are_the_used_outputs_of_direct_input_derivations() {
        let plan = parse_plan(nix_2_8().as_bytes()).unwrap().unwrap();
        assert_eq!(plan.drv, APP_DRV);
        assert_eq!(plan.inputs, [(DEP_DRV.to_string(), DEP_OUT.to_string())], "dev is not used");
        assert_eq!(plan.sources, [TOOLS]);
        assert_eq!(
            (plan.package.main_program.as_deref(), plan.package.flake_last_modified),
            (Some("hello"), Some(7))
        );
        assert_eq!(plan.outputs, [APP_OUT]);
    }

    #[test]
    fn outputs_must_be_the_derivations_own() {
        let forged = nix_2_8().replace(
            &format!(r#""name":"out","path":"{APP_OUT}""#),
            &format!(r#""name":"out","path":"{DEP_OUT}""#),
        );
        let e = parse_plan(forged.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("is not an output of its derivation"), "{e}");
        let none = nix_2_8().replace(&format!(r#"[{{"name":"out","path":"{APP_OUT}"}}]"#), "[]");
        assert!(parse_plan(none.as_bytes()).is_err());
    }

    #[test]
    fn the_recent_shape_reads_the_same() {
        let bare = |p: &str| p.trim_start_matches("/nix/store/").to_string();
        let recent = nix_2_8()
            .replace(
                &format!(r#"{{"{DEP_DRV}":["out"]}}"#),
                &format!(r#"{{"{}":{{"outputs":["out"],"dynamicOutputs":{{}}}}}}"#, bare(DEP_DRV)),
            )
            .replace(&format!(r#""{DEP_DRV}":{{"outputs""#), &format!(r#""{}":{{"outputs""#, bare(DEP_DRV)));
        assert_eq!(parse_plan(recent.as_bytes()).unwrap(), parse_plan(nix_2_8().as_bytes()).unwrap());
    }

    #[test]
    fn further_packages_are_inputs_and_roots() {
        let with_extra = nix_2_8().replace(
            r#","flake":{"lastModified":7}"#,
            &format!(r#","flake":{{"lastModified":7}},"extras":[{{"drvPath":"{DEP_DRV}","outputs":[{{"name":"dev","path":"{DEP_DEV}"}}]}}]"#),
        );
        let plan = parse_plan(with_extra.as_bytes()).unwrap().unwrap();
        assert_eq!(plan.extra_roots, [DEP_DEV]);
        assert!(plan.inputs.contains(&(DEP_DRV.to_string(), DEP_DEV.to_string())));
        let forged = with_extra.replace(
            &format!(r#""name":"dev","path":"{DEP_DEV}""#),
            &format!(r#""name":"dev","path":"{APP_OUT}""#),
        );
        assert!(parse_plan(forged.as_bytes()).unwrap_err().to_string().contains("is not an output of"));
    }

    #[test]
    fn floating_outputs_and_holes_are_told_apart() {
        let floating = nix_2_8().replace(&format!(r#""out":{{"path":"{DEP_OUT}"}}"#), r#""out":{}"#);
        assert!(matches!(parse_plan(floating.as_bytes()).unwrap(), Err(Unplannable::FloatingOutput(_))));
        let holed = nix_2_8().replace(
            &format!(r#""{DEP_DRV}":{{"outputs""#),
            r#""/nix/store/0000000000000000000000000000000a-x.drv":{"outputs""#,
        );
        assert!(parse_plan(holed.as_bytes()).unwrap_err().to_string().contains("lacks the input derivation"));
        assert!(parse_plan(b"{}").is_err());
    }
}
