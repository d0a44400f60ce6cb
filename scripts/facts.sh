#!/usr/bin/env bash
# The facts of scripts/lib.sh as NAME=VALUE lines, for the e2e harness and the benchmark,
# which read them here rather than writing them again: where the engines' chroot and pidfiles
# are, the builder image the tests use, the frontend image's tag.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
for name in CI_ROOT TRIXIE NIXROOT D20_PIDFILE D26_SOCK D26_PIDFILE NIX_IMAGE NIX_IMAGE_OLDEST NIX_IMAGE_OFFICIAL FRONTEND_TAG; do
    printf '%s=%s\n' "$name" "${!name}"
done
