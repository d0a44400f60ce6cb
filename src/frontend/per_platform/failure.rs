//! What a failed step's error says, in the user's terms: the step's own [`Failure`] (the
//! derivation that failed and the last lines of its log, Nix's error, a missing attribute and
//! the names the flake has), read back through the report step; what the builder lacks or the
//! entitlement it refused, from the step's exit code or BuildKit's words. BuildKit's own text
//! (which names nixfront's internal paths) stays in the progress log, out of the error.

use anyhow::anyhow;

use super::shared::Shared;
use super::target::PlatformPlan;
use crate::gateway::{BuildKitError, Gateway};
use crate::limits::MAX_MANIFEST_BYTES;
use crate::plan::output::{self, EXIT_CANNOT_RUN, EXIT_NO_NIX};
use crate::plan::spec::Failure;

/// Why a step failed, when nixfront knows better than the step's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// BuildKit refused `security.insecure`, which NIX_SANDBOX=true asks for.
    Insecure,
    /// The builder cannot run the target system's programs ([`EXIT_CANNOT_RUN`]).
    CannotRun,
    /// The builder image has no `nix` ([`EXIT_NO_NIX`]).
    NoNix,
}

impl Cause {
    /// `asked_insecure`: the build asked for the entitlement (NIX_SANDBOX=true); a message
    /// about it is BuildKit's refusal then, and is not read otherwise.
    fn of(error: &BuildKitError, asked_insecure: bool) -> Option<Cause> {
        match error.exit_code() {
            Some(EXIT_CANNOT_RUN) => return Some(Cause::CannotRun),
            Some(EXIT_NO_NIX) => return Some(Cause::NoNix),
            Some(_) => return None,
            None => {}
        }
        (asked_insecure && error.message.contains("security.insecure")).then_some(Cause::Insecure)
    }
}

/// A failed step's error: what the builder image or the builder lacks when that is the
/// cause, else what the step said failed, else `what` failed.
pub async fn step_failure(
    shared: &Shared<'_>,
    gw: &mut Gateway,
    e: anyhow::Error,
    plan: &PlatformPlan,
    what: String,
) -> anyhow::Error {
    let Some(buildkit) = e.downcast_ref::<BuildKitError>() else { return e.context(what) };
    let image = &shared.options.nix.image;
    match Cause::of(buildkit, shared.options.nix.sandbox) {
        Some(Cause::Insecure) => e.context(
            "NIX_SANDBOX=true runs Nix's sandbox in BuildKit's insecure mode, which this build may not \
             use: pass --allow security.insecure to docker buildx build (or buildctl), on a builder \
             that grants the entitlement (buildkitd --allow-insecure-entitlement security.insecure; \
             for dockerd, \"builder\": {\"Entitlements\": {\"security-insecure\": true}} in \
             daemon.json). Docker 20.10's docker build cannot grant it",
        ),
        Some(Cause::CannotRun) => anyhow!("{}", cannot_run(&shared.native, plan)),
        Some(Cause::NoNix) => anyhow!(
            "the builder image {image} has no `nix` on its PATH; set NIX_IMAGE to an image with Nix \
             (default {}), e.g. --build-arg NIX_IMAGE=nixos/nix (building {} for {})",
            crate::options::args::DEFAULT_NIX_IMAGE,
            plan.flake.written,
            plan.system
        ),
        None => match failures(shared, gw).await.first() {
            Some(failure) => anyhow!("{}", explain(failure, plan)),
            None => e.context(what),
        },
    }
}

/// The failures this build's steps left, read by the report step; none when that
/// cannot be read (the error then says what failed without them).
async fn failures(shared: &Shared<'_>, gw: &mut Gateway) -> Vec<Failure> {
    let report = crate::plan::exec::failure_report(&shared.frontend, &shared.build_id);
    let read = async {
        let solved = shared.solve(gw, &report).await?;
        let path = output::meta_path(output::FAILURES_FILE);
        gw.read_file(&solved, &path, MAX_MANIFEST_BYTES, "MAX_MANIFEST_BYTES").await
    };
    match read.await.map(|bytes| serde_json::from_slice::<Vec<Failure>>(&bytes)) {
        Ok(Ok(failures)) => failures,
        Ok(Err(e)) => {
            tracing::warn!("the failure report is not readable: {e}");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!("could not read what the failed step said: {e:#}");
            Vec::new()
        }
    }
}

/// The error a step's failure makes, in the user's terms: what was being built, what failed,
/// the log's last lines, and where the whole log is.
fn explain(failure: &Failure, plan: &PlatformPlan) -> String {
    let (flake, system) = (&plan.flake.written, &plan.system);
    let mut text = match (&failure.derivation, &failure.missing_attribute) {
        (Some(drv), _) => {
            format!("`nix build {flake}` failed (for {system}): the derivation {drv} failed to build")
        }
        (None, Some(attribute)) => {
            let mut text = format!("the flake has no attribute `{attribute}` for {system} (FLAKE {flake})");
            if !failure.names.is_empty() {
                text.push_str(&format!("; its packages.{system} are: {}", failure.names.join(", ")));
                let nearest = failure
                    .names
                    .iter()
                    .map(|n| (strsim::damerau_levenshtein(n, attribute), n))
                    .filter(|(d, n)| *d <= 2.max(n.len() / 3))
                    .min();
                if let Some((_, name)) = nearest {
                    text.push_str(&format!(" (did you mean `{name}`?)"));
                }
            }
            return text;
        }
        (None, None) => match failure.step.as_str() {
            "evaluate" => format!("evaluating {flake} failed (for {system})"),
            "fetch" => "fetching the inputs flake.lock locks failed".to_string(),
            "realise" => format!("building the inputs of {flake} failed (for {system})"),
            "packages" => format!("listing the packages of {flake} failed (for {system})"),
            "cache-to" => format!("uploading what {flake} built to NIX_CACHE_TO failed (for {system})"),
            _ => format!("`nix build {flake}` failed (for {system}): {}", failure.summary),
        },
    };
    if failure.log.is_empty() && failure.derivation.is_none() && !text.ends_with(&failure.summary) {
        // What nixfront itself found (a planted lock file, a path the store lacks).
        text.push_str(&format!(": {}", failure.summary));
    }
    if let Some(hint) = &failure.hint {
        text.push_str(&format!("; {hint}"));
    }
    if !failure.log.is_empty() {
        let said = if failure.derivation.is_some() { "the end of its log" } else { "Nix said" };
        text.push_str(&format!("; {said}:\n"));
        for line in &failure.log {
            text.push_str(&format!("  {}\n", line.trim_end()));
        }
        text.push_str("(the whole log: build again with --progress=plain)");
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::SourceFile;
    use crate::options::Options;

    fn error(message: &str) -> BuildKitError {
        BuildKitError { message: message.to_string(), details: Vec::new() }
    }

    fn plan() -> PlatformPlan {
        let options = Options::from_pairs(Vec::<String>::new()).unwrap();
        let file = SourceFile { filename: "Dockerfile".into(), data: b"FLAKE .#broken\n".to_vec() };
        let amd64 = crate::llb::platform("linux", "amd64", "");
        PlatformPlan::new(&options, &file, &amd64, &amd64).unwrap()
    }

    #[test]
    fn causes_come_from_the_steps_exit_codes_and_buildkit_s_words_only_where_asked() {
        let exit = |code: i32| {
            error(&format!(
                "process \"nixfront step package\" did not complete successfully: exit code: {code}"
            ))
        };
        assert_eq!(Cause::of(&exit(EXIT_CANNOT_RUN), false), Some(Cause::CannotRun));
        assert_eq!(Cause::of(&exit(EXIT_NO_NIX), false), Some(Cause::NoNix));
        assert_eq!(Cause::of(&exit(1), true), None, "Nix's own failure: the step says why");
        let refused = error(
            "failed to solve: granting entitlement security.insecure is not allowed by build daemon configuration",
        );
        assert_eq!(Cause::of(&refused, true), Some(Cause::Insecure));
        assert_eq!(Cause::of(&refused, false), None, "a build that asked for no entitlement");
    }

    #[test]
    fn a_failed_derivation_is_named_with_its_log_in_the_error() {
        let failure = Failure {
            step: "package".into(),
            derivation: Some("broken-0.0".into()),
            log: vec!["broken> this derivation always fails".into()],
            ..Default::default()
        };
        let text = explain(&failure, &plan());
        assert!(
            text.starts_with("`nix build .#broken` failed (for x86_64-linux): the derivation broken-0.0"),
            "{text}"
        );
        assert!(text.contains("\n  broken> this derivation always fails\n"), "{text}");
        assert!(text.contains("--progress=plain") && !text.contains("/nixfront/"), "{text}");
    }

    #[test]
    fn what_nixfront_itself_found_is_said_when_nix_said_nothing() {
        let failure = Failure {
            step: "realise".into(),
            summary:
                "/nix/store/x.lock exists before Nix ran and is not root's alone; refusing to build over it"
                    .into(),
            ..Default::default()
        };
        let text = explain(&failure, &plan());
        assert!(
            text.starts_with("building the inputs of .#broken failed (for x86_64-linux): /nix/store/x.lock"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_attribute_names_what_the_flake_has() {
        let failure = Failure {
            step: "evaluate".into(),
            missing_attribute: Some("helo".into()),
            names: vec!["default".into(), "hello".into()],
            ..Default::default()
        };
        let text = explain(&failure, &plan());
        assert!(text.contains("no attribute `helo`") && text.contains("default, hello"), "{text}");
        assert!(text.contains("did you mean `hello`?"), "{text}");
        let far = Failure { missing_attribute: Some("nosuchattr".into()), ..failure };
        assert!(!explain(&far, &plan()).contains("did you mean"));
    }
}
