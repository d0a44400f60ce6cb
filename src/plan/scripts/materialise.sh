# nixfront's layer step: `/bin/sh materialise.sh` in the builder image, with
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS listing `INDEX STORE-PATH` lines (the definition names them). Copies
# each path from the persistent store into output $NIXFRONT_LAYERS/INDEX as nix/store/<base>:
# each output is one layer of the image, byte-identical whenever it holds the same paths
# (store times are 1 s after the epoch; nixfront gives its own directories the same).
# The dependency step's output is mounted at $NIXFRONT_DEPS_META: this step runs after that
# one, which put the paths in the store.
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_SPEC:?}" "${NIXFRONT_LAYERS:?}" "${NIXFRONT_DEPS_META:?}"
[ -e "$NIXFRONT_DEPS_META/$NIXFRONT_DEPS_INFO" ] || {
    echo "nixfront: the dependency step's output is missing" >&2
    exit 1
}

work=$(mktemp -d)
while read -r index p; do
    require_in_store "$p" realised
    echo "$p" >>"$work/$index"
done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS"
for list in "$work"/*; do lay_out "$list" "$NIXFRONT_LAYERS/${list##*/}"; done
echo "nixfront: $(wc -l <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS") store paths laid out in $(ls "$NIXFRONT_LAYERS" | wc -l) layers" >&2
