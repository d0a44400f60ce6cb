//! One build, start to Return: read the user's file, plan, solve the Nix build, read its
//! manifest, lay out the image and its config, and return it, or return an error a person
//! can act on.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use bollard_buildkit_proto::pb;
use tracing::{error, info};

use crate::closure::{self, Closure};
use crate::context;
use crate::gateway::{
    self, Capabilities, FrontendResult, Gateway, InTotoFile, RefId, Refs, SourceWarning, caps,
};
use crate::image::{self, BinEntry, ConfigInputs};
use crate::layers::{self, Extras, Layout};
use crate::llb;
use crate::llb::file::FileOp;
use crate::nixfile;
use crate::options::Options;
use crate::plan::{self, BuilderImage, NixStep, StoreSettings};
use crate::sbom;
use crate::subrequests;

/// Runs the frontend over stdio; the process exit code.
pub async fn run() -> i32 {
    let started = Instant::now();
    let mut gateway = match Gateway::connect_stdio().await {
        Ok(g) => g,
        Err(e) => {
            error!("{e:#}");
            return 1;
        }
    };
    let outcome = build(&mut gateway).await;
    let code = match outcome {
        Ok(result) => match gateway.return_result(result).await {
            Ok(()) => 0,
            Err(e) => {
                error!("{e:#}");
                1
            }
        },
        Err(e) => {
            let message = format!("{e:#}");
            error!("{message}");
            if let Err(e) = gateway.return_error(&message).await {
                error!("could not return the error to BuildKit: {e:#}");
            }
            1
        }
    };
    info!(elapsed_ms = started.elapsed().as_millis() as u64, code, "nixfront finished");
    code
}

/// Time spent waiting on BuildKit, to tell the frontend's own overhead apart.
#[derive(Default)]
struct Timings {
    solving_ms: u128,
}

async fn build(gw: &mut Gateway) -> Result<FrontendResult> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let options = Options::from_env()?;
    gw.ignore_cache = options.no_cache;
    subrequests::check_caps(options.frontend_caps.as_deref())?;
    let request = subrequests::requested(options.request_id.as_deref())?;
    if request == Some(subrequests::DESCRIBE) {
        let (json, text) = subrequests::describe();
        return Ok(metadata_only(subrequests::answer(&json, text)));
    }
    let session_id = std::env::var("BUILDKIT_SESSION_ID").unwrap_or_default();

    let t = Instant::now();
    let user_file = context::read_user_file(gw, &options, &session_id).await?;
    timings.solving_ms += t.elapsed().as_millis();
    let text = &user_file.text;
    // The builder runs natively on the build platform; Nix builds for each target.
    let build_platform =
        gw.caps.worker_platforms.first().cloned().unwrap_or_else(|| llb::platform("linux", "amd64", ""));
    let targets = target_platforms(&gw.caps, &options, &build_platform)?;
    let args_for = |target: &pb::Platform| {
        let mut args = options.build_args.clone();
        args.extend(crate::platform::automatic_args(&build_platform, target));
        args
    };
    let parsed = nixfile::parse_with_args(&options.filename, text, &args_for(&targets[0]));
    if request == Some(subrequests::LINT) {
        let (json, report) = subrequests::lint(&options.filename, &parsed, text);
        return Ok(metadata_only(subrequests::answer(&json, report)));
    }
    let nixfile = parsed?;
    send_warnings(gw, &options.filename, &user_file, &nixfile).await;
    let declared: Vec<&str> = nixfile.args.iter().map(|a| a.name.as_str()).collect();
    options.check_owned_args(&declared)?;
    let flake = plan::flake_ref(&nixfile, options.target.as_deref())?;
    if request == Some(subrequests::OUTLINE) {
        let (json, report) = subrequests::outline(&nixfile, &flake.written, text);
        return Ok(metadata_only(subrequests::answer(&json, report)));
    }

    let (digest, config) = gw.resolve_image_config(&options.nix_image, Some(build_platform.clone())).await?;
    let builder = BuilderImage::from_config(&options.nix_image, &digest, &config)?;
    let context = context::build_context(gw, &options, &session_id, &user_file, flake.uses_context).await?;
    let store = StoreSettings {
        persistent: options.persistent_store,
        verify: options.verify_store,
        nix_config: options.nix_config.clone(),
    };
    let step = NixStep { builder: &builder, platform: &build_platform, context: &context, store: &store };
    if request == Some(subrequests::TARGETS) {
        let system = crate::platform::nix_system(&targets[0])?;
        let listing = gw.solve(plan::nix_packages(&flake, &system, &step).to_definition()).await?;
        let bytes = gw
            .read_file(&listing, plan::PACKAGES_PATH)
            .await
            .with_context(|| format!("listing packages.{system} of {}", flake.written))?;
        let packages: BTreeMap<String, String> = serde_json::from_slice(&bytes)?;
        let current = flake.written.split_once('#').map(|(_, f)| f).unwrap_or("");
        let (json, report) = subrequests::targets(&packages, current, text);
        return Ok(metadata_only(subrequests::answer(&json, report)));
    }

    let build = PlatformBuild { options: &options, step: &step };
    let mut images = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        // Each platform sees its own TARGET* args, as a Dockerfile stage does.
        let per_platform;
        let (nixfile, flake) = if i == 0 {
            (&nixfile, &flake)
        } else {
            let nf = nixfile::parse_with_args(&options.filename, text, &args_for(target))?;
            let fr = plan::flake_ref(&nf, options.target.as_deref())?;
            per_platform = (nf, fr);
            (&per_platform.0, &per_platform.1)
        };
        images.push(build.image(gw, nixfile, flake, target, &mut timings).await?);
    }

    let total = started.elapsed().as_millis();
    info!(
        total_ms = total as u64,
        solving_ms = timings.solving_ms as u64,
        "frontend time outside solves: {} ms",
        total - timings.solving_ms
    );
    Ok(final_result(&targets, images))
}

/// One platform's image: its root filesystem, its config, and its SBOM attestation.
struct PlatformImage {
    rootfs: RefId,
    config: Vec<u8>,
    sbom: Option<RefId>,
}

/// What every platform's build shares.
struct PlatformBuild<'a> {
    options: &'a Options,
    step: &'a NixStep<'a>,
}

impl PlatformBuild<'_> {
    /// Builds the flake's package for `target` and lays it out as an image.
    async fn image(
        &self,
        gw: &mut Gateway,
        nixfile: &nixfile::Nixfile,
        flake: &plan::FlakeRef,
        target: &pb::Platform,
        timings: &mut Timings,
    ) -> Result<PlatformImage> {
        let options = self.options;
        let system = crate::platform::nix_system(target)?;
        let nix = plan::nix_build(flake, &system, self.step);
        let t = Instant::now();
        // Solves are lazy: the build may run, and fail, in any of these calls.
        let (closure, built) = solve_nix_build(gw, &nix).await.map_err(|e| {
            anyhow!("`nix build {}` failed (for {system}); its log is above. {e:#}", flake.written)
        })?;
        timings.solving_ms += t.elapsed().as_millis();
        info!(
            paths = closure.paths.len(),
            bytes = closure.total_size(),
            "closure of {}",
            closure.main_result()
        );

        let bin = bin_entries(gw, &built, &closure).await?;
        let created = image::creation_time(options.source_date_epoch, &closure, flake.uses_context);
        let attest = options.sbom_attestation && gw.caps.supports(caps::ATTESTATIONS);
        let sbom = (attest || options.sbom_file)
            .then(|| {
                serde_json::to_vec_pretty(&sbom::document(&closure, &flake.written, &image::rfc3339(created)))
            })
            .transpose()?;
        let layout = Layout { max_layers: options.max_layers, merge: gw.caps.supports(caps::MERGE_OP) };
        let extras = Extras {
            workdir: nixfile.workdir.as_deref(),
            sbom: sbom.as_deref().filter(|_| options.sbom_file),
        };
        let rootfs = layers::root_filesystem(&closure, &nix.closure, &extras, layout);
        let config = image::image_config(&ConfigInputs {
            filename: &options.filename,
            nixfile,
            closure: &closure,
            bin: &bin,
            platform: target,
            flake: &flake.written,
            extra_labels: &options.labels,
            created,
            layers: &rootfs.layers,
        })?;
        let t = Instant::now();
        let rootfs = gw.solve(rootfs.state.to_definition()).await.context("assembling the image")?;
        let sbom = match sbom.filter(|_| attest) {
            Some(document) => {
                let file = FileOp::on(&llb::State::scratch())
                    .mkfile(&format!("/{}", sbom::FILE_NAME), 0o444, &document, layers::FIXED_TIME_NS)
                    .build(&format!("nixfront: SBOM of {} store paths", closure.paths.len()));
                Some(gw.solve(file.to_definition()).await.context("writing the SBOM")?)
            }
            None => None,
        };
        timings.solving_ms += t.elapsed().as_millis();
        Ok(PlatformImage { rootfs, config, sbom })
    }
}

/// One image, or one per platform with `refs.platforms`, as BuildKit's exporters expect.
fn final_result(targets: &[pb::Platform], mut images: Vec<PlatformImage>) -> FrontendResult {
    let mut metadata = BTreeMap::new();
    // Attestations are keyed by platform, for one image too (BuildKit derives its key from
    // the config's os/architecture).
    let attestations = targets
        .iter()
        .zip(&images)
        .filter_map(|(t, image)| Some((crate::platform::format(t), sbom_attestation(image.sbom.clone()?))))
        .collect();
    if images.len() == 1 {
        let image = images.remove(0);
        metadata.insert("containerimage.config".to_string(), image.config);
        return FrontendResult { refs: Refs::Single(image.rootfs), metadata, attestations };
    }
    let mut refs = Vec::new();
    let mut listed = Vec::new();
    for (target, image) in targets.iter().zip(images) {
        let key = crate::platform::format(target);
        metadata.insert(format!("containerimage.config/{key}"), image.config);
        listed.push(serde_json::json!({
            "id": key,
            "platform": { "os": target.os, "architecture": target.architecture, "variant": target.variant },
        }));
        refs.push((key, image.rootfs));
    }
    let platforms = serde_json::json!({ "platforms": listed });
    metadata.insert("refs.platforms".to_string(), serde_json::to_vec(&platforms).unwrap_or_default());
    FrontendResult { refs: Refs::Platforms(refs), metadata, attestations }
}

fn sbom_attestation(document: RefId) -> InTotoFile {
    InTotoFile {
        result: document,
        path: format!("/{}", sbom::FILE_NAME),
        predicate_type: sbom::SPDX_PREDICATE.to_string(),
        reason: "sbom".to_string(),
    }
}

/// The parser's warnings, shown by BuildKit where it supports them (elsewhere they stay in the
/// `--check` / lint answer). A warning that cannot be sent is logged, never fatal.
async fn send_warnings(
    gw: &mut Gateway,
    filename: &str,
    file: &context::UserFile,
    nixfile: &nixfile::Nixfile,
) {
    if !gw.caps.supports(caps::GATEWAY_WARNINGS) {
        return;
    }
    for w in &nixfile.warnings {
        let url = format!("docs/lint.md#{}", w.rule.name.to_ascii_lowercase());
        let short = format!("{}: {} (line {})", w.rule.name, w.detail, w.line);
        let warning = SourceWarning {
            filename,
            source: &file.text,
            line: w.line,
            short: &short,
            detail: w.rule.description,
            url: &url,
        };
        if let Err(e) = gw.warn(&file.vertex, warning).await {
            tracing::warn!("could not send a warning to BuildKit: {e:#}");
        }
    }
}

fn metadata_only(metadata: BTreeMap<String, Vec<u8>>) -> FrontendResult {
    FrontendResult { refs: Refs::None, metadata, attestations: Vec::new() }
}

/// Runs the build exec and reads its manifest; the closure and the built output.
async fn solve_nix_build(gw: &mut Gateway, nix: &plan::NixBuild) -> Result<(Closure, RefId)> {
    let meta = gw.solve(nix.meta.to_definition()).await?;
    let closure = closure::parse_manifest(&gw.read_file(&meta, plan::MANIFEST_PATH).await?)?;
    let built = gw.solve(nix.closure.to_definition()).await?;
    Ok((closure, built))
}

/// The platforms to build for: `--platform` (one or more), else the build platform. Several
/// need a BuildKit that can export them: those with MergeOp (0.10+) can; BuildKit 0.8, as in
/// Docker 20.10, whose image exporter refuses manifest lists, cannot.
fn target_platforms(
    caps: &Capabilities,
    options: &Options,
    build: &pb::Platform,
) -> Result<Vec<pb::Platform>> {
    if options.platforms.is_empty() {
        return Ok(vec![build.clone()]);
    }
    let targets: Vec<pb::Platform> =
        options.platforms.iter().map(|p| crate::platform::parse(p)).collect::<Result<_>>()?;
    for t in &targets {
        crate::platform::nix_system(t)?;
    }
    if targets.len() > 1 && !caps.supports(gateway::caps::MERGE_OP) {
        anyhow::bail!(
            "--platform {}: this BuildKit predates 0.10 (Docker 20.10 ships 0.8) and its image exporter cannot \
             hold several platforms in one image; build one --platform at a time, or use docker buildx with \
             BuildKit 0.10 or newer",
            options.platforms.join(",")
        );
    }
    Ok(targets)
}

/// The main result's `bin/`, empty when it has none.
async fn bin_entries(gw: &mut Gateway, built: &RefId, closure: &Closure) -> Result<Vec<BinEntry>> {
    let main = closure.main_result();
    let dir = format!("{}{main}/bin", plan::output_tree(main));
    let entries = match gw.read_dir(built, &dir).await {
        Ok(entries) => entries,
        Err(_) => return Ok(Vec::new()),
    };
    Ok(entries
        .into_iter()
        .map(|stat| {
            let (is_dir, is_link) = file_kind(stat.mode);
            BinEntry { name: stat.path, executable: is_link || (!is_dir && stat.mode & 0o111 != 0) }
        })
        .collect())
}

/// (directory, symlink) from a mode as fsutil sends it: Go's `os.FileMode` bits, or Unix
/// `S_IFMT` bits from other implementations.
fn file_kind(mode: u32) -> (bool, bool) {
    const GO_DIR: u32 = 1 << 31;
    const GO_SYMLINK: u32 = 1 << 27;
    let unix = mode & 0o170000;
    (mode & GO_DIR != 0 || unix == 0o040000, mode & GO_SYMLINK != 0 || unix == 0o120000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str) -> PlatformImage {
        PlatformImage {
            rootfs: RefId(id.to_string()),
            config: format!("config-{id}").into_bytes(),
            sbom: Some(RefId(format!("sbom-{id}"))),
        }
    }

    fn options(platforms: &str) -> Options {
        Options::from_pairs([format!("platform={platforms}")]).unwrap()
    }

    #[test]
    fn several_platforms_need_a_buildkit_with_mergeop() {
        let build = llb::platform("linux", "amd64", "");
        let old = Capabilities::default();
        let new = Capabilities::with(&[gateway::caps::MERGE_OP]);
        let e = target_platforms(&old, &options("linux/amd64,linux/386"), &build).unwrap_err().to_string();
        assert!(e.contains("predates 0.10") && e.contains("one --platform at a time"), "{e}");
        assert_eq!(target_platforms(&new, &options("linux/amd64,linux/386"), &build).unwrap().len(), 2);
        assert_eq!(target_platforms(&old, &options("linux/386"), &build).unwrap()[0].architecture, "386");
        assert_eq!(target_platforms(&old, &Options::from_pairs([]).unwrap(), &build).unwrap(), [build]);
        let e = target_platforms(&new, &options("linux/sparc"), &llb::platform("linux", "amd64", ""))
            .unwrap_err();
        assert!(e.to_string().contains("no Nix system"), "{e}");
    }

    #[test]
    fn one_platform_returns_one_ref_and_its_config() {
        let result = final_result(&[llb::platform("linux", "amd64", "")], vec![image("a")]);
        assert!(matches!(&result.refs, Refs::Single(RefId(id)) if id == "a"));
        assert_eq!(result.metadata["containerimage.config"], b"config-a");
        assert!(!result.metadata.contains_key("refs.platforms"));
    }

    #[test]
    fn several_platforms_return_a_ref_and_a_config_each() {
        let targets = [llb::platform("linux", "amd64", ""), llb::platform("linux", "arm", "v7")];
        let result = final_result(&targets, vec![image("a"), image("b")]);
        let Refs::Platforms(refs) = &result.refs else { panic!("one ref per platform") };
        let keys: Vec<&str> = refs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["linux/amd64", "linux/arm/v7"]);
        assert_eq!(result.metadata["containerimage.config/linux/arm/v7"], b"config-b");
        let keys: Vec<&str> = result.attestations.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["linux/amd64", "linux/arm/v7"], "an SBOM per platform");
        assert_eq!(result.attestations[1].1.result, RefId("sbom-b".into()));
        assert_eq!(result.attestations[1].1.predicate_type, "https://spdx.dev/Document");
        let listed: serde_json::Value = serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
        assert_eq!(listed["platforms"][1]["id"], "linux/arm/v7");
        assert_eq!(listed["platforms"][1]["platform"]["variant"], "v7");
    }

    #[test]
    fn file_kinds_from_both_mode_encodings() {
        assert_eq!(file_kind((1 << 31) | 0o755), (true, false));
        assert_eq!(file_kind((1 << 27) | 0o777), (false, true));
        assert_eq!(file_kind(0o040755), (true, false));
        assert_eq!(file_kind(0o120777), (false, true));
        assert_eq!(file_kind(0o100755), (false, false));
    }
}
