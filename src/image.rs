//! The OCI image config: entrypoint, environment, labels and the rest, from the Nixfile and
//! what the build produced.
//!
//! Program names are resolved here: `ENTRYPOINT ["hello"]` becomes the store path of the
//! package's `bin/hello`. Layers' `rootfs` and `history` are left for BuildKit's exporter.

use std::collections::BTreeMap;

use anyhow::Result;
use bollard_buildkit_proto::pb;
use serde_json::{Map, Value, json};

use crate::closure::{Closure, Package};
use crate::memo::BinEntry;
use crate::nixfile::{FileError, Lines, Nixfile, Spanned};

/// The PATH tail after the package's own `bin`, as Docker's default PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub const LABEL_FLAKE: &str = "org.nixfront.flake";
pub const LABEL_VERSION: &str = "org.nixfront.version";
pub const LABEL_RESULT: &str = "org.nixfront.result";
/// The OCI labels that name the base image (`FROM`), as `docker buildx` sets them.
pub const LABEL_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const LABEL_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The base image (`FROM`) as resolved for the platform.
pub struct BaseConfig<'a> {
    /// The reference the build used, for the label.
    pub name: &'a str,
    pub digest: &'a str,
    /// Its image config (`ResolveImageConfig`'s answer), parsed.
    pub image: &'a Value,
}

/// Everything the config is made from.
pub struct ConfigInputs<'a> {
    pub filename: &'a str,
    pub nixfile: &'a Nixfile,
    pub closure: &'a Closure,
    /// `meta.mainProgram`, the entrypoint's default.
    pub main_program: Option<&'a str>,
    /// The main result's `bin/` (empty when it has none).
    pub bin: &'a [BinEntry],
    pub platform: &'a pb::Platform,
    /// The flake reference as written, for the label.
    pub flake: &'a str,
    /// The lines of the user's file that name the flake (FLAKE, else the first line), for
    /// errors about the package.
    pub flake_lines: Lines,
    /// `--label` values from the client.
    pub extra_labels: &'a BTreeMap<String, String>,
    /// Unix seconds for `created` and the history: never the time of the build.
    pub created: i64,
    /// What each layer holds, bottom to top, for the history.
    pub layers: &'a [String],
    /// What the build read from its steps, for a fresh runner with inline cache
    /// ([`crate::memo`]); an empty one is left out. Every config has it: BuildKit does not
    /// tell a frontend that the image carries inline cache (`--cache-to type=inline`).
    pub memo: &'a crate::memo::Memo,
    /// `User`: USER as written when numeric, else the `uid:gid` it names.
    pub user: Option<String>,
    /// What the image's packages set (`SSL_CERT_FILE`, `TZDIR`): after the base image's, before
    /// the file's ENV.
    pub package_env: &'a [(String, String)],
    pub base: Option<&'a BaseConfig<'a>>,
}

/// The image's date: `SOURCE_DATE_EPOCH`, else the flake's `lastModified` when the flake is
/// not the build context (for a `path:` flake Nix takes the newest mtime in the tree, and
/// BuildKit gives the context's top directory a new one in every build), else the epoch.
pub fn creation_time(source_date_epoch: Option<i64>, package: &Package, flake_is_context: bool) -> i64 {
    let last_modified = if flake_is_context { None } else { package.flake_last_modified };
    source_date_epoch.or(last_modified).unwrap_or(0).max(0)
}

/// `1970-01-01T00:00:00Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Builds the image config JSON.
pub fn image_config(inputs: &ConfigInputs) -> Result<Vec<u8>> {
    let Command { entrypoint, cmd } = command(inputs)?;
    let main = inputs.closure.main_result();

    let base_config = inputs.base.and_then(|b| b.image.get("config")).and_then(Value::as_object);
    let base_field = |name: &str| base_config.and_then(|c| c.get(name)).filter(|v| !v.is_null());
    let mut env: Vec<(String, String)> = base_field("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let set = |env: &mut Vec<(String, String)>, name: &str, value: String| match env
        .iter_mut()
        .find(|(n, _)| n == name)
    {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    };
    let tail = env.iter().find(|(n, _)| n == "PATH").map_or(DEFAULT_PATH.to_string(), |(_, v)| v.clone());
    set(&mut env, "PATH", format!("{main}/bin:{tail}"));
    for (name, value) in inputs.package_env.iter().chain(&inputs.nixfile.env) {
        set(&mut env, name, value.clone());
    }

    let mut labels: BTreeMap<String, Value> = base_field("Labels")
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    let mut ours = BTreeMap::new();
    if let Some(base) = inputs.base {
        ours.insert(LABEL_BASE_NAME.to_string(), base.name.to_string());
        if !base.digest.is_empty() {
            ours.insert(LABEL_BASE_DIGEST.to_string(), base.digest.to_string());
        }
    }
    let mut labels_tail = BTreeMap::new();
    labels_tail.insert(LABEL_FLAKE.to_string(), inputs.flake.to_string());
    labels_tail.insert(LABEL_VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string());
    labels_tail.insert(LABEL_RESULT.to_string(), main.to_string());
    ours.extend(labels_tail);
    ours.extend(inputs.nixfile.labels.iter().cloned());
    ours.extend(inputs.extra_labels.clone());
    labels.extend(ours.into_iter().map(|(k, v)| (k, Value::String(v))));

    // A base image's config is the start, as a Dockerfile's FROM has it: what the file sets
    // replaces its values, ports and volumes add to its own, and its command goes (the
    // entrypoint is ours).
    let mut config: Map<String, Value> = base_config.cloned().unwrap_or_default();
    for gone in ["Entrypoint", "Cmd", "Env", "Labels"] {
        config.remove(gone);
    }
    config.insert("Env".into(), json!(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()));
    if let Some(e) = entrypoint {
        config.insert("Entrypoint".into(), json!(e));
    }
    if let Some(c) = cmd {
        config.insert("Cmd".into(), json!(c));
    }
    config.insert("Labels".into(), json!(labels));
    let nf = inputs.nixfile;
    let mut add_keys = |field: &str, keys: Vec<String>| {
        if keys.is_empty() {
            return;
        }
        let mut map = config.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
        map.extend(keys.into_iter().map(|k| (k, json!({}))));
        config.insert(field.into(), Value::Object(map));
    };
    add_keys("ExposedPorts", nf.expose.iter().map(|p| format!("{}/{}", p.number, p.protocol)).collect());
    add_keys("Volumes", nf.volumes.clone());
    if let Some(user) = &inputs.user {
        config.insert("User".into(), json!(user));
    }
    if let Some(dir) = &nf.workdir {
        config.insert("WorkingDir".into(), json!(dir));
    }
    if let Some(signal) = &nf.stop_signal {
        config.insert("StopSignal".into(), json!(signal));
    }
    if let Some(check) = &nf.healthcheck {
        let command = match &check.value {
            crate::nixfile::healthcheck::Healthcheck::Check { command, .. } => {
                resolve(inputs, &Spanned { value: command.clone(), lines: check.lines }, "HEALTHCHECK")?
            }
            crate::nixfile::healthcheck::Healthcheck::None => Vec::new(),
        };
        config.insert("Healthcheck".into(), check.value.to_config(&command));
    }

    let created = rfc3339(inputs.created);
    let mut history: Vec<Value> = inputs
        .base
        .and_then(|b| b.image.get("history"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    history.extend(
        inputs
            .layers
            .iter()
            .map(|layer| json!({ "created": created, "created_by": layer, "comment": "nixfront" })),
    );
    let mut image = json!({
        "architecture": inputs.platform.architecture,
        "os": inputs.platform.os,
        "created": created,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": history,
    });
    if !inputs.platform.variant.is_empty() {
        image["variant"] = json!(inputs.platform.variant);
    }
    if !inputs.memo.is_empty()
        && let Some(memo) = inputs.memo.to_config_value()
    {
        image[crate::memo::CONFIG_FIELD] = memo;
    }
    if let Some(record) = crate::previous::record(inputs.closure) {
        image[crate::previous::CLOSURE_FIELD] = record;
    }
    Ok(serde_json::to_vec(&image)?)
}

/// The image's `Entrypoint` and `Cmd`, either possibly absent.
struct Command {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

/// Entrypoint and Cmd. ENTRYPOINT wins; a CMD whose program is in `bin/` (or is a path) is
/// the whole command; otherwise the package's main program is the entrypoint and CMD its
/// arguments.
fn command(inputs: &ConfigInputs) -> Result<Command> {
    let nf = inputs.nixfile;
    let cmd_as_args = || nf.cmd.as_ref().map(|c| c.value.clone());
    if let Some(ep) = &nf.entrypoint {
        let entrypoint = Some(resolve(inputs, ep, "ENTRYPOINT")?);
        return Ok(Command { entrypoint, cmd: cmd_as_args() });
    }
    if let Some(cmd) = &nf.cmd {
        let first = &cmd.value[0];
        if first.contains('/') || inputs.bin.iter().any(|b| b.executable && &b.name == first) {
            let cmd = Some(resolve(inputs, cmd, "CMD")?);
            return Ok(Command { entrypoint: None, cmd });
        }
    }
    let program = default_program(inputs)?;
    Ok(Command { entrypoint: Some(vec![program]), cmd: cmd_as_args() })
}

fn resolve(inputs: &ConfigInputs, list: &Spanned<Vec<String>>, keyword: &str) -> Result<Vec<String>> {
    let mut out = list.value.clone();
    let first = &out[0];
    if first.contains('/') {
        return Ok(out);
    }
    if !inputs.bin.iter().any(|b| b.executable && &b.name == first) {
        let main = inputs.closure.main_result();
        let err = FileError::at(
            inputs.filename,
            list.lines,
            Some(keyword),
            format!(
                "`{first}` is not an executable in {main}/bin ({}); name one of those or give an absolute path",
                available(inputs.bin)
            ),
        );
        return Err(err.into());
    }
    out[0] = format!("{}/bin/{first}", inputs.closure.main_result());
    Ok(out)
}

fn available(bin: &[BinEntry]) -> String {
    let names: Vec<&str> = bin.iter().filter(|b| b.executable).map(|b| b.name.as_str()).collect();
    if names.is_empty() { "it has none".to_string() } else { format!("it has: {}", names.join(", ")) }
}

/// `meta.mainProgram`, else the only executable in `bin/`.
fn default_program(inputs: &ConfigInputs) -> Result<String> {
    let main = inputs.closure.main_result();
    if let Some(program) = inputs.main_program {
        return Ok(format!("{main}/bin/{program}"));
    }
    let executables: Vec<&BinEntry> = inputs.bin.iter().filter(|b| b.executable).collect();
    match executables.as_slice() {
        [only] => Ok(format!("{main}/bin/{}", only.name)),
        _ => Err(FileError::at(
            inputs.filename,
            inputs.flake_lines,
            Some("FLAKE"),
            format!(
                "cannot tell which program the image runs: the package sets no meta.mainProgram and \
                 {main}/bin has {} executables ({}); add ENTRYPOINT [\"<program>\"] to {}",
                executables.len(),
                available(inputs.bin),
                inputs.filename
            ),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::StorePath;
    use crate::nixfile::parse;

    const MAIN: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";

    fn closure() -> Closure {
        Closure {
            results: vec![MAIN.into()],
            paths: vec![StorePath {
                path: MAIN.into(),
                nar_size: 1,
                nar_hash: None,
                references: vec![],
                deriver: None,
            }],
        }
    }

    fn bin(names: &[&str]) -> Vec<BinEntry> {
        names.iter().map(|n| BinEntry { name: n.to_string(), executable: true }).collect()
    }

    fn config(file: &str, main_program: Option<&str>, bins: &[&str]) -> Result<Value> {
        config_with(file, main_program, bins, &crate::memo::Memo::default())
    }

    fn config_with(
        file: &str,
        main_program: Option<&str>,
        bins: &[&str],
        memo: &crate::memo::Memo,
    ) -> Result<Value> {
        let nixfile = parse("Dockerfile", file.as_bytes(), &BTreeMap::new()).result.unwrap();
        let closure = closure();
        let bin = bin(bins);
        let platform = crate::llb::platform("linux", "arm64", "v8");
        let labels = BTreeMap::from([("from-cli".to_string(), "1".to_string())]);
        let layers = ["layer 1/1: hello-0.1 (1 B)".to_string(), "top".to_string()];
        let inputs = ConfigInputs {
            created: 1_700_000_000,
            layers: &layers,
            filename: "Dockerfile",
            nixfile: &nixfile,
            closure: &closure,
            main_program,
            bin: &bin,
            platform: &platform,
            flake: ".#hello",
            flake_lines: Lines::one(1),
            extra_labels: &labels,
            memo,
            user: nixfile.user.as_ref().map(|u| u.value.clone()),
            package_env: &[],
            base: None,
        };
        Ok(serde_json::from_slice(&image_config(&inputs)?)?)
    }

    #[test]
    fn the_memo_and_the_closure_record_are_top_level_fields() {
        let plain = config("", None, &["hello"]).unwrap();
        assert!(plain.get(crate::memo::CONFIG_FIELD).is_none(), "an empty memo is left out");
        let record = &plain[crate::previous::CLOSURE_FIELD];
        assert_eq!(record["results"], json!(closure().results), "every config records its closure");
        assert_eq!(record["narSizes"].as_object().map(|m| m.len()), Some(closure().paths.len()));
        let mut memo = crate::memo::Memo::default();
        memo.record("sha256:k".into(), &[0u8; 0]);
        let with = config_with("", None, &["hello"], &memo).unwrap();
        assert_eq!(with[crate::memo::CONFIG_FIELD], json!({"sha256:k": "[]"}));
        assert_eq!(with["config"], plain["config"], "the memo leaves the config proper alone");
    }

    #[test]
    fn a_healthcheck_runs_a_program_of_the_package() {
        let c =
            config("HEALTHCHECK --interval=10s --retries=2 CMD [\"hello\", \"--ping\"]\n", None, &["hello"])
                .unwrap();
        assert_eq!(
            c["config"]["Healthcheck"],
            json!({"Test": ["CMD", format!("{MAIN}/bin/hello"), "--ping"], "Interval": 10_000_000_000u64, "Retries": 2})
        );
        let e = config("HEALTHCHECK CMD [\"curl\", \"localhost\"]\n", None, &["hello"]).unwrap_err();
        let e = e.downcast_ref::<FileError>().expect("an error at the line");
        assert_eq!((e.lines.start, e.instruction.as_deref()), (1, Some("HEALTHCHECK")));
        assert!(e.message.contains("`curl` is not an executable"), "{}", e.message);
        let none = config("HEALTHCHECK NONE\n", None, &["hello"]).unwrap();
        assert_eq!(none["config"]["Healthcheck"], json!({"Test": ["NONE"]}));
    }

    #[test]
    fn every_instruction_reaches_the_config() {
        let c = config(
            "ENTRYPOINT [\"hello\"]\nCMD [\"--loud\"]\nENV PATH=/custom A=1\nLABEL a=b\n\
             EXPOSE 80\nVOLUME /data\nUSER 1000\nWORKDIR /srv\nSTOPSIGNAL SIGINT\n",
            None,
            &["hello", "other"],
        )
        .unwrap();
        let cfg = &c["config"];
        assert_eq!(cfg["Entrypoint"], json!([format!("{MAIN}/bin/hello")]));
        assert_eq!(cfg["Cmd"], json!(["--loud"]));
        assert_eq!(cfg["Env"], json!(["PATH=/custom", "A=1"]));
        assert_eq!(cfg["Labels"]["a"], "b");
        assert_eq!(cfg["Labels"]["from-cli"], "1");
        assert_eq!(cfg["Labels"][LABEL_FLAKE], ".#hello");
        assert_eq!(cfg["Labels"][LABEL_RESULT], MAIN);
        assert_eq!(cfg["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(cfg["Volumes"], json!({"/data": {}}));
        assert_eq!((cfg["User"].as_str(), cfg["WorkingDir"].as_str()), (Some("1000"), Some("/srv")));
        assert_eq!(cfg["StopSignal"], "SIGINT");
        assert_eq!(
            (c["os"].as_str(), c["architecture"].as_str(), c["variant"].as_str()),
            (Some("linux"), Some("arm64"), Some("v8"))
        );
    }

    #[test]
    fn the_date_and_history_come_from_the_source_never_the_clock() {
        let c = config("", Some("hello"), &["hello"]).unwrap();
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
        assert_eq!(c["history"].as_array().unwrap().len(), 2, "one entry per layer");
        assert_eq!(c["history"][0]["created_by"], "layer 1/1: hello-0.1 (1 B)");
        assert_eq!(c["history"][1]["created"], "2023-11-14T22:13:20Z");
        let flake_dated = Package { main_program: None, flake_last_modified: Some(42) };
        assert_eq!(creation_time(Some(7), &flake_dated, false), 7);
        assert_eq!(creation_time(None, &flake_dated, false), 42);
        assert_eq!(
            creation_time(None, &flake_dated, true),
            0,
            "a context flake's lastModified is not stable"
        );
        assert_eq!(creation_time(None, &Package::default(), false), 0);
    }

    #[test]
    fn path_puts_the_package_bin_first() {
        let c = config("", Some("hello"), &["hello"]).unwrap();
        assert_eq!(c["config"]["Env"][0], format!("PATH={MAIN}/bin:{DEFAULT_PATH}"));
    }

    #[test]
    fn entrypoint_defaults_to_main_program_then_the_only_executable() {
        let c = config("", Some("hello"), &["hello", "other"]).unwrap();
        assert_eq!(c["config"]["Entrypoint"], json!([format!("{MAIN}/bin/hello")]));
        let c = config("", None, &["only"]).unwrap();
        assert_eq!(c["config"]["Entrypoint"], json!([format!("{MAIN}/bin/only")]));
        let e = config("", None, &["a", "b"]).unwrap_err().to_string();
        assert!(e.contains("add ENTRYPOINT") && e.contains("a, b"), "{e}");
        assert!(e.starts_with("Dockerfile:1: FLAKE: "), "points at the flake: {e}");
        let e = config("", None, &[]).unwrap_err().to_string();
        assert!(e.contains("it has none"), "{e}");
    }

    #[test]
    fn cmd_alone_is_the_command_when_it_names_a_program() {
        let c = config("CMD [\"other\", \"x\"]\n", Some("hello"), &["hello", "other"]).unwrap();
        assert!(c["config"].get("Entrypoint").is_none());
        assert_eq!(c["config"]["Cmd"], json!([format!("{MAIN}/bin/other"), "x"]));
        let c = config("CMD [\"--port\", \"80\"]\n", Some("hello"), &["hello"]).unwrap();
        assert_eq!(c["config"]["Entrypoint"], json!([format!("{MAIN}/bin/hello")]));
        assert_eq!(c["config"]["Cmd"], json!(["--port", "80"]));
    }

    #[test]
    fn an_unknown_program_points_at_its_line() {
        let e = config("\nENTRYPOINT [\"nope\"]\n", None, &["hello"]).unwrap_err().to_string();
        assert!(e.starts_with("Dockerfile:2: ENTRYPOINT: `nope` is not an executable"), "{e}");
        assert!(e.contains("it has: hello"), "{e}");
        let c = config("ENTRYPOINT [\"/bin/abs\"]\n", None, &[]).unwrap();
        assert_eq!(c["config"]["Entrypoint"], json!(["/bin/abs"]));
    }
}
