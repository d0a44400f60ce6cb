#!/usr/bin/env bash
# The benchmark, side by side in one run: seed Dockerfile, expert variant, nixfront.
# Usage: bench/run.sh [--long] [d20] [d26]   (default both engines; the quick rows take about
# 5 minutes per engine, --long adds the fresh-runner and ~1.1 GB-closure rows, about 30 more)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engines.sh all
bash scripts/frontend-image.sh all
exec python3 bench/bench.py "$@"
