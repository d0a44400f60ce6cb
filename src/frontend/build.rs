//! One platform's image, built the same way for every platform: the file read with that
//! platform's build args, the flake reference, the `nix build` step, its closure, the layers,
//! the config and the SBOM. What all platforms share (the builder image, the context, the
//! store settings) is resolved once in [`Shared`].

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
use crate::image::{self, BinEntry, ConfigInputs};
use crate::layers::grouping::{self, Group};
use crate::layers::roots::{self, RootPlan};
use crate::layers::{self, Extras, LayerPlan, Layout, Part, TopSource};
use crate::limits::MAX_MANIFEST_BYTES;
use crate::llb::State;
use crate::llb::definition::{Marshal, SourceFile};
use crate::memo::{self, DependenciesAnswer, Memo, PackageAnswer};
use crate::nixfile::{self, Lines, Nixfile};
use crate::options::nixconf;
use crate::options::{NamedContext, NixArgs, Options};
use crate::plan::output::{
    self, DEPS_DB_FILE, DEPS_INFO_FILE, EXIT_CANNOT_RUN, EXIT_NO_NIX, FLAKE_CONFIG_FILE, MANIFEST_FILE,
    PACKAGES_FILE, PLAN_FILE, ROOTS_FILE,
};
use crate::plan::{self, BuilderImage, FlakeRef, NixStep, derivation, steps};
use crate::sbom;

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
        Ok(PlatformPlan { target: target.clone(), system, nixfile, flake, extras, flake_lines })
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

    fn step(&self, plan: &PlatformPlan) -> NixStep<'_> {
        self.step_with(plan, &self.options.nix)
    }

    /// A Nix step of `plan` with `settings` (the build's, with what the flake adds).
    fn step_with<'b>(&'b self, plan: &PlatformPlan, settings: &'b NixArgs) -> NixStep<'b> {
        NixStep {
            builder: &self.builder,
            platform: &self.build_platform,
            native: &self.native,
            context: &self.context,
            settings,
            location: Some((plan.flake_lines.start, plan.flake_lines.end)),
        }
    }

    /// The flake inputs the client replaces (`--build-context NAME=DIR`).
    fn overrides(&self, plan: &PlatformPlan) -> Result<Vec<steps::Override>> {
        let mut overrides = Vec::new();
        let from = plan.nixfile.from.as_ref().map(|f| f.value.as_str());
        for (name, context) in &self.options.named_contexts {
            let is_base = from.is_some_and(|f| {
                super::base::named_context(self.options, f).is_some_and(|c| std::ptr::eq(c, context))
            });
            if is_base {
                continue;
            }
            let NamedContext::Local(local) = context else {
                return at_lines(
                    Err(anyhow!(
                        "--build-context {name}: nixfront takes a directory here (`--build-context \
                         {name}=./dir`), which replaces the flake input {name}"
                    )),
                    plan.flake_lines,
                );
            };
            let spec = crate::llb::source::Local {
                name: local.clone(),
                session_id: self.options.session_id.clone(),
                shared_key_hint: local.clone(),
                ..Default::default()
            };
            let dir = crate::llb::source::local(&spec, &format!("load build context {name}"));
            overrides.push(steps::Override { name: name.clone(), dir });
        }
        Ok(overrides)
    }

    /// What the flake's own files bring to the build: its locked inputs, fetched by the fetch
    /// step (keyed by flake.lock); its nixConfig, applied as NIX_CONFIG is; and warnings about
    /// both. A flake outside the context is left to Nix.
    async fn flake_setup(&self, gw: &mut Gateway, plan: &PlatformPlan) -> Result<FlakeSetup> {
        let mut setup = FlakeSetup {
            fetched: None,
            fetch_meta: None,
            settings: self.options.nix.clone(),
            warnings: Vec::new(),
            overrides: self.overrides(plan)?,
        };
        let Some(dir) = plan.flake.context_dir.as_deref() else { return Ok(setup) };
        let lines = plan.flake_lines;
        let warn = |rule, detail: String| nixfile::Warning::new(rule, lines, detail);
        let (flake_nix, flake_lock) = context::flake_files(gw, self.options, self.file, dir).await?;
        let replaced: Vec<String> = setup.overrides.iter().map(|o| o.name.clone()).collect();
        let lock = match flake_lock {
            None => {
                setup.warnings.push(warn(
                    nixfile::lint::UNLOCKED_FLAKE,
                    "the flake has no flake.lock: Nix locks and fetches its inputs anew in every build"
                        .into(),
                ));
                None
            }
            Some(bytes) => Some(at_lines(flakelock::parse(&bytes, &replaced), lines)?),
        };
        for input in lock.iter().flat_map(|l| &l.unlocked) {
            let detail = format!("flake.lock has no content hash for input {input}: Nix fetches it anew");
            setup.warnings.push(warn(nixfile::lint::UNLOCKED_FLAKE, detail));
        }
        let (locked, count) =
            lock.as_ref().map_or(("[]".to_string(), 0), |l| (l.fetch_json(), l.fetch.len()));
        let Some(flake_nix) = flake_nix else { return Ok(setup) };
        let fetch = steps::fetch(&locked, count, &flake_nix, &self.step(plan));
        let [config] = self.step_meta(gw, plan, &fetch.meta, [FLAKE_CONFIG_FILE]).await?;
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap_or_default();
        let (accepted, refused) = nixconf::from_flake(&config);
        for (name, why) in refused {
            setup.warnings.push(warn(
                nixfile::lint::FLAKE_CONFIG_REFUSED,
                format!("nixConfig.{name} is not applied: {why}"),
            ));
        }
        setup.settings.nix_config =
            nixconf::NixConfig::after(&accepted, self.options.nix.nix_config.as_ref());
        setup.fetched = (count > 0).then_some(fetch.inputs);
        setup.fetch_meta = Some(fetch.meta);
        Ok(setup)
    }

    /// Solves `state`, marshalled with `--no-cache` and the user's file for locations.
    async fn solve(&self, gw: &mut Gateway, state: &State) -> Result<RefId> {
        let marshal = Marshal { ignore_cache: self.options.no_cache, source: Some(&self.file.source) };
        gw.solve(state.marshal(marshal)).await
    }

    /// The flake's `packages.<system>` and their descriptions, for the targets subrequest.
    pub async fn packages(&self, gw: &mut Gateway, plan: &PlatformPlan) -> Result<BTreeMap<String, String>> {
        let listing = plan::nix_packages(&plan.flake, &plan.system, &self.step(plan));
        let what = || format!("listing packages.{} of {}", plan.system, plan.flake.written);
        let solved = self.solve(gw, &listing).await.map_err(|e| self.step_failure(e, plan, what()));
        let listing = at_lines(solved, plan.flake_lines)?;
        let bytes = gw
            .read_file(&listing, &output::meta_path(PACKAGES_FILE), MAX_MANIFEST_BYTES, "MAX_MANIFEST_BYTES")
            .await?;
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
        super::send_warnings(gw, self.file, &built.warnings).await;
        let closure = &built.closure;
        info!(
            paths = closure.paths.len(),
            bytes = closure.total_size(),
            "closure of {}",
            closure.main_result()
        );

        let created = image::creation_time(options.source_date_epoch, closure, plan.flake.uses_context);
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
        Ok(PlatformImage { platform: plan.target.clone(), rootfs, config, created, sbom })
    }

    /// Solves a Nix step of `plan` and reads `files` of its metadata output. Solves are lazy:
    /// the step runs, and may fail, in either call. A failure says what failed, points at the
    /// FLAKE line, and names what the builder lacks when that is the cause.
    async fn step_meta<const N: usize>(
        &self,
        gw: &mut Gateway,
        plan: &PlatformPlan,
        meta: &State,
        files: [&str; N],
    ) -> Result<[Vec<u8>; N]> {
        let read = async {
            let solved = self.solve(gw, meta).await?;
            let mut read: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
            for (bytes, file) in read.iter_mut().zip(files) {
                let path = output::meta_path(file);
                *bytes = gw.read_file(&solved, &path, MAX_MANIFEST_BYTES, "MAX_MANIFEST_BYTES").await?;
            }
            Ok(read)
        };
        let read = read.await.map_err(|e| {
            let what =
                format!("`nix build {}` failed (for {}); its log is above", plan.flake.written, plan.system);
            self.step_failure(e, plan, what)
        });
        at_lines(read, plan.flake_lines)
    }

    /// Solves an output of a step that has run: its files can be read.
    async fn solve_output(&self, gw: &mut Gateway, plan: &PlatformPlan, state: &State) -> Result<RefId> {
        at_lines(self.solve(gw, state).await, plan.flake_lines)
    }

    /// Builds on the persistent store in steps whose cache keys hold across edits (see
    /// [`plan::steps`]), or `None` when the package cannot be planned so (an output is only
    /// known once built).
    async fn build_in_steps(
        &self,
        gw: &mut Gateway,
        plan: &PlatformPlan,
        image_setup: &root::ImageSetup,
    ) -> Result<Option<Built>> {
        let setup = self.flake_setup(gw, plan).await?;
        super::send_warnings(gw, self.file, &setup.warnings).await;
        let notices: Vec<String> =
            setup.warnings.iter().map(|w| format!("{}: {}", w.rule.name, w.detail)).collect();
        let step = self.step_with(plan, &setup.settings);
        let evaluation = steps::evaluate(
            &plan.flake,
            &plan.extras,
            &plan.system,
            setup.fetched.as_ref(),
            &setup.overrides,
            &notices,
            &step,
        );
        let [evaluated] = self.step_meta(gw, plan, &evaluation.meta, [PLAN_FILE]).await?;
        let eval = match derivation::parse_plan(&evaluated)? {
            Ok(eval) => eval,
            Err(why) => {
                info!("building {} in one step: {why:?}", plan.flake.written);
                return Ok(None);
            }
        };
        let max_layers = self.options.nix.max_layers;
        let mut memo = Memo::default();
        let deps = match eval.inputs.is_empty() {
            true => None,
            false => Some(self.dependencies(gw, plan, &step, &eval, &evaluation.drvs, &mut memo).await?),
        };
        let (dep_paths, deps_db) = match &deps {
            Some(d) => (d.closure.paths.iter().map(|p| p.path.clone()).collect(), d.db.as_str()),
            None => (Vec::new(), ""),
        };
        let roots: Vec<String> = eval.outputs.iter().chain(&eval.extra_roots).cloned().collect();
        let spec = steps::PackageSpec {
            what: &plan.flake.written,
            drv: &eval.drv,
            outputs: &eval.outputs,
            records: deps_db,
            deps: &dep_paths,
            sources: &eval.sources,
            roots: &roots,
        };
        let location = Some((plan.flake_lines.start, plan.flake_lines.end));
        let trees = match &deps {
            None => steps::DependencyTrees::None,
            Some(d) => match d.stacked.last() {
                Some(top) => steps::DependencyTrees::Stacked(top),
                None => steps::DependencyTrees::Layers(d.laid_out.iter().map(|(_, l)| &l.state).collect()),
            },
        };
        let builder_root = self.builder.has_nix_in_store().then(|| {
            crate::llb::source::pinned_image(&self.builder.reference, Some(self.build_platform.clone()))
        });
        let store = steps::step_store(trees, builder_root.as_ref(), location);
        let package = steps::package(&spec, &plan.system, &store, &evaluation.pkg, &evaluation.drvs, &step);
        // The memo's key: the step with placeholders for what the client's session names (the
        // evaluation's tree, made from the context) and for the store (named by the spec).
        let placeholder = State::scratch();
        let key = memo::package_key(
            &steps::package(&spec, &plan.system, &placeholder, &placeholder, &placeholder, &step).meta,
            &eval.drv,
        );
        let (mut closure, answer) = self.package_answer(gw, plan, &package, &key, &eval).await?;
        memo.record(key, &answer);
        closure.main_program = eval.main_program.clone();
        closure.flake_last_modified = eval.flake_last_modified;
        let listing = roots::parse_listing(&answer.roots, &roots);
        let root = root::plan(&listing, &image_setup.wants, &self.options.filename, plan.flake_lines)?;
        let warnings = root::warnings(&root, image_setup, plan.flake_lines);
        // The image root shares the layer of the package's own paths, which an edit changes.
        let results = match root.entries.is_empty() {
            true => package.results.clone(),
            false => {
                let (entries, files) = root::spec(&root);
                let name = format!("nixfront: {}", root::describe(&root));
                let notices = root::notices(&warnings);
                steps::image_root(&entries, &files, &notices, Some(&package.results), &step, &name)
            }
        };
        let (laid_out, stacked) = deps.map(|d| (d.laid_out, d.stacked)).unwrap_or_default();
        let mut layers = layers::split_build_layers(
            &laid_out,
            &stacked,
            &closure,
            (&eval.sources, &package.sources),
            &results,
            max_layers,
        );
        if let Some(last) = layers.last_mut().filter(|_| !root.entries.is_empty()) {
            last.name = format!("{} and {}", last.name, root::describe(&root));
        }
        let mut anchors = vec![evaluation.meta, package.meta];
        anchors.extend(setup.fetch_meta);
        Ok(Some(Built {
            closure,
            layers,
            top: TopSource::Tree(package.extras),
            anchors,
            bin: answer.bin,
            memo,
            root,
            warnings,
        }))
    }

    /// What the package step tells: from the memo under `key` (when its results are the
    /// evaluated derivation's outputs), else its manifest and its main result's `bin/` read
    /// from its outputs.
    async fn package_answer(
        &self,
        gw: &mut Gateway,
        plan: &PlatformPlan,
        package: &steps::PackageBuild,
        key: &str,
        eval: &derivation::EvalPlan,
    ) -> Result<(Closure, PackageAnswer)> {
        let parse = |answer: &PackageAnswer| {
            let closure = closure::parse_manifest(answer.manifest.as_bytes())?;
            memo::check_package(&closure.results, &eval.outputs)?;
            Ok(closure)
        };
        if let Some(found) = self.memo.answer(key, "package manifest", parse) {
            return Ok(found);
        }
        let [manifest, roots] = self.step_meta(gw, plan, &package.meta, [MANIFEST_FILE, ROOTS_FILE]).await?;
        let closure = closure::parse_manifest(&manifest)?;
        let results = self.solve_output(gw, plan, &package.results).await?;
        let bin = bin_entries(gw, &results, &format!("{}/bin", closure.main_result())).await;
        let manifest = String::from_utf8_lossy(&manifest).into_owned();
        let roots = String::from_utf8_lossy(&roots).into_owned();
        Ok((closure, PackageAnswer { manifest, roots, bin }))
    }

    /// The package's dependencies: realised by the dependency step (or its answer taken from
    /// the memo, when it covers the package's inputs), laid out in layers, and without MergeOp
    /// stacked as the image will have them.
    async fn dependencies(
        &self,
        gw: &mut Gateway,
        plan: &PlatformPlan,
        step: &NixStep<'_>,
        eval: &derivation::EvalPlan,
        drvs: &State,
        memo: &mut Memo,
    ) -> Result<DependencyLayers> {
        let realise = steps::realise(&eval.inputs, &plan.system, drvs, step);
        // Keyed without the evaluation's cache, whose definition names the client's session.
        let key =
            memo::dependencies_key(&steps::realise(&eval.inputs, &plan.system, &State::scratch(), step));
        let parse = |answer: &DependenciesAnswer| -> Result<Closure> {
            let info: serde_json::Value =
                serde_json::from_str(&answer.path_info).context("reading the dependencies' path-info")?;
            let paths = closure::parse_path_info(info)?;
            memo::check_dependencies(&paths, &eval.inputs)?;
            Ok(Closure { results: Vec::new(), main_program: None, flake_last_modified: None, paths })
        };
        let (deps, answer) = match self.memo.answer(&key, "dependencies", parse) {
            Some(found) => found,
            None => {
                let [info, db] = self.step_meta(gw, plan, &realise, [DEPS_INFO_FILE, DEPS_DB_FILE]).await?;
                let text = |bytes: Vec<u8>| {
                    String::from_utf8(bytes).context("the dependency step's output is not UTF-8")
                };
                let answer = DependenciesAnswer { path_info: text(info)?, db: text(db)? };
                (parse(&answer)?, answer)
            }
        };
        memo.record(key, &answer);
        // The top layer, the package's own paths and its sources take one layer each.
        let groups = grouping::group(&deps, self.options.nix.max_layers.saturating_sub(3).max(1));
        let paths: Vec<Vec<String>> = groups.iter().map(|g| g.paths.clone()).collect();
        let deriver_of = |p: &str| {
            let i = deps.paths.binary_search_by(|sp| sp.path.as_str().cmp(p)).ok()?;
            deps.paths[i].deriver.as_deref()
        };
        let laid_out: Vec<(Group, steps::LaidOut)> = groups
            .into_iter()
            .zip(steps::lay_out(&paths, deriver_of, &plan.system, step, self.merge, &realise, drvs))
            .collect();
        let stacked = match self.merge {
            true => Vec::new(),
            false => layers::stack(&laid_out, &deps, Some((plan.flake_lines.start, plan.flake_lines.end))),
        };
        Ok(DependencyLayers { laid_out, stacked, db: answer.db, closure: deps })
    }

    /// Builds in one step: without the persistent store, or for a package that cannot be
    /// planned in steps.
    async fn build_at_once(
        &self,
        gw: &mut Gateway,
        plan: &PlatformPlan,
        setup: &root::ImageSetup,
    ) -> Result<Built> {
        let step = self.step(plan);
        let nix = plan::single_build(&plan.flake, &plan.extras, &plan.system, &step);
        let [manifest, listing] = self.step_meta(gw, plan, &nix.meta, [MANIFEST_FILE, ROOTS_FILE]).await?;
        let closure = closure::parse_manifest(&manifest)?;
        let listing = roots::parse_listing(&String::from_utf8_lossy(&listing), &closure.results);
        let root = root::plan(&listing, &setup.wants, &self.options.filename, plan.flake_lines)?;
        let warnings = root::warnings(&root, setup, plan.flake_lines);
        let built = self.solve_output(gw, plan, &nix.closure).await?;
        let main = closure.main_result();
        let bin = bin_entries(gw, &built, &format!("{}{main}/bin", output::output_tree(main))).await;
        let max_layers = self.options.nix.max_layers - usize::from(!root.entries.is_empty());
        let mut layers = layers::single_build_layers(&closure, &nix.closure, max_layers);
        if !root.entries.is_empty() {
            let (entries, files) = root::spec(&root);
            let name = format!("nixfront: {}", root::describe(&root));
            let state = steps::image_root(&entries, &files, &root::notices(&warnings), None, &step, &name);
            layers.push(LayerPlan {
                name: root::describe(&root),
                parts: vec![Part::Tree(state, "/".to_string())],
                stacked: None,
            });
        }
        Ok(Built {
            closure,
            layers,
            top: TopSource::SingleBuild(nix.closure.clone()),
            anchors: vec![nix.meta],
            bin,
            memo: Memo::default(),
            root,
            warnings,
        })
    }

    /// A failed step's error: what the builder image or the builder lacks when that is the
    /// cause, else `what` failed.
    fn step_failure(&self, e: anyhow::Error, plan: &PlatformPlan, what: String) -> anyhow::Error {
        let Some(buildkit) = e.downcast_ref::<BuildKitError>() else { return e.context(what) };
        if buildkit.message.contains("security.insecure") {
            return e.context(
                "NIX_SANDBOX=true runs Nix's sandbox in BuildKit's insecure mode, which this build may not \
                 use: pass --allow security.insecure to docker buildx build (or buildctl), on a builder \
                 that grants the entitlement (buildkitd --allow-insecure-entitlement security.insecure; \
                 for dockerd, \"builder\": {\"Entitlements\": {\"security-insecure\": true}} in \
                 daemon.json). Docker 20.10's docker build cannot grant it",
            );
        }
        if buildkit.exit_code() == Some(EXIT_CANNOT_RUN) {
            return e.context(cannot_run(&self.native, plan));
        }
        let image = &self.options.nix.image;
        let lacks = if buildkit.exit_code() == Some(EXIT_NO_NIX) {
            Some("no `nix` on its PATH")
        } else if buildkit.message.contains("/bin/sh")
            && (buildkit.message.contains("no such file") || buildkit.message.contains("not found"))
        {
            Some("no /bin/sh, which runs nixfront's build step")
        } else {
            None
        };
        match lacks {
            Some(what) => e.context(anyhow!(
                "the builder image {image} has {what}; set NIX_IMAGE to an image with Nix and a shell \
                 (default {}), e.g. --build-arg NIX_IMAGE=nixos/nix (building {} for {})",
                crate::options::args::DEFAULT_NIX_IMAGE,
                plan.flake.written,
                plan.system
            )),
            None => e.context(what),
        }
    }
}

/// Why a build for another system failed on a builder that cannot run its programs, and the
/// three ways out.
fn cannot_run(native: &str, plan: &PlatformPlan) -> String {
    let (system, platform) = (&plan.system, crate::platform::format(&plan.target));
    format!(
        "this builder runs {native} programs and cannot run {system} ones, which Nix had to build \
         {} for {platform} (Nix's log is above). Either register an emulator for {system} on the \
         builder's host (binfmt_misc: Debian's qemu-user-static, or `docker run --privileged --rm \
         tonistiigi/binfmt --install {}`), or hand {system} builds to a remote Nix builder \
         (NIX_CONFIG builders, from a builder image with an SSH client), or build from a binary cache that \
         holds the {system} packages (NIX_CONFIG extra-substituters and extra-trusted-public-keys)",
        plan.flake.written, plan.target.architecture
    )
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

/// The main result's `bin/` at `dir` of `built`, empty when it has none.
async fn bin_entries(gw: &mut Gateway, built: &RefId, dir: &str) -> Vec<BinEntry> {
    let entries = gw.read_dir(built, dir).await.unwrap_or_default();
    entries
        .into_iter()
        .map(|e| BinEntry {
            executable: e.is_symlink || (!e.is_dir && e.permissions & 0o111 != 0),
            name: e.name,
        })
        .collect()
}
