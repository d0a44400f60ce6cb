# nixfront's dependency step: `/bin/sh realise.sh SYSTEM` in the builder image, with
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS listing `DRV OUTPUT-PATH` lines: the package's direct inputs. The
# definition names them, so the step's cache key holds across edits of the package and across
# builders. Builds them in the persistent store when absent and writes, for their runtime
# closure:
#   $NIXFRONT_META/$NIXFRONT_DEPS_INFO   `nix path-info --json` of every path
#   $NIXFRONT_META/$NIXFRONT_DEPS_DB/<base>  the registration of each (`nix-store --dump-db`), so
#                                        that a store without it (a fresh runner) can take it in
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_META:?}" "${NIXFRONT_SPEC:?}" "${NIXFRONT_DEPS_INFO:?}"
system=$1
work=$(mktemp -d)

cut -d' ' -f1 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/drvs"
cut -d' ' -f2 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/outputs"
while read -r drv; do
    [ -e "$drv" ] || {
        echo "nixfront: the persistent store lacks $drv, which an earlier (cached) step evaluated;" \
            "build again with --no-cache (the store is kept)" >&2
        exit 1
    }
done <"$work/drvs"

# shellcheck disable=SC2046
nixstore_for "$system" --realise $(cat "$work/drvs") >/dev/null

# shellcheck disable=SC2046
nixc path-info --json --recursive -- $(cat "$work/outputs") >"$NIXFRONT_META/$NIXFRONT_DEPS_INFO"
# shellcheck disable=SC2046
nixc path-info --recursive -- $(cat "$work/outputs") >"$work/closure"
# One `--dump-db` for all, cut into a file per path: path, hash, size, deriver, reference
# count, references (shell builtins only, no process per path).
db="$NIXFRONT_META/$NIXFRONT_DEPS_DB"
mkdir "$db"
xargs nix-store --dump-db <"$work/closure" >"$work/dump"
while IFS= read -r path && IFS= read -r hash && IFS= read -r size && IFS= read -r deriver \
    && IFS= read -r count; do
    {
        printf '%s\n%s\n%s\n%s\n%s\n' "$path" "$hash" "$size" "$deriver" "$count"
        i=0
        while [ "$i" -lt "$count" ]; do
            IFS= read -r ref
            printf '%s\n' "$ref"
            i=$((i + 1))
        done
    } >"$db/${path##*/}"
done <"$work/dump"
echo "nixfront: $(wc -l <"$work/drvs") inputs realised, closure of $(wc -l <"$work/closure") store paths" >&2
