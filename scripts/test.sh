#!/usr/bin/env bash
# Runs every check and test: format, lints and unit tests first (they need nothing), then the
# end-to-end tests on both real engines (dockerd 20.10 / BuildKit 0.8 and dockerd 26.1 +
# buildx / BuildKit 0.13), which it installs and starts with the frontend image, its arm64
# binary (cross-built; the arm64 and release tests use it), the Nix world and the Nix build host
# of the remote-builder tests, then a bounded
# fuzzing run of the
# parsers (NIXFRONT_FUZZ_SECONDS per target, default 60; 0 skips it). Works on a fresh
# machine of ours, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --lib --bins --test regressions --test cli

bash scripts/engines.sh all
bash scripts/frontend-image.sh all
# The arm64 frontend binary (cross-built, minutes) for the arm64 and release tests.
bash scripts/arm64.sh frontend
bash scripts/nixworld.sh
bash scripts/buildhost.sh
cargo test --locked --test e2e -- --include-ignored

bash scripts/fuzz.sh "${NIXFRONT_FUZZ_SECONDS:-60}"
