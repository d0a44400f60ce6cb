//! Marshalling a [`State`] into a `pb::Definition`.
//!
//! Each op is encoded with its input digests filled in; prost writes fields in tag order and
//! every map in the LLB protos is a `BTreeMap`, so the bytes, and with them the digests, are
//! deterministic. Ops are listed children-first and once each; the last entry is the bare op
//! that names the returned output, as BuildKit expects.

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

#[derive(Default)]
struct Marshaller {
    /// Digest of each node already marshalled, keyed by its address.
    digests: HashMap<*const Node, String>,
    seen: HashSet<String>,
    ops: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
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
        }
        self.digests.insert(key, digest.clone());
        digest
    }

    fn input(&mut self, output: &Output) -> pb::Input {
        pb::Input { digest: self.node(&output.node), index: output.index }
    }
}

impl State {
    /// The definition that solves to this state. Scratch has an empty definition.
    pub fn to_definition(&self) -> pb::Definition {
        let mut m = Marshaller::default();
        if let Some(output) = &self.0 {
            let input = m.input(output);
            let terminal = pb::Op { inputs: vec![input], ..Default::default() };
            m.ops.push(terminal.encode_to_vec());
        }
        pb::Definition { def: m.ops, metadata: m.metadata, source: None }
    }
}

/// Marks every op of `def` to be run again rather than taken from BuildKit's cache
/// (`--no-cache`); the ops and their digests stay the same.
pub fn ignore_cache(def: &mut pb::Definition) {
    for op in &def.def {
        def.metadata.entry(digest_of(op)).or_default().ignore_cache = true;
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
        let b = FileOp::on(&a).copy(&image, "/bin", "/bin2", -1).build("copy bin");
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
        let mut def = FileOp::on(&image).mkdir("/x", 0o700, 0).build("mkdir").to_definition();
        let ops = def.def.clone();
        ignore_cache(&mut def);
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
