//! The contract between nixfront and its build steps: where a step finds its inputs and
//! writes its outputs, and what its exit codes mean. The scripts read every path from the
//! environment this module sets ([`contract_env`]), so each fact is written here once.

/// Where the build context is mounted (read-only) in a step.
pub const CONTEXT_DIR: &str = "/nixfront/src";
/// Where nixfront's scripts are mounted (read-only).
pub const SCRIPT_DIR: &str = "/nixfront/bin";
/// The output holding the closure, each path as its own tree `<base>/nix/store/<base>`
/// (see [`output_tree`]), and [`EXTRAS_TREE`].
pub const OUT_DIR: &str = "/nixfront/out";
/// The output holding the metadata files below.
pub const META_DIR: &str = "/nixfront/meta";
/// A scratch directory for temporary files (TMPDIR), whatever the builder image has.
pub const TMP_DIR: &str = "/nixfront/tmp";
/// The build's manifest in [`META_DIR`]: results, package name and mainProgram, flake
/// metadata, path-info of the closure.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The package listing in [`META_DIR`]: `{"name": "description", ...}`.
pub const PACKAGES_FILE: &str = "packages.json";
/// The tree in [`OUT_DIR`] holding what nixfront adds to the image's root (`tmp`, mode 1777).
pub const EXTRAS_TREE: &str = ".nixfront-root";

/// The time given to everything nixfront writes: 1 s after the epoch, as Nix gives store
/// files, in nanoseconds.
pub const FIXED_TIME_NS: i64 = 1_000_000_000;

/// A step's exit code when the builder image has no `nix` on its PATH.
pub const EXIT_NO_NIX: i32 = 90;

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

/// The environment that tells the scripts the contract.
pub fn contract_env() -> Vec<String> {
    vec![
        format!("NIXFRONT_OUT={OUT_DIR}"),
        format!("NIXFRONT_META={META_DIR}"),
        format!("NIXFRONT_MANIFEST={MANIFEST_FILE}"),
        format!("NIXFRONT_PACKAGES={PACKAGES_FILE}"),
        format!("NIXFRONT_EXTRAS={EXTRAS_TREE}"),
        format!("NIXFRONT_SECRETS={}", super::secrets::SECRETS_DIR),
        format!("NIXFRONT_EXIT_NO_NIX={EXIT_NO_NIX}"),
        format!("TMPDIR={TMP_DIR}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_path_has_its_own_tree_in_the_output() {
        let path = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";
        assert_eq!(output_tree(path), "/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1");
    }

    #[test]
    fn the_scripts_take_every_path_from_the_contract() {
        for script in [super::super::BUILD_SCRIPT, super::super::PACKAGES_SCRIPT, super::super::COMMON_SCRIPT]
        {
            for literal in [
                "/nixfront/out",
                "/nixfront/meta",
                "manifest.json",
                "packages.json",
                ".nixfront-root",
                "/run/secrets",
            ] {
                assert!(
                    !script.contains(literal),
                    "a script spells out {literal}; read it from the contract"
                );
            }
        }
        let names: Vec<String> =
            contract_env().iter().map(|e| e.split('=').next().unwrap().to_string()).collect();
        for name in names.iter().filter(|n| n.starts_with("NIXFRONT_")) {
            let used =
                [super::super::BUILD_SCRIPT, super::super::PACKAGES_SCRIPT, super::super::COMMON_SCRIPT]
                    .iter()
                    .any(|s| s.contains(name.as_str()));
            assert!(used, "{name} is set but no script reads it");
        }
    }
}
