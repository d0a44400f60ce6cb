//! Driving the two real engines from tests, a module per concern: [`engine`] runs docker on
//! an engine (through scripts/docker.sh, the one place its command line is written),
//! [`fixture`] makes build contexts from the files under tests/fixtures, [`image`] looks
//! inside built images, [`git`] serves a repository for remote contexts, [`builders`] makes
//! broken builder images.
//!
//! Both engines are started by `scripts/engines.sh` and the frontend image is loaded by
//! `scripts/frontend-image.sh`; `scripts/test.sh` does both before running these tests.

pub mod builders;
pub mod engine;
pub mod fixture;
pub mod git;
pub mod image;

pub use engine::{Engine, engines, exclusive_engines, shared_engines};
pub use fixture::Fixture;

/// A unique image tag for one test on one engine.
pub fn tag(test: &str, engine: Engine) -> String {
    format!("nixfront-e2e/{test}:{}", engine.name())
}

/// Asserts `haystack` contains every needle, showing it all when not.
pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
    }
}

/// The root of the repository (where scripts/ and tests/fixtures are).
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
