//! The client side of BuildKit's LLBBridge gateway: ping and capabilities, solve, reading
//! files from results, resolving image configs, and returning the final result or error.
//!
//! This module speaks protocol only; what to solve and what to return is decided elsewhere.

mod stdio;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use bollard_buildkit_proto::fsutil::types::Stat;
use bollard_buildkit_proto::google::rpc::Status;
use bollard_buildkit_proto::moby::buildkit::v1::frontend as fpb;
use bollard_buildkit_proto::pb;
use fpb::llb_bridge_client::LlbBridgeClient;
use tonic::transport::Channel;

/// Capability ids this frontend branches on.
pub mod caps {
    /// LLB MergeOp (BuildKit >= 0.10).
    pub const MERGE_OP: &str = "mergeop";
    /// Results may carry `Ref` messages rather than bare ids.
    pub const PROTO_REF_ARRAY: &str = "proto.refarray";
    /// FileOp itself.
    pub const FILE_BASE: &str = "file.base";
    /// Gateway `Warn`.
    pub const GATEWAY_WARNINGS: &str = "gateway.warnings";
    /// Attestations in results (BuildKit >= 0.11).
    pub const ATTESTATIONS: &str = "reference.attestations";
}

/// What `Ping` reported.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    enabled: BTreeSet<String>,
    /// The first worker's platforms, its default first.
    pub worker_platforms: Vec<pb::Platform>,
}

impl Capabilities {
    pub fn supports(&self, cap: &str) -> bool {
        self.enabled.contains(cap)
    }

    /// Capabilities as a BuildKit with exactly `caps` enabled would report them.
    pub fn with(caps: &[&str]) -> Self {
        Capabilities { enabled: caps.iter().map(|c| c.to_string()).collect(), worker_platforms: Vec::new() }
    }
}

/// A solved result that can be read or returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefId(pub String);

/// A connected gateway client.
pub struct Gateway {
    client: LlbBridgeClient<Channel>,
    pub caps: Capabilities,
    /// `--no-cache`: every solve runs its ops again.
    pub ignore_cache: bool,
}

impl Gateway {
    /// Connects over stdin/stdout and pings.
    pub async fn connect_stdio() -> Result<Self> {
        let channel = stdio::channel().await?;
        let client = LlbBridgeClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let mut gateway = Gateway { client, caps: Capabilities::default(), ignore_cache: false };
        gateway.caps = gateway.ping().await?;
        Ok(gateway)
    }

    async fn ping(&mut self) -> Result<Capabilities> {
        let pong = self.client.ping(fpb::PingRequest {}).await.context("ping BuildKit")?.into_inner();
        let enabled = pong
            .frontend_api_caps
            .iter()
            .chain(pong.llb_caps.iter())
            .filter(|c| c.enabled)
            .map(|c| c.id.clone())
            .collect();
        let worker_platforms = pong.workers.first().map(|w| w.platforms.clone()).unwrap_or_default();
        Ok(Capabilities { enabled, worker_platforms })
    }

    /// Solves `definition` and returns a reference to its result.
    pub async fn solve(&mut self, mut definition: pb::Definition) -> Result<RefId> {
        if self.ignore_cache {
            crate::llb::definition::ignore_cache(&mut definition);
        }
        let request = fpb::SolveRequest {
            definition: Some(definition),
            allow_result_return: true,
            allow_result_array_ref: self.caps.supports(caps::PROTO_REF_ARRAY),
            ..Default::default()
        };
        let response = self.client.solve(request).await.map_err(status_error)?.into_inner();
        let id = match response.result.and_then(|r| r.result) {
            Some(fpb::result::Result::Ref(r)) => r.id,
            Some(fpb::result::Result::RefDeprecated(id)) => id,
            Some(_) => bail!("BuildKit returned several results for one definition"),
            None => response.r#ref,
        };
        if id.is_empty() {
            bail!("BuildKit returned an empty result");
        }
        Ok(RefId(id))
    }

    /// Reads a whole file from a solved result.
    pub async fn read_file(&mut self, r: &RefId, path: &str) -> Result<Vec<u8>> {
        let request =
            fpb::ReadFileRequest { r#ref: r.0.clone(), file_path: path.to_string(), ..Default::default() };
        let response = self.client.read_file(request).await.map_err(status_error)?;
        Ok(response.into_inner().data)
    }

    /// Lists a directory of a solved result.
    pub async fn read_dir(&mut self, r: &RefId, path: &str) -> Result<Vec<Stat>> {
        let request =
            fpb::ReadDirRequest { r#ref: r.0.clone(), dir_path: path.to_string(), ..Default::default() };
        let response = self.client.read_dir(request).await.map_err(status_error)?;
        Ok(response.into_inner().entries)
    }

    /// Resolves an image to its digest and config JSON.
    pub async fn resolve_image_config(
        &mut self,
        reference: &str,
        platform: Option<pb::Platform>,
    ) -> Result<(String, Vec<u8>)> {
        let request = fpb::ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform,
            resolve_mode: "default".to_string(),
            log_name: format!("resolve image config for {reference}"),
            ..Default::default()
        };
        let response = self
            .client
            .resolve_image_config(request)
            .await
            .map_err(status_error)
            .with_context(|| format!("resolving the builder image {reference}"))?
            .into_inner();
        Ok((response.digest, response.config))
    }

    /// Returns the final result: one ref (an image) or one ref per platform, with metadata.
    pub async fn return_result(&mut self, result: FrontendResult) -> Result<()> {
        let array = self.caps.supports(caps::PROTO_REF_ARRAY);
        let to_ref = |id: String| fpb::Ref { id, def: None };
        let refs = match result.refs {
            Refs::None if array => fpb::result::Result::Ref(to_ref(String::new())),
            Refs::None => fpb::result::Result::RefDeprecated(String::new()),
            Refs::Single(id) if array => fpb::result::Result::Ref(to_ref(id.0)),
            Refs::Single(id) => fpb::result::Result::RefDeprecated(id.0),
            Refs::Platforms(refs) if array => fpb::result::Result::Refs(fpb::RefMap {
                refs: refs.into_iter().map(|(k, v)| (k, to_ref(v.0))).collect(),
            }),
            Refs::Platforms(refs) => fpb::result::Result::RefsDeprecated(fpb::RefMapDeprecated {
                refs: refs.into_iter().map(|(k, v)| (k, v.0)).collect(),
            }),
        };
        let mut attestations: HashMap<String, fpb::Attestations> = HashMap::new();
        for (key, file) in result.attestations {
            let attestation = fpb::Attestation {
                kind: fpb::AttestationKind::InToto as i32,
                metadata: HashMap::from([("reason".to_string(), file.reason.into_bytes())]),
                r#ref: Some(to_ref(file.result.0)),
                path: file.path,
                in_toto_predicate_type: file.predicate_type,
                in_toto_subjects: Vec::new(), // BuildKit makes the image the subject
            };
            attestations.entry(key).or_default().attestation.push(attestation);
        }
        let request = fpb::ReturnRequest {
            result: Some(fpb::Result {
                metadata: result_metadata(result.metadata),
                attestations,
                result: Some(refs),
            }),
            error: None,
        };
        self.client.r#return(request).await.map_err(status_error).context("returning the result")?;
        Ok(())
    }

    /// Shows a warning about `line` of the user's file `filename` (whose bytes are `source`)
    /// on the vertex `digest` (BuildKit >= 0.11, `gateway.warnings`).
    pub async fn warn(&mut self, digest: &str, warning: SourceWarning<'_>) -> Result<()> {
        let line = warning.line as i32;
        let position = pb::Position { line, character: 0 };
        let request = fpb::WarnRequest {
            digest: digest.to_string(),
            level: 1,
            short: warning.short.as_bytes().to_vec(),
            detail: vec![warning.detail.as_bytes().to_vec()],
            url: warning.url.to_string(),
            info: Some(pb::SourceInfo {
                filename: warning.filename.to_string(),
                data: warning.source.to_vec(),
                definition: None,
                language: "Dockerfile".to_string(),
            }),
            ranges: vec![pb::Range { start: Some(position), end: Some(position) }],
        };
        self.client.warn(request).await.map_err(status_error)?;
        Ok(())
    }

    /// Returns an error to BuildKit, which shows `message` to the user.
    pub async fn return_error(&mut self, message: &str) -> Result<()> {
        let request = fpb::ReturnRequest {
            result: None,
            error: Some(Status { code: 2, message: message.to_string(), details: Vec::new() }),
        };
        self.client.r#return(request).await.map_err(status_error)?;
        Ok(())
    }
}

fn result_metadata(metadata: BTreeMap<String, Vec<u8>>) -> HashMap<String, Vec<u8>> {
    metadata.into_iter().collect()
}

/// A warning about one line of the user's file.
pub struct SourceWarning<'a> {
    pub filename: &'a str,
    pub source: &'a [u8],
    pub line: usize,
    pub short: &'a str,
    pub detail: &'a str,
    pub url: &'a str,
}

/// The refs of a final result.
#[derive(Debug, Clone)]
pub enum Refs {
    /// Metadata only, as subrequests answer.
    None,
    Single(RefId),
    /// `(platform key, ref)` pairs, e.g. `("linux/amd64", ...)`.
    Platforms(Vec<(String, RefId)>),
}

#[derive(Debug, Clone)]
pub struct FrontendResult {
    pub refs: Refs,
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// In-toto attestations, by the platform key of the image they describe.
    pub attestations: Vec<(String, InTotoFile)>,
}

/// An in-toto statement's predicate: a file in a solved result.
#[derive(Debug, Clone)]
pub struct InTotoFile {
    pub result: RefId,
    pub path: String,
    pub predicate_type: String,
    /// Why it is there, as BuildKit's own attestations say (`sbom`, `provenance`).
    pub reason: String,
}

/// A gRPC status from BuildKit as an error whose text is BuildKit's message.
fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow!("{}", status.message())
}
