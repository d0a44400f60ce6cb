#!/usr/bin/env bash
# Builds the frontend image offline and tags it org/nixfront:latest in both engines, so that
# `# syntax=org/nixfront` resolves locally. The static binary is built on this machine with
# cargo; frontend.Dockerfile (target BINARY_FROM=prebuilt) packages it on scratch, pulling
# nothing.
#
# Usage: scripts/frontend-image.sh [d20|d26|all]   (default all; engines must be running)
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-all}
CI_ROOT=${NIXFRONT_CI_ROOT:-/var/lib/nixfront-ci}
TAG=org/nixfront:latest

RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu >&2
DOCKER_BUILDKIT=1 /usr/bin/docker build -q -f frontend.Dockerfile \
    --build-arg BINARY_FROM=prebuilt -t "$TAG" . >/dev/null
/usr/bin/docker image inspect -f '[frontend-image] {{.RepoTags}} {{.Size}} bytes' "$TAG" >&2
if [ "$want" != d20 ]; then
    /usr/bin/docker save "$TAG" | chroot "$CI_ROOT/trixie" docker -H unix:///run/d26/docker.sock load >/dev/null
    echo "[frontend-image] loaded into dockerd 26" >&2
fi
