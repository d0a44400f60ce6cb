#!/usr/bin/env bash
# Runs every check and test: format, lints, unit tests, and the end-to-end tests on both real
# engines (dockerd 20.10 / BuildKit 0.8 and dockerd 26.1 + buildx / BuildKit 0.13), which it
# installs and starts first. Works on a fresh machine of ours, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/engines.sh all
bash scripts/frontend-image.sh all

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets -- --include-ignored
