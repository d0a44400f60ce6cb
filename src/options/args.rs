//! nixfront's own build args: one table (name, default, parser, one-line doc) that the
//! option parser, the outline subrequest, the did-you-mean hint and a docs/reference.md check all read.
//! A default is parsed by the same function as a given value, so the two never disagree.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};

use super::nixconf::NixConfig;

/// The builder image used when `NIX_IMAGE` is not given: a released nixos/nix tag.
pub const DEFAULT_NIX_IMAGE: &str = "docker.io/nixos/nix:2.24.10";

/// `NIX_LAYERS` bounds: overlayfs and Docker stop near 125-128 layers.
pub const LAYERS_RANGE: std::ops::RangeInclusive<usize> = 2..=125;

/// The typed values of nixfront's build args.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NixArgs {
    /// The builder image, normalised (`NIX_IMAGE`).
    pub image: String,
    /// The most layers the image may have (`NIX_LAYERS`).
    pub max_layers: usize,
    /// Keep /nix in a BuildKit cache mount between builds (`NIX_PERSISTENT_STORE`).
    pub persistent_store: bool,
    /// Check every store path's contents before building (`NIX_VERIFY_STORE`).
    pub verify_store: bool,
    /// Extra nix.conf lines for Nix (`NIX_CONFIG`), checked by [`super::nixconf`].
    pub nix_config: Option<NixConfig>,
    /// Write the SBOM into the image too (`NIX_SBOM_FILE`).
    pub sbom_file: bool,
    /// Run Nix's own sandbox, in BuildKit's insecure mode (`NIX_SANDBOX`).
    pub sandbox: bool,
    /// Collect garbage when the persistent store grows past this many bytes (`NIX_STORE_MAX`).
    pub store_max: Option<u64>,
    /// Link the packages' top-level directories into the image root (`NIX_ROOT_LINKS`).
    pub root_links: bool,
    /// The uid and gid a user named by USER gets (`NIX_USER_UID`, `NIX_USER_GID`).
    pub user_ids: crate::users::Ids,
    /// The image this build is compared with, normalised (`NIX_PREVIOUS_IMAGE`): the change
    /// report's other side, and a memo source ([`crate::previous`]).
    pub previous_image: Option<String>,
    /// The binary cache the build's paths are signed and uploaded to (`NIX_CACHE_TO`).
    pub cache_to: Option<String>,
    /// Whose bounded store a NIX_STORE_MAX build collects: not a build arg, but the frontend's
    /// digest of the project (its FLAKE reference and lock file), so that a co-tenant that sets
    /// the same bound gets a store of its own.
    pub store_owner: String,
}

/// One of nixfront's build args.
pub struct ArgSpec {
    pub name: &'static str,
    pub default: &'static str,
    /// What the outline and docs/reference.md say of it.
    pub doc: &'static str,
    /// Sets the typed value from a given (or the default) string; the error says what is
    /// expected, without the name (the caller adds it).
    parse: fn(&mut NixArgs, &str) -> Result<(), String>,
}

/// Every build arg nixfront owns, in the order docs/reference.md lists them.
pub const NIX_ARGS: &[ArgSpec] = &[
    ArgSpec {
        name: "NIX_IMAGE",
        default: DEFAULT_NIX_IMAGE,
        doc: "Builder image with nix on its PATH",
        parse: |a, v| {
            a.image = normalize_image_ref(v)?;
            Ok(())
        },
    },
    ArgSpec {
        name: "NIX_LAYERS",
        default: "100",
        doc: "Most layers in the image, the top layer included (2-125)",
        parse: |a, v| {
            a.max_layers = v.parse().ok().filter(|n| LAYERS_RANGE.contains(n)).ok_or_else(|| {
                format!("expected a whole number from {} to {}", LAYERS_RANGE.start(), LAYERS_RANGE.end())
            })?;
            Ok(())
        },
    },
    ArgSpec {
        name: "NIX_PERSISTENT_STORE",
        default: "true",
        doc: "Keep /nix in a cache mount between builds",
        parse: |a, v| bool_value(v).map(|b| a.persistent_store = b),
    },
    ArgSpec {
        name: "NIX_VERIFY_STORE",
        default: "false",
        doc: "Verify the persistent store before building",
        parse: |a, v| bool_value(v).map(|b| a.verify_store = b),
    },
    ArgSpec {
        name: "NIX_CONFIG",
        default: "",
        doc: "Extra nix.conf lines for the build (never in the image)",
        parse: |a, v| {
            a.nix_config = if v.trim().is_empty() { None } else { Some(super::nixconf::check(v)?) };
            Ok(())
        },
    },
    ArgSpec {
        name: "NIX_SBOM_FILE",
        default: "false",
        doc: "Also write the SBOM into the image at /sbom.spdx.json",
        parse: |a, v| bool_value(v).map(|b| a.sbom_file = b),
    },
    ArgSpec {
        name: "NIX_SANDBOX",
        default: "false",
        doc: "Run Nix's sandbox (needs --allow security.insecure)",
        parse: |a, v| bool_value(v).map(|b| a.sandbox = b),
    },
    ArgSpec {
        name: "NIX_STORE_MAX",
        default: "",
        doc: "Collect garbage past this store size (e.g. 20G)",
        parse: |a, v| {
            a.store_max = if v.is_empty() { None } else { Some(size_value(v)?) };
            Ok(())
        },
    },
    ArgSpec {
        name: "NIX_ROOT_LINKS",
        default: "true",
        doc: "Link the packages' bin/, etc/, share/... into the image root",
        parse: |a, v| bool_value(v).map(|b| a.root_links = b),
    },
    ArgSpec {
        name: "NIX_USER_UID",
        default: "1000",
        doc: "The uid of a user USER names that the image lacks",
        parse: |a, v| id_value(v).map(|id| a.user_ids.uid = id),
    },
    ArgSpec {
        name: "NIX_USER_GID",
        default: "1000",
        doc: "The gid of that user's group",
        parse: |a, v| id_value(v).map(|id| a.user_ids.gid = id),
    },
    ArgSpec {
        name: "NIX_PREVIOUS_IMAGE",
        default: "",
        doc: "The image to report changes against (e.g. the last one pushed)",
        parse: |a, v| {
            a.previous_image = if v.is_empty() { None } else { Some(normalize_image_ref(v)?) };
            Ok(())
        },
    },
    ArgSpec {
        name: "NIX_CACHE_TO",
        default: "",
        doc: "A binary cache to sign and upload the build's paths to",
        parse: |a, v| {
            a.cache_to = if v.is_empty() { None } else { Some(cache_uri(v)?) };
            Ok(())
        },
    },
];

const PREFIX: &str = "NIX_";

impl NixArgs {
    /// The values of `build_args` for nixfront's args, defaults for the rest; an error names
    /// the arg and what it expects.
    pub fn from_build_args(build_args: &BTreeMap<String, String>) -> Result<Self> {
        let mut args = NixArgs::default();
        for spec in NIX_ARGS {
            let given = build_args.get(spec.name).filter(|v| !v.is_empty());
            let value = given.map_or(spec.default, String::as_str);
            (spec.parse)(&mut args, value).map_err(|e| anyhow!("build arg {}={value:?}: {e}", spec.name))?;
        }
        Ok(args)
    }
}

/// The value in effect for arg `name`: the given one, else the default.
pub fn effective<'a>(build_args: &'a BTreeMap<String, String>, spec: &'a ArgSpec) -> &'a str {
    build_args.get(spec.name).filter(|v| !v.is_empty()).map_or(spec.default, String::as_str)
}

/// Refuses a `NIX_*` build arg that is neither nixfront's nor declared by the file.
pub fn check_owned(build_args: &BTreeMap<String, String>, declared: &[&str]) -> Result<()> {
    for name in build_args.keys() {
        let ours = NIX_ARGS.iter().any(|s| s.name == name);
        if name.starts_with(PREFIX) && !ours && !declared.contains(&name.as_str()) {
            let hint = NIX_ARGS
                .iter()
                .map(|s| (strsim::damerau_levenshtein(name, s.name), s.name))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| format!("did you mean {k}? "))
                .unwrap_or_default();
            let known: Vec<&str> = NIX_ARGS.iter().map(|s| s.name).collect();
            bail!(
                "unknown build arg {name}: {hint}nixfront's own are {}; declare `ARG {name}` to use it in the file",
                known.join(", ")
            );
        }
    }
    Ok(())
}

fn bool_value(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// A uid or gid: a number below 2^31 (what Linux and Docker take).
fn id_value(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| *n < 1 << 31)
        .ok_or_else(|| "expected a uid or gid (a number)".to_string())
}

/// `20G`, `512M`, `1.5GiB`, `1000000`: a size in bytes (binary units: K, M, G, T).
fn size_value(v: &str) -> Result<u64, String> {
    let bad = || "expected a size such as 20G, 512M or a number of bytes".to_string();
    let v = v.trim();
    let digits_end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (number, unit) = v.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B').to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The store settings a `NIX_CACHE_TO` URI may carry: how it compresses and where an S3
/// bucket is. Anything else (a key file, a local cache directory) is the builder's, not the
/// user's: the signing key is the `nix-signing-key` secret.
const CACHE_URI_SETTINGS: &[&str] = &[
    "compression",
    "compression-level",
    "parallel-compression",
    "narinfo-compression",
    "ls-compression",
    "log-compression",
    "write-nar-listing",
    "region",
    "endpoint",
    "scheme",
    "profile",
    "multipart-upload",
    "buffer-size",
];

/// Checks a `NIX_CACHE_TO` store URI: an `http://`, `https://` or `s3://` binary cache, with
/// no credentials in it and only [`CACHE_URI_SETTINGS`].
fn cache_uri(v: &str) -> Result<String, String> {
    let Some((scheme, rest)) = v.split_once("://") else {
        return Err("expected a binary cache's store URI: https://..., http://... or s3://...".to_string());
    };
    match scheme {
        "http" | "https" | "s3" => {}
        "file" => {
            return Err(
                "a file:// cache would be written inside the build step and lost with it: serve the \
                        directory over HTTP (with PUT) or use an s3:// bucket"
                    .to_string(),
            );
        }
        _ => {
            return Err(format!(
                "{scheme}:// is not a binary cache nixfront uploads to: use https://, http:// or s3://"
            ));
        }
    }
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let host = location.split('/').next().unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected a binary cache's store URI with a host or bucket".to_string());
    }
    if host.contains('@') {
        return Err(
            "credentials go in secrets, not in the URI: --secret id=netrc (http) or id=aws-credentials (s3)"
                .to_string(),
        );
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !CACHE_URI_SETTINGS.contains(&name) {
            return Err(format!(
                "the store setting {name:?} is not one NIX_CACHE_TO takes (it may take: {}); the signing key is \
                 --secret id=nix-signing-key",
                CACHE_URI_SETTINGS.join(", ")
            ));
        }
    }
    Ok(v.to_string())
}

/// `nixos/nix:2.24` to `docker.io/nixos/nix:2.24`, `alpine` to `docker.io/library/alpine:latest`,
/// as Docker normalises image names.
pub fn normalize_image_ref(reference: &str) -> Result<String, String> {
    if reference.is_empty() || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not an image reference".to_string());
    }
    if reference.chars().any(|c| c.is_ascii_uppercase()) && !reference.contains('@') {
        let (name, _) = reference.rsplit_once(':').unwrap_or((reference, ""));
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("image names must be lower case".to_string());
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

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_come_from_the_table() {
        let a = NixArgs::from_build_args(&BTreeMap::new()).unwrap();
        assert_eq!(a.image, DEFAULT_NIX_IMAGE);
        assert_eq!(
            (a.max_layers, a.persistent_store, a.verify_store, a.sbom_file),
            (100, true, false, false)
        );
        assert_eq!(a.nix_config, None);
    }

    #[test]
    fn bad_values_name_their_arg() {
        let e = |k: &str, v: &str| NixArgs::from_build_args(&args(&[(k, v)])).unwrap_err().to_string();
        assert!(e("NIX_IMAGE", "has space").contains("NIX_IMAGE"));
        for bad in ["1", "200", "many"] {
            let msg = e("NIX_LAYERS", bad);
            assert!(msg.contains("NIX_LAYERS") && msg.contains("2 to 125"), "{msg}");
        }
        let msg = e("NIX_CONFIG", "extra-substituters");
        assert!(
            msg.contains("NIX_CONFIG") && msg.contains("line 1") && msg.contains("name = value"),
            "{msg}"
        );
        assert!(e("NIX_PERSISTENT_STORE", "yes").contains("NIX_PERSISTENT_STORE"));
    }

    #[test]
    fn unknown_nixfront_args_are_errors_unless_declared() {
        let given = args(&[("NIX_LAYER", "3"), ("OTHER", "1")]);
        let e = check_owned(&given, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown build arg NIX_LAYER: did you mean NIX_LAYERS?"), "{e}");
        assert!(e.contains("NIX_SBOM_FILE"), "every arg is listed: {e}");
        assert!(check_owned(&given, &["NIX_LAYER"]).is_ok(), "declared by the file");
    }

    #[test]
    fn cache_uris_are_binary_caches_without_keys_or_credentials() {
        for good in [
            "https://cache.example/fleet",
            "http://172.17.0.1:18080/upload/x",
            "s3://b?region=eu-west-1&compression=zstd",
        ] {
            assert_eq!(cache_uri(good).as_deref(), Ok(good));
        }
        for (bad, why) in [
            ("file:///cache", "lost"),
            ("ssh://host", "not a binary cache"),
            ("cache.example", "store URI"),
            ("https://u:p@cache.example", "secrets"),
            ("https://cache.example?secret-key=/etc/key", "signing key"),
            ("s3://b?local-nar-cache=/nix", "local-nar-cache"),
            ("https://", "host"),
        ] {
            let e = cache_uri(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
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

    #[test]
    fn the_reference_documents_every_arg() {
        let readme = include_str!("../../docs/reference.md");
        for spec in NIX_ARGS {
            assert!(
                readme.contains(&format!("`--build-arg {}=", spec.name)),
                "docs/reference.md lacks {}",
                spec.name
            );
        }
    }
}
