//! What every platform's build shares, resolved once before any platform is built: the
//! builder image, the context, the memo of earlier builds and the image each platform is
//! compared with, BuildKit's capabilities, the frontend's own image and the build's id. A
//! plain value: the steps of each platform are made from it and the platform's plan
//! ([`Shared::step`]).

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
use crate::previous::Previous;

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
    /// What earlier builds read from their steps, from the named images' configs.
    pub memo: Memo,
    /// Each platform's previous image (by platform, as [`crate::platform::format`] writes it).
    pub previous: Vec<(String, Previous)>,
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
        let (memo, previous) = earlier_images(gw, options, plans).await;
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
            previous,
            frontend,
            build_id: crate::frontend::itself::new_build_id(),
        })
    }

    /// The image `plan`'s platform is compared with, if the build names one that records its
    /// closure.
    pub fn previous(&self, plan: &PlatformPlan) -> Option<&Previous> {
        let platform = crate::platform::format(&plan.target);
        self.previous.iter().find(|(p, _)| *p == platform).map(|(_, previous)| previous)
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

/// What the images a build names tell of earlier builds (`NIX_PREVIOUS_IMAGE`, then each
/// `--cache-from` image: inline cache), for the platforms built: the memo of all (none under
/// `--no-cache` or without the persistent store) and, per platform, the first that records its
/// closure. A reference that does not resolve is skipped (it may not exist yet; BuildKit's own
/// import reports a cache source it cannot read).
async fn earlier_images(
    gw: &mut Gateway,
    options: &Options,
    plans: &[PlatformPlan],
) -> (Memo, Vec<(String, Previous)>) {
    let cache_from =
        options.cache_imports.iter().filter(|e| e.r#type == "registry").filter_map(|e| e.attrs.get("ref"));
    let references: Vec<&String> = options.nix.previous_image.iter().chain(cache_from).collect();
    let mut memo_configs = Vec::new();
    let mut previous = Vec::new();
    for plan in plans {
        let mut configs = Vec::new();
        for reference in &references {
            match gw.resolve_image_config(reference, Some(plan.target.clone())).await {
                Ok((_, config)) => configs.push((reference.as_str(), config)),
                Err(e) => info!("nothing from the image {reference}: {e:#}"),
            }
        }
        let platform = crate::platform::format(&plan.target);
        if let Some(found) = Previous::choose(configs.iter().map(|(r, c)| (*r, c.as_slice()))) {
            previous.push((platform, found));
        }
        memo_configs.extend(configs);
    }
    let memo = match options.no_cache || !options.nix.persistent_store {
        true => Memo::default(),
        false => Memo::from_configs(memo_configs.iter().map(|(r, c)| (*r, c.as_slice()))),
    };
    (memo, previous)
}
