//! Errors between nixfront and BuildKit, with their typed details.
//!
//! BuildKit attaches typed details to a gRPC status (`google.rpc.Status.details`): the source
//! lines of the user's file to highlight (`errdefs.Source`), the failing vertex, the exit code
//! of a step. They are JSON in an `Any` whose type URL BuildKit registered with `+json`
//! (`util/grpcerrors`, `solver/errdefs`). nixfront keeps the details of a failed solve and sends
//! its own source details, so buildx shows the right line whichever side found the problem.

use std::fmt;

use bollard_buildkit_proto::google::protobuf::Any;
use bollard_buildkit_proto::google::rpc::Status;
use prost::Message;
use serde_json::json;

use crate::llb::Lines;
use crate::llb::definition::SourceFile;

/// BuildKit's type URL for `errdefs.Source`: the file and ranges an error is about.
const SOURCE_TYPE: &str = "github.com/moby/buildkit/errdefs.Source+json";

/// gRPC's `Unknown`, which BuildKit's frontends use for build errors.
const CODE_UNKNOWN: i32 = 2;

/// One typed detail of an error.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDetail(pub Any);

/// Lines `start..=end` as BuildKit's source locations write them (`{"ranges": [...]}`), in
/// error details and in the subrequests' answers alike.
pub fn ranges(lines: Lines) -> serde_json::Value {
    json!({ "ranges": [{ "start": { "line": lines.start }, "end": { "line": lines.end } }] })
}

impl ErrorDetail {
    /// "This error is about lines `start..=end` of `file`": buildx shows them highlighted.
    pub fn source(file: &SourceFile, lines: Lines) -> Self {
        use base64::Engine;
        let value = json!({
            "info": {
                "filename": file.filename,
                "data": base64::engine::general_purpose::STANDARD.encode(&file.data),
                "language": "Dockerfile",
            },
            "ranges": ranges(lines)["ranges"],
        });
        ErrorDetail(Any { type_url: SOURCE_TYPE.to_string(), value: value.to_string().into_bytes() })
    }

    pub fn is_source(&self) -> bool {
        self.0.type_url == SOURCE_TYPE
    }
}

/// An error BuildKit returned, with its details kept.
#[derive(Debug, Clone)]
pub struct BuildKitError {
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

impl BuildKitError {
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = Status::decode(status.details())
            .map(|s| s.details.into_iter().map(ErrorDetail).collect())
            .unwrap_or_default();
        BuildKitError { message: status.message().to_string(), details }
    }

    /// The exit code of the step that failed, as BuildKit words it (`exit code: 3`).
    pub fn exit_code(&self) -> Option<i32> {
        let (_, rest) = self.message.rsplit_once("exit code: ")?;
        rest.split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok()
    }

    /// Whether BuildKit already said which lines of the user's file the error is about.
    pub fn has_source(&self) -> bool {
        self.details.iter().any(ErrorDetail::is_source)
    }
}

impl fmt::Display for BuildKitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildKitError {}

/// The status nixfront returns for an error: bounded message, typed details.
pub fn status(message: &str, details: Vec<ErrorDetail>) -> Status {
    Status {
        code: CODE_UNKNOWN,
        message: crate::limits::bounded_message(message),
        details: details.into_iter().map(|d| d.0).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_detail_is_the_json_buildkit_decodes() {
        let file = SourceFile { filename: "Dockerfile".into(), data: b"FLAKE .\n".to_vec() };
        let d = ErrorDetail::source(&file, Lines { start: 2, end: 3 });
        assert!(d.is_source());
        let v: serde_json::Value = serde_json::from_slice(&d.0.value).unwrap();
        assert_eq!(v["info"]["filename"], "Dockerfile");
        assert_eq!(v["info"]["data"], "RkxBS0UgLgo=");
        assert_eq!(v["ranges"][0]["start"]["line"], 2);
        assert_eq!(v["ranges"][0]["end"]["line"], 3);
    }

    #[test]
    fn buildkit_details_survive_a_status() {
        let file = SourceFile { filename: "Dockerfile".into(), data: b"x".to_vec() };
        let wire = status("boom", vec![ErrorDetail::source(&file, Lines::one(1))]).encode_to_vec();
        let tonic = tonic::Status::with_details(
            tonic::Code::Unknown,
            "process \"/bin/sh x\" did not complete successfully: exit code: 90",
            wire.into(),
        );
        let e = BuildKitError::from_status(&tonic);
        assert!(e.has_source());
        assert_eq!(e.exit_code(), Some(90));
        let old = BuildKitError {
            message: "executor failed running [/bin/sh x]: exit code: 3".into(),
            details: vec![],
        };
        assert_eq!(old.exit_code(), Some(3));
        assert!(!old.has_source());
    }
}
