//! What a failed step's error says: the entitlement, what the builder image lacks, or a
//! system the builder cannot run. The exit codes are the steps' own (plan/output.rs); BuildKit
//! gives none for an entitlement it refuses, whose message is read then, and only when the
//! build asked for one; a step that could not start (exit code 1, runc's reason only in the
//! log) is explained by looking for /bin/sh in the builder image.

use super::*;

/// Why a step failed, when nixfront knows better than the step's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// BuildKit refused `security.insecure`, which NIX_SANDBOX=true asks for.
    Insecure,
    /// The builder cannot run the target system's programs ([`EXIT_CANNOT_RUN`]).
    CannotRun,
    /// The builder image has no `nix` ([`EXIT_NO_NIX`]).
    NoNix,
    /// The builder image has no `/bin/sh`, which runs the steps' scripts.
    NoShell,
}

/// The exit code BuildKit gives a step whose process could not start (no `/bin/sh`); a
/// failing Nix gives it too.
const EXIT_NOT_STARTED: i32 = 1;

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

impl Shared<'_> {
    /// A failed step's error: what the builder image or the builder lacks when that is the
    /// cause, else `what` failed.
    pub(super) async fn step_failure(
        &self,
        gw: &mut Gateway,
        e: anyhow::Error,
        plan: &PlatformPlan,
        what: String,
    ) -> anyhow::Error {
        let Some(buildkit) = e.downcast_ref::<BuildKitError>() else { return e.context(what) };
        let cause = match Cause::of(buildkit, self.options.nix.sandbox) {
            None if buildkit.exit_code() == Some(EXIT_NOT_STARTED) && !self.builder_has_shell(gw).await => {
                Some(Cause::NoShell)
            }
            cause => cause,
        };
        let image = &self.options.nix.image;
        let lacks = |what: &str| {
            anyhow!(
                "the builder image {image} has {what}; set NIX_IMAGE to an image with Nix and a shell \
                 (default {}), e.g. --build-arg NIX_IMAGE=nixos/nix (building {} for {})",
                crate::options::args::DEFAULT_NIX_IMAGE,
                plan.flake.written,
                plan.system
            )
        };
        match cause {
            Some(Cause::Insecure) => e.context(
                "NIX_SANDBOX=true runs Nix's sandbox in BuildKit's insecure mode, which this build may not \
                 use: pass --allow security.insecure to docker buildx build (or buildctl), on a builder \
                 that grants the entitlement (buildkitd --allow-insecure-entitlement security.insecure; \
                 for dockerd, \"builder\": {\"Entitlements\": {\"security-insecure\": true}} in \
                 daemon.json). Docker 20.10's docker build cannot grant it",
            ),
            Some(Cause::CannotRun) => e.context(cannot_run(&self.native, plan)),
            Some(Cause::NoNix) => e.context(lacks("no `nix` on its PATH")),
            Some(Cause::NoShell) => e.context(lacks("no /bin/sh, which runs nixfront's build step")),
            None => e.context(what),
        }
    }

    /// Whether the builder image has a `/bin/sh` (followed where it is a link); `true` when
    /// that cannot be read, so that only a sure lack is reported.
    async fn builder_has_shell(&self, gw: &mut Gateway) -> bool {
        let image =
            crate::llb::source::pinned_image(&self.builder.reference, Some(self.build_platform.clone()));
        let Ok(root) = self.solve(gw, &image).await else { return true };
        match gw.read_file_head(&root, "/bin/sh", 1).await {
            Ok(_) => true,
            Err(e) => {
                let text = format!("{e:#}");
                info!("the builder image's /bin/sh: {text}");
                !(text.contains("no such file") || text.contains("not found"))
            }
        }
    }
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

    fn error(message: &str) -> BuildKitError {
        BuildKitError { message: message.to_string(), details: Vec::new() }
    }

    #[test]
    fn causes_come_from_the_steps_exit_codes_and_buildkit_s_words_only_where_asked() {
        let exit = |code: i32| {
            error(&format!(
                "process \"/bin/sh /nixfront/bin/build.sh\" did not complete successfully: exit code: {code}"
            ))
        };
        assert_eq!(Cause::of(&exit(EXIT_CANNOT_RUN), false), Some(Cause::CannotRun));
        assert_eq!(Cause::of(&exit(EXIT_NO_NIX), false), Some(Cause::NoNix));
        assert_eq!(Cause::of(&exit(1), true), None, "Nix's own failure: its log says why");
        let refused = error(
            "failed to solve: granting entitlement security.insecure is not allowed by build daemon configuration",
        );
        assert_eq!(Cause::of(&refused, true), Some(Cause::Insecure));
        assert_eq!(Cause::of(&refused, false), None, "a build that asked for no entitlement");
        assert_eq!(Cause::of(&exit(EXIT_NOT_STARTED), false), None, "looked for in the builder image");
    }
}
