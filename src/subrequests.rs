//! Subrequests (`requestid=...`): questions about the build rather than the build itself,
//! answered as the Dockerfile frontend answers them, so `docker buildx build --print=outline`
//! (`--call outline` in newer buildx), `--print=targets` and `--check` work.
//!
//! Each answer is metadata only: `result.json`, `result.txt` (for people) and `version`.
//! `targets` needs the flake evaluated, so the frontend runs it in the builder and passes the
//! names here; the rest is answered from the parsed file alone.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::nixfile::{FileError, Nixfile, Warning};
use crate::options::{
    ARG_NIX_CONFIG, ARG_NIX_IMAGE, ARG_NIX_LAYERS, ARG_NIX_PERSISTENT_STORE, ARG_NIX_VERIFY_STORE,
    DEFAULT_MAX_LAYERS, DEFAULT_NIX_IMAGE,
};

pub const DESCRIBE: &str = "frontend.subrequests.describe";
pub const OUTLINE: &str = "frontend.outline";
pub const TARGETS: &str = "frontend.targets";
pub const LINT: &str = "frontend.lint";

/// The frontend capability a client checks before sending subrequests.
pub const CAP_SUBREQUESTS: &str = "moby.buildkit.frontend.subrequests";

const VERSION: &str = "1.0.0";

/// Which subrequest, if any, `requestid` asks for; an unknown one is an error naming the
/// known ones.
pub fn requested(request_id: Option<&str>) -> Result<Option<&'static str>> {
    let Some(id) = request_id.filter(|v| !v.is_empty()) else { return Ok(None) };
    match [DESCRIBE, OUTLINE, TARGETS, LINT].into_iter().find(|known| *known == id) {
        Some(known) => Ok(Some(known)),
        None => {
            bail!("unsupported subrequest {id:?}; nixfront answers {DESCRIBE}, {OUTLINE}, {TARGETS}, {LINT}")
        }
    }
}

/// Refuses a `frontend.caps` the client requires that nixfront lacks.
pub fn check_caps(frontend_caps: Option<&str>) -> Result<()> {
    let Some(caps) = frontend_caps else { return Ok(()) };
    // buildx may add `+forward` ("forward to a newer frontend if unsupported"): the base
    // capability is what counts.
    for cap in caps.split(',').map(|c| c.trim().split('+').next().unwrap_or("")).filter(|c| !c.is_empty()) {
        if cap != CAP_SUBREQUESTS {
            bail!("unsupported frontend capability {cap:?}; nixfront supports {CAP_SUBREQUESTS}");
        }
    }
    Ok(())
}

/// A subrequest's answer: metadata for the Return.
pub fn answer(json_value: &Value, text: String) -> BTreeMap<String, Vec<u8>> {
    let mut meta = BTreeMap::new();
    meta.insert("result.json".to_string(), serde_json::to_vec_pretty(json_value).unwrap_or_default());
    meta.insert("result.txt".to_string(), text.into_bytes());
    meta.insert("version".to_string(), VERSION.as_bytes().to_vec());
    meta
}

fn request(name: &str, description: &str, opts: Value) -> Value {
    json!({
        "name": name,
        "version": VERSION,
        "type": "rpc",
        "description": description,
        "opts": opts,
        "inputs": [],
        "metadata": [{ "name": "result.json" }, { "name": "result.txt" }],
        "refs": [],
    })
}

/// `frontend.subrequests.describe`: what this frontend answers.
pub fn describe() -> (Value, String) {
    let list = json!([
        request(DESCRIBE, "List available subrequest types", json!([])),
        request(
            OUTLINE,
            "List the build args, secrets and SSH the build uses",
            json!([{ "name": "target", "description": "Flake attribute" }])
        ),
        request(TARGETS, "List the flake's packages for the target platform", json!([])),
        request(LINT, "Check the Nixfile for likely mistakes", json!([])),
    ]);
    let mut text = String::from("NAME                   VERSION DESCRIPTION\n");
    for r in list.as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or("").trim_start_matches("frontend.");
        text.push_str(&format!("{name:<22} {VERSION:<7} {}\n", r["description"].as_str().unwrap_or("")));
    }
    (list, text)
}

/// A BuildKit `pb.Location` for one line of source 0, as JSON.
fn location(line: usize) -> Value {
    let line = line as i64;
    json!({ "ranges": [{ "start": { "line": line }, "end": { "line": line } }] })
}

/// nixfront's own build args with their defaults and meaning.
fn nixfront_args() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (ARG_NIX_IMAGE, DEFAULT_NIX_IMAGE.to_string(), "Builder image with nix on its PATH"),
        (ARG_NIX_LAYERS, DEFAULT_MAX_LAYERS.to_string(), "Most layers in the image (2-125)"),
        (ARG_NIX_PERSISTENT_STORE, "true".to_string(), "Keep /nix in a cache mount between builds"),
        (ARG_NIX_VERIFY_STORE, "false".to_string(), "Verify the persistent store before building"),
        (ARG_NIX_CONFIG, String::new(), "Extra nix.conf lines for nix build"),
    ]
}

/// The secrets and SSH sockets `nix build` can use, all optional.
pub const SECRETS: &[(&str, &str)] = &[
    ("netrc", "netrc file for private binary caches and fetches"),
    ("access-tokens", "Nix access-tokens (host=token ...) for private flake inputs"),
];

/// `frontend.outline`: the build args (the file's and nixfront's), secrets and SSH.
pub fn outline(nixfile: &Nixfile, target: &str, source: &[u8]) -> (Value, String) {
    let mut args: Vec<Value> = nixfile
        .args
        .iter()
        .map(|a| {
            let mut v = json!({ "name": a.name, "location": location(a.line) });
            if let Some(d) = &a.default {
                v["value"] = json!(d);
            }
            v
        })
        .collect();
    args.extend(nixfront_args().into_iter().map(
        |(name, value, description)| json!({ "name": name, "value": value, "description": description }),
    ));
    let secrets: Vec<Value> = SECRETS.iter().map(|(name, _)| json!({ "name": name })).collect();
    let outline = json!({
        "name": target,
        "description": format!("Nix flake reference {target}"),
        "args": args,
        "secrets": secrets,
        "ssh": [{ "name": "default" }],
        "sources": [base64(source)],
    });
    let mut text = format!(
        "TARGET:      {target}\n\nBUILD ARG              VALUE                          DESCRIPTION\n"
    );
    for a in outline["args"].as_array().into_iter().flatten() {
        let (name, value) = (a["name"].as_str().unwrap_or(""), a["value"].as_str().unwrap_or(""));
        text.push_str(&format!("{name:<22} {value:<30} {}\n", a["description"].as_str().unwrap_or("")));
    }
    text.push_str("\nSECRET                 REQUIRED\n");
    for (name, _) in SECRETS {
        text.push_str(&format!("{name:<22} false\n"));
    }
    text.push_str("\nSSH                    REQUIRED\ndefault                false\n");
    (outline, text)
}

/// `frontend.targets`: the flake's packages (`name -> description`) for the platform.
pub fn targets(packages: &BTreeMap<String, String>, current: &str, source: &[u8]) -> (Value, String) {
    let list: Vec<Value> = packages
        .iter()
        .map(|(name, description)| {
            let mut t = json!({ "name": name });
            if name == current || (current.is_empty() && name == "default") {
                t["default"] = json!(true);
            }
            if !description.is_empty() {
                t["description"] = json!(description);
            }
            t
        })
        .collect();
    let mut text = String::from("TARGET               DESCRIPTION\n");
    for t in &list {
        let mut name = t["name"].as_str().unwrap_or("").to_string();
        if t.get("default").is_some() {
            name.push_str(" (default)");
        }
        text.push_str(&format!("{name:<20} {}\n", t["description"].as_str().unwrap_or("")));
    }
    (json!({ "targets": list, "sources": [base64(source)] }), text)
}

/// `frontend.lint`: warnings with their rule and line, or the parse error.
pub fn lint(filename: &str, parsed: &Result<Nixfile, FileError>, source: &[u8]) -> (Value, String) {
    let warning = |w: &Warning| {
        json!({
            "ruleName": w.rule.name,
            "description": w.rule.description,
            "url": format!("docs/lint.md#{}", w.rule.name.to_ascii_lowercase()),
            "detail": w.detail,
            "location": location(w.line),
        })
    };
    let (warnings, error) = match parsed {
        Ok(f) => (f.warnings.iter().map(warning).collect::<Vec<_>>(), None),
        Err(e) => (Vec::new(), Some(json!({ "message": e.to_string(), "location": location(e.line) }))),
    };
    let mut result = json!({
        "warnings": warnings,
        "sources": [{ "filename": filename, "language": "Dockerfile", "data": base64(source) }],
    });
    let mut text = String::new();
    if let Ok(f) = parsed {
        for w in &f.warnings {
            text.push_str(&format!(
                "{} - {}\n{filename}:{}: {}\n\n",
                w.rule.name, w.rule.description, w.line, w.detail
            ));
        }
        if f.warnings.is_empty() {
            text.push_str("Check complete, no warnings found.\n");
        }
    }
    if let Some(e) = error {
        text.push_str(&format!("{}\n", e["message"].as_str().unwrap_or("")));
        result["buildError"] = e;
    }
    (result, text)
}

/// Standard base64, as Go's encoding/json writes `[]byte`.
fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nixfile::parse;

    #[test]
    fn request_ids_and_caps() {
        assert_eq!(requested(None).unwrap(), None);
        assert_eq!(requested(Some("frontend.outline")).unwrap(), Some(OUTLINE));
        assert!(requested(Some("frontend.nope")).unwrap_err().to_string().contains("unsupported"));
        assert!(check_caps(Some(CAP_SUBREQUESTS)).is_ok());
        assert!(check_caps(Some("moby.buildkit.frontend.subrequests+forward")).is_ok());
        assert!(check_caps(Some("moby.buildkit.frontend.contexts")).is_err());
    }

    #[test]
    fn describe_lists_every_subrequest() {
        let (v, text) = describe();
        let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, [DESCRIBE, OUTLINE, TARGETS, LINT]);
        assert!(text.contains("outline") && text.contains("1.0.0"));
    }

    #[test]
    fn outline_lists_file_args_nixfront_args_and_secrets() {
        let src = b"ARG APP=hello\nFLAKE .#$APP\n";
        let nf = parse("Dockerfile", src).unwrap();
        let (v, text) = outline(&nf, ".#hello", src);
        assert_eq!(v["args"][0]["name"], "APP");
        assert_eq!(v["args"][0]["value"], "hello");
        assert_eq!(v["args"][0]["location"]["ranges"][0]["start"]["line"], 1);
        assert!(v["args"].as_array().unwrap().iter().any(|a| a["name"] == "NIX_IMAGE"));
        assert_eq!(v["secrets"][0]["name"], "netrc");
        assert_eq!(v["sources"][0], base64(src));
        assert!(text.contains("NIX_LAYERS") && text.contains("access-tokens"));
    }

    #[test]
    fn targets_mark_the_default() {
        let packages =
            BTreeMap::from([("default".into(), String::new()), ("hello".into(), "Says hello".into())]);
        let (v, text) = targets(&packages, "", b"");
        assert_eq!(v["targets"][0]["default"], true);
        assert_eq!(v["targets"][1]["description"], "Says hello");
        assert!(text.contains("default (default)"));
    }

    #[test]
    fn lint_reports_warnings_or_the_error() {
        let src = b"FLAKE github:o/r#x\nCMD [\"a\"]\nCMD [\"b\"]\n";
        let (v, text) = lint("Dockerfile", &parse("Dockerfile", src), src);
        let rules: Vec<&str> =
            v["warnings"].as_array().unwrap().iter().map(|w| w["ruleName"].as_str().unwrap()).collect();
        assert_eq!(rules, ["UnpinnedFlakeReference", "RepeatedInstruction"]);
        assert_eq!(v["warnings"][1]["location"]["ranges"][0]["start"]["line"], 3);
        assert!(text.contains("Dockerfile:3: CMD is also given on line 2"));
        let bad = b"FLAK x\n";
        let (v, _) = lint("Dockerfile", &parse("Dockerfile", bad), bad);
        assert!(v["buildError"]["message"].as_str().unwrap().contains("did you mean FLAKE"));
    }

    #[test]
    fn every_lint_rule_has_a_doc_section() {
        let doc = include_str!("../docs/lint.md");
        for rule in crate::nixfile::RULES {
            assert!(doc.contains(&format!("## {}\n", rule.name)), "docs/lint.md lacks ## {}", rule.name);
        }
    }
}
