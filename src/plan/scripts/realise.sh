# nixfront's dependency step: `/bin/sh realise.sh SYSTEM` in the builder image, with
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS listing `DRV OUTPUT-PATH` lines: the package's direct inputs. The
# definition names them, so the step's cache key holds across edits of the package and across
# builders. Builds them in the persistent store when absent and writes, for their runtime
# closure:
#   $NIXFRONT_META/$NIXFRONT_DEPS_INFO   `nix path-info --json` of every path
#   $NIXFRONT_META/$NIXFRONT_DEPS_DB     their registrations (`nix-store --dump-db`), so that
#                                        a store without them (a fresh runner) can take them in
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_META:?}" "${NIXFRONT_SPEC:?}" "${NIXFRONT_DEPS_INFO:?}"
system=$1
work=$(mktemp -d)

cut -d' ' -f1 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/drvs"
cut -d' ' -f2 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/outputs"
while read -r drv; do require_in_store "$drv" evaluated; done <"$work/drvs"

# shellcheck disable=SC2046
nixstore_for "$system" --realise $(cat "$work/drvs") >/dev/null

closure_of "$work/outputs" "$NIXFRONT_META/$NIXFRONT_DEPS_INFO" "$work/closure"
xargs nix-store --dump-db <"$work/closure" >"$NIXFRONT_META/$NIXFRONT_DEPS_DB"
echo "nixfront: $(wc -l <"$work/drvs") inputs realised, closure of $(wc -l <"$work/closure") store paths" >&2
