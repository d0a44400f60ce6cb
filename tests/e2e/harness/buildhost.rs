//! The Nix build host of the remote-builder tests (scripts/buildhost.sh): sshd and Nix in a
//! chroot, reached by builds at ssh-ng://root@172.17.0.1 in each engine's network namespace.

use std::path::PathBuf;

use super::engine::Engine;

/// What scripts/buildhost.sh wrote in host.env; the host runs while this is held, and tests
/// that stop it (or read its store) take turns.
pub struct BuildHost {
    pub uri: String,
    /// The host's public key, base64, as a machine spec's eighth field takes it.
    pub host_key: String,
    accepted: (String, PathBuf),
    refused: (String, PathBuf),
    pub root: PathBuf,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl BuildHost {
    pub fn start() -> BuildHost {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let started = super::script("buildhost.sh", &["start"]);
        assert!(started.ok, "scripts/buildhost.sh start: {}", started.all());
        let env = std::fs::read_to_string(super::engine::ci_root().join("buildhost/host.env")).unwrap();
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("host.env lacks {name}"))
                .to_string()
        };
        BuildHost {
            uri: var("BUILDHOST_URI"),
            host_key: var("BUILDHOST_HOST_KEY"),
            accepted: (var("BUILDHOST_KEY_INNER"), var("BUILDHOST_KEY").into()),
            refused: (var("BUILDHOST_REFUSED_KEY_INNER"), var("BUILDHOST_REFUSED_KEY").into()),
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
