//! One platform's image, built the same way for every platform by [`image`], which reads top
//! to bottom: the base image, the package (in steps on the persistent store, or at once), the
//! layers, the config, the SBOM, the summary. Data flows one way: [`target`] is what the
//! platform builds, [`shared`] what every platform shares (a plain value); [`answers`] gets a
//! step's answer (the memo, or the step solved and its files read), [`failure`] says why a step
//! failed, [`flake`] reads the flake's own files (lock, nixConfig, replaced inputs) and
//! [`in_steps`] builds the package. Each takes the shared value and the platform's plan; none
//! reaches back into this file.

mod answers;
mod failure;
mod flake;
mod in_steps;
mod shared;
mod target;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tracing::info;

pub use shared::Shared;
pub use target::{PlatformPlan, args_for};

use super::result::PlatformImage;
use super::{at_lines, root};
use crate::gateway::{Gateway, InTotoFile};
use crate::image::{self, ConfigInputs};
use crate::layers::{self, Extras, Layout};
use crate::plan::output::{PACKAGES_FILE, UPLOADED_FILE};
use crate::plan::steps;
use crate::plan::upload::{self, Upload};
use crate::sbom;

/// The flake's `packages.<system>` and their descriptions, for the targets subrequest.
pub async fn packages(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
) -> Result<BTreeMap<String, String>> {
    let listing = steps::nix_packages(&plan.flake, &plan.system, &shared.step(plan));
    let what = || format!("listing packages.{} of {}", plan.system, plan.flake.written);
    let [bytes] = answers::read_step(shared, gw, plan, &listing, [PACKAGES_FILE], what()).await?;
    serde_json::from_slice(&bytes).with_context(what)
}

/// Signs and uploads the build's paths to `uri` (`NIX_CACHE_TO`), once the image is made: the
/// cache-to step runs (or BuildKit finds it done: nothing new), and what it says is shown. A
/// package built in one step has no store to upload from: said, and nothing uploaded.
async fn upload_paths(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    uri: &str,
    source: Option<&Upload>,
) -> Result<()> {
    let Some(source) = source else {
        let text = format!(
            "[nixfront] NIX_CACHE_TO: nothing uploaded to {uri}: {} was built in one step \
             (NIX_PERSISTENT_STORE=false, or content-addressed), which keeps no store to upload from",
            plan.flake.written
        );
        answers::note(shared, gw, &text).await;
        return Ok(());
    };
    let state = upload::cache_to(uri, source, shared.merge, &shared.step(plan), Some(plan.flake_lines));
    let what = || format!("uploading to {uri}");
    answers::read_step(shared, gw, plan, &state, [UPLOADED_FILE], what()).await?;
    Ok(())
}

/// Builds the flake's package for the plan's platform and lays it out as an image.
pub async fn image(shared: &Shared<'_>, gw: &mut Gateway, plan: &PlatformPlan) -> Result<PlatformImage> {
    let options = shared.options;
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
        match in_steps::build_in_steps(shared, gw, plan, &setup).await? {
            Some(built) => built,
            None => in_steps::build_at_once(shared, gw, plan, &setup).await?,
        }
    } else {
        in_steps::build_at_once(shared, gw, plan, &setup).await?
    };
    super::report_warnings(gw, shared.file, &plan.nixfile.check, &built.warnings).await?;
    let closure = &built.closure;
    info!(paths = closure.paths.len(), bytes = closure.total_size(), "closure of {}", closure.main_result());

    let created = image::creation_time(options.source_date_epoch, &built.package, plan.flake.uses_context);
    let attest = options.sbom_attestation && shared.attestations;
    let sbom = (attest || options.nix.sbom_file)
        .then(|| {
            let base = base.as_ref().map(|b| b.name.as_str());
            serde_json::to_vec(&sbom::document(closure, &plan.flake.written, &image::rfc3339(created), base))
        })
        .transpose()?;
    let location = Some(plan.flake_lines);
    let layout = Layout {
        max_layers: options.nix.max_layers,
        merge: shared.merge,
        location,
        base: base.as_ref().map(|b| &b.state),
    };
    let extras = Extras { sbom: sbom.as_deref().filter(|_| options.nix.sbom_file) };
    let rootfs = layers::assemble(&built.layers, built.top, &built.anchors, &extras, layout);
    let (state, copied) = root::copy_layers(rootfs.state, &setup.copies, &shared.context, &setup.wants, Some);
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
        memo: &built.memo,
        user,
        package_env: &built.root.env,
        base: base_config.as_ref(),
    })?;
    let rootfs = at_lines(shared.solve(gw, &state).await.context("assembling the image"), plan.flake_lines)?;
    let summary = answers::show_summary(shared, gw, plan, layer_names.len(), closure).await;
    if let Some(uri) = &options.nix.cache_to {
        upload_paths(shared, gw, plan, uri, built.upload.as_ref()).await?;
    }
    let sbom = match sbom.filter(|_| attest) {
        Some(document) => {
            let file = sbom::attestation_file(&document, closure.paths.len());
            let result = shared.solve(gw, &file).await.context("writing the SBOM")?;
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
