//! What a failed step's error says: the entitlement, what the builder image lacks, or a
//! system the builder cannot run, read from the step's exit code where it has one.

use super::*;

impl Shared<'_> {
    /// A failed step's error: what the builder image or the builder lacks when that is the
    /// cause, else `what` failed.
    pub(super) fn step_failure(&self, e: anyhow::Error, plan: &PlatformPlan, what: String) -> anyhow::Error {
        let Some(buildkit) = e.downcast_ref::<BuildKitError>() else { return e.context(what) };
        if buildkit.message.contains("security.insecure") {
            return e.context(
                "NIX_SANDBOX=true runs Nix's sandbox in BuildKit's insecure mode, which this build may not \
                 use: pass --allow security.insecure to docker buildx build (or buildctl), on a builder \
                 that grants the entitlement (buildkitd --allow-insecure-entitlement security.insecure; \
                 for dockerd, \"builder\": {\"Entitlements\": {\"security-insecure\": true}} in \
                 daemon.json). Docker 20.10's docker build cannot grant it",
            );
        }
        if buildkit.exit_code() == Some(EXIT_CANNOT_RUN) {
            return e.context(cannot_run(&self.native, plan));
        }
        let image = &self.options.nix.image;
        let lacks = if buildkit.exit_code() == Some(EXIT_NO_NIX) {
            Some("no `nix` on its PATH")
        } else if buildkit.message.contains("/bin/sh")
            && (buildkit.message.contains("no such file") || buildkit.message.contains("not found"))
        {
            Some("no /bin/sh, which runs nixfront's build step")
        } else {
            None
        };
        match lacks {
            Some(what) => e.context(anyhow!(
                "the builder image {image} has {what}; set NIX_IMAGE to an image with Nix and a shell \
                 (default {}), e.g. --build-arg NIX_IMAGE=nixos/nix (building {} for {})",
                crate::options::args::DEFAULT_NIX_IMAGE,
                plan.flake.written,
                plan.system
            )),
            None => e.context(what),
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
