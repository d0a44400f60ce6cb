#!/usr/bin/env bash
# Builds the frontend image of an earlier commit of this repository (the benchmark's baseline,
# side by side with the working tree's in one run) and tags it in both engines.
#
# Usage: scripts/baseline-image.sh REV TAG   (e.g. c6fc732 org/nixfront:baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rev=${1:?a revision}
tag=${2:?a tag}

# The revision's tree, exported (never a worktree of this repository), under CI_ROOT; its
# build directory is kept beside it, so that building the same revision again is quick.
dir=$CI_ROOT/baseline
target=$CI_ROOT/baseline-target
case $dir in /?*/?*/baseline) ;; *) echo "refusing to build under $dir" >&2; exit 1 ;; esac
rm -rf --one-file-system -- "$dir"
mkdir -p "$dir"
git archive --format=tar "$rev" | tar -x -C "$dir"
log "building the frontend of $(git rev-parse --short "$rev") in $dir"
(
    cd "$dir"
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target" \
        cargo build --release --locked --target x86_64-unknown-linux-gnu >&2
    stage_frontend amd64 "$target/x86_64-unknown-linux-gnu/release/nixfront"
    d20 build -q -f frontend.Dockerfile --build-arg BINARY_FROM=prebuilt \
        --build-arg VERSION="$(nixfront_version)" -t "$tag" . >/dev/null
)
d20 save "$tag" | d26 load >/dev/null
log "$tag: nixfront $(grep -m1 '^version = ' "$dir/Cargo.toml" | cut -d'"' -f2) at $(git rev-parse --short "$rev"), in both engines"
