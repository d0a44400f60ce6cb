//! Marshalling a [`State`] into a `pb::Definition`.
//!
//! Each op is encoded with its input digests filled in; prost writes fields in tag order and
//! every map in the LLB protos is a `BTreeMap`, so the bytes, and with them the digests, are
//! deterministic. Ops are listed children-first and once each; the last entry is the bare op
//! that names the returned output, as BuildKit expects. [`Marshal`] adds what is not part of
//! an op's digest: `--no-cache` (every op marked to run again) and the user's file, so that
//! BuildKit points a failing op's error at the lines it came from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bollard_buildkit_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

use super::{Node, Output, State};

/// The sha256 digest of `bytes`, in BuildKit's `sha256:<hex>` form.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// How to marshal: what goes beside the ops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marshal<'a> {
    /// `--no-cache`: every op is run again rather than taken from BuildKit's cache.
    pub ignore_cache: bool,
    /// The user's file, for the ops that carry a location in it.
    pub source: Option<&'a SourceFile>,
}

/// The user's file as BuildKit shows it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub filename: String,
    pub data: Vec<u8>,
}

impl SourceFile {
    pub fn info(&self) -> pb::SourceInfo {
        pb::SourceInfo {
            filename: self.filename.clone(),
            data: self.data.clone(),
            definition: None,
            language: "Dockerfile".to_string(),
        }
    }
}

/// A BuildKit range over whole lines `start..=end` (1-based).
pub fn line_range(start: usize, end: usize) -> pb::Range {
    let at = |line: usize| Some(pb::Position { line: line as i32, character: 0 });
    pb::Range { start: at(start), end: at(end) }
}

#[derive(Default)]
struct Marshaller {
    /// Digest of each node already marshalled, keyed by its address.
    digests: HashMap<*const Node, String>,
    seen: HashSet<String>,
    ops: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    locations: BTreeMap<String, super::Lines>,
    /// Ops that keep their cache under `--no-cache`.
    survivors: HashSet<String>,
}

impl Marshaller {
    fn node(&mut self, node: &Arc<Node>) -> String {
        let key = Arc::as_ptr(node);
        if let Some(digest) = self.digests.get(&key) {
            return digest.clone();
        }
        let mut op = node.op.clone();
        op.inputs = node.inputs.iter().map(|input| self.input(input)).collect();
        let bytes = op.encode_to_vec();
        let digest = digest_of(&bytes);
        if self.seen.insert(digest.clone()) {
            self.ops.push(bytes);
            if let Some(meta) = node.meta.to_pb() {
                self.metadata.insert(digest.clone(), meta);
            }
            if let Some(location) = node.meta.location {
                self.locations.insert(digest.clone(), location);
            }
            if node.meta.cache.survives_no_cache {
                self.survivors.insert(digest.clone());
            }
        }
        self.digests.insert(key, digest.clone());
        digest
    }

    fn input(&mut self, output: &Output) -> pb::Input {
        pb::Input { digest: self.node(&output.node), index: output.index }
    }
}

impl State {
    /// The definition that solves to this state, with nothing beside the ops. Scratch has an
    /// empty definition.
    pub fn to_definition(&self) -> pb::Definition {
        self.marshal(Marshal::default())
    }

    /// The digest BuildKit knows this state by: that of its definition's terminal op, which
    /// names the output and, through its input's digest, everything below it. Scratch has
    /// none (an empty string).
    pub fn key(&self) -> String {
        self.to_definition().def.last().map(|op| digest_of(op)).unwrap_or_default()
    }

    /// The definition that solves to this state, marshalled as `how` says.
    pub fn marshal(&self, how: Marshal) -> pb::Definition {
        let mut m = Marshaller::default();
        if let Some(output) = &self.0 {
            let input = m.input(output);
            let terminal = pb::Op { inputs: vec![input], ..Default::default() };
            m.ops.push(terminal.encode_to_vec());
        }
        let mut def = pb::Definition { def: m.ops, metadata: m.metadata, source: None };
        if how.ignore_cache {
            for op in &def.def {
                let digest = digest_of(op);
                if !m.survivors.contains(&digest) {
                    def.metadata.entry(digest).or_default().ignore_cache = true;
                }
            }
        }
        if let Some(file) = how.source.filter(|_| !m.locations.is_empty()) {
            let locations = m
                .locations
                .into_iter()
                .map(|(digest, super::Lines { start, end })| {
                    let location = pb::Location { source_index: 0, ranges: vec![line_range(start, end)] };
                    (digest, pb::Locations { locations: vec![location] })
                })
                .collect();
            def.source = Some(pb::Source { locations, infos: vec![file.info()] });
        }
        def
    }
}

/// Decodes a definition back into ops, for tests and debugging.
#[cfg(test)]
pub fn decode(def: &pb::Definition) -> Vec<(String, pb::Op)> {
    def.def
        .iter()
        .map(|bytes| (digest_of(bytes), pb::Op::decode(bytes.as_slice()).expect("valid op")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::file::FileOp;
    use crate::llb::source;

    #[test]
    fn scratch_has_an_empty_definition() {
        assert!(State::scratch().to_definition().def.is_empty());
    }

    #[test]
    fn shared_inputs_are_listed_once_children_first() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let a = FileOp::on(&image).mkdir("/a", 0o755, -1).build("mkdir a");
        let b = FileOp::on(&a).copy_contents(&image, "/bin", "/bin2", -1).build("copy bin");
        let def = b.to_definition();
        let ops = decode(&def);
        // image, mkdir, copy, terminal: the image appears once though used twice.
        assert_eq!(ops.len(), 4);
        let position = |d: &str| ops.iter().position(|(digest, _)| digest == d).unwrap();
        for (i, (_, op)) in ops.iter().enumerate() {
            for input in &op.inputs {
                assert!(position(&input.digest) < i, "input listed after its user");
            }
        }
        let (_, terminal) = ops.last().unwrap();
        assert!(terminal.op.is_none());
        assert_eq!(terminal.inputs.len(), 1);
    }

    #[test]
    fn the_same_graph_marshals_to_the_same_bytes() {
        let build = || {
            let image = source::image("docker.io/library/busybox:latest", None);
            FileOp::on(&image).mkdir("/x", 0o700, 0).build("mkdir").to_definition()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn no_cache_marks_every_op_and_keeps_the_names() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let state = FileOp::on(&image).mkdir("/x", 0o700, 0).build("mkdir");
        let ops = state.to_definition().def;
        let def = state.marshal(Marshal { ignore_cache: true, ..Default::default() });
        assert_eq!(def.def, ops);
        assert_eq!(def.metadata.len(), ops.len());
        assert!(def.metadata.values().all(|m| m.ignore_cache));
        assert!(
            def.metadata
                .values()
                .any(|m| m.description.get("llb.customname").map(String::as_str) == Some("mkdir"))
        );
    }

    #[test]
    fn cache_policies_reach_the_metadata() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let policy = super::super::CachePolicy { survives_no_cache: true };
        let seed = FileOp::on(&image).mkdir("/nix", 0o755, 0).cache(policy).build("seed");
        let def = seed.marshal(Marshal { ignore_cache: true, ..Default::default() });
        let seed_digest = digest_of(&def.def[def.def.len() - 2]);
        let meta = &def.metadata[&seed_digest];
        assert!(!meta.ignore_cache, "survives --no-cache");
        let image_digest = digest_of(&def.def[0]);
        assert!(def.metadata[&image_digest].ignore_cache, "the others do not");
    }

    #[test]
    fn located_ops_point_into_the_source_file() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let state = FileOp::on(&image)
            .mkdir("/x", 0o700, 0)
            .at(Some(crate::llb::Lines { start: 3, end: 4 }))
            .build("mkdir");
        let file = SourceFile { filename: "Dockerfile".into(), data: b"a\nb\nFLAKE .\n".to_vec() };
        assert!(state.to_definition().source.is_none(), "no source unless asked");
        let def = state.marshal(Marshal { source: Some(&file), ..Default::default() });
        let source = def.source.expect("a source map");
        assert_eq!(source.infos[0].filename, "Dockerfile");
        assert_eq!(source.infos[0].language, "Dockerfile");
        let (digest, locations) = source.locations.iter().next().unwrap();
        assert_eq!(digest, &digest_of(&def.def[def.def.len() - 2]), "the mkdir op carries it");
        assert_eq!(locations.locations[0].ranges[0], line_range(3, 4));
        assert_eq!(source.locations.len(), 1, "the image op has no location");
    }

    #[test]
    fn names_go_to_metadata_not_to_the_digest() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let one = FileOp::on(&image).mkdir("/x", 0o700, 0).build("one").to_definition();
        let two = FileOp::on(&image).mkdir("/x", 0o700, 0).build("two").to_definition();
        assert_eq!(one.def, two.def);
        let names: Vec<_> =
            one.metadata.values().filter_map(|m| m.description.get("llb.customname")).collect();
        assert_eq!(names, vec!["one"]);
    }
}
