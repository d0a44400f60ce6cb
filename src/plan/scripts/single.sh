# nixfront's one-step build: `/bin/sh single.sh REF FLAKE SYSTEM` in the builder image, for
# builds without a persistent store (NIX_PERSISTENT_STORE=false) and packages whose outputs
# are unknown before they are built (content-addressed): everything in one step.
#
# REF is the flake reference to build, FLAKE the same without its #fragment, SYSTEM the Nix
# system to build for (from --platform). Writes, as plan/output.rs says:
#   $NIXFRONT_OUT/<base>/nix/store/<base>   each store path of the runtime closure as its own
#                                           tree, copied with modes and times kept
#   $NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp      what nixfront adds to the image (mode 1777)
#   $NIXFRONT_META/$NIXFRONT_MANIFEST       results, package name and mainProgram, flake
#                                           metadata, path-info of the closure
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_OUT:?}" "${NIXFRONT_META:?}" "${NIXFRONT_MANIFEST:?}" "${NIXFRONT_EXTRAS:?}"
ref=$1
flake=$2
system=$3
work=$(mktemp -d)
started=$(date +%s%N)

[ "$system" = "$native" ] || echo "nixfront: building for $system on a $native builder" >&2

. "$(dirname "$0")/verify.sh"

mkdir "$work/links"
nixc_for "$system" build --no-write-lock-file --print-build-logs --out-link "$work/links/result" -- "$ref"

for link in "$work"/links/result*; do readlink -f "$link"; done >"$work/results"

. "$(dirname "$0")/roots.sh"

# The closure of every output, as JSON for the manifest and as a list to copy.
closure_of "$work/results" "$work/path-info.json" "$work/closure"

while read -r p; do
    tree="$NIXFRONT_OUT/${p##*/}/nix/store"
    mkdir -p "$tree"
    cp -a -- "$p" "$tree/"
done <"$work/closure"

package_facts "$system" "$ref" "$flake" "$work"

# BuildKit's own mkdir cannot set the sticky bit; the top layer copies this directory instead.
mkdir -p "$NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp"
chmod 1777 "$NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp"

{
    printf '{"manifestVersion":1,"results":'
    json_lines "$work/results"
    printf ',"package":'
    cat "$work/package.json"
    printf ',"flake":'
    cat "$work/flake.json"
    printf ',"pathInfo":'
    cat "$work/path-info.json"
    printf '}\n'
} >"$NIXFRONT_META/$NIXFRONT_MANIFEST"
echo "nixfront: closure of $(wc -l <"$work/closure") store paths copied" >&2
. "$(dirname "$0")/bound.sh"

# When the step held the store (ns since the epoch): two builds sharing it never overlap.
echo "nixfront: the build step ran from $started to $(date +%s%N)" >&2
