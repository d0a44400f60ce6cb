# nixfront's fetch step: `/bin/sh fetch.sh` in the builder image. Keyed by the flake's lock file
# (the spec holds its locked inputs and a copy of flake.nix), not by the rest of the context, so
# an edit of the package never fetches an input again, on a warm builder or on a fresh runner
# that imported BuildKit's cache.
#
# Fetches each locked input (`builtins.fetchTree` of its locked attributes, as Nix fetches a
# flake's inputs) and writes, as plan/output.rs says:
#   $NIXFRONT_FETCHED/cache               a file:// binary cache of them (content-addressed:
#                                         a store takes them in only if the content matches)
#   $NIXFRONT_FETCHED/paths               their store paths
#   $NIXFRONT_META/$NIXFRONT_FLAKE_CONFIG the flake's nixConfig as JSON, or null
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_SPEC:?}" "${NIXFRONT_SPEC_LOCKED:?}" "${NIXFRONT_SPEC_FLAKE:?}" "${NIXFRONT_FETCHED:?}" \
    "${NIXFRONT_META:?}" "${NIXFRONT_FLAKE_CONFIG:?}"
work=$(mktemp -d)
prepare_store

# nixConfig is read on its own (the outputs are never evaluated here).
flake_nix=$NIXFRONT_SPEC/$NIXFRONT_SPEC_FLAKE
echo null >"$NIXFRONT_META/$NIXFRONT_FLAKE_CONFIG"
if [ -s "$flake_nix" ]; then
    nixc eval --impure --json --expr "(import $flake_nix).nixConfig or {}" \
        >"$work/config.json" 2>"$work/config.err" && cp "$work/config.json" "$NIXFRONT_META/$NIXFRONT_FLAKE_CONFIG" \
        || echo "nixfront: warning: cannot read the flake's nixConfig: $(tail -n1 "$work/config.err")" >&2
fi

mkdir -p "$NIXFRONT_FETCHED/cache"
locked=$NIXFRONT_SPEC/$NIXFRONT_SPEC_LOCKED
nixc eval --impure --json \
    --expr "map (a: (builtins.fetchTree a).outPath) (builtins.fromJSON (builtins.readFile $locked))" \
    | tr -d '[]"' | tr ',' '\n' | grep . >"$NIXFRONT_FETCHED/paths" || true
if [ -s "$NIXFRONT_FETCHED/paths" ]; then
    nixc copy --to "file://$NIXFRONT_FETCHED/cache?compression=none" $(cat "$NIXFRONT_FETCHED/paths")
fi
echo "nixfront: $(wc -l <"$NIXFRONT_FETCHED/paths") locked inputs fetched" >&2
