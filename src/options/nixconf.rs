//! What `NIX_CONFIG` may set. The persistent store is shared by every build on a BuildKit,
//! so a setting that would let one build change what another gets (run its builders as root,
//! run hooks as root, trust other keys for substituted paths) is refused or isolated:
//!
//! - harmless settings (job counts, timeouts, evaluation switches) pass;
//! - trust settings (substituters, their keys, `require-sigs`, remote builders) pass, and
//!   their values become part of the store's identity: a build that trusts other sources
//!   gets a persistent store of its own;
//! - everything else is refused, naming the setting and why.

use std::collections::BTreeMap;

/// Settings that change nothing outside this build's own results.
const HARMLESS: &[&str] = &[
    "max-jobs",
    "cores",
    "connect-timeout",
    "stalled-download-timeout",
    "download-attempts",
    "http-connections",
    "http2",
    "fallback",
    "keep-going",
    "keep-failed",
    "log-lines",
    "show-trace",
    "tarball-ttl",
    "narinfo-cache-negative-ttl",
    "narinfo-cache-positive-ttl",
    "max-silent-time",
    "timeout",
    "allow-import-from-derivation",
    "restrict-eval",
    "allowed-uris",
    "warn-dirty",
    "eval-cache",
    "use-registries",
    "experimental-features",
    "system-features",
    "hashed-mirrors",
    "ssl-cert-file",
    "builders-use-substitutes",
    "substitute",
    "keep-outputs",
    "keep-derivations",
];

/// Settings that say whom to trust for store paths: allowed, and part of the store's identity.
const TRUST: &[&str] =
    &["substituters", "trusted-substituters", "trusted-public-keys", "require-sigs", "builders"];

/// Settings refused with a reason of their own.
const REFUSED: &[(&str, &str)] = &[
    ("build-users-group", "derivations always run as Nix's build users, never as root"),
    ("sandbox", "use --build-arg NIX_SANDBOX=true"),
    ("sandbox-fallback", "use --build-arg NIX_SANDBOX=true"),
    ("sandbox-paths", "it would show the builder's files to derivations"),
    ("allow-unsafe-native-code-during-evaluation", "it runs commands as root while evaluating"),
    ("pre-build-hook", "it runs a program as root"),
    ("post-build-hook", "it runs a program as root"),
    ("diff-hook", "it runs a program as root"),
    ("run-diff-hook", "it runs a program as root"),
    ("build-hook", "it runs a program as root"),
    ("store", "nixfront chooses the store"),
    ("trusted-users", "Nix runs as root in the build step"),
    ("allowed-users", "Nix runs as root in the build step"),
    ("accept-flake-config", "it would let a flake's own nixConfig set anything"),
    ("auto-optimise-store", "it would link files across other builds' store paths"),
    ("min-free", "use --build-arg NIX_STORE_MAX to bound the store"),
    ("max-free", "use --build-arg NIX_STORE_MAX to bound the store"),
    ("filter-syscalls", "nixfront sets it"),
    ("pure-eval", "the flake is always evaluated in pure mode"),
    (
        "flake-registry",
        "a registry could map a flake's name to files of the builder; write the reference out",
    ),
    ("access-tokens", "pass them with --secret id=access-tokens, which no derivation can read"),
    ("netrc-file", "pass the file with --secret id=netrc, which no derivation can read"),
];

/// Where a remote builder's SSH key is, the only key file `builders` may name: the secret
/// `ssh-key` (`--secret id=ssh-key,src=...`), which only root in Nix's steps can read
/// (plan::secrets mounts it there; its tests check the two agree).
pub const REMOTE_BUILDER_KEY: &str = "/run/secrets/ssh-key";

/// Checks a `builders` value (Nix's machine specs, `;` or newline apart: URI, systems, SSH key,
/// jobs, speed, features, mandatory features, host key): remote machines over SSH whose key is
/// the secret `ssh-key` or the forwarded agent (`-`), never a file of the builder image, the
/// store or a machines file (`@path`). The URI is `scheme://[user@]host[:port]`: no store
/// parameters (`?ssh-key=`, `?remote-store=`, ... would name files of the builder or override
/// the fields), no password.
fn check_builders(value: &str) -> Result<(), String> {
    for machine in value.split([';', '\n']).map(str::trim).filter(|m| !m.is_empty()) {
        if let Some(path) = machine.strip_prefix('@') {
            return Err(format!(
                "`builders = @{path}` reads the machines from a file of the builder image; write them \
                 out in NIX_CONFIG"
            ));
        }
        let fields: Vec<&str> = machine.split_whitespace().collect();
        let uri = fields[0];
        check_builder_uri(uri)?;
        match fields.get(2).copied() {
            None | Some("-") => {}
            Some(key) if key == REMOTE_BUILDER_KEY => {}
            Some(key) => {
                return Err(format!(
                    "remote builder `{uri}` names the SSH key `{key}`: pass the key with --secret \
                     id=ssh-key,src=PATH and name it {REMOTE_BUILDER_KEY} (or `-` for the agent of \
                     --ssh default), so that no file of the builder image or the store is used and no \
                     derivation can read it"
                ));
            }
        }
    }
    Ok(())
}

/// Checks a builder's URI (the first field of [`check_builders`]): `ssh://` or `ssh-ng://`, a
/// host, with a user and a port at most.
fn check_builder_uri(uri: &str) -> Result<(), String> {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, host)) = authority.rsplit_once('@')
        && let Some((user, _password)) = userinfo.split_once(':')
    {
        // The password is left out of the message, which the build's log shows.
        return Err(format!(
            "remote builder `{user}:…@{host}` has a password in its URI: remote builders \
             log in with an SSH key only; pass the key with --secret id=ssh-key,src=PATH and name it \
             {REMOTE_BUILDER_KEY} in the third field"
        ));
    }
    if !matches!(scheme, "ssh" | "ssh-ng") {
        return Err(format!(
            "remote builder `{uri}` is not an ssh:// or ssh-ng:// machine: only remote machines may \
             build, never another store on the builder"
        ));
    }
    if uri.contains('?') {
        return Err(format!(
            "remote builder `{uri}` has store parameters: nixfront takes none (they could name files \
             of the builder or stand in for the machine's fields); pass the SSH key with --secret \
             id=ssh-key,src=PATH and name it {REMOTE_BUILDER_KEY} in the third field, and the host key \
             (base64) in the eighth field"
        ));
    }
    Ok(())
}

/// nixfront's own defaults, which a build's NIX_CONFIG may change: a build that stops printing
/// for an hour, or runs for six, ends (with a persistent store kept per build, a stuck build
/// holds nothing but its own step; these end that too).
pub const DEFAULTS: &[(&str, &str)] = &[("max-silent-time", "3600"), ("timeout", "21600")];

/// [`DEFAULTS`] as nix.conf lines.
pub fn defaults_text() -> String {
    DEFAULTS.iter().map(|(name, value)| format!("{name} = {value}")).collect::<Vec<_>>().join("\n")
}

/// A `NIX_CONFIG` value that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixConfig {
    /// The text, as given, for Nix.
    pub text: String,
    /// The trust settings (normalised `name = value` lines, sorted): the store's identity.
    pub trust: Vec<String>,
}

/// Checks `config` line by line; the error names the line and the setting.
pub fn check(config: &str) -> Result<NixConfig, String> {
    let mut trust = BTreeMap::new();
    for (i, line) in config.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=').map(|(n, v)| (n.trim(), v.trim())) else {
            return Err(format!("line {}: `{line}` is not a `name = value` setting", i + 1));
        };
        let valid =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!("line {}: `{line}` is not a `name = value` setting", i + 1));
        }
        let base = name.strip_prefix("extra-").unwrap_or(name);
        if base == "builders" {
            check_builders(value).map_err(|why| format!("line {}: {why}", i + 1))?;
        }
        if TRUST.contains(&base) {
            trust.entry(name.to_string()).or_insert_with(Vec::new).push(value.to_string());
        } else if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == base) {
            return Err(format!("line {}: `{name}` cannot be set here: {why}", i + 1));
        } else if !HARMLESS.contains(&base) {
            return Err(format!(
                "line {}: `{name}` is not a setting nixfront passes to Nix; it passes {} and the trust \
                 settings {} (see SECURITY.md)",
                i + 1,
                HARMLESS.join(", "),
                TRUST.join(", ")
            ));
        }
    }
    let trust = trust.into_iter().map(|(name, values)| format!("{name} = {}", values.join(" "))).collect();
    Ok(NixConfig { text: config.to_string(), trust })
}

/// What of a flake's `nixConfig` (JSON, as Nix reads the attribute) a build takes: the
/// settings that pass the same policy as NIX_CONFIG, as nix.conf lines, and those refused, with
/// why. The flake's own settings come before the build's NIX_CONFIG, which wins.
pub fn from_flake(config: &serde_json::Value) -> (Vec<String>, Vec<(String, String)>) {
    use serde_json::Value;
    let Some(settings) = config.as_object() else { return (Vec::new(), Vec::new()) };
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (name, value) in settings {
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join(" ")),
            _ => None,
        };
        let Some(text) = text.filter(|t| !t.contains('\n')) else {
            refused.push((name.clone(), "its value is not a nix.conf value".to_string()));
            continue;
        };
        let line = format!("{name} = {text}");
        match check(&line) {
            Ok(_) => accepted.push(line),
            Err(why) => refused.push((name.clone(), why.trim_start_matches("line 1: ").to_string())),
        }
    }
    (accepted, refused)
}

impl NixConfig {
    /// `lines` (a flake's accepted nixConfig) before this configuration, checked as one.
    pub fn after(lines: &[String], config: Option<&NixConfig>) -> Option<NixConfig> {
        let mut text = lines.join("\n");
        if let Some(c) = config {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&c.text);
        }
        if text.trim().is_empty() {
            return config.cloned();
        }
        check(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmless_settings_pass_and_trust_settings_are_noted() {
        let c = check("max-jobs = 2\n# a comment\nextra-substituters = https://c.example\nextra-trusted-public-keys = c:abc\n")
            .unwrap();
        assert_eq!(c.trust, ["extra-substituters = https://c.example", "extra-trusted-public-keys = c:abc"]);
        assert!(check("max-jobs = 0").unwrap().trust.is_empty());
    }

    #[test]
    fn remote_builders_are_ssh_machines_whose_key_is_the_secret() {
        let ok = [
            "builders = ssh://nix@arm.example aarch64-linux /run/secrets/ssh-key 4 1 - - c3NoLWVk",
            "builders = ssh-ng://arm.example aarch64-linux - 2 ; ssh://b.example x86_64-linux",
            "extra-builders = ssh://arm.example aarch64-linux",
        ];
        for line in ok {
            let c = check(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(c.trust.len(), 1, "a remote builder is part of the store's identity");
        }
        let refused = [
            ("builders = ssh://arm.example aarch64-linux /root/.ssh/id_ed25519", "--secret id=ssh-key"),
            (
                "builders = ssh://a.example x86_64-linux - ; ssh://b.example aarch64-linux /nix/store/x-key",
                "/nix/store/x-key",
            ),
            ("builders = @/etc/nix/machines", "a file of the builder image"),
            ("builders = local x86_64-linux", "not an ssh://"),
            ("builders = unix:///nix/var/nix/daemon-socket/socket", "not an ssh://"),
            ("builders = ssh-ng://a.example?ssh-key=/etc/ssh/ssh_host_ed25519_key", "store parameters"),
            ("builders = ssh://a.example?remote-store=/x x86_64-linux", "--secret id=ssh-key"),
            ("builders = ssh-ng://a.example/?remote-program=nix-daemon", "eighth field"),
            ("builders = ssh://a.example?compress=true&base64-ssh-public-host-key=c3No", "store parameters"),
            ("builders = ssh://b.example ; ssh://nix@a.example?trusted=1", "nix@a.example?trusted=1"),
            ("builders = unix:///x?root=/etc", "not an ssh://"),
            ("builders = ssh://nix:hunter2@a.example x86_64-linux", "`nix:…@a.example` has a password"),
            ("builders = ssh-ng://nix:p@ss@a.example/", "`nix:…@a.example` has a password"),
            ("builders = nix:hunter2@a.example", "`nix:…@a.example` has a password"),
        ];
        for (line, why) in refused {
            let e = check(line).unwrap_err();
            assert!(e.starts_with("line 1: ") && e.contains(why), "{line}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("p@ss"), "no password in the message: {e}");
        }
        // A user, a port and a path are not parameters.
        assert!(check("builders = ssh://nix@a.example:2222/ x86_64-linux").is_ok());
    }

    #[test]
    fn a_flakes_nix_config_passes_the_same_policy() {
        let config = serde_json::json!({
            "extra-substituters": ["http://cache.example", "http://other.example"],
            "extra-trusted-public-keys": "cache.example-1:abc=",
            "bash-prompt": "(dev) ",
            "post-build-hook": "/bin/sh",
            "max-jobs": 4,
            "fallback": true,
            "nested": {"a": 1},
        });
        let (accepted, refused) = from_flake(&config);
        assert_eq!(
            accepted,
            [
                "extra-substituters = http://cache.example http://other.example",
                "extra-trusted-public-keys = cache.example-1:abc=",
                "fallback = true",
                "max-jobs = 4",
            ]
        );
        let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bash-prompt", "nested", "post-build-hook"]);
        assert!(refused[2].1.contains("runs a program as root"), "{refused:?}");
        // The build's own NIX_CONFIG comes after, and both are the store's identity.
        let user = check("extra-substituters = http://mine.example").unwrap();
        let merged = NixConfig::after(&accepted, Some(&user)).unwrap();
        assert!(merged.text.ends_with("http://mine.example"));
        assert_eq!(merged.trust.len(), 2, "{:?}", merged.trust);
        assert_eq!(NixConfig::after(&[], None), None);
    }

    #[test]
    fn settings_that_reach_other_builds_are_refused() {
        for (line, why) in [
            ("build-users-group =", "never as root"),
            ("post-build-hook = /x", "runs a program as root"),
            ("allow-unsafe-native-code-during-evaluation = true", "runs commands"),
            ("sandbox = false", "NIX_SANDBOX"),
            ("extra-sandbox-paths = /etc", "builder's files"),
            ("accept-flake-config = true", "nixConfig"),
        ] {
            let e = check(line).unwrap_err();
            assert!(e.contains("cannot be set here") && e.contains(why), "{line}: {e}");
        }
        let e = check("max-jobs = 1\nmade-up = 1").unwrap_err();
        assert!(e.starts_with("line 2: `made-up` is not a setting") && e.contains("substituters"), "{e}");
        assert!(check("extra-substituters").unwrap_err().contains("name = value"));
    }
}
