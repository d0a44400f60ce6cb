//! The contract between nixfront and its build steps: where a step finds its inputs and
//! writes its outputs, and what its exit codes mean. The frontend mounts and reads every path
//! named here, and the program inside the step ([`crate::step`], the same binary) writes them:
//! each fact is written here once, for both sides.

/// Where the build context is mounted (read-only) in a step.
pub const CONTEXT_DIR: &str = "/nixfront/src";
/// Where the frontend's own image is mounted (read-only): the step runs its binary,
/// [`SELF_BINARY`] there, as `nixfront step <name>`.
pub const SELF_DIR: &str = "/nixfront/self";
/// The binary's path in the frontend's image (frontend.Dockerfile puts it there).
pub const SELF_BINARY: &str = "/nixfront";
/// The build's failure box: a cache mount shared by every build ([`FAILURES_CACHE_ID`]; root's
/// alone), where a failing step leaves its [`super::spec::Failure`] under the build's id, for
/// the report step to read back.
pub const FAILURES_DIR: &str = "/nixfront/failures";
pub const FAILURES_CACHE_ID: &str = "nixfront-failures-v1";
/// The report step's answer in [`META_DIR`]: the failures, a JSON list.
pub const FAILURES_FILE: &str = "failures.json";
/// How the build's id reaches every step: as a host name in NO_PROXY (`<id>` then this),
/// which no network lookup ever sees and BuildKit keeps out of the cache key.
pub const BUILD_ID_SUFFIX: &str = ".build.nixfront.invalid";
/// The one-step build's output: the closure, each path as its own tree
/// `<base>/nix/store/<base>` (see [`output_tree`]), and [`EXTRAS_TREE`].
pub const OUT_DIR: &str = "/nixfront/out";
/// The package step's outputs, each laid out as an image layer (`nix/store/<base>`): the
/// package's own paths of its closure, its input sources in the closure, and what nixfront
/// adds to the image (`tmp`, mode 1777).
pub const RESULTS_DIR: &str = "/nixfront/out/results";
pub const SOURCES_DIR: &str = "/nixfront/out/sources";
pub const EXTRAS_DIR: &str = "/nixfront/out/extras";
/// The output holding a step's metadata files (below).
pub const META_DIR: &str = "/nixfront/meta";
/// Where a step finds the spec nixfront wrote for it (files named below), read-only.
pub const SPEC_DIR: &str = "/nixfront/spec";
/// The layer step's outputs: `<i>/nix/store/<base>`, one output (one layer) per group.
pub const LAYERS_DIR: &str = "/nixfront/layers";
/// Where the layer step finds the dependency step's output, read-only.
pub const DEPS_META_DIR: &str = "/nixfront/deps-meta";
/// The fetch step's output (the locked inputs: a `file://` binary cache and their paths),
/// read-only in the evaluation step.
pub const FETCHED_DIR: &str = "/nixfront/fetched";
/// The evaluation step's `file://` binary cache of the input derivations' closure (all of it
/// content-addressed), read-only in the dependency and layer steps.
pub const DRVS_DIR: &str = "/nixfront/drvs";
/// The evaluation step's tree `nix/store/<base>` of what the package step needs besides the
/// dependencies (the derivation's closure: its derivations and sources) and their
/// registrations (`db`), read-only there.
pub const PKG_DIR: &str = "/nixfront/pkg";
/// Where the evaluation step finds the directories that replace flake inputs
/// (`--build-context NAME=DIR`): `<NAME>`, read-only.
pub const OVERRIDES_DIR: &str = "/nixfront/override";
/// Where the package step's own store has the dependencies: the dependency layers (with the
/// builder image's own store when Nix lives there), merged or stacked, mounted writable as the
/// store of that step alone.
pub const STEP_STORE_DIR: &str = "/nix/store";
/// The image-root step's output: the entries it makes (links, directories, files), on top of
/// the package's own paths when the layer holds those too.
pub const ROOT_OUT_DIR: &str = "/nixfront/root";
/// Where the image-root step finds the package's own paths (read-only), which it copies into
/// its output so that they and the image root are one layer (an edit changes both).
pub const ROOT_SEED_DIR: &str = "/nixfront/seed";
/// What the steps learnt of the substituters' reachability (a cache mount shared by every
/// build, [`REACH_CACHE_ID`]; root's alone): the first step of a build that finds one
/// unreachable spares the build's other steps the wait (see `drop_unreachable_substituters`).
pub const REACH_DIR: &str = "/nixfront/reach";
pub const REACH_CACHE_ID: &str = "nixfront-substituter-reach-v1";
/// How long, in seconds, a step trusts what another step learnt of a substituter.
pub const REACH_TTL_SECONDS: u64 = 300;
/// A scratch directory for temporary files (TMPDIR), whatever the builder image has.
pub const TMP_DIR: &str = "/nixfront/tmp";
/// A build's manifest in [`META_DIR`]: results and path-info of the runtime closure (the
/// one-step build adds the package and flake metadata).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The evaluation step's plan in [`META_DIR`]: the derivations, the outputs, the source
/// closure, the package and flake metadata.
pub const PLAN_FILE: &str = "plan.json";
/// The dependency step's path-info of the dependencies' closure in [`META_DIR`], and their
/// registrations (one `nix-store --dump-db` stream), which the package step registers.
pub const DEPS_INFO_FILE: &str = "deps.json";
pub const DEPS_DB_FILE: &str = "deps.db";
/// The package listing in [`META_DIR`]: `{"name": "description", ...}`.
pub const PACKAGES_FILE: &str = "packages.json";
/// What the root packages hold (`INDEX d|f ./REL` lines), in [`META_DIR`] of the package
/// step and the one-step build: what [`crate::layers::roots`] links into the image root.
pub const ROOTS_FILE: &str = "roots";
/// The tree in [`OUT_DIR`] holding what nixfront adds to the image's root (`tmp`, mode 1777).
pub const EXTRAS_TREE: &str = ".nixfront-root";
/// A file of the package step's spec directory beside its [`super::spec::SPEC_FILE`]: the
/// dependencies' registrations (one `nix-store --dump-db` stream), a whole file of its own.
pub const SPEC_RECORDS: &str = "records";
/// A file of the cache-to step's spec directory: the image closure's path-info (the package
/// step's manifest's), from which it registers the paths the dependencies' records lack.
pub const SPEC_PATH_INFO: &str = "path-info.json";
/// What the cache-to step says it uploaded, in [`META_DIR`]: one line.
pub const UPLOADED_FILE: &str = "uploaded";

/// How deep the package step lists the root packages' trees (`bin/x` is 2): where two
/// packages' directories meet deeper than this, layers::roots cannot merge them.
pub const LISTING_DEPTH: usize = 5;

/// The time given to everything nixfront writes: 1 s after the epoch, as Nix gives store
/// files, in nanoseconds.
pub const FIXED_TIME_NS: i64 = 1_000_000_000;

/// The versions of the answers the steps write (`manifestVersion`, `planVersion`), which the
/// frontend checks on reading: the package step's manifest (results, path-info, the
/// `laidOut` partition), the one-step build's (results, package and flake metadata,
/// path-info), the evaluation's plan.
pub const STEP_MANIFEST_VERSION: u64 = 4;
pub const SINGLE_MANIFEST_VERSION: u64 = 1;
pub const PLAN_VERSION: u64 = 2;

/// A step's exit code when the builder image has no `nix` on its PATH.
pub const EXIT_NO_NIX: i32 = 90;

/// A step's exit code when the builder cannot run the target system's programs (its probe
/// failed: no binfmt emulation) and Nix would have to build something for that system locally.
pub const EXIT_CANNOT_RUN: i32 = 91;

/// The name of dependency layer `i`: its directory under [`LAYERS_DIR`] and [`DEPS_DIR`], and
/// its index in the groups spec (`000`, `001`, ...: they sort as they are numbered).
pub fn layer_name(i: usize) -> String {
    format!("{i:03}")
}

/// `/manifest.json`: where a file of [`META_DIR`] is in the meta output.
pub fn meta_path(file: &str) -> String {
    format!("/{file}")
}

/// Where store path `/nix/store/<base>` lies in the build's output: the tree `/<base>`,
/// holding `nix/store/<base>`.
pub fn output_tree(store_path: &str) -> String {
    format!("/{}", crate::closure::base_name(store_path))
}

/// The tree of what nixfront adds, in the build's output.
pub fn extras_tree() -> String {
    format!("/{EXTRAS_TREE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_path_has_its_own_tree_in_the_output() {
        let path = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";
        assert_eq!(output_tree(path), "/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1");
    }
}
