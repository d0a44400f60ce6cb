//! What a step writes for Nix before it runs it: the build users in `/etc` (the builder
//! image may have none) and nixfront's settings, with the client's access tokens, in a file
//! only root reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::outcome::say;
use crate::plan::spec::Settings;

/// The group whose users run derivations' builders (never root).
pub const BUILD_GROUP: &str = "nixbld";

/// Derivations never run as root: Nix runs each builder as one of the build users of group
/// nixbld (the official image has them; others get them here, in the step's own `etc`).
pub fn add_build_users(etc: &Path) -> std::io::Result<()> {
    let group = std::fs::read_to_string(etc.join("group")).unwrap_or_default();
    if group.lines().any(|l| l.starts_with(&format!("{BUILD_GROUP}:"))) {
        return Ok(());
    }
    std::fs::create_dir_all(etc)?;
    let append = |name: &str, text: String| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().append(true).create(true).open(etc.join(name))?;
        file.write_all(text.as_bytes())
    };
    let users: String = (1..=32)
        .map(|i| format!("nixbld{i}:x:{}:30000:Nix build user {i}:/var/empty:/bin/false\n", 30000 + i))
        .collect();
    append("passwd", users)?;
    let members: Vec<String> = (1..=32).map(|i| format!("nixbld{i}")).collect();
    append("group", format!("{BUILD_GROUP}:x:30000:{}\n", members.join(",")))
}

/// nixfront's defaults and the client's access tokens (in `secrets`), in a configuration file
/// under `tmp` that only root can read, which Nix reads as the user's nix.conf: never in Nix's
/// environment or on its command line, which a builder can see. NIX_CONFIG comes after it.
pub fn write_settings(settings: &Settings, secrets: &Path, tmp: &Path) -> std::io::Result<PathBuf> {
    let dir = tempfile::Builder::new().prefix("nixfront-conf.").tempdir_in(tmp)?.keep();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let mut text = format!("{}\n", settings.nix_defaults);
    let tokens = std::fs::read_to_string(secrets.join("access-tokens")).unwrap_or_default();
    let tokens: Vec<&str> = tokens.split_whitespace().collect();
    if !tokens.is_empty() {
        text.push_str(&format!("access-tokens = {}\n", tokens.join(" ")));
        say("using access tokens from --secret id=access-tokens");
    }
    let conf = dir.join("nix.conf");
    let mut file = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.write(true).create_new(true).open(&conf)?.write_all(text.as_bytes())?;
    if non_empty(&secrets.join("netrc")) {
        say("using the netrc from --secret id=netrc");
    }
    let agent = std::env::var("SSH_AUTH_SOCK").unwrap_or_default();
    if !agent.is_empty() && std::fs::metadata(&agent).is_ok() {
        say("forwarding the SSH agent from --ssh default");
    }
    if non_empty(&secrets.join("ssh-key")) {
        say("the remote builders' SSH key from --secret id=ssh-key");
    }
    Ok(conf)
}

pub fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_users_are_added_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("group"), "root:x:0:\n").unwrap();
        add_build_users(dir.path()).unwrap();
        add_build_users(dir.path()).unwrap();
        let group = std::fs::read_to_string(dir.path().join("group")).unwrap();
        assert_eq!(group.matches("nixbld:x:30000:").count(), 1, "{group}");
        let passwd = std::fs::read_to_string(dir.path().join("passwd")).unwrap();
        assert_eq!(passwd.lines().count(), 32);
        assert!(passwd.contains("nixbld32:x:30032:30000:"), "{passwd}");
    }

    #[test]
    fn settings_and_tokens_go_to_a_file_only_root_reads() {
        use std::os::unix::fs::PermissionsExt;
        let (secrets, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(secrets.path().join("access-tokens"), "github.com=abc\nexample.org=def\n").unwrap();
        let settings = Settings { nix_defaults: "connect-timeout = 5".into(), ..Default::default() };
        let conf = write_settings(&settings, secrets.path(), tmp.path()).unwrap();
        let text = std::fs::read_to_string(&conf).unwrap();
        assert_eq!(text, "connect-timeout = 5\naccess-tokens = github.com=abc example.org=def\n");
        assert_eq!(std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777, 0o600);
        let dir = conf.parent().unwrap();
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
