//! The four steps of a build on the persistent store, as LLB. Each step's definition names
//! what it works on, so that its cache key is as stable as that: the evaluation and the
//! package depend on the context; the dependencies on their derivations; each layer on its
//! store paths. None of the dependency steps mounts the context.

use super::output::{
    DEPS_DIR, DEPS_META_DIR, EXTRAS_DIR, LAYERS_DIR, META_DIR, RESULTS_DIR, SOURCES_DIR, SPEC_DEPS_DB,
    SPEC_DIR, SPEC_GROUPS, SPEC_INPUTS, SPEC_SOURCES, layer_name,
};
use super::{FIXED_TIME_NS, FlakeRef, NixStep, flake_args};
use crate::llb::State;
use crate::llb::exec::Mount;
use crate::llb::file::FileOp;

/// A read-only directory of spec files, whose contents are part of the definition.
fn spec(files: &[(&str, String)], name: &str) -> State {
    files
        .iter()
        .fold(FileOp::on(&State::scratch()), |op, (file, text)| {
            op.mkfile(&format!("/{file}"), 0o444, text.as_bytes(), FIXED_TIME_NS)
        })
        .build(name)
}

/// Evaluates the package: its plan ([`super::output::PLAN_FILE`] in the returned output).
pub fn evaluate(flake: &FlakeRef, system: &str, step: &NixStep) -> State {
    let mut exec = step.exec(flake.uses_context, "eval.sh", flake_args(flake, system));
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build(&format!("nix eval {} ({system})", flake.written)).state(&meta)
}

/// Realises `inputs` (`(drv, output path)`) in the store: the path-info and registrations of
/// their runtime closure. The definition names the derivations and paths, not the package.
pub fn realise(inputs: &[(String, String)], system: &str, step: &NixStep) -> State {
    let lines: String = inputs.iter().map(|(drv, out)| format!("{drv} {out}\n")).collect();
    let spec = spec(&[(SPEC_INPUTS, lines)], "nixfront: the package's inputs");
    let mut exec =
        step.exec(false, "realise.sh", vec![system.to_string()]).mount(Mount::readonly(SPEC_DIR, &spec));
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build(&format!("nix: realise {} inputs ({system})", inputs.len())).state(&meta)
}

/// A dependency layer as the layer step wrote it: the directory `dir` of `state`, laid out as
/// `nix/store/<base>`.
#[derive(Debug, Clone)]
pub struct LaidOut {
    pub state: State,
    pub dir: String,
}

/// Lays `groups` of store paths out as `<i>/nix/store/<base>`: the dependency layers. The
/// definition names every path of every group. With `output_per_layer` each group is an
/// output of its own (a layer as it is, for MergeOp); otherwise all are directories of one
/// output (BuildKit 0.8 times out on an exec with many outputs). `realised` (the dependency
/// step's output) is mounted so that the step runs after it: nixfront may have its answer
/// from the memo ([`crate::memo`]) without running it, and the paths must be in the store.
pub fn lay_out(
    groups: &[Vec<String>],
    step: &NixStep,
    output_per_layer: bool,
    realised: &State,
) -> Vec<LaidOut> {
    let lines: String = groups
        .iter()
        .enumerate()
        .flat_map(|(i, paths)| paths.iter().map(move |p| format!("{} {p}\n", layer_name(i))))
        .collect();
    let spec = spec(&[(SPEC_GROUPS, lines)], "nixfront: the dependency layers");
    let mut exec = step
        .exec(false, "materialise.sh", Vec::new())
        .mount(Mount::readonly(SPEC_DIR, &spec))
        .mount(Mount::readonly(DEPS_META_DIR, realised));
    let paths: usize = groups.iter().map(Vec::len).sum();
    let name = format!("nix: lay out {paths} store paths in {} layers", groups.len());
    if output_per_layer {
        let handles: Vec<_> = (0..groups.len())
            .map(|i| exec.output(&format!("{LAYERS_DIR}/{}", layer_name(i)), &State::scratch()))
            .collect();
        let built = exec.build(&name);
        handles.iter().map(|h| LaidOut { state: built.state(h), dir: "/".to_string() }).collect()
    } else {
        let all = exec.output(LAYERS_DIR, &State::scratch());
        let state = exec.build(&name).state(&all);
        (0..groups.len())
            .map(|i| LaidOut { state: state.clone(), dir: format!("/{}", layer_name(i)) })
            .collect()
    }
}

/// What the package step writes.
pub struct PackageBuild {
    /// The package's own paths of its closure, as a layer.
    pub results: State,
    /// Its input sources in the closure, as a layer.
    pub sources: State,
    /// What nixfront adds to the image (`tmp`).
    pub extras: State,
    /// The manifest.
    pub meta: State,
}

/// The dependencies the package step builds on: their store paths and registrations.
pub struct Dependencies<'a> {
    pub trees: DependencyTrees<'a>,
    /// Their registrations, as the dependency step wrote them ([`super::output::DEPS_DB_FILE`]).
    pub db: &'a str,
}

/// Where the package step finds the dependencies' store paths: in the image's own layers, so
/// that on a fresh runner BuildKit's cache (even inline cache, which holds nothing else)
/// gives them without the steps below.
pub enum DependencyTrees<'a> {
    /// Each layer as the layer step wrote it, mounted at `DEPS_DIR/<i>` (MergeOp).
    Layers(Vec<&'a State>),
    /// The layers stacked as the image's bottom layers, mounted at `DEPS_DIR` (BuildKit 0.8).
    Stacked(&'a State),
}

/// Builds the package on its dependencies (taken from `deps` when the store lacks them) and
/// lays out what of its closure is not a dependency. `sources` is the closure of its input
/// sources. The step is keyed by the dependencies' cache keys, never by hashing their layers:
/// with `no_content_hash` (BuildKit's `exec.mount.cache.content`) they are read-only mounts
/// that say so, else writable mounts with an unused output.
pub fn package(
    flake: &FlakeRef,
    system: &str,
    step: &NixStep,
    deps: Option<Dependencies>,
    sources: &[String],
    no_content_hash: bool,
) -> PackageBuild {
    let lines: String = sources.iter().map(|p| format!("{p}\n")).collect();
    let db = deps.as_ref().map_or("", |d| d.db);
    let spec = spec(
        &[(SPEC_SOURCES, lines), (SPEC_DEPS_DB, db.to_string())],
        "nixfront: the package's sources and dependencies",
    );
    let mut exec = step
        .exec(flake.uses_context, "build.sh", flake_args(flake, system))
        .mount(Mount::readonly(SPEC_DIR, &spec));
    if let Some(deps) = deps {
        let mounts: Vec<(String, &State)> = match deps.trees {
            DependencyTrees::Stacked(state) => vec![(DEPS_DIR.to_string(), state)],
            DependencyTrees::Layers(layers) => layers
                .into_iter()
                .enumerate()
                .map(|(i, state)| (format!("{DEPS_DIR}/{}", layer_name(i)), state))
                .collect(),
        };
        for (dest, state) in mounts {
            if no_content_hash {
                exec = exec.mount(Mount::readonly(&dest, state).without_content_hash());
            } else {
                // Older BuildKits key an exec by hashing the content of each read-only input
                // (seconds for a big closure, on the first edit after each dependency change),
                // but a writable mount with an output by its input's cache key alone, which
                // names the store paths. The output is never used; the script only reads.
                exec.output(&dest, state);
            }
        }
    }
    let results = exec.output(RESULTS_DIR, &State::scratch());
    let sources = exec.output(SOURCES_DIR, &State::scratch());
    let extras = exec.output(EXTRAS_DIR, &State::scratch());
    let meta = exec.output(META_DIR, &State::scratch());
    let built = exec.build(&format!("nix build {} ({system})", flake.written));
    PackageBuild {
        results: built.state(&results),
        sources: built.state(&sources),
        extras: built.state(&extras),
        meta: built.state(&meta),
    }
}

/// Whether an exec's mounts may skip content hashing (BuildKit's capability).
pub const CAP_NO_CONTENT_HASH: &str = "exec.mount.cache.content";

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

    #[test]
    fn dependency_steps_name_their_paths_and_never_mount_the_context() {
        let (builder, platform, settings) = step_parts();
        let context = crate::llb::source::local(
            &crate::llb::source::Local {
                name: "context".into(),
                session_id: "s".into(),
                ..Default::default()
            },
            "context",
        );
        let step = NixStep {
            builder: &builder,
            platform: &platform,
            context: &context,
            settings: &settings,
            location: None,
        };
        let inputs = [("/nix/store/a-d.drv".to_string(), "/nix/store/b-d".to_string())];
        let realised = realise(&inputs, "x86_64-linux", &step);
        let groups = [vec!["/nix/store/b-d".to_string()], vec!["/nix/store/c-e".to_string()]];
        let layers = lay_out(&groups, &step, true, &realised);
        assert_eq!(layers.len(), 2);
        for state in [&realised, &layers[1].state] {
            let exec = &execs(state).pop().unwrap();
            assert!(exec.mounts.iter().all(|m| m.dest != super::super::output::CONTEXT_DIR));
            let def = state.to_definition();
            let spec = decode(&def)
                .into_iter()
                .flat_map(|(_, op)| match op.op {
                    Some(pb::op::Op::File(f)) => f.actions,
                    _ => Vec::new(),
                })
                .find_map(|a| match a.action {
                    Some(pb::file_action::Action::Mkfile(m))
                        if m.path.starts_with("/inputs") || m.path.starts_with("/groups") =>
                    {
                        Some(m.data)
                    }
                    _ => None,
                })
                .expect("a spec file");
            assert!(
                String::from_utf8(spec).unwrap().contains("/nix/store/b-d"),
                "the definition names the paths"
            );
        }
        let layer_exec = &execs(&layers[1].state).pop().unwrap();
        let outputs: Vec<&str> =
            layer_exec.mounts.iter().filter(|m| m.output > 0).map(|m| m.dest.as_str()).collect();
        assert_eq!(outputs, ["/nixfront/layers/000", "/nixfront/layers/001"]);
        // It runs after the dependency step, whose output it mounts.
        let after = layer_exec.mounts.iter().find(|m| m.dest == DEPS_META_DIR).expect("the dependency step");
        let realised_op = decode(&realised.to_definition()).pop().unwrap().1.inputs[0].digest.clone();
        let layer_op = decode(&layers[1].state.to_definition())
            .into_iter()
            .map(|(_, op)| op)
            .find(|op| {
                matches!(op.op, Some(pb::op::Op::Exec(_)))
                    && op.inputs.iter().any(|i| i.digest == realised_op)
            })
            .expect("the layer step takes the dependency step's output");
        assert_eq!(layer_op.inputs[after.input as usize].digest, realised_op);
        // The package step mounts them without hashing their content, where BuildKit can.
        let flake =
            FlakeRef { written: ".#x".into(), for_nix: "path:/nixfront/src#x".into(), uses_context: true };
        let built = package(
            &flake,
            "x86_64-linux",
            &step,
            Some(Dependencies {
                trees: DependencyTrees::Layers(layers.iter().map(|l| &l.state).collect()),
                db: "/nix/store/b-d\n",
            }),
            &["/nix/store/t-tools".to_string()],
            true,
        );
        let exec = execs(&built.meta).into_iter().last().unwrap();
        let deps: Vec<i32> = exec
            .mounts
            .iter()
            .filter(|m| m.dest.starts_with("/nixfront/deps/"))
            .map(|m| m.content_cache)
            .collect();
        assert_eq!(deps, [pb::MountContentCache::Off as i32; 2]);
        assert!(exec.mounts.iter().any(|m| m.dest == super::super::output::CONTEXT_DIR));
        // Without MergeOp: one output, its directories the layers; the package step builds on
        // the layers stacked as the image has them, mounted once.
        let one = lay_out(&groups, &step, false, &realised);
        assert_eq!((one[0].dir.as_str(), one[1].dir.as_str()), ("/000", "/001"));
        let outputs: Vec<i64> =
            execs(&one[0].state).pop().unwrap().mounts.iter().map(|m| m.output).filter(|o| *o > 0).collect();
        assert_eq!(outputs, [1]);
        let stacked =
            FileOp::on(&State::scratch()).copy_contents(&one[0].state, "/000", "/", 0).build("stack");
        let db = "/nix/store/b-d\nsha256:x\n1\n\n0\n";
        let deps = Dependencies { trees: DependencyTrees::Stacked(&stacked), db };
        let built = package(&flake, "x86_64-linux", &step, Some(deps), &[], false);
        let exec = execs(&built.meta).into_iter().last().unwrap();
        let deps: Vec<&str> = exec
            .mounts
            .iter()
            .filter(|m| m.dest.starts_with("/nixfront/deps"))
            .map(|m| m.dest.as_str())
            .collect();
        assert_eq!(deps, ["/nixfront/deps"], "the stacked layers, and not the dependency step's output");
        // Without the capability, BuildKit keys the mount by its cache key alone only when it
        // is writable and an output.
        let mount = exec.mounts.iter().find(|m| m.dest == "/nixfront/deps").unwrap();
        assert!(!mount.readonly && mount.output >= 0, "{mount:?}");
        let spec = decode(&built.meta.to_definition())
            .into_iter()
            .flat_map(|(_, op)| match op.op {
                Some(pb::op::Op::File(f)) => f.actions,
                _ => Vec::new(),
            })
            .find_map(|a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) if m.path == format!("/{SPEC_DEPS_DB}") => {
                    Some(m.data)
                }
                _ => None,
            });
        assert_eq!(spec.as_deref(), Some(db.as_bytes()), "the registrations are part of the definition");
    }
}
