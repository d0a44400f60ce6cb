#!/usr/bin/env bash
# Fuzzes the parsers for a bounded time each: the Nixfile (with expansion), the frontend
# options and the build manifest. Seeds and everything found interesting are kept in
# fuzz/corpus/<target>; a crash fails the run, and its input (fuzz/artifacts/) becomes a
# regression input in fuzz/regressions/<target>/ (replayed by tests/regressions.rs) with the fix.
#
# Usage: scripts/fuzz.sh [SECONDS per target, default 60; 0 skips]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ "$seconds" -gt 0 ] || { echo "[fuzz] skipped" >&2; exit 0; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
for target in nixfile options manifest; do
    echo "[fuzz] $target for ${seconds}s" >&2
    mkdir -p "fuzz/corpus/$target"
    # The corpus directory given first is where new interesting inputs are written.
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tail -40
done
