# nixfront's one-step build: `/bin/sh single.sh REF FLAKE SYSTEM [EXTRA...]` in the builder image, for
# builds without a persistent store (NIX_PERSISTENT_STORE=false) and packages whose outputs
# are unknown before they are built (content-addressed): everything in one step.
#
# REF is the flake reference to build, FLAKE the same without its #fragment, SYSTEM the Nix
# system to build for (from --platform), EXTRA FLAKE's further packages. Writes, as
# plan/output.rs says:
#   $NIXFRONT_OUT/<base>/nix/store/<base>   each store path of the runtime closure as its own
#                                           tree, copied with modes and times kept
#   $NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp      what nixfront adds to the image (mode 1777)
#   $NIXFRONT_META/$NIXFRONT_MANIFEST       results, package name and mainProgram, flake
#                                           metadata, path-info of the closure
#   $NIXFRONT_META/$NIXFRONT_ROOTS          what the results hold (list_roots)
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_OUT:?}" "${NIXFRONT_META:?}" "${NIXFRONT_MANIFEST:?}" "${NIXFRONT_EXTRAS:?}" \
    "${NIXFRONT_SINGLE_MANIFEST_VERSION:?}"
ref=$1
flake=$2
system=$3
shift 3
work=$(mktemp -d)

[ "$system" = "$native" ] || echo "nixfront: building for $system on a $native builder" >&2
prepare_store

mkdir "$work/links"
build_for "$system" --no-write-lock-file --print-build-logs --out-link "$work/links/result" -- "$ref" "$@"
# The main package's first output first (`result`; then `result-1`, `result-dev`... sorted),
# each path once.
: >"$work/results"
find "$work/links" -mindepth 1 -maxdepth 1 -name 'result*' | sort | while IFS= read -r link; do
    p=$(readlink -f "$link")
    grep -qxF -- "$p" "$work/results" || echo "$p" >>"$work/results"
done
record_roots "$work/results"

# The closure of every output, as JSON for the manifest and as a list to copy.
closure_of "$work/results" "$work/path-info.json" "$work/closure"
list_roots "$work/results" "$NIXFRONT_META/$NIXFRONT_ROOTS"
while read -r p; do
    tree="$NIXFRONT_OUT/${p##*/}/nix/store"
    mkdir -p "$tree"
    cp -a -- "$p" "$tree/"
done <"$work/closure"

nixc_for "$system" eval --json --no-write-lock-file \
    --apply 'p: { name = p.name or null; mainProgram = (p.meta or {}).mainProgram or null; }' \
    -- "$ref" >"$work/package.json" 2>/dev/null || echo null >"$work/package.json"
nixc flake metadata --json --no-write-lock-file -- "$flake" >"$work/flake.json" 2>/dev/null \
    || echo null >"$work/flake.json"

make_extras "$NIXFRONT_OUT/$NIXFRONT_EXTRAS"
write_single_manifest "$work/results" "$work/package.json" "$work/flake.json" "$work/path-info.json" \
    "$NIXFRONT_META/$NIXFRONT_MANIFEST"
echo "nixfront: closure of $(wc -l <"$work/closure") store paths copied" >&2
bound_store
