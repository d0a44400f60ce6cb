#!/usr/bin/env bash
# Builds the frontend image offline and tags it org/nixfront:latest in both engines, so that
# `# syntax=org/nixfront` resolves locally. The static binary is built on this machine with
# cargo; frontend.Dockerfile (target BINARY_FROM=prebuilt) packages it on scratch, pulling
# nothing.
#
# Also the tests' hostile client (examples/raw_client.rs) as org/raw-client:latest: a frontend
# that asks for nixfront with options no buildx command line sends. Never released.
#
# Usage: scripts/frontend-image.sh [d20|d26|all]   (default all; engines must be running)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
want=${1:-all}

build_frontend_amd64
d20 build -q -f frontend.Dockerfile --build-arg BINARY_FROM=prebuilt \
    --build-arg VERSION="$(nixfront_version)" -t "$FRONTEND_TAG" . >/dev/null
d20 image inspect -f "[frontend-image] {{.RepoTags}} {{.Size}} bytes" "$FRONTEND_TAG" >&2
if [ "$want" != d20 ]; then
    d20 save "$FRONTEND_TAG" | d26 load >/dev/null
    log "loaded into dockerd 26"
fi

RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --example raw_client >&2
raw=target/frontend/raw-client
mkdir -p "$raw"
cp target/x86_64-unknown-linux-gnu/release/examples/raw_client "$raw/raw-client"
printf 'FROM scratch\nCOPY raw-client /raw-client\nENTRYPOINT ["/raw-client"]\n' >"$raw/Dockerfile"
d20 build -q -t "$RAW_CLIENT_TAG" "$raw" >/dev/null
if [ "$want" != d20 ]; then
    d20 save "$RAW_CLIENT_TAG" | d26 load >/dev/null
fi
log "the tests' raw client: $RAW_CLIENT_TAG"
