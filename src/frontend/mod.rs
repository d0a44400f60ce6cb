//! One frontend run, top to bottom: connect, read the complete [`Options`], read the user's
//! file, answer the request (one subrequest, or the build: [`per_platform`] once per platform, the
//! same way for each), and return the [`result`] or an error.
//!
//! Every failure ends in a `Return`: an error a person can act on, carrying the lines of the
//! user's file it is about (buildx highlights them); a panic becomes an error that says it is
//! a bug. The process exits non-zero after an error; logs go to stderr.

pub mod base;
pub mod itself;
pub mod per_platform;
pub mod result;
pub mod root;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use bollard_buildkit_proto::pb;
use tracing::{error, info};

use crate::context;
use crate::gateway::{
    BuildKitError, Capabilities, ErrorDetail, FrontendResult, Gateway, SourceWarning, caps,
};
use crate::llb::definition::SourceFile;
use crate::nixfile::{self, FileError, Lines};
use crate::options::{Options, Request, args};
use crate::subrequests;
use per_platform::{PlatformPlan, Shared};

/// Runs the frontend over stdio; the process exit code.
pub async fn run() -> i32 {
    let started = Instant::now();
    install_panic_hook();
    let gateway = match Gateway::connect_stdio().await {
        Ok(g) => g,
        Err(e) => {
            error!("{e:#}");
            return 1;
        }
    };
    let mut returner = gateway.returner();
    let array_refs = gateway.caps.supports(caps::PROTO_REF_ARRAY);
    let file: Arc<Mutex<Option<SourceFile>>> = Arc::default();
    let outcome = catching_panics(serve(gateway, file.clone())).await;
    let code = match outcome {
        Ok(result) => match returner.return_result(result, array_refs).await {
            Ok(()) => 0,
            Err(e) => {
                error!("{e:#}");
                1
            }
        },
        Err(e) => {
            let file = file.lock().ok().and_then(|f| f.clone());
            let (message, details) = describe_failure(&e, file.as_ref());
            error!("{message}");
            if let Err(e) = returner.return_error(&message, details).await {
                error!("could not return the error to BuildKit: {e:#}");
            }
            1
        }
    };
    info!(elapsed_ms = started.elapsed().as_millis() as u64, code, "nixfront finished");
    code
}

/// Everything after connecting: the answer to the client's request.
async fn serve(mut gw: Gateway, file_slot: Arc<Mutex<Option<SourceFile>>>) -> Result<FrontendResult> {
    let started = Instant::now();
    let options = Options::from_env()?;
    gw.cache_imports = options.cache_imports.clone();
    if options.request == Request::Describe {
        let (json, text) = subrequests::describe();
        return Ok(result::answer(&json, text, subrequests::VERSION));
    }
    let file = context::read_user_file(&mut gw, &options).await?;
    if let Ok(mut slot) = file_slot.lock() {
        *slot = Some(file.source_for_errors());
    }
    // The builder runs natively on the build platform; Nix builds for each target.
    let build_platform = gw
        .caps
        .worker_platforms
        .first()
        .cloned()
        .unwrap_or_else(|| crate::llb::platform("linux", "amd64", ""));
    let targets = target_platforms(&gw.caps, &options, &build_platform)?;

    let parsed = nixfile::parse(
        &options.filename,
        &file.source.data,
        &per_platform::args_for(&options, &build_platform, &targets[0]),
    );
    if options.request == Request::Lint {
        let (json, text) = subrequests::lint(&options.filename, &parsed, &file.source.data);
        return Ok(result::answer(&json, text, subrequests::VERSION));
    }
    send_warnings(&mut gw, &file, &parsed.warnings).await;
    let declared: Vec<&str> = match &parsed.result {
        Ok(nf) => nf.args.iter().map(|a| a.name.as_str()).collect(),
        Err(_) => Vec::new(),
    };
    parsed.result.as_ref().map_err(Clone::clone)?;
    args::check_owned(&options.build_args, &declared)?;

    let plans = targets
        .iter()
        .map(|target| PlatformPlan::new(&options, &file.source, &build_platform, target))
        .collect::<Result<Vec<_>>>()?;
    let mut plans = plans;
    if plans.len() > 1 {
        for plan in &mut plans {
            plan.label = format!("{} nixfront", crate::platform::format(&plan.target));
        }
    }
    if options.request == Request::Outline {
        let plan = &plans[0];
        let (json, text) =
            subrequests::outline(&plan.nixfile, &plan.flake.written, &file.source.data, &options.build_args);
        return Ok(result::answer(&json, text, subrequests::VERSION));
    }

    let shared = Shared::resolve(&mut gw, &options, &file, &build_platform, &plans).await?;
    if options.request == Request::Targets {
        let packages = per_platform::packages(&shared, &mut gw, &plans[0]).await?;
        let current = plans[0].flake.written.split_once('#').map(|(_, f)| f).unwrap_or("");
        let (json, text) = subrequests::targets(&packages, current, &file.source.data);
        return Ok(result::answer(&json, text, subrequests::VERSION));
    }
    let mut images = Vec::with_capacity(plans.len());
    for plan in &plans {
        images.push(per_platform::image(&shared, &mut gw, plan).await?);
    }
    let total = started.elapsed();
    let waiting = gw.time_in_buildkit();
    info!(
        total_ms = total.as_millis() as u64,
        buildkit_ms = waiting.as_millis() as u64,
        "frontend time outside BuildKit's answers: {} ms",
        total.saturating_sub(waiting).as_millis()
    );
    Ok(result::images(images))
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
    for t in &options.platforms {
        crate::platform::nix_system(t)?;
    }
    if options.platforms.len() > 1 && !caps.supports(caps::MERGE_OP) {
        let list: Vec<String> = options.platforms.iter().map(crate::platform::format).collect();
        anyhow::bail!(
            "--platform {}: this BuildKit predates 0.10 (Docker 20.10 ships 0.8) and its image exporter cannot \
             hold several platforms in one image; build one --platform at a time, or use docker buildx with \
             BuildKit 0.10 or newer",
            list.join(",")
        );
    }
    Ok(options.platforms.clone())
}

/// Warnings about the file (the parser's, and what a build finds about the flake), shown by
/// BuildKit where it supports them (elsewhere the parser's stay in the `--check` / lint answer
/// and the build's in its evaluation step's log). One that cannot be sent is logged, never
/// fatal.
pub(crate) async fn send_warnings(gw: &mut Gateway, file: &context::UserFile, warnings: &[nixfile::Warning]) {
    if !gw.caps.supports(caps::GATEWAY_WARNINGS) {
        return;
    }
    for w in warnings {
        let short = format!("{}: {} (line {})", w.rule.name, w.detail, w.lines.start);
        // No URL: nixfront has no site buildx could open; the rule's text is the detail.
        let explanation = w.rule.explanation();
        let warning = SourceWarning {
            source: &file.source,
            lines: w.lines,
            short: &short,
            detail: &explanation,
            url: "",
        };
        if let Err(e) = gw.warn(&file.vertex, warning).await {
            tracing::warn!("could not send a warning to BuildKit: {e:#}");
        }
    }
}

/// Warnings found while building, as the file's checks (`# check=`) want them: skipped rules
/// left out, the rest sent; with `error=true` the first one fails the build at its lines.
pub(crate) async fn report_warnings(
    gw: &mut Gateway,
    file: &context::UserFile,
    check: &nixfile::check::CheckConfig,
    warnings: &[nixfile::Warning],
) -> anyhow::Result<()> {
    let reported = check.filter(warnings.to_vec());
    send_warnings(gw, file, &reported).await;
    match check.failure(&reported) {
        Some((first, message)) => {
            Err(nixfile::FileError::at(&file.source.filename, first.lines, Some("FLAKE"), message).into())
        }
        None => Ok(()),
    }
}

/// Lines of the user's file that a step's failure is about, attached as context to its error
/// when BuildKit did not say.
#[derive(Debug, Clone, Copy)]
pub struct AtLines(pub Lines);

/// Says nothing in the message: the lines go to the error's source details.
impl std::fmt::Display for AtLines {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// The message and typed details for an error: the chain of causes as text, and the lines of
/// the user's file to highlight, from nixfront's own check or from BuildKit's failed step.
fn describe_failure(e: &anyhow::Error, file: Option<&SourceFile>) -> (String, Vec<ErrorDetail>) {
    let message =
        e.chain().map(|cause| cause.to_string()).filter(|m| !m.is_empty()).collect::<Vec<_>>().join(": ");
    let mut details = Vec::new();
    let mut has_source = false;
    // Of BuildKit's details only the source lines are kept: the others (the failed vertex,
    // its exit code, stacks) make clients print BuildKit's message instead of this one.
    if let Some(buildkit) = e.downcast_ref::<BuildKitError>() {
        has_source = buildkit.has_source();
        details.extend(buildkit.details.iter().filter(|d| d.is_source()).cloned());
    }
    if !has_source && let Some(file) = file {
        let lines = e
            .downcast_ref::<FileError>()
            .map(|f| f.lines)
            .or_else(|| e.downcast_ref::<AtLines>().map(|a| a.0));
        if let Some(lines) = lines.filter(|l| l.start > 0) {
            details.push(ErrorDetail::source(file, lines));
        }
    }
    (message, details)
}

/// Runs `work` as its own task, so that a panic in it becomes an error (a bug report) while
/// the caller can still return it to BuildKit.
async fn catching_panics<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => Err(anyhow!("{}", bug_report(&panic_text(e.into_panic())))),
        Err(e) => Err(anyhow!("the build was cancelled: {e}")),
    }
}

/// Where the last panic happened, as the panic hook saw it.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(info.to_string());
        }
        default(info);
    }));
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let recorded = LAST_PANIC.lock().ok().and_then(|mut l| l.take());
    recorded.unwrap_or_else(|| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

fn bug_report(panic: &str) -> String {
    format!(
        "nixfront hit a bug and stopped ({panic}). This is not a problem in your files: please report it \
         to nixfront's maintainers with this message, your Dockerfile and the output of the same build with \
         --progress=plain"
    )
}

/// Fails a step's error with the lines it came from, unless the error already carries them.
pub fn at_lines<T>(result: Result<T>, lines: Lines) -> Result<T> {
    result.context(AtLines(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(platforms: &str) -> Options {
        Options::from_pairs([format!("platform={platforms}")]).unwrap()
    }

    #[test]
    fn several_platforms_need_a_buildkit_with_mergeop() {
        let build = crate::llb::platform("linux", "amd64", "");
        let old = Capabilities::default();
        let new = Capabilities::with(&[caps::MERGE_OP]);
        let e = target_platforms(&old, &options("linux/amd64,linux/386"), &build).unwrap_err().to_string();
        assert!(e.contains("predates 0.10") && e.contains("one --platform at a time"), "{e}");
        assert_eq!(target_platforms(&new, &options("linux/amd64,linux/386"), &build).unwrap().len(), 2);
        assert_eq!(target_platforms(&old, &options("linux/386"), &build).unwrap()[0].architecture, "386");
        assert_eq!(target_platforms(&old, &Options::from_pairs([]).unwrap(), &build).unwrap(), [build]);
        let e = target_platforms(&new, &options("linux/sparc"), &crate::llb::platform("linux", "amd64", ""))
            .unwrap_err();
        assert!(e.to_string().contains("no Nix system"), "{e}");
    }

    fn file() -> SourceFile {
        SourceFile { filename: "Dockerfile".into(), data: b"FLAKE .\nCMD x\n".to_vec() }
    }

    #[test]
    fn a_file_error_carries_its_lines_as_source() {
        let e =
            anyhow::Error::from(FileError::at("Dockerfile", Lines { start: 2, end: 3 }, Some("CMD"), "bad"));
        let (message, details) = describe_failure(&e, Some(&file()));
        assert_eq!(message, "Dockerfile:2: CMD: bad");
        assert_eq!(details.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&details[0].0.value).unwrap();
        assert_eq!(
            (v["ranges"][0]["start"]["line"].as_i64(), v["ranges"][0]["end"]["line"].as_i64()),
            (Some(2), Some(3))
        );
    }

    #[test]
    fn a_step_failure_points_at_its_lines_unless_buildkit_did() {
        let step = BuildKitError { message: "exit code: 1".into(), details: Vec::new() };
        let e = at_lines::<()>(Err(anyhow::Error::from(step).context("`nix build .` failed")), Lines::one(1))
            .unwrap_err();
        let (message, details) = describe_failure(&e, Some(&file()));
        assert_eq!(message, "`nix build .` failed: exit code: 1", "the location is not part of the text");
        assert_eq!(details.len(), 1);
        let located = ErrorDetail::source(&file(), Lines::one(4));
        let step = BuildKitError { message: "exit code: 1".into(), details: vec![located.clone()] };
        let e = at_lines::<()>(Err(step.into()), Lines::one(1)).unwrap_err();
        assert_eq!(describe_failure(&e, Some(&file())).1, vec![located], "BuildKit's own source is kept");
        let (_, details) = describe_failure(&anyhow!("plain"), Some(&file()));
        assert!(details.is_empty());
    }

    #[test]
    fn a_panic_is_reported_as_a_bug() {
        let text = bug_report("panicked at src/x.rs:1:1: boom");
        assert!(text.contains("bug") && text.contains("src/x.rs") && text.contains("report it"), "{text}");
        assert_eq!(panic_text(Box::new("plain")), "plain");
    }

    #[test]
    fn a_panicking_build_becomes_an_error_the_caller_returns() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome: Result<()> = runtime.block_on(catching_panics(async {
            let empty: Vec<u8> = Vec::new();
            let _ = empty[1]; // a bug
            Ok(())
        }));
        let message = outcome.unwrap_err().to_string();
        assert!(
            message.contains("nixfront hit a bug") && message.contains("index out of bounds"),
            "{message}"
        );
        let fine: Result<u8> = runtime.block_on(catching_panics(async { Ok(7) }));
        assert_eq!(fine.unwrap(), 7);
    }
}
