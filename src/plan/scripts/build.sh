# nixfront's build step: `/bin/sh build.sh REF FLAKE SYSTEM` in the builder image.
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

if [ "${NIXFRONT_VERIFY_STORE:-}" = 1 ]; then
    echo "nixfront: verifying the Nix store (NIX_VERIFY_STORE=true)" >&2
    if ! nix-store --verify --check-contents; then
        echo "nixfront: the persistent Nix store is damaged; drop it with" \
            "'docker builder prune --filter type=exec.cachemount' and build again" >&2
        exit 1
    fi
    echo "nixfront: the Nix store is consistent" >&2
fi

mkdir "$work/links"
nixc_for "$system" build --no-write-lock-file --print-build-logs --out-link "$work/links/result" -- "$ref"

for link in "$work"/links/result*; do readlink -f "$link"; done >"$work/results"

# This build's garbage-collector roots: its results and their derivations (with
# keep-outputs, a derivation keeps its build-time inputs), so that a bounded store keeps
# what the most recent builds need.
roots=/nix/var/nix/gcroots/nixfront
root_name="$(date +%s%N)-$(head -n1 "$work/results" | sed 's|.*/||')"
mkdir -p "$roots/$root_name"
i=0
while read -r p; do
    ln -sfn "$p" "$roots/$root_name/result-$i"
    drv=$(nix-store --query --deriver "$p" 2>/dev/null || true)
    [ -n "$drv" ] && [ -e "$drv" ] && ln -sfn "$drv" "$roots/$root_name/drv-$i"
    i=$((i + 1))
done <"$work/results"

# The closure of every output, as JSON for the manifest and as a list to copy. Store paths
# contain no blanks or glob characters, so the unquoted expansion is a plain list.
results=$(cat "$work/results")
# shellcheck disable=SC2086
nixc path-info --json --recursive -- $results >"$work/path-info.json"
# shellcheck disable=SC2086
nixc path-info --recursive -- $results >"$work/closure"

# Name and meta.mainProgram, for the image's entrypoint. Optional: null when not evaluable.
nixc_for "$system" eval --json --no-write-lock-file \
    --apply 'p: { name = p.name or null; mainProgram = (p.meta or {}).mainProgram or null; }' \
    -- "$ref" >"$work/package.json" 2>/dev/null || echo null >"$work/package.json"

while read -r p; do
    tree="$NIXFRONT_OUT/${p##*/}/nix/store"
    mkdir -p "$tree"
    cp -a -- "$p" "$tree/"
done <"$work/closure"

# The flake's lastModified dates the image when SOURCE_DATE_EPOCH is not given.
nixc flake metadata --json --no-write-lock-file -- "$flake" >"$work/flake.json" 2>/dev/null \
    || echo null >"$work/flake.json"

# BuildKit's own mkdir cannot set the sticky bit; the top layer copies this directory instead.
mkdir -p "$NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp"
chmod 1777 "$NIXFRONT_OUT/$NIXFRONT_EXTRAS/tmp"

{
    printf '{"manifestVersion":1,"results":['
    sep=
    while read -r p; do printf '%s"%s"' "$sep" "$p"; sep=,; done <"$work/results"
    printf '],"package":'
    cat "$work/package.json"
    printf ',"flake":'
    cat "$work/flake.json"
    printf ',"pathInfo":'
    cat "$work/path-info.json"
    printf '}\n'
} >"$NIXFRONT_META/$NIXFRONT_MANIFEST"
echo "nixfront: closure of $(wc -l <"$work/closure") store paths copied" >&2
# A bounded store (NIX_STORE_MAX): past the bound, drop the roots of all but the most recent
# builds and collect garbage, keeping their closures and build-time inputs.
if [ -n "${NIXFRONT_STORE_MAX:-}" ]; then
    store_bytes() { du -sxk /nix/store | awk '{ print $1 * 1024 }'; }
    size=$(store_bytes)
    if [ "$size" -gt "$NIXFRONT_STORE_MAX" ]; then
        for keep in 3 1; do
            echo "nixfront: the Nix store holds $size bytes, over NIX_STORE_MAX=$NIXFRONT_STORE_MAX:" \
                "collecting garbage, keeping the $keep most recent builds" >&2
            # shellcheck disable=SC2012
            ls -1 "$roots" | sort -r | tail -n "+$((keep + 1))" | while read -r old; do
                rm -rf -- "${roots:?}/$old"
            done
            nix-store --gc --option keep-outputs true --option keep-derivations true >/dev/null 2>&1
            size=$(store_bytes)
            [ "$size" -le "$NIXFRONT_STORE_MAX" ] && break
        done
        echo "nixfront: the Nix store holds $size bytes after collecting garbage" >&2
        [ "$size" -le "$NIXFRONT_STORE_MAX" ] || echo "nixfront: warning: this build's own closure" \
            "and inputs exceed NIX_STORE_MAX=$NIXFRONT_STORE_MAX" >&2
    fi
fi

# When the step held the store (ns since the epoch): two builds sharing it never overlap.
echo "nixfront: the build step ran from $started to $(date +%s%N)" >&2
