//! Frontend options: `BUILDKIT_FRONTEND_OPT_<i>=key=value` to one typed [`Options`].
//!
//! Raw pairs are read once and checked once; every key name lives here as a constant, and an
//! error names the key. nixfront's own knobs are build args (`--build-arg NIX_IMAGE=...`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::llb::source::Git;

const ENV_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";

const KEY_FILENAME: &str = "filename";
const KEY_DOCKERFILE_KEY: &str = "dockerfilekey";
const KEY_CONTEXT_KEY: &str = "contextkey";
const KEY_TARGET: &str = "target";
const KEY_PLATFORM: &str = "platform";
const KEY_NO_CACHE: &str = "no-cache";
const KEY_REQUEST_ID: &str = "requestid";
const KEY_FRONTEND_CAPS: &str = "frontend.caps";
/// `docker buildx build --sbom=true` sends this (its value holds parameters).
const KEY_ATTEST_SBOM: &str = "attest:sbom";
/// A remote build context (`docker build <git URL>`).
const KEY_CONTEXT: &str = "context";
const PREFIX_BUILD_ARG: &str = "build-arg:";
const PREFIX_LABEL: &str = "label:";
/// buildx passes the client's SOURCE_DATE_EPOCH as this build arg.
const ARG_SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Build args that nixfront itself reads; any other name is the user's.
pub const ARG_NIX_IMAGE: &str = "NIX_IMAGE";
pub const ARG_NIX_LAYERS: &str = "NIX_LAYERS";
pub const ARG_NIX_PERSISTENT_STORE: &str = "NIX_PERSISTENT_STORE";
pub const ARG_NIX_VERIFY_STORE: &str = "NIX_VERIFY_STORE";
pub const ARG_NIX_CONFIG: &str = "NIX_CONFIG";
pub const ARG_NIX_SBOM_FILE: &str = "NIX_SBOM_FILE";

/// Every build arg nixfront owns: a `NIX_*` name outside this list that the file does not
/// declare with ARG is a typo, and an error.
pub const NIXFRONT_ARGS: &[&str] = &[
    ARG_NIX_IMAGE,
    ARG_NIX_LAYERS,
    ARG_NIX_PERSISTENT_STORE,
    ARG_NIX_VERIFY_STORE,
    ARG_NIX_CONFIG,
    ARG_NIX_SBOM_FILE,
];
const NIXFRONT_ARG_PREFIX: &str = "NIX_";

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
    /// Extra Nix configuration for `nix build` (`NIX_CONFIG`), `name = value` lines.
    pub nix_config: Option<String>,
    /// Unix seconds to date the image with (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
    /// The subrequest asked for (`requestid`), if any.
    pub request_id: Option<String>,
    /// Frontend capabilities the client requires (`frontend.caps`).
    pub frontend_caps: Option<String>,
    /// The client asked for an SBOM attestation (`--sbom=true`).
    pub sbom_attestation: bool,
    /// Write the SBOM into the image too (`NIX_SBOM_FILE`), for BuildKits without attestations.
    pub sbom_file: bool,
    /// The build context is this git repository rather than a local directory.
    pub remote_context: Option<Git>,
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
        let sbom_file = bool_arg(&build_args, ARG_NIX_SBOM_FILE, false)?;
        let nix_config = build_args.get(ARG_NIX_CONFIG).filter(|v| !v.trim().is_empty()).cloned();
        if let Some(config) = &nix_config {
            check_nix_config(config)?;
        }
        let source_date_epoch = match build_args.get(ARG_SOURCE_DATE_EPOCH).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                anyhow::anyhow!(
                    "build arg {ARG_SOURCE_DATE_EPOCH}={v:?}: expected Unix seconds, e.g. 1700000000"
                )
            })?),
            None => None,
        };
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
            nix_config,
            source_date_epoch,
            request_id: get(KEY_REQUEST_ID),
            frontend_caps: get(KEY_FRONTEND_CAPS),
            sbom_attestation: raw.get(KEY_ATTEST_SBOM).is_some_and(|v| !v.contains("disabled=true")),
            sbom_file,
            remote_context: match get(KEY_CONTEXT) {
                Some(url) => Some(git_context(&url)?),
                None => None,
            },
        })
    }

    /// Refuses a `NIX_*` build arg that is neither nixfront's nor declared by the file.
    pub fn check_owned_args(&self, declared: &[&str]) -> Result<()> {
        for name in self.build_args.keys() {
            let ours = NIXFRONT_ARGS.contains(&name.as_str());
            if name.starts_with(NIXFRONT_ARG_PREFIX) && !ours && !declared.contains(&name.as_str()) {
                let hint = NIXFRONT_ARGS
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(name, k), *k))
                    .filter(|(d, _)| *d <= 3)
                    .min()
                    .map(|(_, k)| format!("did you mean {k}? "))
                    .unwrap_or_default();
                bail!(
                    "unknown build arg {name}: {hint}nixfront's own are {}; declare `ARG {name}` to use \
                     it in the file",
                    NIXFRONT_ARGS.join(", ")
                );
            }
        }
        Ok(())
    }
}

/// `NIX_CONFIG` is nix.conf text: every line a `name = value` setting or a comment.
fn check_nix_config(config: &str) -> Result<()> {
    for (i, line) in config.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let valid = line.split_once('=').is_some_and(|(name, _)| {
            let name = name.trim();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
        if !valid {
            bail!("build arg {ARG_NIX_CONFIG}, line {}: `{line}` is not a `name = value` setting", i + 1);
        }
    }
    Ok(())
}

/// A remote context URL as a git repository: `git://`, `ssh://`, `git@host:path`,
/// `http(s)://...*.git`, or `github.com/...`, each with an optional `#ref`. Tarball URLs are
/// refused with advice.
pub fn git_context(url: &str) -> Result<Git> {
    let (location, reference) = match url.split_once('#') {
        Some((l, r)) if !r.is_empty() => (l, Some(r.to_string())),
        Some((l, _)) => (l, None),
        None => (url, None),
    };
    // `github.com/o/r` is git by Docker's convention, with or without `.git`.
    let shorthand = location.starts_with("github.com/");
    let with_scheme = if shorthand { format!("https://{location}") } else { location.to_string() };
    let (host, path) = if let Some(scp) = with_scheme.strip_prefix("git@") {
        scp.split_once(':')
            .ok_or_else(|| anyhow::anyhow!("remote context {url:?}: expected git@host:path"))?
    } else if let Some((scheme, rest)) = with_scheme.split_once("://") {
        let is_http = scheme == "http" || scheme == "https";
        let git_over_http = shorthand || rest.trim_end_matches('/').ends_with(".git");
        if !matches!(scheme, "git" | "ssh" | "http" | "https") || (is_http && !git_over_http) {
            bail!(
                "remote context {url:?}: only git repositories are supported (a URL ending in .git, git://, \
                 ssh:// or git@host:path); for a tarball, unpack it and build the directory"
            );
        }
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        rest.split_once('/').ok_or_else(|| anyhow::anyhow!("remote context {url:?}: no repository path"))?
    } else {
        bail!("remote context {url:?}: not a URL BuildKit can fetch");
    };
    let path = path.trim_matches('/');
    if host.is_empty() || path.is_empty() {
        bail!("remote context {url:?}: no host or repository path");
    }
    Ok(Git { remote: with_scheme.clone(), id: format!("{host}/{path}"), reference })
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
            "build-arg:SOURCE_DATE_EPOCH=1700000000",
            "attest:sbom=",
            "build-arg:NIX_SBOM_FILE=true",
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
        assert_eq!(o.source_date_epoch, Some(1700000000));
        assert!(o.sbom_attestation && o.sbom_file);
        assert!(!opts(&["attest:sbom=disabled=true"]).unwrap().sbom_attestation);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = opts(&["build-arg:NIX_IMAGE=has space"]).unwrap_err().to_string();
        assert!(e.contains("NIX_IMAGE"), "{e}");
        for bad in ["build-arg:NIX_LAYERS=1", "build-arg:NIX_LAYERS=200", "build-arg:NIX_LAYERS=many"] {
            let e = opts(&[bad]).unwrap_err().to_string();
            assert!(e.contains("NIX_LAYERS") && e.contains("2 to 125"), "{e}");
        }
        let e = opts(&["build-arg:NIX_CONFIG=extra-substituters"]).unwrap_err().to_string();
        assert!(e.contains("NIX_CONFIG, line 1") && e.contains("name = value"), "{e}");
        let e = opts(&["build-arg:SOURCE_DATE_EPOCH=yesterday"]).unwrap_err().to_string();
        assert!(e.contains("SOURCE_DATE_EPOCH"), "{e}");
        let e = opts(&["build-arg:NIX_PERSISTENT_STORE=yes"]).unwrap_err().to_string();
        assert!(e.contains("NIX_PERSISTENT_STORE"), "{e}");
        let e = opts(&["target=a#b"]).unwrap_err().to_string();
        assert!(e.contains("--target"), "{e}");
    }

    #[test]
    fn nix_config_lines_are_kept() {
        let o = opts(&["build-arg:NIX_CONFIG=extra-substituters = https://c.example\n# note\nmax-jobs = 2"])
            .unwrap();
        assert!(o.nix_config.unwrap().contains("max-jobs = 2"));
    }

    #[test]
    fn unknown_nixfront_args_are_errors_unless_declared() {
        let o = opts(&["build-arg:NIX_LAYER=3", "build-arg:OTHER=1"]).unwrap();
        let e = o.check_owned_args(&[]).unwrap_err().to_string();
        assert!(e.contains("unknown build arg NIX_LAYER: did you mean NIX_LAYERS?"), "{e}");
        assert!(o.check_owned_args(&["NIX_LAYER"]).is_ok(), "declared by the file");
        assert!(opts(&["build-arg:OTHER=1"]).unwrap().check_owned_args(&[]).is_ok());
    }

    #[test]
    fn remote_contexts_are_git_repositories() {
        let g = git_context("https://example.com/o/r.git#main").unwrap();
        assert_eq!(
            (g.remote.as_str(), g.id.as_str(), g.reference.as_deref()),
            ("https://example.com/o/r.git", "example.com/o/r.git", Some("main"))
        );
        let g = git_context("git@example.com:o/r.git").unwrap();
        assert_eq!((g.id.as_str(), g.reference), ("example.com/o/r.git", None));
        let g = git_context("git://127.0.0.1:9418/repo.git#v2").unwrap();
        assert_eq!(g.id, "127.0.0.1:9418/repo.git");
        assert_eq!(git_context("github.com/o/r").unwrap().remote, "https://github.com/o/r");
        let e = git_context("https://example.com/ctx.tar.gz").unwrap_err().to_string();
        assert!(e.contains("only git repositories"), "{e}");
        assert!(opts(&["context=https://example.com/o/r.git"]).unwrap().remote_context.is_some());
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
