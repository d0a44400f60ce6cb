//! The result nixfront returns, and every metadata key of it: the image config per platform,
//! the platform list, the date the exporter stamps, the build's summary, and subrequest answers.

use std::collections::BTreeMap;

use bollard_buildkit_proto::pb;
use serde_json::json;

use base64::Engine;

use crate::gateway::{FrontendResult, InTotoFile, RefId, Refs};
use crate::summary::Summary;

/// The image config of a single-platform result.
const CONFIG: &str = "containerimage.config";
/// The platforms of a multi-platform result (`{"platforms": [{"id", "platform"}]}`).
const REFS_PLATFORMS: &str = "refs.platforms";
/// The date the exporter gives what it writes (the OCI layout's `index.json`, the config):
/// the image's own date, so nothing is stamped with the clock.
const SOURCE_DATE_EPOCH: &str = "source.date.epoch";
/// The build's summary ([`Summary`]), a JSON object keyed by platform, base64-encoded as
/// BuildKit's own JSON values are: BuildKit hands `frontend.`-prefixed keys on to the client,
/// and buildx decodes such a value into `--metadata-file` as an object.
const SUMMARY: &str = "frontend.nixfront.summary";
/// A subrequest's answer: JSON for tools, text for people, and the answer format's version.
const ANSWER_JSON: &str = "result.json";
const ANSWER_TEXT: &str = "result.txt";
const ANSWER_VERSION: &str = "version";

/// One platform's image: its root filesystem, its config, its date and its SBOM attestation.
pub struct PlatformImage {
    pub platform: pb::Platform,
    pub rootfs: RefId,
    pub config: Vec<u8>,
    /// Unix seconds: the config's `created`.
    pub created: i64,
    pub sbom: Option<InTotoFile>,
    pub summary: Summary,
}

/// One image, or one per platform with `refs.platforms`, as BuildKit's exporters expect.
pub fn images(mut images: Vec<PlatformImage>) -> FrontendResult {
    let mut metadata = BTreeMap::new();
    // Attestations are keyed by platform, for one image too (BuildKit derives its key from
    // the config's os/architecture).
    let attestations = images
        .iter_mut()
        .filter_map(|image| Some((crate::platform::format(&image.platform), image.sbom.take()?)))
        .collect();
    let summaries: BTreeMap<String, &Summary> =
        images.iter().map(|i| (crate::platform::format(&i.platform), &i.summary)).collect();
    let summaries = serde_json::to_vec(&summaries).unwrap_or_default();
    metadata.insert(
        SUMMARY.to_string(),
        base64::engine::general_purpose::STANDARD.encode(summaries).into_bytes(),
    );
    if images.len() == 1 {
        let image = images.remove(0);
        metadata.insert(CONFIG.to_string(), image.config);
        metadata.insert(SOURCE_DATE_EPOCH.to_string(), image.created.to_string().into_bytes());
        return FrontendResult { refs: Refs::Single(image.rootfs), metadata, attestations };
    }
    let mut refs = Vec::new();
    let mut listed = Vec::new();
    for image in images {
        let key = crate::platform::format(&image.platform);
        metadata.insert(format!("{CONFIG}/{key}"), image.config);
        metadata.insert(format!("{SOURCE_DATE_EPOCH}/{key}"), image.created.to_string().into_bytes());
        let p = &image.platform;
        listed.push(json!({
            "id": key,
            "platform": { "os": p.os, "architecture": p.architecture, "variant": p.variant },
        }));
        refs.push((key, image.rootfs));
    }
    let platforms = json!({ "platforms": listed });
    metadata.insert(REFS_PLATFORMS.to_string(), platforms.to_string().into_bytes());
    FrontendResult { refs: Refs::Platforms(refs), metadata, attestations }
}

/// A subrequest's answer: metadata only.
pub fn answer(json_value: &serde_json::Value, text: String, version: &str) -> FrontendResult {
    let mut metadata = BTreeMap::new();
    metadata.insert(ANSWER_JSON.to_string(), serde_json::to_vec_pretty(json_value).unwrap_or_default());
    metadata.insert(ANSWER_TEXT.to_string(), text.into_bytes());
    metadata.insert(ANSWER_VERSION.to_string(), version.as_bytes().to_vec());
    FrontendResult { refs: Refs::None, metadata, attestations: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, platform: pb::Platform) -> PlatformImage {
        PlatformImage {
            platform: platform.clone(),
            rootfs: RefId(id.to_string()),
            config: format!("config-{id}").into_bytes(),
            created: 1_700_000_000,
            sbom: Some(InTotoFile {
                result: RefId(format!("sbom-{id}")),
                path: "/sbom.spdx.json".into(),
                predicate_type: "https://spdx.dev/Document".into(),
                reason: "sbom".into(),
            }),
            summary: Summary {
                platform: crate::platform::format(&platform),
                layers: 2,
                size: 7,
                store_paths: 1,
                largest: Vec::new(),
                change: None,
            },
        }
    }

    #[test]
    fn one_platform_returns_one_ref_its_config_and_its_date() {
        let result = images(vec![image("a", crate::llb::platform("linux", "amd64", ""))]);
        assert!(matches!(&result.refs, Refs::Single(RefId(id)) if id == "a"));
        assert_eq!(result.metadata["containerimage.config"], b"config-a");
        assert_eq!(result.metadata["source.date.epoch"], b"1700000000");
        assert!(!result.metadata.contains_key("refs.platforms"));
    }

    #[test]
    fn several_platforms_return_a_ref_a_config_and_a_date_each() {
        let result = images(vec![
            image("a", crate::llb::platform("linux", "amd64", "")),
            image("b", crate::llb::platform("linux", "arm", "v7")),
        ]);
        let Refs::Platforms(refs) = &result.refs else { panic!("one ref per platform") };
        let keys: Vec<&str> = refs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["linux/amd64", "linux/arm/v7"]);
        assert_eq!(result.metadata["containerimage.config/linux/arm/v7"], b"config-b");
        assert_eq!(result.metadata["source.date.epoch/linux/arm/v7"], b"1700000000");
        let keys: Vec<&str> = result.attestations.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["linux/amd64", "linux/arm/v7"], "an SBOM per platform");
        assert_eq!(result.attestations[1].1.result, RefId("sbom-b".into()));
        let listed: serde_json::Value = serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
        assert_eq!(listed["platforms"][1]["id"], "linux/arm/v7");
        assert_eq!(listed["platforms"][1]["platform"]["variant"], "v7");
        let summary =
            base64::engine::general_purpose::STANDARD.decode(&result.metadata["frontend.nixfront.summary"]);
        let summary: serde_json::Value = serde_json::from_slice(&summary.unwrap()).unwrap();
        assert_eq!(summary["linux/arm/v7"]["layers"], 2, "a summary per platform, one key: {summary}");
        assert_eq!(summary["linux/amd64"]["platform"], "linux/amd64");
    }

    #[test]
    fn an_answer_is_metadata_only() {
        let result = answer(&json!({"a": 1}), "text".into(), "1.0.0");
        assert!(matches!(result.refs, Refs::None));
        assert_eq!(result.metadata["result.txt"], b"text");
        assert_eq!(result.metadata["version"], b"1.0.0");
    }
}
