//! How a build gets what its steps tell: a step solved and its metadata files read (solves
//! are lazy: the step runs, and may fail, when its files are read), or its answer taken from
//! the memo under the key the step comes with; and the notes the user sees as step names (the
//! summary, a fallback).

use anyhow::Result;
use tracing::info;

use super::failure;
use super::shared::Shared;
use super::target::PlatformPlan;
use crate::closure::Closure;
use crate::frontend::at_lines;
use crate::gateway::{Gateway, RefId};
use crate::limits::MAX_MANIFEST_BYTES;
use crate::llb::State;
use crate::memo::Memo;
use crate::plan::{self, Stage, output};
use crate::summary::Summary;

/// A step's answer: from the memo under the step's key, when it holds one `parse` accepts,
/// else `files` of the step's metadata output, read (the step runs), made into the answer
/// and its reading by `read`. Either way it is recorded in `memo`, for the image's inline
/// cache.
#[allow(clippy::too_many_arguments)]
pub async fn answer<A, T, const N: usize>(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    (stage, what): (Stage, &str),
    step: &plan::Keyed,
    files: [&str; N],
    parse: impl Fn(&A) -> Result<T>,
    read: impl AsyncFnOnce(&mut Gateway, [Vec<u8>; N]) -> Result<(T, A)>,
    memo: &mut Memo,
) -> Result<(T, A)>
where
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let (parsed, answer) = match shared.memo.answer(&step.memo_key, what, &parse) {
        Some(found) => found,
        None => {
            let files = step_meta(shared, gw, plan, stage, &step.meta, files).await?;
            read(gw, files).await?
        }
    };
    memo.record(step.memo_key.clone(), &answer);
    Ok((parsed, answer))
}

/// Shows the image's summary (crate::summary) as the name of a step that writes it to a
/// file nothing uses; a failure to show it is logged, never the build's.
pub async fn show_summary(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    layers: usize,
    closure: &Closure,
) -> Summary {
    let platform = crate::platform::format(&plan.target);
    let summary = Summary::new(&platform, layers, closure, shared.previous(plan));
    let text = summary.line();
    info!("{text}");
    note(shared, gw, &text).await;
    summary
}

/// Shows `text` to the user as the name of a step (BuildKit shows no other message of a
/// frontend's in every progress mode); a failure to show it is logged, never the build's.
pub async fn note(shared: &Shared<'_>, gw: &mut Gateway, text: &str) {
    let note = crate::llb::file::FileOp::on(&State::scratch())
        .mkfile("/note.txt", 0o444, text.as_bytes(), output::FIXED_TIME_NS)
        .build(text);
    // Solves are lazy: reading the file makes the step run, and so show, on every BuildKit.
    let shown = match shared.solve(gw, &note).await {
        Ok(solved) => gw.read_file(&solved, "/note.txt", text.len(), "the note's length").await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = shown {
        tracing::warn!("could not show {text:?}: {e:#}");
    }
}

/// Solves a Nix step of `plan` and reads `files` of its metadata output. Solves are lazy:
/// the step runs, and may fail, in either call. A failure says what failed, points at the
/// FLAKE line, and names what the builder lacks when that is the cause.
pub async fn step_meta<const N: usize>(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    stage: Stage,
    meta: &State,
    files: [&str; N],
) -> Result<[Vec<u8>; N]> {
    let (flake, system) = (&plan.flake.written, &plan.system);
    let what = match stage {
        Stage::Fetch => format!("fetching the locked inputs of {flake} failed; Nix's log is above"),
        Stage::Evaluate => format!("evaluating {flake} failed (for {system}); Nix's error is above"),
        Stage::Realise => {
            format!("building the inputs of {flake} failed (for {system}); their log is above")
        }
        _ => format!("`nix build {flake}` failed (for {system}); its log is above"),
    };
    read_step(shared, gw, plan, meta, files, what).await
}

/// Solves a step of `plan` and reads `files` of its metadata output `meta`; a failure
/// says `what` failed (or what the builder lacks: [`Shared::step_failure`]), at the FLAKE
/// line.
pub async fn read_step<const N: usize>(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    meta: &State,
    files: [&str; N],
    what: String,
) -> Result<[Vec<u8>; N]> {
    let read = async {
        let solved = shared.solve(gw, meta).await?;
        let mut read: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
        for (bytes, file) in read.iter_mut().zip(files) {
            let path = output::meta_path(file);
            *bytes = gw.read_file(&solved, &path, MAX_MANIFEST_BYTES, "MAX_MANIFEST_BYTES").await?;
        }
        Ok(read)
    };
    let read = match read.await {
        Ok(read) => Ok(read),
        Err(e) => Err(failure::step_failure(shared, gw, e, plan, what).await),
    };
    at_lines(read, plan.flake_lines)
}

/// Solves an output of a step that has run: its files can be read.
pub async fn solve_output(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    plan: &PlatformPlan,
    state: &State,
) -> Result<RefId> {
    at_lines(shared.solve(gw, state).await, plan.flake_lines)
}
