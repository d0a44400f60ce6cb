# nixfront's image-root step: `/bin/sh root.sh` in the builder image. Copies the package's own
# store paths from $NIXFRONT_ROOT_SEED when it is there, and makes in $NIXFRONT_ROOT_OUT the entries
# $NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOT lists, one a line, fields separated by tabs, parents
# first, as nixfront planned them (layers/roots.rs):
#   d MODE UID GID PATH     a directory
#   l TARGET PATH           a symlink
#   f MODE UID GID PATH N   a file with the contents of $NIXFRONT_SPEC/file-N
# and gives every one nixfront's fixed time, so that the same plan makes the same layer. Prints
# the warnings $NIXFRONT_SPEC/$NIXFRONT_SPEC_NOTICES lists, if any.
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_ROOT_OUT:?}" "${NIXFRONT_SPEC:?}" "${NIXFRONT_SPEC_ROOT:?}"
if [ -s "$NIXFRONT_SPEC/${NIXFRONT_SPEC_NOTICES:-notices}" ]; then
    while IFS= read -r notice; do echo "nixfront: warning: $notice" >&2; done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_NOTICES"
fi
out=$NIXFRONT_ROOT_OUT
if [ -d "${NIXFRONT_ROOT_SEED:-/nonexistent}" ]; then
    cp -a -- "$NIXFRONT_ROOT_SEED/." "$out/"
fi
tab=$(printf '\t')
while IFS="$tab" read -r kind a b c d e; do
    case $kind in
        d)
            mkdir -p -- "$out$d"
            chown "$b:$c" -- "$out$d"
            chmod "$a" -- "$out$d"
            ;;
        l) ln -s -- "$a" "$out$b" ;;
        f)
            cp -- "$NIXFRONT_SPEC/file-$e" "$out$d"
            chown "$b:$c" -- "$out$d"
            chmod "$a" -- "$out$d"
            ;;
        *) echo "nixfront: unknown entry kind $kind" >&2; exit 1 ;;
    esac
done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOT"
while IFS="$tab" read -r kind a b c d e; do
    case $kind in
        l) touch -h -d @1 -- "$out$b" ;;
        *) touch -h -d @1 -- "$out$d" ;;
    esac
done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_ROOT"
