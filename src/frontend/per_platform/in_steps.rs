//! The package built in steps (evaluate, realise, lay out, build, the image root), the
//! dependencies' answer from a step or the memo, and the one-step build it falls back to.

use anyhow::{Context, Result};
use tracing::info;

use super::shared::Shared;
use super::target::PlatformPlan;
use super::{answers, flake};
use crate::closure::{self, Closure};
use crate::frontend::root;
use crate::gateway::{Gateway, RefId};
use crate::layers::grouping::{self, Group};
use crate::layers::roots::{self, RootPlan};
use crate::layers::{self, LayerPlan, Part, TopSource};
use crate::llb::State;
use crate::memo::{self, BinEntry, DependenciesAnswer, Memo, PackageAnswer};
use crate::nixfile;
use crate::plan::exec::NixStep;
use crate::plan::output::{
    self, DEPS_DB_FILE, DEPS_INFO_FILE, MANIFEST_FILE, PLAN_FILE, ROOTS_FILE, SINGLE_MANIFEST_VERSION,
    STEP_MANIFEST_VERSION,
};
use crate::plan::upload::Upload;
use crate::plan::{Stage, derivation, steps};

/// What a build gives the image: its closure, its layers, what the top layer copies, and the
/// main result's `bin/`.
pub struct Built {
    pub closure: Closure,
    /// `meta.mainProgram` and the flake's date.
    pub package: closure::Package,
    pub layers: Vec<LayerPlan>,
    /// Where the top layer's `tmp` comes from.
    pub top: TopSource,
    /// Step outputs read but not in the image, whose cache must travel with it.
    pub anchors: Vec<State>,
    pub bin: Vec<BinEntry>,
    /// What the steps answered, for the image config under inline cache.
    pub memo: Memo,
    /// The image root beside the closure.
    pub root: RootPlan,
    /// What the image root lacks (no CA bundle), for BuildKit's warnings.
    pub warnings: Vec<nixfile::Warning>,
    /// What `NIX_CACHE_TO` uploads from (built in steps only).
    pub upload: Option<Upload>,
}

/// The package's dependencies, as the package step and the image take them.
pub struct DependencyLayers {
    /// Each group and the layer step's output holding it.
    pub laid_out: Vec<(Group, steps::DependencyLayer)>,
    /// Without MergeOp, the groups stacked ([`layers::stack`]); empty with it.
    pub stacked: Vec<State>,
    /// Their registrations (`nix-store --dump-db`).
    pub db: String,
    /// Their closure.
    pub closure: Closure,
}

/// Builds on the persistent store in steps whose cache keys hold across edits (see
/// [`plan::steps`]), or `None` when the package cannot be planned so (an output is only
/// known once built).
pub async fn build_in_steps(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    image_setup: &root::ImageSetup,
) -> Result<Option<Built>> {
    let setup = flake::flake_setup(shared, gw, plan).await?;
    crate::frontend::report_warnings(gw, shared.file, &plan.nixfile.check, &setup.warnings).await?;
    let notices: Vec<String> =
        setup.warnings.iter().map(|w| format!("{}: {}", w.rule.name, w.detail)).collect();
    let step = shared.step_with(plan, &setup.settings);
    let evaluation = steps::evaluate(
        &plan.flake,
        &plan.extras,
        &plan.system,
        setup.fetched.as_ref(),
        &setup.overrides,
        &notices,
        &step,
    );
    let [evaluated] =
        answers::step_meta(shared, gw, plan, Stage::Evaluate, &evaluation.meta, [PLAN_FILE]).await?;
    let eval = match derivation::parse_plan(&evaluated)? {
        Ok(eval) => eval,
        Err(why) => {
            let text = format!("[nixfront] building {} in one step: {why}", plan.flake.written);
            info!("{text}");
            answers::note(shared, gw, &text).await;
            return Ok(None);
        }
    };
    let max_layers = shared.options.nix.max_layers;
    let mut memo = Memo::default();
    let deps = match eval.inputs.is_empty() {
        true => None,
        false => Some(dependencies(shared, gw, plan, &step, &eval, &evaluation.drvs, &mut memo).await?),
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
    let location = Some(plan.flake_lines);
    let trees = match &deps {
        None => steps::DependencyTrees::None,
        Some(d) => match d.stacked.last() {
            Some(top) => steps::DependencyTrees::Stacked(top),
            None => steps::DependencyTrees::Layers(d.laid_out.iter().map(|(_, l)| &l.state).collect()),
        },
    };
    let builder_root = shared.builder.has_nix_in_store().then(|| {
        crate::llb::source::pinned_image(&shared.builder.reference, Some(shared.build_platform.clone()))
    });
    let store = steps::step_store(trees, builder_root.as_ref(), location);
    let trees = steps::PackageTrees { store: &store, pkg: &evaluation.pkg, drvs: &evaluation.drvs };
    let package = steps::package(&spec, &plan.system, trees, &step);
    let (manifest, answer) = package_answer(shared, gw, plan, &package, &eval, &mut memo).await?;
    let closure = manifest.closure;
    let listing = roots::parse_listing(&answer.roots, &roots);
    let root = root::plan(&listing, &image_setup.wants, &shared.options.filename, plan.flake_lines)?;
    let warnings = root::warnings(&root, image_setup, plan.flake_lines);
    // The image root shares the layer of the package's own paths, which an edit changes.
    let results = match root.entries.is_empty() {
        true => package.results.clone(),
        false => {
            let name = root::describe(&root);
            let notices = root::notices(&warnings);
            steps::image_root(root::spec(&root), &notices, Some(&package.results), &step, &name)
        }
    };
    let upload = shared.options.nix.cache_to.as_ref().map(|_| {
        // Read once already (package_answer): it parses.
        let path_info = closure::manifest_path_info(answer.manifest.as_bytes())
            .map(|v| v.to_string())
            .unwrap_or_default();
        let mut paths: Vec<String> =
            dep_paths.iter().chain(closure.paths.iter().map(|p| &p.path)).cloned().collect();
        paths.sort();
        paths.dedup();
        Upload {
            store: store.clone(),
            own: [package.sources.clone(), package.results.clone()],
            records: deps_db.to_string(),
            path_info,
            paths,
        }
    });
    let (laid_out, stacked) = deps.map(|d| (d.laid_out, d.stacked)).unwrap_or_default();
    let Some(split) = manifest.split else {
        anyhow::bail!("the package step's manifest does not say which paths it laid out (laidOut)");
    };
    let mut layers = layers::split_build_layers(
        &laid_out,
        &stacked,
        &closure,
        (&split.sources, &package.sources),
        (&split.results, &results),
        max_layers,
    );
    if let Some(last) = layers.last_mut().filter(|_| !root.entries.is_empty()) {
        last.name = format!("{} and {}", last.name, root::describe(&root));
    }
    let anchors = vec![evaluation.meta, package.answer.meta];
    Ok(Some(Built {
        closure,
        package: eval.package.clone(),
        layers,
        top: TopSource::Tree(package.extras),
        anchors,
        bin: answer.bin,
        memo,
        root,
        warnings,
        upload,
    }))
}

/// What the package step tells: its manifest (when its results are the evaluated
/// derivation's outputs), its roots listing, and its main result's `bin/`.
async fn package_answer(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    package: &steps::PackageBuild,
    eval: &derivation::EvalPlan,
    memo: &mut Memo,
) -> Result<(closure::Manifest, PackageAnswer)> {
    let check = |manifest: &str| {
        let manifest = closure::read_manifest(manifest.as_bytes(), STEP_MANIFEST_VERSION)?;
        memo::check_package(&manifest.closure.results, &eval.outputs)?;
        Ok(manifest)
    };
    let parse = |answer: &PackageAnswer| check(&answer.manifest);
    let read = async |gw: &mut Gateway, [manifest, roots]: [Vec<u8>; 2]| {
        let text = String::from_utf8_lossy(&manifest).into_owned();
        let read = check(&text)?;
        let results = answers::solve_output(shared, gw, plan, &package.results).await?;
        let bin = bin_entries(gw, &results, &format!("{}/bin", read.closure.main_result())).await;
        let roots = String::from_utf8_lossy(&roots).into_owned();
        Ok((read, PackageAnswer { manifest: text, roots, bin }))
    };
    let files = [MANIFEST_FILE, ROOTS_FILE];
    let what = (Stage::Build, "package manifest");
    answers::answer(shared, gw, plan, what, &package.answer, files, parse, read, memo).await
}

/// The package's dependencies: realised by the dependency step (or its answer taken from
/// the memo, when it covers the package's inputs), laid out in layers, and without MergeOp
/// stacked as the image will have them.
pub async fn dependencies(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    step: &NixStep<'_>,
    eval: &derivation::EvalPlan,
    drvs: &State,
    memo: &mut Memo,
) -> Result<DependencyLayers> {
    let realise = steps::realise(&eval.inputs, &plan.system, drvs, step);
    let parse = |answer: &DependenciesAnswer| -> Result<Closure> {
        let info: serde_json::Value =
            serde_json::from_str(&answer.path_info).context("reading the dependencies' path-info")?;
        let paths = closure::parse_path_info(info)?;
        memo::check_dependencies(&paths, &eval.inputs)?;
        Ok(Closure { results: Vec::new(), paths })
    };
    let read = async |_: &mut Gateway, [info, db]: [Vec<u8>; 2]| {
        let text =
            |bytes: Vec<u8>| String::from_utf8(bytes).context("the dependency step's output is not UTF-8");
        let answer = DependenciesAnswer { path_info: text(info)?, db: text(db)? };
        Ok((parse(&answer)?, answer))
    };
    let files = [DEPS_INFO_FILE, DEPS_DB_FILE];
    let what = (Stage::Realise, "dependencies");
    let (deps, answer) = answers::answer(shared, gw, plan, what, &realise, files, &parse, read, memo).await?;
    let realise = realise.meta;
    // The top layer, the package's own paths and its sources take one layer each.
    let groups = grouping::group(&deps, shared.options.nix.max_layers.saturating_sub(3).max(1));
    let paths: Vec<Vec<String>> = groups.iter().map(|g| g.paths.clone()).collect();
    let deriver_of = |p: &str| {
        let i = deps.paths.binary_search_by(|sp| sp.path.as_str().cmp(p)).ok()?;
        deps.paths[i].deriver.as_deref()
    };
    let laid_out: Vec<(Group, steps::DependencyLayer)> = groups
        .into_iter()
        .zip(steps::lay_out(&paths, deriver_of, &plan.system, step, shared.merge, &realise, drvs))
        .collect();
    let stacked = match shared.merge {
        true => Vec::new(),
        false => layers::stack(&laid_out, &deps, Some(plan.flake_lines)),
    };
    Ok(DependencyLayers { laid_out, stacked, db: answer.db, closure: deps })
}

/// Builds in one step: without the persistent store, or for a package that cannot be
/// planned in steps.
pub async fn build_at_once(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    setup: &root::ImageSetup,
) -> Result<Built> {
    let step = shared.step(plan);
    let nix = steps::single_build(&plan.flake, &plan.extras, &plan.system, &step);
    let [manifest, listing] =
        answers::step_meta(shared, gw, plan, Stage::Build, &nix.meta, [MANIFEST_FILE, ROOTS_FILE]).await?;
    let manifest = closure::read_manifest(&manifest, SINGLE_MANIFEST_VERSION)?;
    let closure = manifest.closure;
    let listing = roots::parse_listing(&String::from_utf8_lossy(&listing), &closure.results);
    let root = root::plan(&listing, &setup.wants, &shared.options.filename, plan.flake_lines)?;
    let warnings = root::warnings(&root, setup, plan.flake_lines);
    let built = answers::solve_output(shared, gw, plan, &nix.closure).await?;
    let main = closure.main_result();
    let bin = bin_entries(gw, &built, &format!("{}{main}/bin", output::output_tree(main))).await;
    let max_layers = shared.options.nix.max_layers - usize::from(!root.entries.is_empty());
    let mut layers = layers::single_build_layers(&closure, &nix.closure, max_layers);
    if !root.entries.is_empty() {
        let name = root::describe(&root);
        let state = steps::image_root(root::spec(&root), &root::notices(&warnings), None, &step, &name);
        layers.push(LayerPlan {
            name: root::describe(&root),
            parts: vec![Part::Tree(state, "/".to_string())],
            stacked: None,
        });
    }
    Ok(Built {
        closure,
        package: manifest.package,
        layers,
        top: TopSource::SingleBuild(nix.closure.clone()),
        anchors: vec![nix.meta],
        bin,
        memo: Memo::default(),
        root,
        warnings,
        upload: None,
    })
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
