//! The base image (`FROM`): which image (a named build context of the same name replaces it,
//! as in Dockerfiles), resolved for each target platform (`--pull` honoured), its config and
//! digest, and what nixfront reads of its files: its top-level symlinks (which the image
//! root's links follow) and its `/etc/passwd` and `/etc/group` (which USER adds to).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use bollard_buildkit_proto::pb;
use serde_json::Value;

use super::at_lines;
use crate::gateway::Gateway;
use crate::llb::{State, source};
use crate::nixfile::Spanned;
use crate::options::{NamedContext, Options, args};
use crate::users::BaseFiles;

/// A base image, resolved for one platform.
pub struct Base {
    /// The reference built on, as resolved (its digest apart); `local:NAME` for a directory.
    pub name: String,
    pub digest: String,
    /// Its image config (`{}` for a directory).
    pub image: Value,
    pub state: State,
    /// Its top-level symlinks: name to absolute target (`bin` to `/usr/bin`).
    pub links: BTreeMap<String, String>,
    pub files: BaseFiles,
}

/// The named build context that replaces `FROM name`, if any: `name` as written or
/// normalised (`alpine`, `docker.io/library/alpine:latest`).
pub fn named_context<'a>(options: &'a Options, name: &str) -> Option<&'a NamedContext> {
    let normalized = args::normalize_image_ref(name).ok();
    options
        .named_contexts
        .iter()
        .find(|(key, _)| key.as_str() == name || normalized.as_deref() == Some(key.as_str()))
        .map(|(_, context)| context)
}

/// Resolves `FROM` for `target`; with `read_users` reads its users' files too. Every failure
/// points at the FROM line.
pub async fn resolve(
    gw: &mut Gateway,
    options: &Options,
    from: &Spanned<String>,
    target: &pb::Platform,
    read_users: bool,
) -> Result<Base> {
    let lines = from.lines;
    let (name, digest, image, state) = match named_context(options, &from.value) {
        Some(NamedContext::Local(local)) => {
            let spec = source::Local {
                name: local.clone(),
                session_id: options.session_id.clone(),
                shared_key_hint: local.clone(),
                ..Default::default()
            };
            let state = source::local(&spec, &format!("load build context {}", from.value));
            (format!("local:{local}"), String::new(), serde_json::json!({}), state)
        }
        Some(NamedContext::Other(value)) => {
            let Some(reference) = value.strip_prefix("docker-image://") else {
                return at_lines(
                    Err(anyhow!(
                        "--build-context {}={value}: a base image is a `docker-image://` reference or a \
                         directory",
                        from.value
                    )),
                    lines,
                );
            };
            resolve_image(gw, options, reference, target, lines).await?
        }
        None => resolve_image(gw, options, &from.value, target, lines).await?,
    };
    let solved = at_lines(
        gw.solve(state.to_definition()).await.with_context(|| format!("pulling the base image {name}")),
        lines,
    )?;
    let mut links = BTreeMap::new();
    for entry in gw.read_dir(&solved, "/").await.unwrap_or_default() {
        if !entry.is_symlink {
            continue;
        }
        let target = crate::paths::clean_relative(&entry.link_target);
        if !target.is_empty() && !entry.link_target.contains("..") {
            links.insert(entry.name, format!("/{target}"));
        }
    }
    let mut files = BaseFiles::default();
    if read_users {
        let read = async |gw: &mut Gateway, path: &str| {
            let bytes = gw.read_file(&solved, path, 1 << 20, "the base image's users").await.ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        files.passwd = read(gw, "/etc/passwd").await;
        files.group = read(gw, "/etc/group").await;
    }
    Ok(Base { name, digest, image, state, links, files })
}

/// An image from a registry (or the builder's own images): its config for `target`, checked
/// to be that platform's.
async fn resolve_image(
    gw: &mut Gateway,
    options: &Options,
    reference: &str,
    target: &pb::Platform,
    lines: crate::nixfile::Lines,
) -> Result<(String, String, Value, State)> {
    let normalized =
        at_lines(args::normalize_image_ref(reference).map_err(|e| anyhow!("FROM {reference}: {e}")), lines)?;
    let resolved = gw.resolve_image_config_with(&normalized, Some(target.clone()), options.pull).await;
    let (digest, config) = at_lines(
        resolved.with_context(|| {
            format!("FROM {reference}: no image for {} can be resolved", crate::platform::format(target))
        }),
        lines,
    )?;
    let image: Value = at_lines(
        serde_json::from_slice(&config).with_context(|| format!("FROM {reference}: its config is not JSON")),
        lines,
    )?;
    let field = |name: &str| image.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let (os, arch, variant) = (field("os"), field("architecture"), field("variant"));
    let wrong_variant = !target.variant.is_empty() && !variant.is_empty() && variant != target.variant;
    if os != target.os || arch != target.architecture || wrong_variant {
        let theirs = [os.as_str(), arch.as_str(), variant.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        return at_lines(
            Err(anyhow!(
                "FROM {reference}: the image is for {theirs}, the build for {}; name an image (or a \
                 multi-platform index) that has {}",
                crate::platform::format(target),
                crate::platform::format(target)
            )),
            lines,
        );
    }
    let pinned = if reference.contains('@') || digest.is_empty() {
        normalized.clone()
    } else {
        format!("{normalized}@{digest}")
    };
    let state = source::base_image(&pinned, Some(target.clone()), options.pull);
    Ok((normalized, digest, image, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_context_replaces_the_base_by_its_name_as_written_or_normalised() {
        let options = Options::from_pairs([
            "context:alpine=docker-image://registry.local/alpine:3".to_string(),
            "context:docker.io/library/debian:12=local:rootfs".to_string(),
        ])
        .unwrap();
        assert!(
            matches!(named_context(&options, "alpine"), Some(NamedContext::Other(v)) if v.ends_with("alpine:3"))
        );
        assert!(
            matches!(named_context(&options, "debian:12"), Some(NamedContext::Local(d)) if d == "rootfs")
        );
        assert!(named_context(&options, "ubuntu").is_none());
    }
}
