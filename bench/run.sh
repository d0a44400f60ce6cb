#!/usr/bin/env bash
# The benchmark, side by side in one run: seed Dockerfile, expert variant, nixfront.
# Usage: bench/run.sh [d20] [d26]   (default both; about 5 minutes per engine)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engines.sh all
bash scripts/frontend-image.sh all
exec python3 bench/bench.py "$@"
