//! End-to-end tests: real builds with `# syntax=org/nixfront` on both engines.
//!
//! They need the engines and the frontend image (`scripts/test.sh` sets both up), so they
//! are ignored by a plain `cargo test`; `scripts/test.sh` runs them with `--include-ignored`.

#[macro_use]
mod harness;

mod arm64;
mod cache;
mod conventions;
mod core;
mod fleet;
mod input;
mod layers;
mod remote;
mod security;
mod services;
mod shared_builder;
mod world;
