#!/usr/bin/env bash
# The main job, end to end on a fresh machine of ours: install and start the engines, build
# the nixfront frontend image, build examples/hello (a flake with a runtime dependency) with
# `docker buildx build` and `# syntax=org/nixfront` on the default builder image, and run the
# image.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

bash scripts/engines.sh all
bash scripts/frontend-image.sh all

# The example flake builds offline: its builder is a static busybox it ships in tools/.
mkdir -p examples/hello/tools
cp /bin/busybox examples/hello/tools/busybox

# dockerd 26 runs in a chroot: give it a copy of the example.
demo=$TRIXIE/tmp/nixfront-demo
rm -rf --one-file-system "$demo"
cp -r examples/hello "$demo"

# As a new user builds: no NIX_IMAGE, so nixfront's default builder (nixos/nix, here the
# official image's replica that scripts/engines.sh tags so).
echo "+ docker buildx build -t hello --load examples/hello" >&2
d26 buildx build -t hello --load /tmp/nixfront-demo
echo "+ docker run --rm hello" >&2
d26 run --rm hello
d26 image ls hello
