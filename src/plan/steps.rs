//! The four steps of a build on the persistent store, as LLB. Each step's definition names
//! what it works on, so that its cache key is as stable as that: the evaluation and the
//! package depend on the context; the dependencies on their derivations; each layer on its
//! store paths. None of the dependency steps mounts the context.

use super::output::{
    DEPS_DIR, DEPS_META_DIR, EXTRAS_DIR, LAYERS_DIR, META_DIR, RESULTS_DIR, SOURCES_DIR, SPEC_DIR,
    SPEC_GROUPS, SPEC_INPUTS, SPEC_SOURCES, layer_name,
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
/// output (BuildKit 0.8 times out on an exec with many outputs).
pub fn lay_out(groups: &[Vec<String>], step: &NixStep, output_per_layer: bool) -> Vec<LaidOut> {
    let lines: String = groups
        .iter()
        .enumerate()
        .flat_map(|(i, paths)| paths.iter().map(move |p| format!("{} {p}\n", layer_name(i))))
        .collect();
    let spec = spec(&[(SPEC_GROUPS, lines)], "nixfront: the dependency layers");
    let mut exec = step.exec(false, "materialise.sh", Vec::new()).mount(Mount::readonly(SPEC_DIR, &spec));
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

/// The dependencies the package step builds on: the layers and the dependency step's output.
pub struct Dependencies<'a> {
    pub layers: &'a [LaidOut],
    pub meta: &'a State,
}

/// Builds the package on its dependencies (taken from `deps` when the store lacks them) and
/// lays out what of its closure is not a dependency. `sources` is the closure of its input
/// sources. `no_content_hash`: key the step by the dependencies' cache keys alone
/// (`exec.mount.cache.content`), never by hashing their layers.
pub fn package(
    flake: &FlakeRef,
    system: &str,
    step: &NixStep,
    deps: Option<Dependencies>,
    sources: &[String],
    no_content_hash: bool,
) -> PackageBuild {
    let lines: String = sources.iter().map(|p| format!("{p}\n")).collect();
    let spec = spec(&[(SPEC_SOURCES, lines)], "nixfront: the package's sources");
    let mut exec = step
        .exec(flake.uses_context, "build.sh", flake_args(flake, system))
        .mount(Mount::readonly(SPEC_DIR, &spec));
    if let Some(deps) = deps {
        exec = exec.mount(Mount::readonly(DEPS_META_DIR, deps.meta));
        let mounts: Vec<Mount> = match deps.layers {
            // All in one output: mounted once, its directories are the layers.
            [first, ..] if first.dir != "/" => vec![Mount::readonly(DEPS_DIR, &first.state)],
            layers => layers
                .iter()
                .enumerate()
                .map(|(i, layer)| Mount::readonly(&format!("{DEPS_DIR}/{}", layer_name(i)), &layer.state))
                .collect(),
        };
        for mount in mounts {
            exec = exec.mount(if no_content_hash { mount.without_content_hash() } else { mount });
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
        let layers = lay_out(&groups, &step, true);
        assert_eq!(layers.len(), 2);
        for state in [&realised, &layers[1].state] {
            let exec = &execs(state)[0];
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
        let layer_exec = &execs(&layers[1].state)[0];
        let outputs: Vec<&str> =
            layer_exec.mounts.iter().filter(|m| m.output > 0).map(|m| m.dest.as_str()).collect();
        assert_eq!(outputs, ["/nixfront/layers/000", "/nixfront/layers/001"]);
        // The package step mounts them without hashing their content, where BuildKit can.
        let flake =
            FlakeRef { written: ".#x".into(), for_nix: "path:/nixfront/src#x".into(), uses_context: true };
        let built = package(
            &flake,
            "x86_64-linux",
            &step,
            Some(Dependencies { layers: &layers, meta: &realised }),
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
        // Without MergeOp: one output, its directories the layers, mounted once.
        let one = lay_out(&groups, &step, false);
        assert_eq!((one[0].dir.as_str(), one[1].dir.as_str()), ("/000", "/001"));
        let outputs: Vec<i64> =
            execs(&one[0].state)[0].mounts.iter().map(|m| m.output).filter(|o| *o > 0).collect();
        assert_eq!(outputs, [1]);
        let built = package(
            &flake,
            "x86_64-linux",
            &step,
            Some(Dependencies { layers: &one, meta: &realised }),
            &[],
            false,
        );
        let exec = execs(&built.meta).into_iter().last().unwrap();
        let deps: Vec<&str> = exec
            .mounts
            .iter()
            .filter(|m| m.dest.starts_with("/nixfront/deps"))
            .map(|m| m.dest.as_str())
            .collect();
        assert_eq!(deps, ["/nixfront/deps", "/nixfront/deps-meta"]);
    }
}
