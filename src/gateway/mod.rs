//! The client side of BuildKit's LLBBridge gateway: ping and capabilities, solve, reading
//! files from results, resolving image configs, and returning the final result or error.
//!
//! This module speaks protocol only; what to solve and what to return is decided elsewhere.
//! BuildKit's errors keep their typed details ([`BuildKitError`]), so a failing step's source
//! location reaches the client when the error is returned.

pub mod errors;
mod stdio;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

use bollard_buildkit_proto::fsutil::types::Stat;
use bollard_buildkit_proto::moby::buildkit::v1::frontend as fpb;
use bollard_buildkit_proto::pb;
use fpb::llb_bridge_client::LlbBridgeClient;
use tonic::transport::Channel;

pub use errors::{BuildKitError, ErrorDetail};

/// Capability ids this frontend branches on.
pub mod caps {
    /// LLB MergeOp (BuildKit >= 0.10).
    pub const MERGE_OP: &str = "mergeop";
    /// Results may carry `Ref` messages rather than bare ids.
    pub const PROTO_REF_ARRAY: &str = "proto.refarray";
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
    #[cfg(test)]
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
    /// `--cache-from` sources, given to every solve as the Dockerfile frontend gives them.
    pub cache_imports: Vec<fpb::CacheOptionsEntry>,
    /// Time spent waiting for BuildKit's answers.
    waited: Duration,
}

/// An entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub is_symlink: bool,
    /// Permission bits.
    pub permissions: u32,
    /// A symlink's target, as stored.
    pub link_target: String,
}

impl DirEntry {
    /// fsutil sends Go's `os.FileMode` bits, or Unix `S_IFMT` bits from other implementations.
    fn from_stat(stat: &Stat) -> Self {
        const GO_DIR: u32 = 1 << 31;
        const GO_SYMLINK: u32 = 1 << 27;
        let unix = stat.mode & 0o170000;
        DirEntry {
            name: stat.path.clone(),
            is_dir: stat.mode & GO_DIR != 0 || unix == 0o040000,
            is_symlink: stat.mode & GO_SYMLINK != 0 || unix == 0o120000,
            permissions: stat.mode & 0o7777,
            link_target: stat.linkname.clone(),
        }
    }
}

/// What can still return a result or an error when the build itself has gone (a panic):
/// a second handle on the same connection.
#[derive(Clone)]
pub struct Returner {
    client: LlbBridgeClient<Channel>,
}

/// The largest message this client sends or receives.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl Gateway {
    /// Connects over stdin/stdout and pings.
    pub async fn connect_stdio() -> Result<Self> {
        let channel = stdio::channel().await?;
        let client = LlbBridgeClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut gateway = Gateway {
            client,
            caps: Capabilities::default(),
            cache_imports: Vec::new(),
            waited: Duration::ZERO,
        };
        gateway.caps = gateway.ping().await?;
        Ok(gateway)
    }

    pub fn returner(&self) -> Returner {
        Returner { client: self.client.clone() }
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
    pub async fn solve(&mut self, definition: pb::Definition) -> Result<RefId> {
        let request = fpb::SolveRequest {
            definition: Some(definition),
            allow_result_return: true,
            allow_result_array_ref: self.caps.supports(caps::PROTO_REF_ARRAY),
            cache_imports: self.cache_imports.clone(),
            ..Default::default()
        };
        let started = Instant::now();
        let response = self.client.solve(request).await.map_err(status_error);
        self.waited += started.elapsed();
        let (id, _) = one_result(response?.into_inner(), "one definition")?;
        if id.0.is_empty() {
            bail!("BuildKit returned an empty result");
        }
        Ok(id)
    }

    /// Solves with another frontend (`gateway.v0` with `source=<image>`, or `dockerfile.v0`)
    /// given `opts` as its frontend options: its result (one ref) and metadata. What a client
    /// (or a frontend) may ask BuildKit for; nixfront's own build never does (the tests' raw
    /// client, `examples/raw_client.rs`, does).
    pub async fn solve_frontend(
        &mut self,
        frontend: &str,
        opts: HashMap<String, String>,
    ) -> Result<(RefId, BTreeMap<String, Vec<u8>>)> {
        let request = fpb::SolveRequest {
            frontend: frontend.to_string(),
            frontend_opt: opts,
            allow_result_return: true,
            allow_result_array_ref: self.caps.supports(caps::PROTO_REF_ARRAY),
            cache_imports: self.cache_imports.clone(),
            ..Default::default()
        };
        let response = self.client.solve(request).await.map_err(status_error)?.into_inner();
        one_result(response, &format!("the frontend {frontend}"))
    }

    /// Reads a file of a solved result, or fails if it is larger than `limit` bytes (only
    /// `limit + 1` bytes are ever transferred); `limit_name` names the limit in that error.
    pub async fn read_file(
        &mut self,
        r: &RefId,
        path: &str,
        limit: usize,
        limit_name: &str,
    ) -> Result<Vec<u8>> {
        let data = self.read_file_head(r, path, limit + 1).await?;
        if data.len() > limit {
            bail!("{path} is larger than {limit} bytes (limit {limit_name})");
        }
        Ok(data)
    }

    /// Reads at most the first `max` bytes of a file of a solved result.
    pub async fn read_file_head(&mut self, r: &RefId, path: &str, max: usize) -> Result<Vec<u8>> {
        let range = fpb::FileRange { offset: 0, length: max as i64 };
        let request = fpb::ReadFileRequest {
            r#ref: r.0.clone(),
            file_path: path.to_string(),
            range: Some(range),
            ..Default::default()
        };
        let started = Instant::now();
        let response = self.client.read_file(request).await.map_err(status_error);
        self.waited += started.elapsed();
        Ok(response?.into_inner().data)
    }

    /// Lists a directory of a solved result.
    pub async fn read_dir(&mut self, r: &RefId, path: &str) -> Result<Vec<DirEntry>> {
        let request =
            fpb::ReadDirRequest { r#ref: r.0.clone(), dir_path: path.to_string(), ..Default::default() };
        let started = Instant::now();
        let response = self.client.read_dir(request).await.map_err(status_error);
        self.waited += started.elapsed();
        Ok(response?.into_inner().entries.iter().map(DirEntry::from_stat).collect())
    }

    /// Time spent waiting for BuildKit's answers since connecting.
    pub fn time_in_buildkit(&self) -> Duration {
        self.waited
    }

    /// Resolves an image to its digest and config JSON.
    pub async fn resolve_image_config(
        &mut self,
        reference: &str,
        platform: Option<pb::Platform>,
    ) -> Result<(String, Vec<u8>)> {
        self.resolve_image_config_with(reference, platform, false).await
    }

    /// [`Self::resolve_image_config`], from the registry when `pull` (`--pull`) rather than
    /// what the builder has.
    pub async fn resolve_image_config_with(
        &mut self,
        reference: &str,
        platform: Option<pb::Platform>,
        pull: bool,
    ) -> Result<(String, Vec<u8>)> {
        let request = fpb::ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform,
            resolve_mode: crate::llb::source::resolve_mode(pull).to_string(),
            log_name: format!("resolve image config for {reference}"),
            ..Default::default()
        };
        let started = Instant::now();
        let response = self.client.resolve_image_config(request).await.map_err(status_error);
        self.waited += started.elapsed();
        let response = response.with_context(|| format!("resolving the image {reference}"))?.into_inner();
        Ok((response.digest, response.config))
    }

    /// Shows a warning about `lines` of the user's file `filename` (whose bytes are `source`)
    /// on the vertex `digest` (BuildKit >= 0.11, `gateway.warnings`).
    pub async fn warn(&mut self, digest: &str, warning: SourceWarning<'_>) -> Result<()> {
        let request = fpb::WarnRequest {
            digest: digest.to_string(),
            level: 1,
            short: warning.short.as_bytes().to_vec(),
            detail: vec![warning.detail.as_bytes().to_vec()],
            url: warning.url.to_string(),
            info: Some(warning.source.info()),
            ranges: vec![crate::llb::definition::line_range(warning.lines.start, warning.lines.end)],
        };
        let started = Instant::now();
        let response = self.client.warn(request).await.map_err(status_error);
        self.waited += started.elapsed();
        response?;
        Ok(())
    }
}

impl Returner {
    /// Returns the final result: one ref (an image) or one ref per platform, with metadata.
    pub async fn return_result(&mut self, result: FrontendResult, array_refs: bool) -> Result<()> {
        let array = array_refs;
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

    /// Returns an error to BuildKit, which shows `message` to the user, with typed details
    /// (the source lines to highlight, BuildKit's own details of a failed step).
    pub async fn return_error(&mut self, message: &str, details: Vec<ErrorDetail>) -> Result<()> {
        let request = fpb::ReturnRequest { result: None, error: Some(errors::status(message, details)) };
        self.client.r#return(request).await.map_err(status_error)?;
        Ok(())
    }
}

/// A solve's one result and its metadata; `what` names what was solved in the error.
fn one_result(response: fpb::SolveResponse, what: &str) -> Result<(RefId, BTreeMap<String, Vec<u8>>)> {
    let result = response.result.unwrap_or_default();
    let id = match result.result {
        Some(fpb::result::Result::Ref(r)) => r.id,
        Some(fpb::result::Result::RefDeprecated(id)) => id,
        Some(_) => bail!("BuildKit returned several results for {what}"),
        None => response.r#ref,
    };
    Ok((RefId(id), result.metadata.into_iter().collect()))
}

fn result_metadata(metadata: BTreeMap<String, Vec<u8>>) -> HashMap<String, Vec<u8>> {
    metadata.into_iter().collect()
}

/// A warning about lines of the user's file.
pub struct SourceWarning<'a> {
    pub source: &'a crate::llb::definition::SourceFile,
    pub lines: crate::llb::Lines,
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

/// A gRPC status from BuildKit as an error whose text is BuildKit's message and which keeps
/// BuildKit's typed details.
fn status_error(status: tonic::Status) -> anyhow::Error {
    BuildKitError::from_status(&status).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds_from_both_mode_encodings() {
        let kind = |mode: u32| {
            let e = DirEntry::from_stat(&Stat { path: "x".into(), mode, ..Default::default() });
            (e.is_dir, e.is_symlink, e.permissions)
        };
        assert_eq!(kind((1 << 31) | 0o755), (true, false, 0o755));
        assert_eq!(kind((1 << 27) | 0o777), (false, true, 0o777));
        assert_eq!(kind(0o040755), (true, false, 0o755));
        assert_eq!(kind(0o120777), (false, true, 0o777));
        assert_eq!(kind(0o100755), (false, false, 0o755));
    }
}
