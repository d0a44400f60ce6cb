#!/usr/bin/env bash
# `docker` on one of the two test engines: scripts/docker.sh d20|d26 ARGS...
# The one place the command line of each engine is written (scripts/lib.sh); paths given to
# d26 are paths inside its chroot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
engine=${1:?usage: docker.sh d20|d26 ARGS...}
shift
case $engine in
    d20) d20 "$@" ;;
    d26) d26 "$@" ;;
    *) echo "docker.sh: unknown engine '$engine' (d20 or d26)" >&2; exit 2 ;;
esac
