//! Frontend options: `BUILDKIT_FRONTEND_OPT_<i>=key=value` to one typed [`Options`].
//!
//! Raw pairs are read once and checked once; every key name lives here as a constant, and an
//! error names the key. nixfront's own knobs are build args (`--build-arg NIX_IMAGE=...`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

const ENV_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";

const KEY_FILENAME: &str = "filename";
const KEY_DOCKERFILE_KEY: &str = "dockerfilekey";
const KEY_CONTEXT_KEY: &str = "contextkey";
const KEY_TARGET: &str = "target";
const KEY_PLATFORM: &str = "platform";
const KEY_NO_CACHE: &str = "no-cache";
const PREFIX_BUILD_ARG: &str = "build-arg:";
const PREFIX_LABEL: &str = "label:";

/// Build args that nixfront itself reads; any other name is the user's.
pub const ARG_NIX_IMAGE: &str = "NIX_IMAGE";
pub const ARG_NIX_LAYERS: &str = "NIX_LAYERS";
pub const ARG_NIX_PERSISTENT_STORE: &str = "NIX_PERSISTENT_STORE";
pub const ARG_NIX_VERIFY_STORE: &str = "NIX_VERIFY_STORE";

/// The default and the bounds of `NIX_LAYERS`: overlayfs and Docker stop near 125-128.
pub const DEFAULT_MAX_LAYERS: usize = 100;
const MAX_LAYERS_RANGE: std::ops::RangeInclusive<usize> = 2..=125;

/// The builder image used when `NIX_IMAGE` is not given: a released nixos/nix tag.
pub const DEFAULT_NIX_IMAGE: &str = "docker.io/nixos/nix:2.24.10";

/// Everything the client asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The user's file inside the `dockerfile` local.
    pub filename: String,
    pub dockerfile_local: String,
    pub context_local: String,
    /// `--target`: the flake attribute to build, overriding the file's.
    pub target: Option<String>,
    /// `--platform` values, as given (`linux/amd64`).
    pub platforms: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// `--label` values, added to the image's labels.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// The builder image, normalised.
    pub nix_image: String,
    /// The most layers the image may have (`NIX_LAYERS`).
    pub max_layers: usize,
    /// Keep /nix in a BuildKit cache mount between builds (`NIX_PERSISTENT_STORE`).
    pub persistent_store: bool,
    /// Check every store path's contents before building (`NIX_VERIFY_STORE`).
    pub verify_store: bool,
}

impl Options {
    /// Reads the options BuildKit put in this process's environment.
    pub fn from_env() -> Result<Self> {
        let mut pairs: Vec<(usize, String)> = std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix(ENV_PREFIX)?.parse().ok()?, v)))
            .collect();
        pairs.sort();
        Self::from_pairs(pairs.into_iter().map(|(_, v)| v))
    }

    /// Parses `key=value` strings.
    pub fn from_pairs(pairs: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut raw = BTreeMap::new();
        for pair in pairs {
            let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
            raw.insert(key.to_string(), value.to_string());
        }
        Self::from_map(&raw)
    }

    fn from_map(raw: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| raw.get(key).filter(|v| !v.is_empty()).cloned();
        let prefixed = |prefix: &str| -> BTreeMap<String, String> {
            raw.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect()
        };
        let build_args = prefixed(PREFIX_BUILD_ARG);
        let nix_image = match build_args.get(ARG_NIX_IMAGE).filter(|v| !v.is_empty()) {
            Some(image) => normalize_image_ref(image)
                .map_err(|e| anyhow::anyhow!("build arg {ARG_NIX_IMAGE}={image:?}: {e}"))?,
            None => DEFAULT_NIX_IMAGE.to_string(),
        };
        let max_layers = match build_args.get(ARG_NIX_LAYERS).filter(|v| !v.is_empty()) {
            Some(v) => v.parse().ok().filter(|n| MAX_LAYERS_RANGE.contains(n)).ok_or_else(|| {
                anyhow::anyhow!(
                    "build arg {ARG_NIX_LAYERS}={v:?}: expected a whole number from {} to {}",
                    MAX_LAYERS_RANGE.start(),
                    MAX_LAYERS_RANGE.end()
                )
            })?,
            None => DEFAULT_MAX_LAYERS,
        };
        let persistent_store = bool_arg(&build_args, ARG_NIX_PERSISTENT_STORE, true)?;
        let verify_store = bool_arg(&build_args, ARG_NIX_VERIFY_STORE, false)?;
        let platforms = get(KEY_PLATFORM)
            .map(|v| v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let target = get(KEY_TARGET);
        if let Some(t) = &target {
            validate_attribute(t).map_err(|e| anyhow::anyhow!("--target {t:?}: {e}"))?;
        }
        Ok(Options {
            filename: get(KEY_FILENAME).unwrap_or_else(|| "Dockerfile".to_string()),
            dockerfile_local: get(KEY_DOCKERFILE_KEY).unwrap_or_else(|| "dockerfile".to_string()),
            context_local: get(KEY_CONTEXT_KEY).unwrap_or_else(|| "context".to_string()),
            target,
            platforms,
            build_args,
            labels: prefixed(PREFIX_LABEL),
            no_cache: raw.contains_key(KEY_NO_CACHE),
            nix_image,
            max_layers,
            persistent_store,
            verify_store,
        })
    }
}

/// A true/false build arg; empty or absent gives `default`.
fn bool_arg(args: &BTreeMap<String, String>, name: &str, default: bool) -> Result<bool> {
    match args.get(name).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => bail!("build arg {name}={other:?}: expected true or false"),
    }
}

/// A flake attribute path as `--target` may name it: no spaces, no `#`.
fn validate_attribute(attr: &str) -> Result<()> {
    if attr.chars().any(|c| c.is_whitespace() || c == '#' || c.is_control()) {
        bail!("a target is a flake attribute such as `hello` or `packages.x86_64-linux.hello`");
    }
    Ok(())
}

/// `nixos/nix:2.24` to `docker.io/nixos/nix:2.24`, `alpine` to `docker.io/library/alpine:latest`,
/// as Docker normalises image names.
pub fn normalize_image_ref(reference: &str) -> Result<String> {
    if reference.is_empty() || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("not an image reference");
    }
    if reference.chars().any(|c| c.is_ascii_uppercase()) && !reference.contains('@') {
        let (name, _) = reference.rsplit_once(':').unwrap_or((reference, ""));
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            bail!("image names must be lower case");
        }
    }
    let (first, rest) = reference.split_once('/').unwrap_or(("", reference));
    let has_registry =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        reference.to_string()
    } else if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{reference}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[&str]) -> Result<Options> {
        Options::from_pairs(pairs.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let o = opts(&[]).unwrap();
        assert_eq!(o.filename, "Dockerfile");
        assert_eq!((o.dockerfile_local.as_str(), o.context_local.as_str()), ("dockerfile", "context"));
        assert_eq!(o.nix_image, DEFAULT_NIX_IMAGE);
        assert!(o.target.is_none() && o.platforms.is_empty() && !o.no_cache);
        assert_eq!((o.max_layers, o.persistent_store, o.verify_store), (DEFAULT_MAX_LAYERS, true, false));
    }

    #[test]
    fn keys_and_prefixes() {
        let o = opts(&[
            "filename=flake.nix",
            "dockerfilekey=df2",
            "contextkey=ctx2",
            "target=hello",
            "platform=linux/amd64, linux/386",
            "build-arg:NIX_IMAGE=localnix/nix:2.8",
            "build-arg:OTHER=a=b",
            "label:team=core",
            "no-cache=",
            "build-arg:NIX_LAYERS=12",
            "build-arg:NIX_PERSISTENT_STORE=false",
            "build-arg:NIX_VERIFY_STORE=true",
        ])
        .unwrap();
        assert_eq!(o.filename, "flake.nix");
        assert_eq!((o.dockerfile_local.as_str(), o.context_local.as_str()), ("df2", "ctx2"));
        assert_eq!(o.target.as_deref(), Some("hello"));
        assert_eq!(o.platforms, ["linux/amd64", "linux/386"]);
        assert_eq!(o.nix_image, "docker.io/localnix/nix:2.8");
        assert_eq!(o.build_args["OTHER"], "a=b");
        assert_eq!(o.labels["team"], "core");
        assert!(o.no_cache);
        assert_eq!((o.max_layers, o.persistent_store, o.verify_store), (12, false, true));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = opts(&["build-arg:NIX_IMAGE=has space"]).unwrap_err().to_string();
        assert!(e.contains("NIX_IMAGE"), "{e}");
        for bad in ["build-arg:NIX_LAYERS=1", "build-arg:NIX_LAYERS=200", "build-arg:NIX_LAYERS=many"] {
            let e = opts(&[bad]).unwrap_err().to_string();
            assert!(e.contains("NIX_LAYERS") && e.contains("2 to 125"), "{e}");
        }
        let e = opts(&["build-arg:NIX_PERSISTENT_STORE=yes"]).unwrap_err().to_string();
        assert!(e.contains("NIX_PERSISTENT_STORE"), "{e}");
        let e = opts(&["target=a#b"]).unwrap_err().to_string();
        assert!(e.contains("--target"), "{e}");
    }

    #[test]
    fn image_references_normalise_like_docker() {
        let n = |s: &str| normalize_image_ref(s).unwrap();
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("nixos/nix:2.24.10"), "docker.io/nixos/nix:2.24.10");
        assert_eq!(n("localhost:5000/nix"), "localhost:5000/nix:latest");
        assert_eq!(n("ghcr.io/a/b@sha256:abc"), "ghcr.io/a/b@sha256:abc");
        assert!(normalize_image_ref("Bad/Name").is_err());
    }
}
