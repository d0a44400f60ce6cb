//! Subrequests (`requestid=...`): questions about the build rather than the build itself,
//! answered as the Dockerfile frontend answers them, so `docker buildx build --print=outline`
//! (`--call outline` in newer buildx), `--print=targets` and `--check` work.
//!
//! Each answer is metadata only: `result.json`, `result.txt` (for people) and `version`.
//! `targets` needs the flake evaluated, so the frontend runs it in the builder and passes the
//! names here; the rest is answered from the parsed file alone.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::nixfile::{Lines, Nixfile, Parsed, Warning};
use crate::options::args::{self, NIX_ARGS};
use crate::options::{Request, SUBREQUESTS};
use crate::plan::secrets::{SECRETS, SSH_ID};

/// The version of the answers' format.
pub const VERSION: &str = "1.0.0";

fn name_of(request: Request) -> &'static str {
    SUBREQUESTS.iter().find(|(_, r)| *r == request).map_or("", |(n, _)| n)
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
        request(name_of(Request::Describe), "List available subrequest types", json!([])),
        request(
            name_of(Request::Outline),
            "List the build args, secrets and SSH the build uses",
            json!([{ "name": "target", "description": "Flake attribute" }])
        ),
        request(name_of(Request::Targets), "List the flake's packages for the target platform", json!([])),
        request(name_of(Request::Lint), "Check the Nixfile for likely mistakes", json!([])),
    ]);
    let mut text = String::from("NAME                   VERSION DESCRIPTION\n");
    for r in list.as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or("").trim_start_matches("frontend.");
        text.push_str(&format!("{name:<22} {VERSION:<7} {}\n", r["description"].as_str().unwrap_or("")));
    }
    (list, text)
}

/// A BuildKit `pb.Location` for lines of source 0, as JSON.
fn location(lines: Lines) -> Value {
    crate::gateway::errors::ranges(lines)
}

/// `frontend.outline`: the build args (the file's and nixfront's) with the values this build
/// uses, the secrets and SSH.
pub fn outline(
    nixfile: &Nixfile,
    target: &str,
    source: &[u8],
    build_args: &BTreeMap<String, String>,
) -> (Value, String) {
    let mut args: Vec<Value> = nixfile
        .args
        .iter()
        .map(|a| {
            let mut v = json!({ "name": a.name, "location": location(a.lines) });
            if let Some(value) = &a.value {
                v["value"] = json!(value);
            }
            v
        })
        .collect();
    args.extend(NIX_ARGS.iter().map(|spec| {
        json!({ "name": spec.name, "value": args::effective(build_args, spec), "description": spec.doc })
    }));
    let secrets: Vec<Value> = SECRETS.iter().map(|s| json!({ "name": s.id })).collect();
    let mut description = format!("Nix flake reference {target}");
    if !nixfile.extra_flakes.is_empty() {
        description.push_str(&format!(" with {}", nixfile.extra_flakes.join(", ")));
    }
    if let Some(from) = &nixfile.from {
        description.push_str(&format!(", on {}", from.value));
    }
    let outline = json!({
        "name": target,
        "description": description,
        "args": args,
        "secrets": secrets,
        "ssh": [{ "name": SSH_ID }],
        "sources": [base64(source)],
    });
    let mut text = format!("TARGET:      {target}\n");
    if !nixfile.extra_flakes.is_empty() {
        text.push_str(&format!("PACKAGES:    {}\n", nixfile.extra_flakes.join(" ")));
    }
    if let Some(from) = &nixfile.from {
        text.push_str(&format!("FROM:        {}\n", from.value));
    }
    text.push_str("\nBUILD ARG              VALUE                          DESCRIPTION\n");
    for a in outline["args"].as_array().into_iter().flatten() {
        let (name, value) = (a["name"].as_str().unwrap_or(""), a["value"].as_str().unwrap_or(""));
        text.push_str(&format!("{name:<22} {value:<30} {}\n", a["description"].as_str().unwrap_or("")));
    }
    text.push_str("\nSECRET                 REQUIRED\n");
    for s in SECRETS {
        text.push_str(&format!("{:<22} false\n", s.id));
    }
    text.push_str(&format!("\nSSH                    REQUIRED\n{SSH_ID:<22} false\n"));
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

/// `frontend.lint`: warnings with their rule and lines, and the parse error if there is one
/// (BuildKit reports both).
pub fn lint(filename: &str, parsed: &Parsed, source: &[u8]) -> (Value, String) {
    let warning = |w: &Warning| {
        json!({
            "ruleName": w.rule.name,
            "description": w.rule.explanation(),
            "detail": w.detail,
            "location": location(w.lines),
        })
    };
    let mut result = json!({
        "warnings": parsed.warnings.iter().map(warning).collect::<Vec<_>>(),
        "sources": [{ "filename": filename, "language": "Dockerfile", "data": base64(source) }],
    });
    let mut text = String::new();
    for w in &parsed.warnings {
        text.push_str(&format!(
            "{} - {}\n{filename}:{}: {}\n\n",
            w.rule.name, w.rule.description, w.lines.start, w.detail
        ));
    }
    match &parsed.result {
        Err(e) => {
            text.push_str(&format!("{e}\n"));
            result["buildError"] = json!({ "message": e.to_string(), "location": location(e.lines) });
        }
        Ok(_) if parsed.warnings.is_empty() => text.push_str("Check complete, no warnings found.\n"),
        Ok(_) => {}
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

    fn parsed(src: &[u8]) -> Parsed {
        parse("Dockerfile", src, &BTreeMap::new())
    }

    #[test]
    fn describe_lists_every_subrequest() {
        let (v, text) = describe();
        let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        let all: Vec<&str> = SUBREQUESTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, all);
        assert!(text.contains("outline") && text.contains("1.0.0"));
    }

    #[test]
    fn outline_lists_the_values_this_build_uses() {
        let src = b"ARG APP=hello\nFLAKE .#$APP\n";
        let given: BTreeMap<String, String> = [("APP", "bye"), ("NIX_LAYERS", "40")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let nf = parse("Dockerfile", src, &given).result.unwrap();
        let (v, text) = outline(&nf, ".#bye", src, &given);
        assert_eq!(v["args"][0]["name"], "APP");
        assert_eq!(v["args"][0]["value"], "bye", "the --build-arg, not the default");
        assert_eq!(v["args"][0]["location"]["ranges"][0]["start"]["line"], 1);
        let value_of = |name: &str| {
            v["args"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["value"].clone()
        };
        assert_eq!(value_of("NIX_LAYERS"), "40");
        assert_eq!(value_of("NIX_SBOM_FILE"), "false");
        for spec in NIX_ARGS {
            assert!(text.contains(spec.name), "{} missing from the outline", spec.name);
        }
        assert_eq!(v["secrets"][0]["name"], "netrc");
        assert_eq!(v["sources"][0], base64(src));
        assert!(text.contains("access-tokens"));

        let src = b"FROM debian:12\nFLAKE .#app .#cacert\n";
        let nf = parse("Dockerfile", src, &BTreeMap::new()).result.unwrap();
        let (v, text) = outline(&nf, ".#app", src, &BTreeMap::new());
        assert_eq!(v["description"], "Nix flake reference .#app with .#cacert, on debian:12");
        assert!(text.contains("PACKAGES:    .#cacert\nFROM:        debian:12\n"), "{text}");
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
    fn lint_reports_warnings_and_the_error_together() {
        let src = b"FLAKE github:o/r#x\nCMD [\"a\"]\nCMD [\"b\"]\n";
        let (v, text) = lint("Dockerfile", &parsed(src), src);
        let rules: Vec<&str> =
            v["warnings"].as_array().unwrap().iter().map(|w| w["ruleName"].as_str().unwrap()).collect();
        assert_eq!(rules, ["UnpinnedFlakeReference", "RepeatedInstruction"]);
        assert_eq!(v["warnings"][1]["location"]["ranges"][0]["start"]["line"], 3);
        assert!(text.contains("Dockerfile:3: CMD is also given on line 2"));
        let bad = b"CMD [\"a\"]\nCMD [\"b\"]\nFLAK x\n";
        let (v, text) = lint("Dockerfile", &parsed(bad), bad);
        assert!(v["buildError"]["message"].as_str().unwrap().contains("did you mean FLAKE"));
        assert_eq!(v["buildError"]["location"]["ranges"][0]["start"]["line"], 3);
        assert_eq!(v["warnings"][0]["ruleName"], "RepeatedInstruction", "warnings beside the error");
        assert!(text.contains("RepeatedInstruction") && text.contains("did you mean FLAKE"));
    }
}
