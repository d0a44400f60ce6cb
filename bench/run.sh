#!/usr/bin/env bash
# The benchmark, side by side in one run: seed Dockerfile, expert variant, nixfront.
# Usage: bench/run.sh [--long] [--nix=2.8] [--baseline=REV] [d20] [d26]   (default both engines
# and Nix 2.26; the quick and real-flake rows take about 8 minutes per engine, --long adds the
# fresh-runner, ~1.1 GB-closure and 1 GB toolchain rows, about 40 more; --baseline=REV adds the
# frontend of commit REV as a fourth column, which takes a third more)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engines.sh all
bash scripts/frontend-image.sh all
case " $* " in *" --long "*) NIXWORLD_BIG=1 bash scripts/nixworld.sh ;; *) bash scripts/nixworld.sh ;; esac
exec python3 bench/bench.py "$@"
