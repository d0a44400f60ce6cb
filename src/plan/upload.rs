//! The upload step's LLB (`NIX_CACHE_TO`): the store it uploads from, made of the package
//! step's store and the package's own paths, and the exec that signs and uploads them
//! ([`crate::step`]'s `cache_to` runs inside it).

use super::exec::{NixStep, StepStore};
use super::output::{META_DIR, SPEC_PATH_INFO, SPEC_RECORDS, STEP_STORE_DIR};
use super::spec::{self, Work};
use crate::llb::file::FileOp;
use crate::llb::{Lines, State, merge};

/// What a build built in steps uploads from: the package step's store (`store`: the dependency
/// layers), the package's own paths (`own`: its sources and results), the dependencies'
/// `records` and the closure's `path_info` that register them, and the `paths` to upload (the
/// closure's and the dependencies').
pub struct Upload {
    pub store: State,
    pub own: [State; 2],
    pub records: String,
    pub path_info: String,
    pub paths: Vec<String>,
}

/// The cache-to step (`NIX_CACHE_TO`): `upload`'s paths signed and uploaded to `uri` from a
/// store made of its trees. Its output holds [`super::output::UPLOADED_FILE`]. Keyed by all of
/// that: BuildKit skips it when nothing is new.
pub fn cache_to(
    uri: &str,
    upload: &Upload,
    merge_op: bool,
    step: &NixStep,
    location: Option<Lines>,
) -> State {
    let Upload { store, own, records, path_info, paths } = upload;
    let store = match merge_op {
        true => merge::merge(
            &[store.clone(), own[0].clone(), own[1].clone()],
            "[internal] the store to upload",
            location,
        ),
        false => own
            .iter()
            .fold(FileOp::on(store), |op, tree| op.copy_contents(tree, STEP_STORE_DIR, STEP_STORE_DIR, -1))
            .at(location)
            .build("[internal] the store to upload"),
    };
    let work = Work::CacheTo(spec::CacheTo { uri: uri.to_string(), paths: paths.clone() });
    let files = [(SPEC_RECORDS, records.as_bytes()), (SPEC_PATH_INFO, path_info.as_bytes())];
    let mut exec = step.exec(false, StepStore::Own(&store), work, &files);
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build(&format!("[{}] nix copy --to {uri}", step.label)).state(&meta)
}
