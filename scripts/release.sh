#!/usr/bin/env bash
# Publishes the frontend: builds its static binary for linux/amd64 (rustup's toolchain) and
# linux/arm64 (Debian's cross toolchain, scripts/arm64.sh), packages both with
# frontend.Dockerfile on scratch, and pushes one OCI index tagged X.Y.Z, X.Y, X and latest
# (the version in Cargo.toml) to REGISTRY/REPOSITORY. Prints the index's digest, to pin:
# `# syntax=REGISTRY/REPOSITORY:X.Y.Z@sha256:...`.
#
# Usage: scripts/release.sh REGISTRY/REPOSITORY [ENGINE]
#   ENGINE  d26: the test engine (dockerd 26, containerd image store), for the tests and a
#           registry in its network namespace (localhost:5000 there); default: `docker buildx`
#           on this machine, whose builder must export multi-platform images (the
#           docker-container driver, or Docker's containerd image store) and reach the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
repository=${1:?usage: scripts/release.sh REGISTRY/REPOSITORY [d26]}
engine=${2:-host}
case $repository in
    *:* | *@*)
        # A colon after the last slash is a tag, not a registry's port.
        case ${repository##*/} in *:* | *@*) echo "release.sh: give the repository without a tag or digest" >&2; exit 2 ;; esac ;;
esac
version=$(nixfront_version)
major=${version%%.*}
minor=${version%.*}

build_frontend_amd64
bash scripts/arm64.sh frontend

# The context: the Dockerfile and the two binaries, nothing else.
case $engine in
    d26) base=$TRIXIE/tmp ;;
    host) base=${TMPDIR:-/tmp} ;;
    *) echo "release.sh: unknown engine '$engine' (d26, or none for this machine's docker)" >&2; exit 2 ;;
esac
context=$(mktemp -d "$base/nixfront-release.XXXXXX")
trap 'rm -rf --one-file-system -- "$context"' EXIT
mkdir -p "$context/target/frontend"
cp -r target/frontend/linux-amd64 target/frontend/linux-arm64 "$context/target/frontend/"
cp frontend.Dockerfile "$context/Dockerfile"
inside=${context#"$TRIXIE"}
[ "$engine" = d26 ] || inside=$context

buildx() {
    case $engine in
        d26) d26 buildx "$@" ;;
        host) docker buildx "$@" ;;
    esac
}
tags=()
for t in "$version" "$minor" "$major" latest; do tags+=(-t "$repository:$t"); done
log "pushing $repository:{$version,$minor,$major,latest} for linux/amd64 and linux/arm64"
buildx build --platform linux/amd64,linux/arm64 --provenance=false \
    --build-arg BINARY_FROM=prebuilt --build-arg VERSION="$version" \
    --output type=image,push=true,oci-mediatypes=true \
    --metadata-file "$inside/metadata.json" "${tags[@]}" "$inside" >&2
digest=$(grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$context/metadata.json" | grep -o 'sha256:[0-9a-f]*')
echo "$repository:$version@$digest"
