//! Frontend options: `BUILDKIT_FRONTEND_OPT_<i>=key=value` to one typed [`Options`].
//!
//! Raw pairs are read once and checked once, before anything else runs: every key name lives
//! here as a constant, platforms are parsed, the subrequest is named, and an error names the
//! key. nixfront's own knobs are build args; their table is [`args`].

pub mod args;
pub mod nixconf;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use bollard_buildkit_proto::moby::buildkit::v1::frontend::CacheOptionsEntry;
use bollard_buildkit_proto::pb;
use serde::Deserialize;

pub use args::NixArgs;

use crate::llb::source::Git;

const ENV_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";
const ENV_SESSION_ID: &str = "BUILDKIT_SESSION_ID";

const KEY_FILENAME: &str = "filename";
const KEY_DOCKERFILE_KEY: &str = "dockerfilekey";
const KEY_CONTEXT_KEY: &str = "contextkey";
const KEY_TARGET: &str = "target";
const KEY_PLATFORM: &str = "platform";
const KEY_NO_CACHE: &str = "no-cache";
/// `--pull`: `pull`, else `default`.
const KEY_IMAGE_RESOLVE_MODE: &str = "image-resolve-mode";
const KEY_REQUEST_ID: &str = "requestid";
const KEY_FRONTEND_CAPS: &str = "frontend.caps";
/// `docker buildx build --sbom=true` sends this (its value holds parameters).
const KEY_ATTEST_SBOM: &str = "attest:sbom";
/// The frontend's own image as the client named it (`# syntax=` or `--opt source=`), which
/// BuildKit passes on to the frontend.
const KEY_SOURCE: &str = "source";
/// A remote build context (`docker build <git URL>`).
const KEY_CONTEXT: &str = "context";
/// `--cache-from` of any type, as JSON `[{"Type": "local", "Attrs": {...}}]`.
const KEY_CACHE_IMPORTS: &str = "cache-imports";
/// The older `--cache-from`: comma-separated registry references (Docker 20.10 sends this).
const KEY_CACHE_FROM: &str = "cache-from";
const PREFIX_BUILD_ARG: &str = "build-arg:";
/// A named build context (`--build-context NAME=VALUE`): `local:NAME` for a directory the
/// client sends as local NAME, else a reference (`docker-image://...`).
const PREFIX_NAMED_CONTEXT: &str = "context:";
const PREFIX_LABEL: &str = "label:";
/// buildx passes the client's SOURCE_DATE_EPOCH as this build arg.
pub const ARG_SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// What the client asked for: the image, or an answer about the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Build,
    Describe,
    Outline,
    Targets,
    Lint,
}

/// Every subrequest nixfront answers (subrequests.rs), by the id clients send.
pub const SUBREQUESTS: &[(&str, Request)] = &[
    ("frontend.subrequests.describe", Request::Describe),
    ("frontend.outline", Request::Outline),
    ("frontend.targets", Request::Targets),
    ("frontend.lint", Request::Lint),
];

/// The frontend capability a client checks before sending subrequests.
pub const CAP_SUBREQUESTS: &str = "moby.buildkit.frontend.subrequests";

/// Everything the client asked for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The user's file inside the `dockerfile` local.
    pub filename: String,
    pub dockerfile_local: String,
    pub context_local: String,
    /// The client's session, through which locals, secrets and SSH come.
    pub session_id: String,
    /// `--target`: the flake attribute to build, overriding the file's.
    pub target: Option<String>,
    /// `--platform` values; empty means the build platform.
    pub platforms: Vec<pb::Platform>,
    pub build_args: BTreeMap<String, String>,
    /// `--label` values, added to the image's labels.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// `--pull`: the base image (FROM) from its registry, not what the builder has.
    pub pull: bool,
    /// nixfront's own build args, typed.
    pub nix: NixArgs,
    /// Unix seconds to date the image with (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
    pub request: Request,
    /// The client asked for an SBOM attestation (`--sbom=true`).
    pub sbom_attestation: bool,
    /// The build context is this git repository rather than a local directory.
    pub remote_context: Option<Git>,
    /// `--cache-from` sources, passed to every solve.
    pub cache_imports: Vec<CacheOptionsEntry>,
    /// `--build-context NAME=...` values, by name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// The frontend's own image, as the client named it.
    pub frontend_source: Option<String>,
}

/// A named build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory the client sends as the local of this name.
    Local(String),
    /// Any other source (`docker-image://...`, a URL), as the client wrote it.
    Other(String),
}

impl Options {
    /// Reads the options BuildKit put in this process's environment.
    pub fn from_env() -> Result<Self> {
        let mut pairs: Vec<(usize, String)> = std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix(ENV_PREFIX)?.parse().ok()?, v)))
            .collect();
        pairs.sort();
        let mut options = Self::from_pairs(pairs.into_iter().map(|(_, v)| v))?;
        options.session_id = std::env::var(ENV_SESSION_ID).unwrap_or_default();
        Ok(options)
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
        check_caps(get(KEY_FRONTEND_CAPS).as_deref())?;
        let request = requested(get(KEY_REQUEST_ID).as_deref())?;
        let build_args = prefixed(PREFIX_BUILD_ARG);
        let nix = NixArgs::from_build_args(&build_args)?;
        let source_date_epoch = match build_args.get(ARG_SOURCE_DATE_EPOCH).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                anyhow::anyhow!(
                    "build arg {ARG_SOURCE_DATE_EPOCH}={v:?}: expected Unix seconds, e.g. 1700000000"
                )
            })?),
            None => None,
        };
        let platforms = match get(KEY_PLATFORM) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(crate::platform::parse)
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let target = get(KEY_TARGET);
        if let Some(t) = &target {
            validate_attribute(t).map_err(|e| anyhow::anyhow!("--target {t:?}: {e}"))?;
        }
        Ok(Options {
            filename: get(KEY_FILENAME).unwrap_or_else(|| "Dockerfile".to_string()),
            dockerfile_local: get(KEY_DOCKERFILE_KEY).unwrap_or_else(|| "dockerfile".to_string()),
            context_local: get(KEY_CONTEXT_KEY).unwrap_or_else(|| "context".to_string()),
            session_id: String::new(),
            target,
            platforms,
            build_args,
            labels: prefixed(PREFIX_LABEL),
            no_cache: raw.contains_key(KEY_NO_CACHE),
            pull: get(KEY_IMAGE_RESOLVE_MODE).as_deref() == Some("pull"),
            nix,
            source_date_epoch,
            request,
            sbom_attestation: raw.get(KEY_ATTEST_SBOM).is_some_and(|v| !v.contains("disabled=true")),
            remote_context: match get(KEY_CONTEXT) {
                Some(url) => Some(git_context(&url)?),
                None => None,
            },
            cache_imports: cache_imports(get(KEY_CACHE_IMPORTS).as_deref(), get(KEY_CACHE_FROM).as_deref())?,
            frontend_source: get(KEY_SOURCE),
            named_contexts: named_contexts(prefixed(PREFIX_NAMED_CONTEXT))?,
        })
    }
}

/// `context:NAME=VALUE` pairs, each name checked as buildx checks it: a name becomes a path
/// in a step (the flake input it replaces), and a raw client (`buildctl --opt`, bake) sends
/// what it likes.
fn named_contexts(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, NamedContext>> {
    let mut contexts = BTreeMap::new();
    for (name, value) in raw {
        crate::names::check(crate::names::Kind::Context, &name)
            .map_err(|why| anyhow::anyhow!("--build-context {name}: {why}"))?;
        let context = match value.strip_prefix("local:") {
            Some(local) => NamedContext::Local(local.to_string()),
            None => NamedContext::Other(value),
        };
        contexts.insert(name, context);
    }
    Ok(contexts)
}

/// Which subrequest, if any, `requestid` asks for; an unknown one is an error naming the
/// known ones.
fn requested(request_id: Option<&str>) -> Result<Request> {
    let Some(id) = request_id else { return Ok(Request::Build) };
    match SUBREQUESTS.iter().find(|(name, _)| *name == id) {
        Some((_, request)) => Ok(*request),
        None => {
            let known: Vec<&str> = SUBREQUESTS.iter().map(|(n, _)| *n).collect();
            bail!("unsupported subrequest {id:?}; nixfront answers {}", known.join(", "))
        }
    }
}

/// The frontend capabilities nixfront has, as its image's `moby.buildkit.frontend.caps`
/// label says (frontend.Dockerfile): subrequests, and named contexts (`--build-context`).
pub const FRONTEND_CAPS: &[&str] = &[CAP_SUBREQUESTS, "moby.buildkit.frontend.contexts"];

/// Refuses a `frontend.caps` the client requires that nixfront lacks.
fn check_caps(frontend_caps: Option<&str>) -> Result<()> {
    let Some(caps) = frontend_caps else { return Ok(()) };
    // buildx may add `+forward` ("forward to a newer frontend if unsupported"): the base
    // capability is what counts.
    for cap in caps.split(',').map(|c| c.trim().split('+').next().unwrap_or("")).filter(|c| !c.is_empty()) {
        if !FRONTEND_CAPS.contains(&cap) {
            bail!("unsupported frontend capability {cap:?}; nixfront supports {}", FRONTEND_CAPS.join(", "));
        }
    }
    Ok(())
}

/// `cache-imports` (JSON, any type) and the older `cache-from` (registry references), as the
/// Dockerfile frontend reads them.
fn cache_imports(json: Option<&str>, refs: Option<&str>) -> Result<Vec<CacheOptionsEntry>> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "Type", alias = "type")]
        kind: String,
        #[serde(rename = "Attrs", alias = "attrs", default)]
        attrs: std::collections::HashMap<String, String>,
    }
    let mut entries = Vec::new();
    if let Some(json) = json {
        let parsed: Vec<Entry> = serde_json::from_str(json)
            .with_context(|| format!("{KEY_CACHE_IMPORTS}={json:?} is not valid JSON"))?;
        entries.extend(parsed.into_iter().map(|e| CacheOptionsEntry { r#type: e.kind, attrs: e.attrs }));
    }
    for reference in refs.into_iter().flat_map(|r| r.split(',')).map(str::trim).filter(|r| !r.is_empty()) {
        let attrs = [("ref".to_string(), reference.to_string())].into_iter().collect();
        entries.push(CacheOptionsEntry { r#type: "registry".to_string(), attrs });
    }
    Ok(entries)
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

/// A flake attribute path as `--target` may name it: no spaces, no `#`.
fn validate_attribute(attr: &str) -> Result<()> {
    if attr.chars().any(|c| c.is_whitespace() || c == '#' || c.is_control()) {
        bail!("a target is a flake attribute such as `hello` or `packages.x86_64-linux.hello`");
    }
    Ok(())
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
        assert_eq!(o.nix.image, args::DEFAULT_NIX_IMAGE);
        assert!(o.target.is_none() && o.platforms.is_empty() && !o.no_cache && o.cache_imports.is_empty());
        assert_eq!(o.request, Request::Build);
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
        let platforms: Vec<String> = o.platforms.iter().map(crate::platform::format).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/386"]);
        assert_eq!(o.nix.image, "docker.io/localnix/nix:2.8");
        assert_eq!(o.build_args["OTHER"], "a=b");
        assert_eq!(o.labels["team"], "core");
        assert!(o.no_cache);
        assert_eq!((o.nix.max_layers, o.nix.persistent_store, o.nix.verify_store), (12, false, true));
        assert_eq!(o.source_date_epoch, Some(1700000000));
        assert!(o.sbom_attestation && o.nix.sbom_file);
        assert!(!opts(&["attest:sbom=disabled=true"]).unwrap().sbom_attestation);
    }

    #[test]
    fn the_frontend_image_declares_the_capabilities_it_has() {
        let dockerfile = include_str!("../../frontend.Dockerfile");
        let label =
            dockerfile.lines().find_map(|l| l.strip_prefix("LABEL moby.buildkit.frontend.caps=")).unwrap();
        assert_eq!(label.trim_matches('"'), FRONTEND_CAPS.join(","));
        assert!(check_caps(Some("moby.buildkit.frontend.contexts+forward")).is_ok());
        assert!(check_caps(Some("moby.buildkit.frontend.other")).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = opts(&["build-arg:NIX_IMAGE=has space"]).unwrap_err().to_string();
        assert!(e.contains("NIX_IMAGE"), "{e}");
        let e = opts(&["build-arg:SOURCE_DATE_EPOCH=yesterday"]).unwrap_err().to_string();
        assert!(e.contains("SOURCE_DATE_EPOCH"), "{e}");
        let e = opts(&["target=a#b"]).unwrap_err().to_string();
        assert!(e.contains("--target"), "{e}");
        let e = opts(&["platform=linux"]).unwrap_err().to_string();
        assert!(e.contains("os/arch"), "{e}");
        let e = opts(&["cache-imports=[{"]).unwrap_err().to_string();
        assert!(e.contains("cache-imports"), "{e}");
    }

    #[test]
    fn subrequests_and_caps_are_checked_up_front() {
        assert_eq!(opts(&["requestid=frontend.outline"]).unwrap().request, Request::Outline);
        assert_eq!(opts(&["requestid=frontend.subrequests.describe"]).unwrap().request, Request::Describe);
        let e = opts(&["requestid=frontend.nope"]).unwrap_err().to_string();
        assert!(e.contains("unsupported subrequest") && e.contains("frontend.lint"), "{e}");
        assert!(opts(&["frontend.caps=moby.buildkit.frontend.subrequests+forward"]).is_ok());
        assert!(
            opts(&["frontend.caps=moby.buildkit.frontend.contexts"]).is_ok(),
            "named contexts replace inputs"
        );
        assert!(opts(&["frontend.caps=moby.buildkit.frontend.inputs.other"]).is_err());
    }

    #[test]
    fn cache_imports_of_both_spellings_are_kept() {
        let o = opts(&[
            r#"cache-imports=[{"Type":"local","Attrs":{"src":"/cache"}},{"Type":"gha","Attrs":{}}]"#,
            "cache-from=app:v1,reg.example/app:cache",
        ])
        .unwrap();
        let kinds: Vec<(&str, Option<&str>)> = o
            .cache_imports
            .iter()
            .map(|e| (e.r#type.as_str(), e.attrs.get("src").or(e.attrs.get("ref")).map(String::as_str)))
            .collect();
        assert_eq!(
            kinds,
            [
                ("local", Some("/cache")),
                ("gha", None),
                ("registry", Some("app:v1")),
                ("registry", Some("reg.example/app:cache"))
            ]
        );
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
}
