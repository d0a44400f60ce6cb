# nixfront's layer step: `/bin/sh materialise.sh SYSTEM` in the builder image, with
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS listing `INDEX STORE-PATH DERIVER` lines (the definition
# names them; the deriver is empty for a source). Copies each path from the persistent store
# into output $NIXFRONT_LAYERS/INDEX as nix/store/<base>: each output is one layer of the image,
# byte-identical whenever it holds the same paths (store times are 1 s after the epoch;
# nixfront gives its own directories the same).
#
# The dependency step's output is mounted at $NIXFRONT_DEPS_META, so this step runs after it.
# Only valid paths are laid out: in an instance of the store that lacks some (another
# instance, or a store that lost them), sources come from the evaluation's binary cache
# ($NIXFRONT_DRVS) and the rest is built or fetched again from its derivation.
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_SPEC:?}" "${NIXFRONT_LAYERS:?}" "${NIXFRONT_DEPS_META:?}" "${NIXFRONT_DRVS:?}"
system=$1
[ -e "$NIXFRONT_DEPS_META/$NIXFRONT_DEPS_INFO" ] || {
    echo "nixfront: the dependency step's output is missing" >&2
    exit 1
}
work=$(mktemp -d)
prepare_store

mkdir "$work/layers"
cut -d' ' -f2 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS" >"$work/paths"
xargs -r nix-store --check-validity --print-invalid <"$work/paths" >"$work/missing"
if [ -s "$work/missing" ]; then
    echo "nixfront: $(wc -l <"$work/missing") dependencies are not in this store; building or fetching them again" >&2
    while read -r index p deriver; do
        if grep -qxF -- "$p" "$work/missing"; then
            if [ -n "$deriver" ]; then echo "$deriver" >>"$work/derivers"; else echo "$p" >>"$work/sources"; fi
        fi
    done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS"
    if [ -s "$work/sources" ]; then
        while IFS= read -r p; do
            base=${p##*/}
            [ -e "$NIXFRONT_DRVS/${base%%-*}.narinfo" ] || {
                echo "nixfront: cannot lay out $p: this store lacks it, no derivation builds it and" \
                    "the evaluation's cache does not have it" >&2
                exit 1
            }
        done <"$work/sources"
        copy_content_addressed "$NIXFRONT_DRVS" "$work/sources"
    fi
    if [ -s "$work/derivers" ]; then
        sort -u "$work/derivers" >"$work/drvs"
        copy_content_addressed "$NIXFRONT_DRVS" "$work/drvs"
        realise_locked "$system" "$work/drvs"
    fi
    xargs -r nix-store --check-validity --print-invalid <"$work/paths" >"$work/missing"
    if [ -s "$work/missing" ]; then
        echo "nixfront: cannot lay out $(head -n1 "$work/missing"): it is not valid in the store" >&2
        exit 1
    fi
fi

while read -r index p deriver; do
    echo "$p" >>"$work/layers/$index"
done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_GROUPS"
ls -1 "$work/layers" | while IFS= read -r index; do
    lay_out "$work/layers/$index" "$NIXFRONT_LAYERS/$index"
done
echo "nixfront: $(wc -l <"$work/paths") store paths laid out in $(ls -1 "$work/layers" | wc -l) layers" >&2
