//! What every platform's build shares, resolved once before any platform is built: the
//! builder image, the context, the memo of earlier builds, BuildKit's capabilities, the
//! frontend's own image and the build's id. A plain value: the steps of each platform are made
//! from it and the platform's plan ([`Shared::step`]).

use anyhow::{Context, Result};
use bollard_buildkit_proto::pb;
use tracing::info;

use super::target::PlatformPlan;
use crate::context::{self, UserFile};
use crate::gateway::{Gateway, RefId, caps};
use crate::llb::State;
use crate::llb::definition::Marshal;
use crate::memo::Memo;
use crate::options::{NixArgs, Options};
use crate::plan::BuilderImage;
use crate::plan::exec::NixStep;

/// What every platform's build shares, resolved once: a plain value, read by every part of
/// a platform's build and changed by none.
pub struct Shared<'a> {
    pub options: &'a Options,
    pub file: &'a UserFile,
    pub build_platform: pb::Platform,
    pub builder: BuilderImage,
    pub context: State,
    /// The Nix system the builder runs natively (the build platform's).
    pub native: String,
    /// BuildKit's capabilities: MergeOp, attestations.
    pub merge: bool,
    pub attestations: bool,
    /// What earlier builds read from their steps, from the cache sources' image configs.
    pub memo: Memo,
    /// The frontend's own image, whose binary every step runs.
    pub frontend: State,
    /// This build's id, under which its failing steps leave their failures.
    pub build_id: String,
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
        let frontend = crate::frontend::itself::image(gw, options.frontend_source.as_deref()).await?;
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
            frontend,
            build_id: crate::frontend::itself::new_build_id(),
        })
    }

    pub fn step<'b>(&'b self, plan: &'b PlatformPlan) -> NixStep<'b> {
        self.step_with(plan, &self.options.nix)
    }

    /// A Nix step of `plan` with `settings` (the build's, with what the flake adds).
    pub fn step_with<'b>(&'b self, plan: &'b PlatformPlan, settings: &'b NixArgs) -> NixStep<'b> {
        NixStep {
            builder: &self.builder,
            platform: &self.build_platform,
            native: &self.native,
            context: &self.context,
            settings,
            location: Some(plan.flake_lines),
            label: &plan.label,
            frontend: &self.frontend,
            build_id: Some(&self.build_id),
        }
    }

    /// Solves `state`, marshalled with `--no-cache` and the user's file for locations.
    pub async fn solve(&self, gw: &mut Gateway, state: &State) -> Result<RefId> {
        let marshal = Marshal { ignore_cache: self.options.no_cache, source: Some(&self.file.source) };
        gw.solve(state.marshal(marshal)).await
    }
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
