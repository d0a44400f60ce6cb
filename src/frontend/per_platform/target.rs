//! What one platform builds, read before any build state exists: the file as that platform
//! reads it (its build args), the flake reference, the Nix system, the lines a failure points
//! at.

use std::collections::BTreeMap;

use anyhow::Result;
use bollard_buildkit_proto::pb;

use crate::frontend::at_lines;
use crate::llb::definition::SourceFile;
use crate::nixfile::{self, Lines, Nixfile};
use crate::options::Options;
use crate::plan::{self, FlakeRef};

/// The build args one platform's build sees: the client's and the platform's own
/// (`TARGETARCH`, `BUILDPLATFORM`, ...), as a Dockerfile stage sees them.
pub fn args_for(options: &Options, build: &pb::Platform, target: &pb::Platform) -> BTreeMap<String, String> {
    let mut args = options.build_args.clone();
    args.extend(crate::platform::automatic_args(build, target));
    args
}

/// What one platform builds: the file as that platform reads it and the flake reference.
pub struct PlatformPlan {
    pub target: pb::Platform,
    pub system: String,
    pub nixfile: Nixfile,
    pub flake: FlakeRef,
    /// FLAKE's further packages.
    pub extras: Vec<FlakeRef>,
    /// The lines that name the flake (FLAKE, else the first line, the syntax line): where a
    /// failing build points.
    pub flake_lines: Lines,
    /// What its steps' names start with: `nixfront`, or `linux/arm64 nixfront` when the build
    /// has several platforms (as the Dockerfile frontend's `[linux/arm64 build 2/4]`).
    pub label: String,
}

impl PlatformPlan {
    pub fn new(
        options: &Options,
        file: &SourceFile,
        build: &pb::Platform,
        target: &pb::Platform,
    ) -> Result<Self> {
        let nixfile =
            nixfile::parse(&options.filename, &file.data, &args_for(options, build, target)).result?;
        let flake_lines = nixfile.flake.as_ref().map_or(Lines::one(1), |f| f.lines);
        let flake = at_lines(plan::flake_ref(&nixfile, options.target.as_deref()), flake_lines)?;
        let extras = at_lines(plan::extra_refs(&nixfile), flake_lines)?;
        let system = crate::platform::nix_system(target)?;
        let label = "nixfront".to_string();
        Ok(PlatformPlan { target: target.clone(), system, nixfile, flake, extras, flake_lines, label })
    }

    /// Whether the build context is transferred: a flake in it, or a COPY.
    pub fn uses_context(&self) -> bool {
        self.flake.uses_context
            || self.extras.iter().any(|e| e.uses_context)
            || !self.nixfile.copies.is_empty()
    }
}
