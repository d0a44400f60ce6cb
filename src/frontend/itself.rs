//! The frontend's own image, which every Nix step mounts to run this binary
//! (`nixfront step <name>`), so that what runs in a step is the frontend's own code, of the
//! frontend's own version. BuildKit 0.10 and later give a frontend its own definition
//! ([`DEFINITION`]: the image pinned to its digest, as BuildKit resolved it); older ones (Docker
//! 20.10's 0.8) pass the image as the client named it (`source`), which is resolved and
//! pinned here the same way. Also the build's id, under which failing steps leave their
//! failures for this build alone.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use bollard_buildkit_proto::pb;
use prost::Message;

use crate::gateway::Gateway;
use crate::llb::State;
use crate::plan::BuilderImage;

/// Where BuildKit (0.10 and later) puts the frontend's own definition.
pub const DEFINITION: &str = "/run/config/buildkit/metadata/frontend.bin";

/// The frontend's image as a state: from its definition, else from `source`.
pub async fn image(gw: &mut Gateway, source: Option<&str>) -> Result<State> {
    if let Ok(bytes) = std::fs::read(DEFINITION) {
        if let Some(state) = from_definition(&bytes) {
            return Ok(state);
        }
        tracing::warn!("{DEFINITION} holds no source nixfront can mount; resolving the `source` option");
    }
    let Some(source) = source else {
        bail!(
            "nixfront cannot tell which image it runs from: BuildKit gave neither its definition nor the \
             `source` option; run it as `# syntax=<image>` or with buildctl's `--frontend gateway.v0 --opt \
             source=<image>`"
        );
    };
    let (digest, config) = gw
        .resolve_image_config(source, None)
        .await
        .map_err(|e| e.context(format!("resolving nixfront's own image {source}")))?;
    let pinned = BuilderImage::from_config(&normalise(source), &digest, &config)?;
    Ok(crate::llb::source::pinned_image(&pinned.reference, None))
}

/// The source op of the definition BuildKit gave (the image, pinned), as a state.
pub fn from_definition(bytes: &[u8]) -> Option<State> {
    let definition = pb::Definition::decode(bytes).ok()?;
    definition.def.iter().find_map(|op| {
        let op = pb::Op::decode(op.as_slice()).ok()?;
        let Some(pb::op::Op::Source(source)) = op.op else { return None };
        let attrs: BTreeMap<String, String> = source.attrs.into_iter().collect();
        Some(crate::llb::source::raw(&source.identifier, attrs, op.platform))
    })
}

/// `org/nixfront` as BuildKit names it: `docker.io/org/nixfront:latest`.
fn normalise(reference: &str) -> String {
    let (name, pinned) = reference.split_once('@').map_or((reference, None), |(n, d)| (n, Some(d)));
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_registry, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && pinned.is_none() {
        full.push_str(":latest");
    }
    match pinned {
        Some(digest) => format!("{full}@{digest}"),
        None => full,
    }
}

/// A new build id: 32 hex digits from the kernel's random source (the time and process where
/// that cannot be read).
pub fn new_build_id() -> String {
    let mut bytes = [0u8; 16];
    let read =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seed = now ^ (u128::from(std::process::id()) << 64);
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_buildkit_gives_becomes_the_same_pinned_source() {
        let image = crate::llb::source::image("docker.io/org/nixfront:latest@sha256:abc", None);
        let bytes = image.to_definition().encode_to_vec();
        let state = from_definition(&bytes).expect("a source");
        let ops = crate::llb::definition::decode(&state.to_definition());
        let Some(pb::op::Op::Source(source)) = &ops[0].1.op else { panic!("not a source") };
        assert_eq!(source.identifier, "docker-image://docker.io/org/nixfront:latest@sha256:abc");
        assert!(from_definition(b"not a definition").is_none());
    }

    #[test]
    fn a_source_is_named_as_buildkit_names_it() {
        assert_eq!(normalise("org/nixfront"), "docker.io/org/nixfront:latest");
        assert_eq!(normalise("nixfront:0.3"), "docker.io/library/nixfront:0.3");
        assert_eq!(normalise("localhost:5000/nixfront"), "localhost:5000/nixfront:latest");
        assert_eq!(normalise("ghcr.io/o/n@sha256:abc"), "ghcr.io/o/n@sha256:abc");
    }

    #[test]
    fn build_ids_are_hex_and_differ() {
        let (a, b) = (new_build_id(), new_build_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
