//! One platform's image, built the same way for every platform: the file read with that
//! platform's build args, the flake reference, the `nix build` step, its closure, the layers,
//! the config and the SBOM. What all platforms share (the builder image, the context, the
//! store settings) is resolved once in [`Shared`]. The rest of Shared's work, by concern:
//! flake.rs (the flake's lock, nixConfig and overridden inputs), in_steps.rs (the package
//! built in steps, or at once), answers.rs (a step run and its files read, or its answer from
//! the memo; notes to the user), failure.rs (what a failed step's error says).

mod answers;
mod failure;
mod flake;
mod in_steps;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use bollard_buildkit_proto::pb;
use tracing::info;

use super::result::PlatformImage;
use super::{at_lines, root};
use crate::closure::{self, Closure};
use crate::context::{self, UserFile};
use crate::flakelock;
use crate::gateway::{BuildKitError, Gateway, InTotoFile, RefId, caps};
use crate::image::{self, ConfigInputs};
use crate::layers::grouping::{self, Group};
use crate::layers::roots::{self, RootPlan};
use crate::layers::{self, Extras, LayerPlan, Layout, Part, TopSource};
use crate::limits::MAX_MANIFEST_BYTES;
use crate::llb::State;
use crate::llb::definition::{Marshal, SourceFile};
use crate::memo::{self, BinEntry, DependenciesAnswer, Memo, PackageAnswer};
use crate::nixfile::{self, Lines, Nixfile};
use crate::options::nixconf;
use crate::options::{NamedContext, NixArgs, Options};
use crate::plan::output::{
    self, DEPS_DB_FILE, DEPS_INFO_FILE, EXIT_CANNOT_RUN, EXIT_NO_NIX, FLAKE_CONFIG_FILE, MANIFEST_FILE,
    PACKAGES_FILE, PLAN_FILE, ROOTS_FILE, SINGLE_MANIFEST_VERSION, STEP_MANIFEST_VERSION,
};
use crate::plan::{self, BuilderImage, FlakeRef, NixStep, Stage, derivation, steps};
use crate::sbom;
use crate::summary::Summary;

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

/// What every platform's build shares, resolved once.
pub struct Shared<'a> {
    options: &'a Options,
    file: &'a UserFile,
    build_platform: pb::Platform,
    builder: BuilderImage,
    context: State,
    /// The Nix system the builder runs natively (the build platform's).
    native: String,
    merge: bool,
    attestations: bool,
    /// What earlier builds read from their steps, from the cache sources' image configs.
    memo: Memo,
}

impl<'a> Shared<'a> {
    /// Resolves the builder image's config for the build platform and the context (only
    /// transferred when a plan's flake uses it).
    pub async fn resolve(
        gw: &mut Gateway,
        options: &'a Options,
        file: &'a UserFile,
        build_platform: &pb::Platform,
        plans: &[PlatformPlan],
    ) -> Result<Shared<'a>> {
        let image = &options.nix.image;
        let (digest, config) = gw
            .resolve_image_config(image, Some(build_platform.clone()))
            .await
            .context("resolving the builder image (NIX_IMAGE)")?;
        let builder = BuilderImage::from_config(image, &digest, &config)?;
        let native = crate::platform::nix_system(build_platform).context("the builder's own platform")?;
        let uses_context = plans.iter().any(PlatformPlan::uses_context);
        let context = context::build_context(gw, options, file, uses_context).await?;
        let memo = imported_memo(gw, options, plans).await;
        Ok(Shared {
            options,
            file,
            build_platform: build_platform.clone(),
            builder,
            native,
            context,
            merge: gw.caps.supports(caps::MERGE_OP),
            attestations: gw.caps.supports(caps::ATTESTATIONS),
            memo,
        })
    }

    fn step<'b>(&'b self, plan: &'b PlatformPlan) -> NixStep<'b> {
        self.step_with(plan, &self.options.nix)
    }

    /// A Nix step of `plan` with `settings` (the build's, with what the flake adds).
    fn step_with<'b>(&'b self, plan: &'b PlatformPlan, settings: &'b NixArgs) -> NixStep<'b> {
        NixStep {
            builder: &self.builder,
            platform: &self.build_platform,
            native: &self.native,
            context: &self.context,
            settings,
            location: Some((plan.flake_lines.start, plan.flake_lines.end)),
            label: &plan.label,
        }
    }

    /// The flake's `packages.<system>` and their descriptions, for the targets subrequest.
    pub async fn packages(&self, gw: &mut Gateway, plan: &PlatformPlan) -> Result<BTreeMap<String, String>> {
        let listing = plan::nix_packages(&plan.flake, &plan.system, &self.step(plan));
        let what = || format!("listing packages.{} of {}", plan.system, plan.flake.written);
        let [bytes] = self.read_step(gw, plan, &listing, [PACKAGES_FILE], what()).await?;
        serde_json::from_slice(&bytes).with_context(what)
    }

    /// Builds the flake's package for the plan's platform and lays it out as an image.
    pub async fn image(&self, gw: &mut Gateway, plan: &PlatformPlan) -> Result<PlatformImage> {
        let options = self.options;
        let nf = &plan.nixfile;
        let base = match &nf.from {
            Some(from) => {
                let read_users = nf.user.is_some() || nf.copies.iter().any(|c| c.chown.is_some());
                Some(super::base::resolve(gw, options, from, &plan.target, read_users).await?)
            }
            None => None,
        };
        let setup = root::setup(nf, &options.filename, &options.nix, base.as_ref())?;
        // Solves are lazy: a step may run, and fail, in any of these calls.
        let built = if options.nix.persistent_store {
            match self.build_in_steps(gw, plan, &setup).await? {
                Some(built) => built,
                None => self.build_at_once(gw, plan, &setup).await?,
            }
        } else {
            self.build_at_once(gw, plan, &setup).await?
        };
        super::report_warnings(gw, self.file, &plan.nixfile.check, &built.warnings).await?;
        let closure = &built.closure;
        info!(
            paths = closure.paths.len(),
            bytes = closure.total_size(),
            "closure of {}",
            closure.main_result()
        );

        let created =
            image::creation_time(options.source_date_epoch, &built.package, plan.flake.uses_context);
        let attest = options.sbom_attestation && self.attestations;
        let sbom = (attest || options.nix.sbom_file)
            .then(|| {
                let base = base.as_ref().map(|b| b.name.as_str());
                serde_json::to_vec(&sbom::document(
                    closure,
                    &plan.flake.written,
                    &image::rfc3339(created),
                    base,
                ))
            })
            .transpose()?;
        let location = Some((plan.flake_lines.start, plan.flake_lines.end));
        let layout = Layout {
            max_layers: options.nix.max_layers,
            merge: self.merge,
            location,
            base: base.as_ref().map(|b| &b.state),
        };
        let extras = Extras { sbom: sbom.as_deref().filter(|_| options.nix.sbom_file) };
        let rootfs = layers::assemble(&built.layers, built.top, &built.anchors, &extras, layout);
        let (state, copied) =
            root::copy_layers(rootfs.state, &setup.copies, &self.context, &setup.wants, |l| {
                Some((l.start, l.end))
            });
        let mut layer_names = rootfs.layers;
        layer_names.extend(copied);
        let user = nf.user.as_ref().map(|u| match u.value.bytes().all(|b| b.is_ascii_digit() || b == b':') {
            true => u.value.clone(),
            false => setup.users.run_as.map_or(u.value.clone(), |(uid, gid)| format!("{uid}:{gid}")),
        });
        let base_config =
            base.as_ref().map(|b| image::BaseConfig { name: &b.name, digest: &b.digest, image: &b.image });
        let config = image::image_config(&ConfigInputs {
            filename: &options.filename,
            nixfile: &plan.nixfile,
            closure,
            main_program: built.package.main_program.as_deref(),
            bin: &built.bin,
            platform: &plan.target,
            flake: &plan.flake.written,
            flake_lines: plan.flake_lines,
            extra_labels: &options.labels,
            created,
            layers: &layer_names,
            memo: options.inline_cache.then_some(&built.memo),
            user,
            package_env: &built.root.env,
            base: base_config.as_ref(),
        })?;
        let rootfs =
            at_lines(self.solve(gw, &state).await.context("assembling the image"), plan.flake_lines)?;
        let summary = self.show_summary(gw, plan, layer_names.len(), closure).await;
        let sbom = match sbom.filter(|_| attest) {
            Some(document) => {
                let file = sbom::attestation_file(&document, closure.paths.len());
                let result = self.solve(gw, &file).await.context("writing the SBOM")?;
                Some(InTotoFile {
                    result,
                    path: format!("/{}", sbom::FILE_NAME),
                    predicate_type: sbom::SPDX_PREDICATE.to_string(),
                    reason: "sbom".to_string(),
                })
            }
            None => None,
        };
        Ok(PlatformImage { platform: plan.target.clone(), rootfs, config, created, sbom, summary })
    }
}

/// What the flake's own files bring to a build ([`Shared::flake_setup`]).
struct FlakeSetup {
    /// The locked inputs, fetched (the fetch step's output), when the lock names any.
    fetched: Option<State>,
    /// The fetch step's metadata (the flake's nixConfig), read, so kept with the image's cache.
    fetch_meta: Option<State>,
    /// The build's Nix settings with the flake's accepted nixConfig.
    settings: NixArgs,
    warnings: Vec<nixfile::Warning>,
    overrides: Vec<steps::Override>,
}

/// What a build gives the image: its closure, its layers, what the top layer copies, and the
/// main result's `bin/`.
struct Built {
    closure: Closure,
    /// `meta.mainProgram` and the flake's date.
    package: closure::Package,
    layers: Vec<LayerPlan>,
    /// Where the top layer's `tmp` comes from.
    top: TopSource,
    /// Step outputs read but not in the image, whose cache must travel with it.
    anchors: Vec<State>,
    bin: Vec<BinEntry>,
    /// What the steps answered, for the image config under inline cache.
    memo: Memo,
    /// The image root beside the closure.
    root: RootPlan,
    /// What the image root lacks (no CA bundle), for BuildKit's warnings.
    warnings: Vec<nixfile::Warning>,
}

/// The package's dependencies, as the package step and the image take them.
struct DependencyLayers {
    /// Each group and the layer step's output holding it.
    laid_out: Vec<(Group, steps::LaidOut)>,
    /// Without MergeOp, the groups stacked ([`layers::stack`]); empty with it.
    stacked: Vec<State>,
    /// Their registrations (`nix-store --dump-db`).
    db: String,
    /// Their closure.
    closure: Closure,
}

/// The memo of the cache sources that are images (`--cache-from IMAGE`, inline cache), for
/// the platforms built; empty under `--no-cache`, without the persistent store, or when no
/// source is an image. A source that does not resolve is skipped: BuildKit's own import
/// reports it.
async fn imported_memo(gw: &mut Gateway, options: &Options, plans: &[PlatformPlan]) -> Memo {
    if options.no_cache || !options.nix.persistent_store {
        return Memo::default();
    }
    let references =
        options.cache_imports.iter().filter(|e| e.r#type == "registry").filter_map(|e| e.attrs.get("ref"));
    let mut configs = Vec::new();
    for reference in references {
        for plan in plans {
            match gw.resolve_image_config(reference, Some(plan.target.clone())).await {
                Ok((_, config)) => configs.push((reference.as_str(), config)),
                Err(e) => info!("no memo from the cache source {reference}: {e:#}"),
            }
        }
    }
    Memo::from_configs(configs.iter().map(|(r, c)| (*r, c.as_slice())))
}
