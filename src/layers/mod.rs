//! The image's root filesystem: a base image's layers (FROM), the closure in layers by group of
//! store paths (the image root, [`roots`], in the layer of the package's own paths), and a top
//! layer with what nixfront adds (`/tmp`, the SBOM file).
//!
//! A layer is planned as parts ([`Part`]): a whole step output that is already laid out as
//! `nix/store/<base>` (the dependency layers, the package's own paths), some paths of one, or
//! per-path trees `/<base>/nix/store/<base>` of the one-step build. Where BuildKit has MergeOp
//! each layer is its own state and they are merged: a layer that is one whole output is that
//! output itself, so the image shares its blob with BuildKit's cache and an unchanged layer
//! keeps its key. Elsewhere (BuildKit 0.8) the parts are copied in a chain, one layer each.
//! Everything nixfront writes carries a fixed time, so the same paths give the same layer
//! bytes in every build, on a warm or a fresh builder.

pub mod grouping;
pub mod roots;

use crate::closure::{Closure, StorePath};
use crate::llb::file::FileOp;
use crate::llb::{Lines, State, merge};
use crate::plan::output::{self, FIXED_TIME_NS};
use crate::plan::steps::DependencyLayer;
use grouping::{Group, GroupKind};

/// How to lay the layers out.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The most layers the image may have, the top layer included (at least 2).
    pub max_layers: usize,
    /// Build each layer on scratch and merge them (BuildKit's `mergeop` capability).
    pub merge: bool,
    /// The lines of the user's file the layers come from (FLAKE).
    pub location: Option<Lines>,
    /// The base image (FROM), below everything.
    pub base: Option<&'a State>,
}

/// What the top layer holds, besides the closure.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    /// The SBOM document, written to `/sbom.spdx.json` (`NIX_SBOM_FILE`).
    pub sbom: Option<&'a [u8]>,
}

/// The root filesystem and what each of its layers holds, bottom to top.
pub struct RootFilesystem {
    pub state: State,
    /// One line per layer, for progress output and the image history.
    pub layers: Vec<String>,
}

/// A piece of a layer.
#[derive(Debug, Clone)]
pub enum Part {
    /// A directory of a step output laid out as a layer (`nix/store/<base>`, or the extras
    /// `tmp`), whole; `/` for the whole output.
    Tree(State, String),
    /// Some store paths of such a directory.
    Paths(State, String, Vec<String>),
    /// Store paths of the one-step build's output, each its own tree `/<base>/nix/store/<base>`.
    PathTrees(State, Vec<String>),
}

impl Part {
    fn copy_onto(&self, op: FileOp) -> FileOp {
        match self {
            Part::Tree(state, dir) => op.copy_contents(state, dir, "/", FIXED_TIME_NS),
            Part::Paths(state, dir, paths) => paths.iter().fold(op, |op, p| {
                op.copy_entry(state, &format!("{}{p}", dir.trim_end_matches('/')), p, FIXED_TIME_NS)
            }),
            Part::PathTrees(state, paths) => paths
                .iter()
                .fold(op, |op, p| op.copy_contents(state, &output::output_tree(p), "/", FIXED_TIME_NS)),
        }
    }
}

/// One planned layer: what it holds and what progress output and the history call it.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    pub name: String,
    pub parts: Vec<Part>,
    /// Without MergeOp: this layer already made on the ones below it ([`stack`]), used as it
    /// is when every layer below is too.
    pub stacked: Option<State>,
}

/// Without MergeOp (BuildKit 0.8): the dependency layers stacked as the image's bottom layers,
/// each its group's tree copied onto the ones below. The package step builds on the last, and
/// [`split_build_layers`] hands them on to the image, which is then made of the very ops the
/// package step used: where BuildKit's cache has the image's layers (inline cache has nothing
/// else) it has what the package step needs.
pub fn stack(deps: &[(Group, DependencyLayer)], closure: &Closure, location: Option<Lines>) -> Vec<State> {
    let total = deps.len();
    let mut below = State::scratch();
    deps.iter()
        .enumerate()
        .map(|(i, (group, laid))| {
            let part = Part::Tree(laid.state.clone(), laid.dir.clone());
            let name = format!("dependency layer {}/{total}: {}", i + 1, describe(closure, group));
            below = part.copy_onto(FileOp::on(&below)).at(location).build(&name);
            below.clone()
        })
        .collect()
}

/// The layers of a one-step build's closure: `built` holds one tree per store path.
pub fn single_build_layers(closure: &Closure, built: &State, max_layers: usize) -> Vec<LayerPlan> {
    grouping::group(closure, max_layers.saturating_sub(1))
        .iter()
        .map(|g| LayerPlan {
            name: describe(closure, g),
            parts: vec![Part::PathTrees(built.clone(), g.paths.clone())],
            stacked: None,
        })
        .collect()
}

/// The layers of a build on the persistent store. `deps` are the dependency groups, each laid
/// out as one output; `closure` is the runtime closure; `sources` and `results` the package
/// step's layers of its input sources and its own paths, with the paths the step laid out in
/// each (its manifest's `laidOut`: the step owns that split). A dependency group outside the
/// closure (build-time only) is left out, one partly in it gives the paths that are; when
/// there are more layers than `max_layers` allows (the top layer aside), the last ones share.
/// `stacked` are the dependency layers [`stack`]ed (empty with MergeOp): the image's bottom
/// layers are those, as far as every group is whole in the closure.
pub fn split_build_layers(
    deps: &[(Group, DependencyLayer)],
    stacked: &[State],
    closure: &Closure,
    sources: (&[String], &State),
    results: (&[String], &State),
    max_layers: usize,
) -> Vec<LayerPlan> {
    let mut layers = Vec::new();
    for (i, (group, state)) in deps.iter().enumerate() {
        let kept: Vec<String> = group.paths.iter().filter(|p| closure.get(p).is_some()).cloned().collect();
        if kept.is_empty() {
            continue;
        }
        let whole = kept.len() == group.paths.len();
        let part = if whole {
            Part::Tree(state.state.clone(), state.dir.clone())
        } else {
            Part::Paths(state.state.clone(), state.dir.clone(), kept.clone())
        };
        // Stacked layers serve while every group so far is whole.
        let stacked = stacked.get(i).filter(|_| whole && layers.len() == i).cloned();
        let shown = Group { kind: group.kind, size: size_of(closure, &kept), paths: kept };
        layers.push(LayerPlan { name: describe(closure, &shown), parts: vec![part], stacked });
    }
    if !sources.0.is_empty() {
        let group =
            Group { kind: GroupKind::Single, size: size_of(closure, sources.0), paths: sources.0.to_vec() };
        let name = if group.paths.len() == 1 {
            describe(closure, &group)
        } else {
            format!("{} sources ({})", group.paths.len(), human_size(group.size))
        };
        layers.push(LayerPlan {
            name,
            parts: vec![Part::Tree(sources.1.clone(), "/".to_string())],
            stacked: None,
        });
    }
    let group =
        Group { kind: GroupKind::Outputs, size: size_of(closure, results.0), paths: results.0.to_vec() };
    layers.push(LayerPlan {
        name: describe(closure, &group),
        parts: vec![Part::Tree(results.1.clone(), "/".to_string())],
        stacked: None,
    });
    while layers.len() > max_layers.saturating_sub(1).max(1) {
        let last = layers.pop().expect("more than one layer");
        let below = layers.last_mut().expect("more than one layer");
        below.name = format!("{} + {}", below.name, last.name);
        below.parts.extend(last.parts);
        below.stacked = None;
    }
    layers
}

fn size_of(closure: &Closure, paths: &[String]) -> u64 {
    paths.iter().filter_map(|p| closure.get(p)).map(|p| p.nar_size).sum()
}

/// The top layer's part holding what nixfront adds (`tmp`, mode 1777).
pub enum TopSource {
    /// The package step's extras output.
    Tree(State),
    /// The one-step build's output, whose extras tree is [`output::extras_tree`].
    SingleBuild(State),
}

/// The root filesystem: `layers` bottom to top, then the top layer.
///
/// `anchors` are step outputs nixfront reads but the image does not hold (a plan, a
/// manifest). BuildKit exports the cache of what the image is made from, no more: the top
/// layer copies each anchor in and removes it again, which leaves its bytes unchanged and puts
/// the anchor's step among what the image is made from, so a fresh runner importing the cache
/// finds it too.
pub fn assemble(
    layers: &[LayerPlan],
    top: TopSource,
    anchors: &[State],
    extras: &Extras,
    layout: Layout,
) -> RootFilesystem {
    let total = layers.len();
    let names: Vec<String> =
        layers.iter().enumerate().map(|(i, l)| format!("layer {}/{total}: {}", i + 1, l.name)).collect();
    let top_name = top_layer_name(extras);
    let build = |base: &State, layer: &LayerPlan, name: &str| {
        layer
            .parts
            .iter()
            .fold(FileOp::on(base), |op, part| part.copy_onto(op))
            .at(layout.location)
            .build(name)
    };
    let top_layer = |base: &State| {
        let mut op = FileOp::on(base);
        // /tmp comes from a step's output: BuildKit's mkdir drops the sticky bit, a copy keeps it.
        op = match &top {
            TopSource::Tree(state) => op.copy_contents(state, "/", "/", FIXED_TIME_NS),
            TopSource::SingleBuild(state) => {
                op.copy_contents(state, &output::extras_tree(), "/", FIXED_TIME_NS)
            }
        };
        if let Some(document) = extras.sbom {
            op = op.mkfile(&format!("/{}", crate::sbom::FILE_NAME), 0o444, document, FIXED_TIME_NS);
        }
        for (i, anchor) in anchors.iter().enumerate() {
            let place = format!("/.nixfront-anchor-{i}");
            op = op.copy_entry(anchor, "/", &place, FIXED_TIME_NS).rm(&place);
        }
        op.at(layout.location).build(&top_name)
    };
    let state = if layout.merge {
        let mut states: Vec<State> = layout.base.into_iter().cloned().collect();
        states.extend(layers.iter().zip(&names).map(|(layer, name)| match layer.parts.as_slice() {
            [Part::Tree(state, dir)] if dir == "/" => state.clone(),
            _ => build(&State::scratch(), layer, name),
        }));
        states.push(top_layer(&State::scratch()));
        merge::merge(&states, &format!("merge {} layers", states.len()), layout.location)
    } else {
        // The stacked layers stand on scratch: on a base image every layer is made anew.
        let mut on_stack = layout.base.is_none();
        let bottom = layout.base.cloned().unwrap_or_else(State::scratch);
        let store = layers.iter().zip(&names).fold(bottom, |below, (layer, name)| {
            match layer.stacked.as_ref().filter(|_| on_stack) {
                Some(stacked) => stacked.clone(),
                None => {
                    on_stack = false;
                    build(&below, layer, name)
                }
            }
        });
        top_layer(&store)
    };
    let mut all = names;
    all.push(top_name);
    RootFilesystem { state, layers: all }
}

/// What the top layer is called in progress output and the history: what it holds.
fn top_layer_name(extras: &Extras) -> String {
    let mut parts = vec!["/tmp".to_string()];
    if extras.sbom.is_some() {
        parts.push(format!("/{}", crate::sbom::FILE_NAME));
    }
    format!("nixfront: {}", parts.join(", "))
}

/// `glibc-2.38 (31.2 MiB)`, `12 small paths (148.0 KiB)`, for progress output.
fn describe(closure: &Closure, group: &Group) -> String {
    let size = human_size(group.size);
    let name_of = |p: &str| {
        closure
            .get(p)
            .map(|sp: &StorePath| crate::closure::name_part(sp.base_name()).to_string())
            .unwrap_or_default()
    };
    match group.kind {
        GroupKind::Single | GroupKind::Outputs if group.paths.len() == 1 => {
            format!("{} ({size})", name_of(&group.paths[0]))
        }
        GroupKind::Outputs => format!("{} outputs ({size})", group.paths.len()),
        GroupKind::Bucket(b) => format!("{} small paths, bucket {b} ({size})", group.paths.len()),
        GroupKind::Single | GroupKind::Everything => format!("{} store paths ({size})", group.paths.len()),
    }
}

/// `1.5 MiB`: sizes as the build output and the layer names show them.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::parse_manifest;
    use crate::llb::definition::decode;
    use bollard_buildkit_proto::pb;

    const APP: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";
    const DEP: &str = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-libdemo-1.0";

    fn closure() -> Closure {
        let manifest = format!(
            r#"{{"results":["{APP}"],"pathInfo":[
            {{"path":"{DEP}","narSize":2000000,"references":[]}},
            {{"path":"{APP}","narSize":600,"references":["{DEP}"]}}]}}"#
        );
        parse_manifest(manifest.as_bytes()).unwrap().closure
    }

    /// The package step's own paths of [`closure`] (its `laidOut.results`).
    fn own() -> Vec<String> {
        vec![APP.to_string()]
    }

    fn ops(merge: bool) -> Vec<pb::Op> {
        let built = crate::llb::source::image("docker.io/library/busybox:latest", None);
        let layout = Layout { max_layers: 100, merge, location: Some(crate::llb::Lines::one(2)), base: None };
        let layers = single_build_layers(&closure(), &built, layout.max_layers);
        let extras = Extras { sbom: None };
        let fs = assemble(&layers, TopSource::SingleBuild(built.clone()), &[], &extras, layout);
        assert_eq!(fs.layers[2], "nixfront: /tmp");
        assert_eq!(fs.layers.len(), 3);
        decode(&fs.state.to_definition()).into_iter().map(|(_, op)| op).collect()
    }

    fn copies(op: &pb::Op) -> Vec<(String, String, bool, i64)> {
        let Some(pb::op::Op::File(f)) = &op.op else { return vec![] };
        f.actions
            .iter()
            .filter_map(|a| match &a.action {
                Some(pb::file_action::Action::Copy(c)) => {
                    Some((c.src.clone(), c.dest.clone(), c.dir_copy_contents, c.timestamp))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn with_mergeop_each_group_is_its_own_state_merged_with_the_top_layer() {
        let ops = ops(true);
        let merge = ops.iter().find_map(|op| match &op.op {
            Some(pb::op::Op::Merge(m)) => Some(m.clone()),
            _ => None,
        });
        assert_eq!(merge.expect("a merge op").inputs.len(), 3, "dep, app, top layer");
        let layer_copies: Vec<_> = ops.iter().map(copies).filter(|c| !c.is_empty()).collect();
        let dep_tree = format!("/{}", &DEP[11..]);
        assert_eq!(layer_copies[0], [(dep_tree, "/".to_string(), true, FIXED_TIME_NS)]);
        let top = layer_copies.last().unwrap();
        assert_eq!(top[0].0, output::extras_tree(), "the top layer copies /tmp from the build");
    }

    #[test]
    fn without_mergeop_copies_chain_from_most_stable_to_the_app() {
        let ops = ops(false);
        assert!(ops.iter().all(|op| !matches!(op.op, Some(pb::op::Op::Merge(_)))));
        let order: Vec<String> = ops.iter().flat_map(copies).map(|c| c.0).collect();
        assert_eq!(order, [format!("/{}", &DEP[11..]), format!("/{}", &APP[11..]), output::extras_tree()]);
    }

    fn output(name: &str) -> State {
        crate::llb::file::FileOp::on(&State::scratch()).mkdir(&format!("/{name}"), 0o755, 1).build(name)
    }

    fn group(kind: GroupKind, paths: &[&str]) -> Group {
        Group { kind, paths: paths.iter().map(|p| p.to_string()).collect(), size: 0 }
    }

    #[test]
    fn whole_outputs_are_layers_as_they_are_and_build_time_paths_stay_out() {
        const TOOL: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-compiler-1.0";
        let c = closure();
        let (dep, tools, mixed, sources, results) =
            (output("dep"), output("tools"), output("mixed"), output("sources"), output("results"));
        let whole = |state: &State| DependencyLayer { state: state.clone(), dir: "/".to_string() };
        let deps = [
            (group(GroupKind::Single, &[DEP]), whole(&dep)),
            (group(GroupKind::Single, &[TOOL]), whole(&tools)),
            (group(GroupKind::Bucket(0), &[DEP, TOOL]), whole(&mixed)),
        ];
        let layers = split_build_layers(&deps, &[], &c, (&[], &sources), (&own(), &results), 100);
        assert_eq!(layers.len(), 3, "the compiler's own layer is left out, no sources layer");
        assert!(matches!(&layers[0].parts[..], [Part::Tree(_, _)]));
        assert!(
            matches!(&layers[1].parts[..], [Part::Paths(_, _, p)] if p == &[DEP]),
            "only the runtime path"
        );
        assert_eq!(layers[2].name, "hello-0.1 (600 B)");
        let layout = Layout { max_layers: 100, merge: true, location: None, base: None };
        let fs = assemble(
            &layers,
            TopSource::Tree(output("extras")),
            &[output("plan")],
            &Extras::default(),
            layout,
        );
        let ops: Vec<pb::Op> = decode(&fs.state.to_definition()).into_iter().map(|(_, op)| op).collect();
        let copied: Vec<_> = ops.iter().flat_map(copies).collect();
        assert_eq!(copied.len(), 3, "the partial group, /tmp, the anchor: {copied:?}");
        assert_eq!(copied[2].1, "/.nixfront-anchor-0", "copied in...");
        let removed = ops.iter().any(|op| {
            match &op.op {
            Some(pb::op::Op::File(f)) => f.actions.iter().any(|a| {
                matches!(&a.action, Some(pb::file_action::Action::Rm(r)) if r.path == "/.nixfront-anchor-0")
            }),
            _ => false,
        }
        });
        assert!(removed, "...and removed again");
        assert_eq!((copied[0].0.as_str(), copied[0].1.as_str(), copied[0].2), (DEP, DEP, false));
        // Too many layers: the last ones share one.
        let layers = split_build_layers(&deps, &[], &c, (&[], &sources), (&own(), &results), 3);
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].parts.len(), 2);
        assert!(layers[1].name.contains(" + "), "{}", layers[1].name);
    }

    #[test]
    fn without_mergeop_the_image_stands_on_the_stacked_dependency_layers() {
        const TOOL: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-compiler-1.0";
        let c = closure();
        let (sources, results) = (output("sources"), output("results"));
        let laid = |name: &str| DependencyLayer { state: output("layers"), dir: format!("/{name}") };
        let op_of = |state: &State| decode(&state.to_definition()).pop().unwrap().1.inputs[0].digest.clone();
        let layout = Layout { max_layers: 100, merge: false, location: None, base: None };
        let ops_of = |layers: &[LayerPlan]| -> Vec<String> {
            let fs = assemble(layers, TopSource::Tree(output("extras")), &[], &Extras::default(), layout);
            decode(&fs.state.to_definition()).into_iter().map(|(digest, _)| digest).collect()
        };

        // Every group whole in the closure: the image's dependency layers are the stacked ones.
        let deps = [(group(GroupKind::Single, &[DEP]), laid("000"))];
        let stacked = stack(&deps, &c, None);
        assert_eq!(stacked.len(), 1);
        let layers = split_build_layers(&deps, &stacked, &c, (&[], &sources), (&own(), &results), 100);
        assert!(layers[0].stacked.is_some() && layers[1].stacked.is_none());
        assert!(ops_of(&layers).contains(&op_of(&stacked[0])), "the image is built on the stacked layer");

        // A group partly outside the closure: the stack serves up to it, no further.
        let deps = [
            (group(GroupKind::Single, &[DEP]), laid("000")),
            (group(GroupKind::Bucket(0), &[TOOL, APP]), laid("001")),
        ];
        let stacked = stack(&deps, &c, None);
        assert_eq!(stacked.len(), 2);
        let layers = split_build_layers(&deps, &stacked, &c, (&[], &sources), (&own(), &results), 100);
        assert!(layers[0].stacked.is_some() && layers[1].stacked.is_none());
        let ops = ops_of(&layers);
        assert!(ops.contains(&op_of(&stacked[0])) && !ops.contains(&op_of(&stacked[1])));

        // Layers merged to respect NIX_LAYERS are made anew.
        let deps = [(group(GroupKind::Single, &[DEP]), laid("000"))];
        let stacked = stack(&deps, &c, None);
        let layers = split_build_layers(&deps, &stacked, &c, (&[], &sources), (&own(), &results), 2);
        assert_eq!(layers.len(), 1);
        assert!(layers[0].stacked.is_none());
    }

    #[test]
    fn progress_names_say_what_each_layer_holds() {
        let c = closure();
        let groups = grouping::group(&c, 99);
        assert_eq!(describe(&c, &groups[0]), "libdemo-1.0 (1.9 MiB)");
        assert_eq!(describe(&c, &groups[1]), "hello-0.1 (600 B)");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(top_layer_name(&Extras::default()), "nixfront: /tmp");
        let all = Extras { sbom: Some(b"{}") };
        assert_eq!(top_layer_name(&all), "nixfront: /tmp, /sbom.spdx.json");
    }
}
