# nixfront's package step: `/bin/sh build.sh DRV SYSTEM OUTPUT...` in the builder image.
#
# Builds the derivation DRV (its outputs OUTPUT..., the main one first) in a store of the step's
# own, which goes with it: /nix/store is mounted from the dependency layers (with the builder
# image's own store where Nix lives there), the evaluation's tree $NIXFRONT_PKG adds the
# derivation's closure (its derivations and sources), and the registrations of both (the
# dependencies' in $NIXFRONT_SPEC/$NIXFRONT_SPEC_RECORDS, the evaluation's in $NIXFRONT_PKG/db)
# make them valid. No evaluation, nothing fetched or
# copied from the dependencies, and nothing this step registers reaches the persistent store.
# Writes, as plan/output.rs says:
#   $NIXFRONT_RESULTS/nix/store/<base>   the package's own paths of its runtime closure
#   $NIXFRONT_SOURCES/nix/store/<base>   its input sources that are in the closure
#   $NIXFRONT_EXTRAS_DIR/tmp             what nixfront adds to the image (mode 1777)
#   $NIXFRONT_META/$NIXFRONT_MANIFEST    results, path-info of the runtime closure, and which of
#                                        its paths went to which tree (laidOut)
#   $NIXFRONT_META/$NIXFRONT_ROOTS       what the root packages hold (list_roots)
# The image's closure is that of the root packages ($NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOTS: the
# outputs, then FLAKE's further packages, which are dependencies).
# Paths of the closure that are dependencies ($NIXFRONT_SPEC/$NIXFRONT_SPEC_DEPS) are left to
# the dependency layers.
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_RESULTS:?}" "${NIXFRONT_SOURCES:?}" "${NIXFRONT_EXTRAS_DIR:?}" "${NIXFRONT_META:?}" \
    "${NIXFRONT_MANIFEST:?}" "${NIXFRONT_SPEC:?}" "${NIXFRONT_PKG:?}" "${NIXFRONT_STEP_MANIFEST_VERSION:?}"
drv=$1
system=$2
shift 2
work=$(mktemp -d)
printf '%s\n' "$@" >"$work/results"
[ "$system" = "$native" ] || echo "nixfront: building for $system on a $native builder" >&2

# The evaluation's paths, into a store no builder has run in yet.
mkdir -p /nix/store
(cd "$NIXFRONT_PKG/nix/store" && ls -A1 | xargs -r cp -a -n -t /nix/store/ --)
nix-store --load-db <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_RECORDS"
nix-store --load-db <"$NIXFRONT_PKG/db"
echo "nixfront: $(grep -c . "$NIXFRONT_SPEC/$NIXFRONT_SPEC_DEPS" || true) dependencies from the dependency layers" >&2

echo "$drv" >"$work/drvs"
realise_locked "$system" "$work/drvs"

closure_of "$NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOTS" "$work/path-info.json" "$work/closure.unsorted"
list_roots "$NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOTS" "$NIXFRONT_META/$NIXFRONT_ROOTS"
sort "$work/closure.unsorted" >"$work/closure"

# The closure, minus the dependencies (their layers hold them): sources, then the rest. The
# manifest records this split (laidOut), which the frontend reads as it is.
split_closure "$work/closure" "$NIXFRONT_SPEC/$NIXFRONT_SPEC_DEPS" "$NIXFRONT_SPEC/$NIXFRONT_SPEC_SOURCES" \
    "$work/part-sources" "$work/part-results"
lay_out "$work/part-results" "$NIXFRONT_RESULTS"
lay_out "$work/part-sources" "$NIXFRONT_SOURCES"
make_extras "$NIXFRONT_EXTRAS_DIR"
write_package_manifest "$work/results" "$work/part-sources" "$work/part-results" "$work/path-info.json" \
    "$NIXFRONT_META/$NIXFRONT_MANIFEST"
own=$(cat "$work/part-sources" "$work/part-results" | wc -l)
echo "nixfront: closure of $(wc -l <"$work/closure") store paths ($own the package's own, the rest in dependency layers)" >&2
