//! Source ops: container images and the client's local directories.

use std::collections::BTreeMap;

use bollard_buildkit_proto::pb;

use super::{CachePolicy, Meta, Node, State};

/// An image's root filesystem. `reference` is fully normalised
/// (`docker.io/library/alpine:3`, optionally with `@sha256:...`).
pub fn image(reference: &str, platform: Option<pb::Platform>) -> State {
    image_with(reference, platform, CachePolicy::default())
}

/// An image pinned by digest, which `--no-cache` has no reason to resolve again; kept so
/// that what is made from it keeps its identity too (a cache mount seeded from it).
pub fn pinned_image(reference: &str, platform: Option<pb::Platform>) -> State {
    image_with(reference, platform, CachePolicy { survives_no_cache: true })
}

/// A base image: from the registry every time when `pull` (`--pull`).
pub fn base_image(reference: &str, platform: Option<pb::Platform>, pull: bool) -> State {
    let mut attrs = BTreeMap::new();
    attrs.insert("image.resolvemode".to_string(), resolve_mode(pull).to_string());
    source(format!("docker-image://{reference}"), attrs, platform, Meta::default())
}

/// BuildKit's image resolve mode: `pull`, or `default` (what the builder has, else pull).
pub fn resolve_mode(pull: bool) -> &'static str {
    if pull { "pull" } else { "default" }
}

fn image_with(reference: &str, platform: Option<pb::Platform>, cache: CachePolicy) -> State {
    let mut attrs = BTreeMap::new();
    attrs.insert("image.resolvemode".to_string(), resolve_mode(false).to_string());
    source(format!("docker-image://{reference}"), attrs, platform, Meta { cache, ..Default::default() })
}

/// A source as another definition names it (`identifier` and `attrs` of its op), kept under
/// `--no-cache` like a pinned image.
pub fn raw(identifier: &str, attrs: BTreeMap<String, String>, platform: Option<pb::Platform>) -> State {
    let meta = Meta { cache: CachePolicy { survives_no_cache: true }, ..Default::default() };
    source(identifier.to_string(), attrs, platform, meta)
}

/// What to take from a local directory the client shares through its session.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// The local's name: `dockerfile`, `context`, or what `dockerfilekey`/`contextkey` say.
    pub name: String,
    pub session_id: String,
    /// Only these paths (and their parents) are transferred, when not empty.
    pub follow_paths: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub shared_key_hint: String,
}

/// A directory from the client, transferred through the session.
pub fn local(local: &Local, name: &str) -> State {
    let mut attrs = BTreeMap::new();
    attrs.insert("local.session".to_string(), local.session_id.clone());
    if !local.follow_paths.is_empty() {
        attrs.insert("local.followpaths".to_string(), json_list(&local.follow_paths));
    }
    if !local.exclude_patterns.is_empty() {
        attrs.insert("local.excludepatterns".to_string(), json_list(&local.exclude_patterns));
    }
    if !local.shared_key_hint.is_empty() {
        attrs.insert("local.sharedkeyhint".to_string(), local.shared_key_hint.clone());
    }
    source(format!("local://{}", local.name), attrs, None, Meta::named(name))
}

/// A git repository as BuildKit fetches it: `remote` is the URL to fetch, `id` its
/// protocol-free identity (`host/path`), `reference` a branch, tag or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Git {
    pub remote: String,
    pub id: String,
    pub reference: Option<String>,
}

/// A git checkout (without `.git`).
pub fn git(repo: &Git, name: &str) -> State {
    let mut identifier = format!("git://{}", repo.id);
    if let Some(r) = &repo.reference {
        identifier.push('#');
        identifier.push_str(r);
    }
    let mut attrs = BTreeMap::new();
    attrs.insert("git.fullurl".to_string(), repo.remote.clone());
    source(identifier, attrs, None, Meta::named(name))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
}

fn source(
    identifier: String,
    attrs: BTreeMap<String, String>,
    platform: Option<pb::Platform>,
    meta: Meta,
) -> State {
    let op = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp { identifier, attrs })),
        platform,
        ..Default::default()
    };
    State::from_node(Node { op, inputs: Vec::new(), meta }, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::decode;

    #[test]
    fn git_sources_name_the_repository_and_the_ref() {
        let repo = Git {
            remote: "https://example.com/o/r.git".into(),
            id: "example.com/o/r.git".into(),
            reference: Some("v1".into()),
        };
        let ops = decode(&git(&repo, "context").to_definition());
        let Some(pb::op::Op::Source(src)) = &ops[0].1.op else { panic!("not a source") };
        assert_eq!(src.identifier, "git://example.com/o/r.git#v1");
        assert_eq!(src.attrs["git.fullurl"], "https://example.com/o/r.git");
    }

    #[test]
    fn local_carries_session_and_follow_paths() {
        let spec = Local {
            name: "dockerfile".into(),
            session_id: "s1".into(),
            follow_paths: vec!["Dockerfile".into()],
            shared_key_hint: "dockerfile".into(),
            ..Default::default()
        };
        let ops = decode(&local(&spec, "load").to_definition());
        let Some(pb::op::Op::Source(src)) = &ops[0].1.op else { panic!("not a source") };
        assert_eq!(src.identifier, "local://dockerfile");
        assert_eq!(src.attrs["local.session"], "s1");
        assert_eq!(src.attrs["local.followpaths"], r#"["Dockerfile"]"#);
        assert!(!src.attrs.contains_key("local.excludepatterns"));
    }
}
