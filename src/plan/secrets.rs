//! The client's secrets and SSH agent that Nix may use: which ids, where they appear in a
//! step, and the mounts that put them there. Only Nix's own steps mount them, optionally;
//! BuildKit keeps their values out of the cache key, the layers and the definition. The keys
//! that sign and upload to a binary cache (`NIX_CACHE_TO`) are mounted in the cache-to step
//! alone, where no derivation runs.

use crate::llb::exec::{Exec, Mount};

/// Where the client's secrets appear, by id.
pub const SECRETS_DIR: &str = "/run/secrets";
/// Where the client's default SSH agent appears (`--ssh default`).
pub const SSH_SOCKET: &str = "/run/buildkit/ssh_agent.0";
/// The SSH agent id nixfront forwards.
pub const SSH_ID: &str = "default";

/// The secret that signs what the cache-to step uploads.
pub const SIGNING_KEY: &str = "nix-signing-key";
/// The credentials of an `s3://` cache the cache-to step uploads to (an AWS credentials file).
pub const AWS_CREDENTIALS: &str = "aws-credentials";

/// A secret Nix can use.
pub struct Secret {
    pub id: &'static str,
    /// Mounted in the cache-to step alone.
    pub upload_only: bool,
}

/// Every secret nixfront passes to Nix, all optional.
pub const SECRETS: &[Secret] = &[
    Secret { id: "netrc", upload_only: false },
    Secret { id: "access-tokens", upload_only: false },
    Secret { id: "ssh-key", upload_only: false },
    Secret { id: SIGNING_KEY, upload_only: true },
    Secret { id: AWS_CREDENTIALS, upload_only: true },
];

/// `exec` with every secret but the upload's (with `upload`, those too) and the SSH agent
/// mounted, each optional.
pub fn mount_all(mut exec: Exec, upload: bool) -> Exec {
    for secret in SECRETS.iter().filter(|s| upload || !s.upload_only) {
        exec = exec.mount(Mount::secret(&format!("{SECRETS_DIR}/{}", secret.id), secret.id, true));
    }
    exec = exec.mount(Mount::ssh(SSH_SOCKET, SSH_ID, true));
    exec.env.push(format!("SSH_AUTH_SOCK={SSH_SOCKET}"));
    exec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_builders_key_is_where_nix_config_may_name_it() {
        let ssh_key = SECRETS.iter().find(|s| s.id == "ssh-key").expect("the ssh-key secret");
        assert_eq!(format!("{SECRETS_DIR}/{}", ssh_key.id), crate::options::nixconf::REMOTE_BUILDER_KEY);
    }
}
