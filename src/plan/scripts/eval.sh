# nixfront's evaluation step: `/bin/sh eval.sh REF FLAKE SYSTEM` in the builder image.
#
# Instantiates the package (its .drv and those of its inputs land in the persistent store) and
# writes $NIXFRONT_META/$NIXFRONT_PLAN: the package's derivation with its direct inputs (JSON of
# `nix derivation show`), the closure of its input sources, its name and mainProgram, and the
# flake's metadata. Builds nothing. Keyed by the context: it runs again after any edit.
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_META:?}" "${NIXFRONT_PLAN:?}"
ref=$1
flake=$2
system=$3
work=$(mktemp -d)

drv=$(nixc_for "$system" path-info --derivation --no-write-lock-file -- "$ref")
nix-store --query --references "$drv" >"$work/refs"
grep '\.drv$' "$work/refs" >"$work/inputs" || true
grep -v '\.drv$' "$work/refs" >"$work/srcs" || true

# `nix derivation show` since Nix 2.15, `nix show-derivation` before.
# shellcheck disable=SC2046
nixc derivation show -- "$drv" $(cat "$work/inputs") >"$work/derivations.json" 2>/dev/null \
    || nixc show-derivation -- "$drv" $(cat "$work/inputs") >"$work/derivations.json"

: >"$work/src-closure"
if [ -s "$work/srcs" ]; then
    # shellcheck disable=SC2046
    nix-store --query --requisites $(cat "$work/srcs") >"$work/src-closure"
fi

package_facts "$system" "$ref" "$flake" "$work"

{
    printf '{"planVersion":1,"drv":"%s","derivations":' "$drv"
    cat "$work/derivations.json"
    printf ',"sourceClosure":'
    json_lines "$work/src-closure"
    printf ',"package":'
    cat "$work/package.json"
    printf ',"flake":'
    cat "$work/flake.json"
    printf '}\n'
} >"$NIXFRONT_META/$NIXFRONT_PLAN"
