//! Typed, immutable builders for BuildKit's LLB graph.
//!
//! A [`State`] is a filesystem: scratch, or one output of an op. Builders for each op kind
//! ([`source`], [`exec`], [`file`], [`merge`]) are consumed by `build`, which returns new
//! states; a built state never changes. [`definition`] marshals a state into the
//! `pb::Definition` that `Solve` takes: ops children-first, de-duplicated, each named by the
//! sha256 of its deterministic protobuf bytes, with `--no-cache` and source locations as
//! marshalling options. This module knows nothing about Nix or the user's file's meaning.

pub mod definition;
pub mod exec;
pub mod file;
pub mod merge;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard_buildkit_proto::pb;

/// A vertex before marshalling: the op without its input digests, plus its inputs.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) op: pb::Op,
    pub(crate) inputs: Vec<Output>,
    pub(crate) meta: Meta,
}

/// Per-vertex metadata that does not change the op's digest.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// What BuildKit's progress output shows for this vertex.
    pub name: Option<String>,
    /// The lines of the user's file this vertex comes from: BuildKit points its errors there.
    pub location: Option<Lines>,
    pub cache: CachePolicy,
}

/// How BuildKit's cache treats a vertex, beyond its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// Taken from the cache even under `--no-cache`: for internal steps whose result must keep
    /// its identity (a cache mount seeded from it is keyed by that result).
    pub survives_no_cache: bool,
}

impl Meta {
    pub fn named(name: impl Into<String>) -> Self {
        Meta { name: Some(name.into()), ..Default::default() }
    }

    pub(crate) fn to_pb(&self) -> Option<pb::OpMetadata> {
        self.name.as_ref()?;
        let description = match &self.name {
            Some(name) => BTreeMap::from([("llb.customname".to_string(), name.clone())]),
            None => BTreeMap::new(),
        };
        Some(pb::OpMetadata { description, ..Default::default() })
    }
}

/// First and last line (1-based, inclusive) of the user's file: where an instruction, a
/// problem or a step comes from (BuildKit points its errors there). The one type for source
/// lines, from the parser to the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lines {
    pub start: usize,
    pub end: usize,
}

impl Lines {
    pub fn one(line: usize) -> Self {
        Lines { start: line, end: line }
    }
}

/// One output of one op.
#[derive(Debug, Clone)]
pub struct Output {
    pub(crate) node: Arc<Node>,
    pub(crate) index: i64,
}

/// A filesystem in the graph: `None` is scratch (empty).
#[derive(Debug, Clone, Default)]
pub struct State(pub(crate) Option<Output>);

impl State {
    /// The empty filesystem.
    pub fn scratch() -> Self {
        State(None)
    }

    pub(crate) fn from_node(node: Node, index: i64) -> Self {
        State(Some(Output { node: Arc::new(node), index }))
    }
}

/// The OCI platform of an op, as LLB spells it.
pub fn platform(os: &str, architecture: &str, variant: &str) -> pb::Platform {
    pb::Platform {
        os: os.to_string(),
        architecture: architecture.to_string(),
        variant: variant.to_string(),
        ..Default::default()
    }
}
