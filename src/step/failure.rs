//! A failed step's [`Failure`], in the user's terms: read from what Nix said (the derivation
//! that failed and the last lines of its log, or Nix's error), with nixfront's own paths
//! named as the user knows them, and told twice: on stderr (the step's log) and in the
//! build's failure box, where the frontend's report step finds it.

use std::io::Write;
use std::path::Path;

use super::outcome::Stop;
use crate::plan::output::{BUILD_ID_SUFFIX, CONTEXT_DIR, FAILURES_DIR, OVERRIDES_DIR};
use crate::plan::spec::Failure;

/// How many lines of a derivation's log, or of Nix's error, the user's error carries.
pub const LOG_LINES: usize = 25;

/// The failure of a Nix process, from its last lines of stderr.
pub fn of_nix(lines: &[String]) -> Stop {
    let lines: Vec<String> = lines.iter().map(|l| user_terms(l)).collect();
    let error_at = lines.iter().rposition(|l| l.trim_start().starts_with("error:"));
    let error: Vec<String> = match error_at {
        // Nix's error, with the first line of its trace that matters (`… while ...`) kept.
        Some(i) => lines[i..].to_vec(),
        None => lines.iter().rev().take(LOG_LINES).rev().cloned().collect(),
    };
    let derivation = error.iter().find_map(|l| failed_derivation(l));
    let mut failure = Failure { summary: "Nix failed".to_string(), ..Default::default() };
    if let Some(name) = derivation {
        let prefixes = [format!("{}> ", package_name(&name)), format!("{name}> ")];
        let log: Vec<&String> = lines.iter().filter(|l| prefixes.iter().any(|p| l.starts_with(p))).collect();
        failure.summary = format!("the derivation {name} failed to build");
        failure.log = match log.is_empty() {
            // Nix's error holds the log's last lines when it did not print them as it went.
            true => error.iter().take(LOG_LINES).cloned().collect(),
            false => log.iter().rev().take(LOG_LINES).rev().map(|l| l.to_string()).collect(),
        };
        failure.derivation = Some(name);
    } else {
        failure.log = error.into_iter().take(LOG_LINES).collect();
    }
    failure.missing_attribute = lines.iter().find_map(|l| missing_attribute(l));
    if lines.iter().any(|l| l.contains("'allow-import-from-derivation' is disabled")) {
        failure.hint = Some(IMPORT_FROM_DERIVATION.to_string());
    } else if let Some(hint) = unusable_builder(&lines) {
        failure.hint = Some(hint);
    }
    Stop { failure: Box::new(failure), code: 1 }
}

/// Why an evaluation that builds failed on the shared store, and what to do.
const IMPORT_FROM_DERIVATION: &str = "the flake builds a derivation while it is evaluated (import from \
    derivation), which nixfront does not do in the Nix store it shares with other builds (a builder \
    would run where Nix then writes store paths nobody could lock first; SECURITY.md): build with \
    --build-arg NIX_PERSISTENT_STORE=false, which evaluates and builds in a store of the build's own";

/// Why a remote builder could not be used, from Nix's `cannot build on 'URI': WHY` (the last
/// one), with what ssh said on the line before when it said something, and what to check.
fn unusable_builder(lines: &[String]) -> Option<String> {
    let at = lines.iter().rposition(|l| l.starts_with("cannot build on '"))?;
    let rest = &lines[at]["cannot build on '".len()..];
    let (uri, why) = rest.split_once("': ")?;
    let why = why.trim_start_matches("error: ");
    let ssh = at
        .checked_sub(1)
        .map(|i| lines[i].trim())
        .filter(|l| !l.is_empty() && !l.starts_with("cannot build on") && !l.contains("will be built"));
    let said = ssh.map(|l| format!(" (ssh: {l})")).unwrap_or_default();
    Some(format!(
        "the remote builder {uri} could not be used: {why}{said}; check that --secret id=ssh-key is a key \
         the host accepts, that the host answers from the builder (nixfront gives ssh 15 seconds to \
         connect), and that its machine spec lists the package's system and features"
    ))
}

/// `hello-1.0` from Nix's `builder for '/nix/store/<hash>-hello-1.0.drv' failed`.
fn failed_derivation(line: &str) -> Option<String> {
    let start = line.find("builder for '").map(|i| i + "builder for '".len())?;
    let quoted = &line[start..];
    let path = &quoted[..quoted.find('\'')?];
    let base = path.rsplit('/').next()?.strip_suffix(".drv")?;
    let (_, name) = base.split_once('-')?;
    Some(name.to_string())
}

/// The name Nix prefixes a derivation's log lines with: its name without the version
/// (`hello` of `hello-1.0`), as Nix's DrvName splits it.
fn package_name(name: &str) -> &str {
    let bytes = name.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()))
        .map_or(name, |i| &name[..i])
}

/// The attribute as the user wrote it, from Nix's `flake '...' does not provide attribute
/// 'packages.x86_64-linux.a', 'legacyPackages.x86_64-linux.a' or 'a'`.
fn missing_attribute(line: &str) -> Option<String> {
    let rest = &line[line.find("does not provide attribute")?..];
    let quoted: Vec<&str> = rest.split('\'').skip(1).step_by(2).collect();
    quoted.last().map(|a| a.to_string())
}

/// `line` with nixfront's own paths named as the user knows them: the build context as `.`,
/// a replaced input by its named context.
pub fn user_terms(line: &str) -> String {
    let mut text = line.replace(&format!("path:{CONTEXT_DIR}"), ".");
    text = text.replace(&format!("{CONTEXT_DIR}/"), "./").replace(CONTEXT_DIR, ".");
    while let Some(i) = text.find(&format!("{OVERRIDES_DIR}/")) {
        let after = &text[i + OVERRIDES_DIR.len() + 1..];
        let name: String = after.chars().take_while(|c| !c.is_whitespace() && !"'\"/".contains(*c)).collect();
        let prefix = if text[..i].ends_with("path:") { i - "path:".len() } else { i };
        text = format!("{}the build context {name}{}", &text[..prefix], &after[name.len()..]);
    }
    text
}

/// Says the failure in the step's log and leaves it in the build's failure box, when the step
/// has one.
pub fn tell(failure: &Failure) {
    eprintln!("nixfront: {}", failure.summary);
    let Some(build) = build_id() else { return };
    if let Err(e) = leave(Path::new(FAILURES_DIR), &build, failure) {
        eprintln!("nixfront: could not leave the failure for the frontend: {e}");
    }
}

/// This build's id, which the frontend gives every step in NO_PROXY (BuildKit keeps proxy
/// settings out of its cache keys, so a step keeps its key from build to build).
fn build_id() -> Option<String> {
    let value = std::env::var("NO_PROXY").ok()?;
    value
        .split(',')
        .find_map(|entry| entry.strip_suffix(BUILD_ID_SUFFIX))
        .filter(|id| valid_id(id))
        .map(String::from)
}

/// A build id: what the frontend makes (hex), never a path.
pub fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `failure` as `<box>/<build>/<step>.json`, root's alone, through a new file renamed
/// into place.
pub fn leave(dir: &Path, build: &str, failure: &Failure) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() || !valid_id(build) {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mine = dir.join(build);
    match std::fs::create_dir(&mine) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    if !std::fs::symlink_metadata(&mine)?.is_dir() {
        return Ok(());
    }
    let name = failure.step.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>();
    let mut new = tempfile::Builder::new().prefix(".failure.").tempfile_in(&mine)?;
    new.write_all(&serde_json::to_vec(failure).unwrap_or_default())?;
    new.persist(mine.join(format!("{name}.json"))).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn a_failed_derivation_is_named_with_its_log_s_last_lines() {
        let stderr = lines(
            "building '/nix/store/abc-broken-0.0.drv'...\n\
             broken> compiling\n\
             broken> main.c:1: syntax error\n\
             error: builder for '/nix/store/abc-broken-0.0.drv' failed with exit code 1;\n       \
             For full logs, run 'nix log /nix/store/abc-broken-0.0.drv'.",
        );
        let stop = of_nix(&stderr);
        assert_eq!(stop.failure.derivation.as_deref(), Some("broken-0.0"));
        assert_eq!(stop.failure.log, ["broken> compiling", "broken> main.c:1: syntax error"]);
        assert!(stop.failure.summary.contains("broken-0.0"), "{}", stop.failure.summary);
    }

    #[test]
    fn without_its_log_a_derivation_s_failure_carries_nix_s_error() {
        let stderr = lines(
            "error: builder for '/nix/store/abc-hello-2.1.drv' failed with exit code 2;\n       \
             last 2 log lines:\n       > make: *** [all] Error 1",
        );
        let failure = of_nix(&stderr).failure;
        assert_eq!(failure.derivation.as_deref(), Some("hello-2.1"));
        assert_eq!(failure.log.len(), 3);
        assert_eq!(package_name("hello-2.1"), "hello");
        assert_eq!(package_name("my-tool-0.1"), "my-tool");
        assert_eq!(package_name("plain"), "plain");
    }

    #[test]
    fn a_missing_attribute_is_read_as_written_and_paths_are_the_user_s() {
        let stderr = lines(
            "error: flake 'path:/nixfront/src' does not provide attribute 'packages.x86_64-linux.nosuch', \
             'legacyPackages.x86_64-linux.nosuch' or 'nosuch'",
        );
        let failure = of_nix(&stderr).failure;
        assert_eq!(failure.missing_attribute.as_deref(), Some("nosuch"));
        assert!(failure.log[0].starts_with("error: flake '.' does not provide"), "{:?}", failure.log);
        assert_eq!(user_terms("at /nixfront/src/flake.nix:3:5"), "at ./flake.nix:3:5");
        assert_eq!(
            user_terms(
                "input 'path:/nixfront/override/lib?narHash=x' and /nixfront/override/lib/default.nix"
            ),
            "input 'the build context lib?narHash=x' and the build context lib/default.nix"
        );
    }

    #[test]
    fn a_remote_builder_that_cannot_be_used_is_named_with_what_ssh_said() {
        let stop = of_nix(&lines(
            "this derivation will be built:\n  /nix/store/x-dep.drv\nroot@h: Permission denied (publickey).\n\
             cannot build on 'ssh-ng://root@h': error: failed to start SSH connection to 'root@h'\n\
             Failed to find a machine for remote build!\nerror:\n       Unable to start any build;",
        ));
        let hint = stop.failure.hint.expect("a hint");
        assert!(
            hint.starts_with("the remote builder ssh-ng://root@h could not be used: failed to start"),
            "{hint}"
        );
        assert!(hint.contains("(ssh: root@h: Permission denied (publickey).)"), "{hint}");
        assert!(hint.contains("--secret id=ssh-key"), "{hint}");
        let plain = of_nix(&lines("error: something else"));
        assert_eq!(plain.failure.hint, None);
    }

    #[test]
    fn a_failure_is_left_only_under_a_valid_build_id() {
        let dir = tempfile::tempdir().unwrap();
        let failure = Failure { step: "evaluate".into(), summary: "x".into(), ..Default::default() };
        leave(dir.path(), "../../etc", &failure).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let id = "0123456789abcdef0123456789abcdef";
        leave(dir.path(), id, &failure).unwrap();
        let back: Failure =
            serde_json::from_slice(&std::fs::read(dir.path().join(id).join("evaluate.json")).unwrap())
                .unwrap();
        assert_eq!(back, failure);
    }
}
