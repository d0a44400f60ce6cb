//! The image's root filesystem: the closure in layers by group of store paths, and a top
//! layer with what nixfront adds (`/tmp`, the WORKDIR).
//!
//! The build output holds each store path as its own tree, `/<base>/nix/store/<base>`. A
//! layer copies the contents of its paths' trees onto `/`, with a fixed time on everything:
//! BuildKit's copy stamps each copied directory after writing its contents, so `nix/`,
//! `nix/store/` and the paths all carry the fixed time, and the same group gives the same
//! layer bytes in every build, on a warm or a fresh builder. Where BuildKit has MergeOp each
//! layer is built on scratch and merged, so an unchanged group keeps its cache key and blob;
//! elsewhere (BuildKit 0.8) the copies are chained, one layer each.

pub mod grouping;

use crate::closure::{Closure, StorePath};
use crate::llb::file::FileOp;
use crate::llb::{Location, State, merge};
use crate::plan::output::{self, FIXED_TIME_NS};
use grouping::{Group, GroupKind};

/// How to lay the layers out.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The most layers the image may have, the top layer included (at least 2).
    pub max_layers: usize,
    /// Build each layer on scratch and merge them (BuildKit's `mergeop` capability).
    pub merge: bool,
    /// The lines of the user's file the layers come from (FLAKE).
    pub location: Option<Location>,
}

/// What the top layer holds, besides the closure.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    pub workdir: Option<&'a str>,
    /// The SBOM document, written to `/sbom.spdx.json` (`NIX_SBOM_FILE`).
    pub sbom: Option<&'a [u8]>,
}

/// The root filesystem and what each of its layers holds, bottom to top.
pub struct RootFilesystem {
    pub state: State,
    /// One line per layer, for progress output and the image history.
    pub layers: Vec<String>,
}

/// The root filesystem. `built` is the build's output, one tree per store path, plus the
/// extras tree ([`output::extras_tree`]).
pub fn root_filesystem(closure: &Closure, built: &State, extras: &Extras, layout: Layout) -> RootFilesystem {
    let groups = grouping::group(closure, layout.max_layers.saturating_sub(1));
    let total = groups.len();
    let name = |i: usize, g: &Group| format!("layer {}/{total}: {}", i + 1, describe(closure, g));
    let mut layers: Vec<String> = groups.iter().enumerate().map(|(i, g)| name(i, g)).collect();
    let top_name = top_layer_name(extras);
    layers.push(top_name.clone());
    let copy =
        |base: &State, i: usize, g: &Group| copy_group(base, built, g).at(layout.location).build(&name(i, g));
    let top = |base: &State| top_layer(base, built, extras).at(layout.location).build(&top_name);
    let state = if layout.merge {
        let mut states: Vec<State> =
            groups.iter().enumerate().map(|(i, g)| copy(&State::scratch(), i, g)).collect();
        states.push(top(&State::scratch()));
        merge::merge(&states, &format!("merge {} layers", states.len()), layout.location)
    } else {
        let store = groups.iter().enumerate().fold(State::scratch(), |below, (i, g)| copy(&below, i, g));
        top(&store)
    };
    RootFilesystem { state, layers }
}

fn copy_group(base: &State, built: &State, group: &Group) -> FileOp {
    group.paths.iter().fold(FileOp::on(base), |op, path| {
        op.copy_contents(built, &output::output_tree(path), "/", FIXED_TIME_NS)
    })
}

fn top_layer(base: &State, built: &State, extras: &Extras) -> FileOp {
    // /tmp comes from the build output: BuildKit's mkdir drops the sticky bit, a copy keeps it.
    let mut top = FileOp::on(base).copy_contents(built, &output::extras_tree(), "/", FIXED_TIME_NS);
    if let Some(dir) = extras.workdir.filter(|d| *d != "/" && *d != "/tmp") {
        top = top.mkdir(dir, 0o755, FIXED_TIME_NS);
    }
    if let Some(document) = extras.sbom {
        top = top.mkfile(&format!("/{}", crate::sbom::FILE_NAME), 0o444, document, FIXED_TIME_NS);
    }
    top
}

/// What the top layer is called in progress output and the history: what it holds.
fn top_layer_name(extras: &Extras) -> String {
    let mut parts = vec!["/tmp".to_string()];
    if let Some(dir) = extras.workdir.filter(|d| *d != "/" && *d != "/tmp") {
        parts.push(format!("{dir} (WORKDIR)"));
    }
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
            .paths
            .iter()
            .find(|sp| sp.path == p)
            .map(|sp: &StorePath| sp.base_name().get(33..).unwrap_or("").to_string())
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

fn human_size(bytes: u64) -> String {
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
        parse_manifest(manifest.as_bytes()).unwrap()
    }

    fn ops(merge: bool) -> Vec<pb::Op> {
        let built = crate::llb::source::image("docker.io/library/busybox:latest", None);
        let layout = Layout { max_layers: 100, merge, location: Some((2, 2)) };
        let fs = root_filesystem(&closure(), &built, &Extras { workdir: Some("/srv"), sbom: None }, layout);
        assert_eq!(fs.layers[2], "nixfront: /tmp, /srv (WORKDIR)");
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

    #[test]
    fn progress_names_say_what_each_layer_holds() {
        let c = closure();
        let groups = grouping::group(&c, 99);
        assert_eq!(describe(&c, &groups[0]), "libdemo-1.0 (1.9 MiB)");
        assert_eq!(describe(&c, &groups[1]), "hello-0.1 (600 B)");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(top_layer_name(&Extras::default()), "nixfront: /tmp");
        let all = Extras { workdir: Some("/w"), sbom: Some(b"{}") };
        assert_eq!(top_layer_name(&all), "nixfront: /tmp, /w (WORKDIR), /sbom.spdx.json");
    }
}
