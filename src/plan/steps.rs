//! The steps of a build on the persistent store, as LLB. Each step's definition names what it
//! works on, so that its cache key is as stable as that: the fetched inputs depend on the lock
//! file; the evaluation on the context; the dependencies on their derivations; each layer on
//! its store paths; the package on its derivation and its dependencies. Only the evaluation
//! mounts the context.
//!
//! Every step but the package's works in an instance of the persistent store that it has to
//! itself (`sharing=private`), and copes with an instance that lacks what an earlier step put in
//! another: it takes content-addressed paths from the evaluation's binary cache (Nix checks
//! their content) and builds or fetches the rest again. The package step works in a store of
//! its own made of the dependency layers, so nothing it registers, and nothing taken from
//! BuildKit's cache, ever reaches the persistent store.

use super::exec::{NixStep, StepStore};
use super::output::{
    DEPS_META_DIR, DRVS_DIR, EXTRAS_DIR, FETCHED_DIR, LAYERS_DIR, META_DIR, OUT_DIR, OVERRIDES_DIR, PKG_DIR,
    RESULTS_DIR, ROOT_OUT_DIR, ROOT_SEED_DIR, SOURCES_DIR, SPEC_RECORDS, STEP_STORE_DIR, layer_name,
};
use super::spec::{self, Extra, Grouped, RootEntry, Work};
use super::{FIXED_TIME_NS, FlakeRef, Keyed, NixBuild, Stage, without_fragment};
use crate::llb::exec::Mount;
use crate::llb::file::FileOp;
use crate::llb::{Lines, State, merge};

/// Fetches the flake's locked inputs (`locked`: `fetchTree` attributes) into a binary cache
/// (the step's output). Keyed by those alone: no edit of the flake's files but its lock file
/// runs it again.
pub fn fetch(locked: &[serde_json::Value], step: &NixStep) -> State {
    let work = Work::Fetch { locked: locked.to_vec() };
    let mut exec = step.exec(false, StepStore::Persistent, work, &[]);
    let inputs = exec.output(FETCHED_DIR, &State::scratch());
    let what = match locked.len() {
        1 => "fetch 1 locked input of flake.lock".to_string(),
        n => format!("fetch {n} locked inputs of flake.lock"),
    };
    exec.build(&step.name(Stage::Fetch, &what)).state(&inputs)
}

/// A flake input replaced by a directory the client gives (`--build-context NAME=DIR`),
/// mounted in the evaluation step under its name: made only through [`Override::new`], which
/// checks the name.
pub struct Override {
    name: String,
    dir: State,
}

impl Override {
    /// The flake input `name` replaced by `dir`; `Err` when `name` is not a flake input's
    /// name ([`crate::names::Kind::FlakeInput`]).
    pub fn new(name: &str, dir: State) -> Result<Override, String> {
        crate::names::check(crate::names::Kind::FlakeInput, name)?;
        Ok(Override { name: name.to_string(), dir })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What the evaluation step gives.
pub struct Evaluation {
    /// Its plan ([`super::output::PLAN_FILE`]) and the registrations of `pkg`.
    pub meta: State,
    /// The binary cache of the input derivations' closure ([`DRVS_DIR`]).
    pub drvs: State,
    /// What the package step needs besides the dependencies ([`PKG_DIR`]).
    pub pkg: State,
}

/// FLAKE's further packages as the evaluation step reads them: each with its flake and the
/// attribute paths Nix would try.
fn extras_spec(extras: &[FlakeRef], system: &str) -> Vec<Extra> {
    extras
        .iter()
        .map(|extra| Extra {
            written: extra.written.clone(),
            reference: extra.for_nix.clone(),
            flake: without_fragment(&extra.for_nix).to_string(),
            paths: super::attr_paths(&extra.for_nix, system),
        })
        .collect()
}

/// Evaluates the package, once: its plan. `extras` are FLAKE's further packages, evaluated in
/// the same step; `fetched` are the locked inputs (their fetch step's output); with `metadata`
/// the flake's metadata is read too.
pub fn evaluate(
    flake: &FlakeRef,
    extras: &[FlakeRef],
    system: &str,
    fetched: Option<&State>,
    overrides: &[Override],
    notices: &[String],
    step: &NixStep,
) -> Evaluation {
    let work = Work::Evaluate(spec::Evaluate {
        reference: flake.for_nix.clone(),
        flake: without_fragment(&flake.for_nix).to_string(),
        system: system.to_string(),
        metadata: !flake.uses_context,
        overrides: overrides
            .iter()
            .map(|o| (o.name.clone(), format!("path:{OVERRIDES_DIR}/{}", o.name)))
            .collect(),
        notices: notices.to_vec(),
        extras: extras_spec(extras, system),
    });
    let uses_context = flake.uses_context || extras.iter().any(|e| e.uses_context);
    let mut exec = step.exec(uses_context, StepStore::Persistent, work, &[]);
    if let Some(fetched) = fetched {
        exec = exec.mount(Mount::readonly(FETCHED_DIR, fetched));
    }
    for o in overrides {
        exec = exec.mount(Mount::readonly(&format!("{OVERRIDES_DIR}/{}", o.name), &o.dir));
    }
    let meta = exec.output(META_DIR, &State::scratch());
    let drvs = exec.output(DRVS_DIR, &State::scratch());
    let pkg = exec.output(PKG_DIR, &State::scratch());
    let mut what = flake.written.clone();
    for extra in extras {
        what.push(' ');
        what.push_str(&extra.written);
    }
    let built = exec.build(&step.name(Stage::Evaluate, &format!("nix eval {what} ({system})")));
    Evaluation { meta: built.state(&meta), drvs: built.state(&drvs), pkg: built.state(&pkg) }
}

/// Realises `inputs` (`(drv, output path)`) in the store: the path-info and registrations of
/// their runtime closure. The definition names the derivations and paths, not the package;
/// `drvs` (the evaluation's binary cache, the same bytes whatever the package's own source)
/// gives the derivations where the store lacks them.
pub fn realise(inputs: &[(String, String)], system: &str, drvs: &State, step: &NixStep) -> Keyed {
    Keyed {
        // Keyed without the evaluation's cache, whose definition names the client's session.
        memo_key: crate::memo::dependencies_key(&realise_step(
            inputs,
            system,
            &State::scratch(),
            &step.for_key(),
        )),
        meta: realise_step(inputs, system, drvs, step),
    }
}

fn realise_step(inputs: &[(String, String)], system: &str, drvs: &State, step: &NixStep) -> State {
    let work = Work::Realise { system: system.to_string(), inputs: inputs.to_vec() };
    let mut exec = step.exec(false, StepStore::Persistent, work, &[]).mount(Mount::readonly(DRVS_DIR, drvs));
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build(&step.name(Stage::Realise, &format!("nix: realise {} inputs ({system})", inputs.len())))
        .state(&meta)
}

/// A dependency layer as the layer step wrote it: the directory `dir` of `state`, laid out as
/// `nix/store/<base>`.
#[derive(Debug, Clone)]
pub struct DependencyLayer {
    pub state: State,
    pub dir: String,
}

/// Lays `groups` of store paths out as `<i>/nix/store/<base>`: the dependency layers. The
/// definition names every path of every group, with the derivation that builds it
/// (`deriver_of`), so that an instance of the store without it builds it again. With
/// `output_per_layer` each group is an output of its own (a layer as it is, for MergeOp);
/// otherwise all are directories of one output (BuildKit 0.8 times out on an exec with many
/// outputs). `realised` (the dependency step's output) is mounted so that the step runs after
/// that one: nixfront may have its answer from the memo ([`crate::memo`]) without running it.
pub fn lay_out<'a>(
    groups: &[Vec<String>],
    deriver_of: impl Fn(&str) -> Option<&'a str>,
    system: &str,
    step: &NixStep,
    output_per_layer: bool,
    realised: &State,
    drvs: &State,
) -> Vec<DependencyLayer> {
    let grouped = groups
        .iter()
        .enumerate()
        .flat_map(|(i, paths)| paths.iter().map(move |p| (i, p)))
        .map(|(i, p)| Grouped {
            layer: layer_name(i),
            path: p.clone(),
            deriver: deriver_of(p).map(String::from),
        })
        .collect();
    let work = Work::LayOut { system: system.to_string(), groups: grouped };
    let mut exec = step
        .exec(false, StepStore::Persistent, work, &[])
        .mount(Mount::readonly(DEPS_META_DIR, realised))
        .mount(Mount::readonly(DRVS_DIR, drvs));
    let paths: usize = groups.iter().map(Vec::len).sum();
    let name =
        step.name(Stage::LayOut, &format!("nix: lay out {paths} store paths in {} layers", groups.len()));
    if output_per_layer {
        let handles: Vec<_> = (0..groups.len())
            .map(|i| exec.output(&format!("{LAYERS_DIR}/{}", layer_name(i)), &State::scratch()))
            .collect();
        let built = exec.build(&name);
        handles.iter().map(|h| DependencyLayer { state: built.state(h), dir: "/".to_string() }).collect()
    } else {
        let all = exec.output(LAYERS_DIR, &State::scratch());
        let state = exec.build(&name).state(&all);
        (0..groups.len())
            .map(|i| DependencyLayer { state: state.clone(), dir: format!("/{}", layer_name(i)) })
            .collect()
    }
}

/// The dependency layers as the package step's store holds them.
pub enum DependencyTrees<'a> {
    /// Each layer as the layer step wrote it, merged (MergeOp).
    Layers(Vec<&'a State>),
    /// The layers stacked as the image's bottom layers (BuildKit 0.8).
    Stacked(&'a State),
    /// The package has no dependencies.
    None,
}

/// The package step's store: `/nix/store` of the returned state holds the dependencies and,
/// when Nix itself lives in the builder image's store (`builder_root`), that store too. With
/// MergeOp nothing is copied; without it, the builder image's store is copied onto the stacked
/// layers once per set of dependencies.
pub fn step_store(deps: DependencyTrees, builder_root: Option<&State>, location: Option<Lines>) -> State {
    let empty_store = || FileOp::on(&State::scratch()).mkdir(STEP_STORE_DIR, 0o755, FIXED_TIME_NS);
    match (deps, builder_root) {
        (DependencyTrees::Layers(layers), root) => {
            let mut states: Vec<State> = root.into_iter().cloned().collect();
            states.extend(layers.into_iter().cloned());
            if states.is_empty() {
                return empty_store().build("[internal] the package's store");
            }
            if root.is_none() && states.len() == 1 {
                return states.remove(0);
            }
            merge::merge(&states, "[internal] the package's store", location)
        }
        (DependencyTrees::Stacked(top), None) => top.clone(),
        (DependencyTrees::Stacked(top), Some(root)) => FileOp::on(top)
            .copy_contents(root, STEP_STORE_DIR, STEP_STORE_DIR, -1)
            .at(location)
            .build("[internal] the package's store, with the builder's"),
        (DependencyTrees::None, Some(root)) => root.clone(),
        (DependencyTrees::None, None) => empty_store().build("[internal] the package's store"),
    }
}

/// What the package step builds: the derivation and its outputs (the main one first), the
/// registrations its store loads (the dependencies' and those of the evaluation's `pkg` tree),
/// the dependencies' paths and the closure of its input sources.
pub struct PackageSpec<'a> {
    /// What the user asked for (`.#hello`), for progress output.
    pub what: &'a str,
    pub drv: &'a str,
    pub outputs: &'a [String],
    pub records: &'a str,
    pub deps: &'a [String],
    pub sources: &'a [String],
    /// The root packages: the outputs, then FLAKE's further packages'.
    pub roots: &'a [String],
}

/// What the package step writes.
pub struct PackageBuild {
    /// The package's own paths of its closure, as a layer.
    pub results: State,
    /// Its input sources in the closure, as a layer.
    pub sources: State,
    /// What nixfront adds to the image (`tmp`).
    pub extras: State,
    /// The manifest and the roots listing, and the memo's key of them.
    pub answer: Keyed,
}

/// Builds the package's derivation in a store of the step's own: `store` (see [`step_store`])
/// with what the evaluation gives added (its `pkg` tree and, for what that lacks, its binary
/// cache `drvs`) and everything registered from the spec. No evaluation: the derivation says it
/// all, so the step is keyed by it and its dependencies.
pub fn package(spec_in: &PackageSpec, system: &str, trees: PackageTrees, step: &NixStep) -> PackageBuild {
    // The memo's key: the step with placeholders for what the client's session names (the
    // evaluation's tree, made from the context) and for the store (named by the spec).
    let placeholder = State::scratch();
    let keyed = PackageTrees { store: &placeholder, pkg: &placeholder, drvs: &placeholder };
    let memo_key = crate::memo::package_key(
        &package_step(spec_in, system, keyed, &step.for_key()).answer.meta,
        spec_in.drv,
    );
    let mut build = package_step(spec_in, system, trees, step);
    build.answer.memo_key = memo_key;
    build
}

/// What the package step's store is made of: the dependencies' store ([`step_store`]) and
/// the evaluation's tree and binary cache.
#[derive(Clone, Copy)]
pub struct PackageTrees<'a> {
    pub store: &'a State,
    pub pkg: &'a State,
    pub drvs: &'a State,
}

fn package_step(spec_in: &PackageSpec, system: &str, trees: PackageTrees, step: &NixStep) -> PackageBuild {
    let PackageTrees { store, pkg, drvs } = trees;
    let work = Work::Package(spec::Package {
        drv: spec_in.drv.to_string(),
        system: system.to_string(),
        outputs: spec_in.outputs.to_vec(),
        deps: spec_in.deps.to_vec(),
        sources: spec_in.sources.to_vec(),
        roots: spec_in.roots.to_vec(),
    });
    let mut exec = step
        .exec(false, StepStore::Own(store), work, &[(SPEC_RECORDS, spec_in.records.as_bytes())])
        .mount(Mount::readonly(PKG_DIR, pkg))
        .mount(Mount::readonly(DRVS_DIR, drvs));
    let results = exec.output(RESULTS_DIR, &State::scratch());
    let sources = exec.output(SOURCES_DIR, &State::scratch());
    let extras = exec.output(EXTRAS_DIR, &State::scratch());
    let meta = exec.output(META_DIR, &State::scratch());
    let built = exec.build(&step.name(Stage::Build, &format!("nix build {} ({system})", spec_in.what)));
    PackageBuild {
        results: built.state(&results),
        sources: built.state(&sources),
        extras: built.state(&extras),
        answer: Keyed { meta: built.state(&meta), memo_key: String::new() },
    }
}

/// Makes the image root's `entries` beside a copy of `seed` (the package's own paths, which
/// then share the layer), in the builder image without Nix, the store or secrets.
pub fn image_root(
    entries: Vec<RootEntry>,
    notices: &[String],
    seed: Option<&State>,
    step: &NixStep,
    name: &str,
) -> State {
    let mut exec = step.tool_exec(Work::ImageRoot { entries, notices: notices.to_vec() });
    if let Some(seed) = seed {
        // Copied in, not the output's base: BuildKit would export a base and what the step
        // adds as two layers.
        exec = exec.mount(Mount::readonly(ROOT_SEED_DIR, seed));
    }
    let out = exec.output(ROOT_OUT_DIR, &State::scratch());
    exec.build(&step.name(Stage::ImageRoot, name)).state(&out)
}

/// The one step that builds `flake`'s package for Nix system `system`: the closure, one tree
/// per store path, and the manifest. In the builder image's own store, never the persistent
/// one: it is for packages whose paths are known only once built ([`StepStore::Image`]).
pub fn single_build(flake: &FlakeRef, extras: &[FlakeRef], system: &str, step: &NixStep) -> NixBuild {
    let work = Work::Single {
        reference: flake.for_nix.clone(),
        flake: without_fragment(&flake.for_nix).to_string(),
        system: system.to_string(),
        extras: extras.iter().map(|e| e.for_nix.clone()).collect(),
    };
    let uses_context = flake.uses_context || extras.iter().any(|e| e.uses_context);
    let mut exec = step.exec(uses_context, StepStore::Image, work, &[]);
    let closure = exec.output(OUT_DIR, &State::scratch());
    let meta = exec.output(META_DIR, &State::scratch());
    let built = exec.build(&step.name(Stage::Build, &format!("nix build {} ({system})", flake.written)));
    NixBuild { closure: built.state(&closure), meta: built.state(&meta) }
}

/// The exec that lists the flake's `packages.<system>` with their descriptions into
/// [`output::PACKAGES_FILE`] of its output.
pub fn nix_packages(flake: &FlakeRef, system: &str, step: &NixStep) -> State {
    let attribute = format!("{}#packages.{system}", without_fragment(&flake.for_nix));
    let mut exec = step.exec(flake.uses_context, StepStore::Persistent, Work::Packages { attribute }, &[]);
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build(&format!("[{}] list packages.{system} of {}", step.label, without_fragment(&flake.written)))
        .state(&meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::decode;
    use crate::options::NixArgs;
    use crate::plan::BuilderImage;
    use bollard_buildkit_proto::pb;

    fn step_parts() -> (BuilderImage, pb::Platform, NixArgs) {
        let builder = BuilderImage::from_config(
            "docker.io/localnix/nix:2.8",
            "sha256:abc",
            br#"{"config":{"Env":["PATH=/usr/bin:/bin"]}}"#,
        )
        .unwrap();
        (
            builder,
            crate::llb::platform("linux", "amd64", ""),
            NixArgs::from_build_args(&Default::default()).unwrap(),
        )
    }

    fn execs(state: &State) -> Vec<pb::ExecOp> {
        decode(&state.to_definition())
            .into_iter()
            .filter_map(|(_, op)| match op.op {
                Some(pb::op::Op::Exec(e)) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn spec_file(state: &State, name: &str) -> Option<Vec<u8>> {
        decode(&state.to_definition())
            .into_iter()
            .flat_map(|(_, op)| match op.op {
                Some(pb::op::Op::File(f)) => f.actions,
                _ => Vec::new(),
            })
            .find_map(|a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) if m.path == format!("/{name}") => Some(m.data),
                _ => None,
            })
    }

    /// The work of every step spec in `state`'s definition.
    fn works(state: &State) -> Vec<Work> {
        decode(&state.to_definition())
            .into_iter()
            .flat_map(|(_, op)| match op.op {
                Some(pb::op::Op::File(f)) => f.actions,
                _ => Vec::new(),
            })
            .filter_map(|a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) if m.path == format!("/{}", spec::SPEC_FILE) => {
                    serde_json::from_slice::<spec::Spec>(&m.data).ok().map(|s| s.work)
                }
                _ => None,
            })
            .collect()
    }

    fn cache_mounts(exec: &pb::ExecOp) -> Vec<(String, i32)> {
        exec.mounts.iter().filter_map(|m| m.cache_opt.as_ref().map(|c| (m.dest.clone(), c.sharing))).collect()
    }

    #[test]
    fn steps_name_what_they_work_on_and_only_the_evaluation_mounts_the_context() {
        let (builder, platform, settings) = step_parts();
        let context = crate::llb::source::local(
            &crate::llb::source::Local {
                name: "context".into(),
                session_id: "s".into(),
                ..Default::default()
            },
            "context",
        );
        let step = crate::plan::test_step(&builder, &platform, &settings, &context);
        let flake = FlakeRef {
            written: ".#x".into(),
            for_nix: "path:/nixfront/src#x".into(),
            uses_context: true,
            context_dir: Some(String::new()),
        };
        let locked =
            [serde_json::json!({"type": "tarball", "url": "http://x/a.tar.gz", "narHash": "sha256-A="})];
        let fetched = fetch(&locked, &step);
        let evaluation = evaluate(&flake, &[], "x86_64-linux", Some(&fetched), &[], &[], &step);
        let eval_exec = execs(&evaluation.meta).pop().unwrap();
        assert!(eval_exec.mounts.iter().any(|m| m.dest == super::super::output::CONTEXT_DIR));
        assert!(eval_exec.mounts.iter().any(|m| m.dest == FETCHED_DIR && m.readonly));
        let inputs = [("/nix/store/a-d.drv".to_string(), "/nix/store/b-d".to_string())];
        let keyed = realise(&inputs, "x86_64-linux", &evaluation.drvs, &step);
        // The memo key holds whatever the evaluation's cache is (it names the session).
        let other_drvs = State::scratch();
        assert_eq!(keyed.memo_key, realise(&inputs, "x86_64-linux", &other_drvs, &step).memo_key);
        // ... and whatever image carries the frontend (the release's amd64 and arm64 images).
        let other_image = crate::llb::source::image("docker.io/org/nixfront-arm64:1", None);
        let on_arm64 = NixStep { frontend: &other_image, ..step };
        assert_eq!(keyed.memo_key, realise(&inputs, "x86_64-linux", &evaluation.drvs, &on_arm64).memo_key);
        assert_ne!(
            keyed.meta.key(),
            realise(&inputs, "x86_64-linux", &evaluation.drvs, &on_arm64).meta.key()
        );
        let realised = keyed.meta;
        let groups = [vec!["/nix/store/b-d".to_string()], vec!["/nix/store/c-e".to_string()]];
        let deriver = |p: &str| (p == "/nix/store/b-d").then_some("/nix/store/a-d.drv");
        let layers = lay_out(&groups, deriver, "x86_64-linux", &step, true, &realised, &evaluation.drvs);
        assert_eq!(layers.len(), 2);
        for state in [&fetched, &realised, &layers[1].state] {
            let exec = &execs(state).pop().unwrap();
            assert!(exec.mounts.iter().all(|m| m.dest != super::super::output::CONTEXT_DIR));
            // Every step on the persistent store has an instance of its own; what the build
            // learnt of the substituters is one record all share.
            assert_eq!(
                cache_mounts(exec),
                [
                    ("/nix".to_string(), pb::CacheSharingOpt::Private as i32),
                    ("/nixfront/failures".to_string(), pb::CacheSharingOpt::Shared as i32),
                    ("/nixfront/reach".to_string(), pb::CacheSharingOpt::Shared as i32)
                ]
            );
        }
        assert!(
            works(&realised)
                .contains(&Work::Realise { system: "x86_64-linux".into(), inputs: inputs.to_vec() })
        );
        let laid = works(&layers[0].state).into_iter().find_map(|w| match w {
            Work::LayOut { groups, .. } => Some(groups),
            _ => None,
        });
        let grouped = |layer: &str, path: &str, deriver: Option<&str>| Grouped {
            layer: layer.into(),
            path: path.into(),
            deriver: deriver.map(String::from),
        };
        assert_eq!(
            laid.unwrap(),
            [
                grouped("000", "/nix/store/b-d", Some("/nix/store/a-d.drv")),
                grouped("001", "/nix/store/c-e", None)
            ]
        );
        let layer_exec = &execs(&layers[1].state).pop().unwrap();
        let outputs: Vec<&str> =
            layer_exec.mounts.iter().filter(|m| m.output > 0).map(|m| m.dest.as_str()).collect();
        assert_eq!(outputs, ["/nixfront/layers/000", "/nixfront/layers/001"]);
        // The layer step runs after the dependency step, whose output it mounts.
        assert!(layer_exec.mounts.iter().any(|m| m.dest == DEPS_META_DIR));

        // The package step: no persistent store, no context; its store is the layers, merged,
        // mounted writable so that BuildKit keys it by their cache keys.
        let store =
            step_store(DependencyTrees::Layers(layers.iter().map(|l| &l.state).collect()), None, None);
        let outputs = ["/nix/store/o-x".to_string()];
        let spec_in = PackageSpec {
            what: ".#x",
            drv: "/nix/store/0s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-x-1.0.drv",
            outputs: &outputs,
            records: "/nix/store/b-d\n",
            deps: &["/nix/store/b-d".to_string()],
            sources: &[],
            roots: &outputs,
        };
        let trees = PackageTrees { store: &store, pkg: &evaluation.pkg, drvs: &evaluation.drvs };
        let built = package(&spec_in, "x86_64-linux", trees, &step);
        let scratch = State::scratch();
        let other = package(
            &spec_in,
            "x86_64-linux",
            PackageTrees { store: &scratch, pkg: &scratch, drvs: &scratch },
            &step,
        );
        assert_eq!(built.answer.memo_key, other.answer.memo_key, "keyed without the session's trees");
        assert_ne!(built.answer.memo_key, keyed.memo_key);
        let built_meta = &built.answer.meta;
        let exec = execs(built_meta).into_iter().last().unwrap();
        assert!(
            cache_mounts(&exec).iter().all(|(dest, _)| dest != "/nix"),
            "the package step never mounts the persistent store"
        );
        assert!(exec.mounts.iter().all(|m| m.dest != super::super::output::CONTEXT_DIR));
        let store_mount = exec.mounts.iter().find(|m| m.dest == STEP_STORE_DIR).unwrap();
        assert!(!store_mount.readonly && store_mount.output >= 0 && store_mount.selector == STEP_STORE_DIR);
        assert_eq!(exec.meta.as_ref().unwrap().args, ["nixfront", "step", "package"]);
        let package_work = works(built_meta).into_iter().find_map(|w| match w {
            Work::Package(p) => Some(p),
            _ => None,
        });
        let package_work = package_work.unwrap();
        assert_eq!(package_work.drv, "/nix/store/0s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-x-1.0.drv");
        assert_eq!(package_work.outputs, ["/nix/store/o-x"]);
        assert_eq!(spec_file(built_meta, SPEC_RECORDS).as_deref(), Some(&b"/nix/store/b-d\n"[..]));
        let merged = decode(&built_meta.to_definition())
            .into_iter()
            .any(|(_, op)| matches!(op.op, Some(pb::op::Op::Merge(_))));
        assert!(merged, "the dependency layers are merged into the step's store");
    }

    #[test]
    fn the_package_store_carries_the_builders_own_store_when_nix_lives_there() {
        let root = crate::llb::source::image("docker.io/nixos/nix:2.24.10", None);
        let layer = FileOp::on(&State::scratch()).mkdir("/nix/store/x", 0o755, 1).build("layer");
        // The ops of a state's definition, its own last (the terminal op left out).
        let ops = |state: &State| {
            let mut ops: Vec<pb::Op> = decode(&state.to_definition()).into_iter().map(|(_, op)| op).collect();
            ops.pop();
            ops
        };
        // MergeOp: the image and the layers, merged, nothing copied.
        let merged = step_store(DependencyTrees::Layers(vec![&layer]), Some(&root), None);
        assert!(matches!(ops(&merged).last().unwrap().op, Some(pb::op::Op::Merge(_))));
        // Stacked: the image's store copied onto the top of the stack.
        let stacked = step_store(DependencyTrees::Stacked(&layer), Some(&root), None);
        let copies: Vec<(String, String)> = ops(&stacked)
            .into_iter()
            .flat_map(|op| match op.op {
                Some(pb::op::Op::File(f)) => f.actions,
                _ => Vec::new(),
            })
            .filter_map(|a| match a.action {
                Some(pb::file_action::Action::Copy(c)) => Some((c.src, c.dest)),
                _ => None,
            })
            .collect();
        assert_eq!(copies, [("/nix/store".to_string(), "/nix/store".to_string())]);
        // No dependencies and no Nix in the image: an empty store.
        let empty = step_store(DependencyTrees::None, None, None);
        assert!(matches!(ops(&empty).last().unwrap().op, Some(pb::op::Op::File(_))));
    }
}
