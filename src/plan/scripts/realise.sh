# nixfront's dependency step: `/bin/sh realise.sh SYSTEM` in the builder image, with
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS listing `DRV OUTPUT-PATH` lines: the package's direct
# inputs. The definition names them, so the step's cache key holds across edits of the package
# and across builders. Takes the derivations this instance of the store lacks from the
# evaluation's binary cache ($NIXFRONT_DRVS, content-addressed), builds or fetches the inputs
# when absent, and writes, for their runtime closure:
#   $NIXFRONT_META/$NIXFRONT_DEPS_INFO   `nix path-info --json` of every path
#   $NIXFRONT_META/$NIXFRONT_DEPS_DB     their registrations (`nix-store --dump-db`), which the
#                                        package step's own store loads
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_META:?}" "${NIXFRONT_SPEC:?}" "${NIXFRONT_DEPS_INFO:?}" "${NIXFRONT_DRVS:?}"
system=$1
work=$(mktemp -d)
prepare_store

cut -d' ' -f1 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/drvs"
cut -d' ' -f2 "$NIXFRONT_SPEC/$NIXFRONT_SPEC_INPUTS" | sort -u >"$work/outputs"
copy_content_addressed "$NIXFRONT_DRVS" "$work/drvs"
realise_locked "$system" "$work/drvs"
record_roots "$work/outputs"

closure_of "$work/outputs" "$NIXFRONT_META/$NIXFRONT_DEPS_INFO" "$work/closure"
xargs nix-store --dump-db <"$work/closure" >"$NIXFRONT_META/$NIXFRONT_DEPS_DB"
echo "nixfront: $(wc -l <"$work/drvs") inputs realised, closure of $(wc -l <"$work/closure") store paths" >&2
bound_store
