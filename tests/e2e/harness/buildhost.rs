//! The Nix build host of the remote-builder tests (scripts/buildhost.sh): sshd and Nix in a
//! chroot, reached by builds at ssh-ng://root@172.17.0.1 in each engine's network namespace.

use std::path::PathBuf;

use super::engine::{Engine, Run};
use super::fixture::Fixture;

/// What scripts/buildhost.sh wrote in host.env; the host runs while this is held, and tests
/// that stop it (or read its store) take turns.
pub struct BuildHost {
    pub uri: String,
    /// The host's public key, base64, as a machine spec's eighth field takes it.
    pub host_key: String,
    accepted: (String, PathBuf),
    refused: (String, PathBuf),
    signing: (String, PathBuf),
    /// The public key of the signing key ([`BuildHost::signing_secret`]).
    pub public_key: String,
    pub root: PathBuf,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl BuildHost {
    pub fn start() -> BuildHost {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let started = super::script("buildhost.sh", &["start"]);
        assert!(started.ok, "scripts/buildhost.sh start: {}", started.all());
        let var = super::env_file(&super::engine::ci_root().join("buildhost/host.env"));
        BuildHost {
            uri: var("BUILDHOST_URI"),
            host_key: var("BUILDHOST_HOST_KEY"),
            accepted: (var("BUILDHOST_KEY_INNER"), var("BUILDHOST_KEY").into()),
            refused: (var("BUILDHOST_REFUSED_KEY_INNER"), var("BUILDHOST_REFUSED_KEY").into()),
            signing: (var("BUILDHOST_SIGNING_KEY_INNER"), var("BUILDHOST_SIGNING_KEY").into()),
            public_key: var("BUILDHOST_PUBLIC_KEY"),
            root: var("BUILDHOST_ROOT").into(),
            _turn: turn,
        }
    }

    /// `NIX_CONFIG` lines that hand builds to the host as `uri` with the `ssh-key` secret.
    pub fn config_for(&self, uri: &str, more: &str) -> String {
        let spec = format!("{uri} x86_64-linux /run/secrets/ssh-key 1 1 remote-only - {}", self.host_key);
        format!("NIX_CONFIG=builders = {spec}\nbuilders-use-substitutes = false\n{more}")
    }

    /// The `--secret` flag of a key the host accepts (or, `accepted` false, one it refuses),
    /// with the file as `engine`'s client reads it.
    pub fn secret(&self, engine: Engine, accepted: bool) -> String {
        let (inner, host) = if accepted { &self.accepted } else { &self.refused };
        let src = match engine {
            Engine::D20 => host.to_string_lossy().into_owned(),
            Engine::D26 => inner.clone(),
        };
        format!("id=ssh-key,src={src}")
    }

    /// The `--secret` flag of the binary cache signing key, as `engine`'s client reads it.
    pub fn signing_secret(&self, engine: Engine) -> String {
        let src = match engine {
            Engine::D20 => self.signing.1.to_string_lossy().into_owned(),
            Engine::D26 => self.signing.0.clone(),
        };
        format!("id=nix-signing-key,src={src}")
    }

    /// The signing key's text.
    pub fn signing_key_text(&self) -> String {
        std::fs::read_to_string(&self.signing.1).unwrap()
    }

    /// `nix ARGS` run on the host as a user runs it, with `flake` copied to /tmp/NAME there, in
    /// `engine`'s network namespace (where the world's server is 172.17.0.1).
    pub fn nix(&self, engine: Engine, flake: &Fixture, name: &str, args: &[&str]) -> Run {
        let inside = format!("/tmp/{name}");
        let copy = self.root.join(inside.trim_start_matches('/'));
        let _ = std::fs::remove_dir_all(&copy);
        let status =
            std::process::Command::new("cp").arg("-a").arg(flake.host_path()).arg(&copy).status().unwrap();
        assert!(status.success(), "copying the flake to the host");
        let script = "mount -t proc proc \"$1/proc\" && exec chroot \"$@\"";
        let mut command = engine.in_netns("unshare");
        command.args(["-m", "--propagation", "slave", "sh", "-c", script, "sh"]).arg(&self.root);
        command.args(["env", &format!("HOME=/tmp/{name}-home"), "nix"]).args(args);
        command.current_dir("/");
        Run::from(command.output().unwrap())
    }

    /// The private key's text (what must reach no derivation, image, log or cache).
    pub fn key_text(&self) -> String {
        std::fs::read_to_string(&self.accepted.1).unwrap()
    }

    /// Store paths on the host whose name ends with `suffix`.
    pub fn built_here(&self, suffix: &str) -> Vec<String> {
        let store = self.root.join("nix/store");
        let mut found: Vec<String> = std::fs::read_dir(store)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(suffix))
            .collect();
        found.sort();
        found
    }
}
