# nixfront's package step: `/bin/sh build.sh REF FLAKE SYSTEM` in the builder image.
#
# Builds the package on top of its dependencies. They are in the persistent store on a warm
# builder; on a fresh one (a CI runner that imported BuildKit's cache) they are taken from the
# dependency layers mounted at $NIXFRONT_DEPS (`<i>/nix/store/<base>`, or the layers stacked:
# `nix/store/<base>`) and registered from $NIXFRONT_SPEC/$NIXFRONT_SPEC_DEPS_DB (the dependency
# step's `nix-store --dump-db`), so nothing is built or fetched again. Writes, as
# plan/output.rs says:
#   $NIXFRONT_RESULTS/nix/store/<base>   the package's own paths of its runtime closure
#   $NIXFRONT_SOURCES/nix/store/<base>   its input sources that are in the closure
#   $NIXFRONT_EXTRAS_DIR/tmp             what nixfront adds to the image (mode 1777)
#   $NIXFRONT_META/$NIXFRONT_MANIFEST    results and path-info of the runtime closure
# Paths of the closure that are dependencies are left to the dependency layers.
. "$(dirname "$0")/common.sh"
: "${NIXFRONT_RESULTS:?}" "${NIXFRONT_SOURCES:?}" "${NIXFRONT_EXTRAS_DIR:?}" "${NIXFRONT_META:?}" \
    "${NIXFRONT_MANIFEST:?}" "${NIXFRONT_DEPS:?}" "${NIXFRONT_SPEC:?}"
ref=$1
system=$3
work=$(mktemp -d)
started=$(date +%s%N)

[ "$system" = "$native" ] || echo "nixfront: building for $system on a $native builder" >&2
. "$(dirname "$0")/verify.sh"

# Dependencies this store lacks come from the dependency layers, registered from their
# records: the `--dump-db` stream cut into a file per path (path, hash, size, deriver,
# reference count, references; shell builtins only, no process per path).
registrations="$NIXFRONT_SPEC/$NIXFRONT_SPEC_DEPS_DB"
: >"$work/deps"
if [ -s "$registrations" ]; then
    mkdir "$work/db"
    while IFS= read -r db_path && IFS= read -r db_hash && IFS= read -r db_size \
        && IFS= read -r db_deriver && IFS= read -r db_count; do
        echo "$db_path" >>"$work/deps"
        {
            printf '%s\n%s\n%s\n%s\n%s\n' "$db_path" "$db_hash" "$db_size" "$db_deriver" "$db_count"
            db_i=0
            while [ "$db_i" -lt "$db_count" ]; do
                IFS= read -r db_ref
                printf '%s\n' "$db_ref"
                db_i=$((db_i + 1))
            done
        } >"$work/db/${db_path##*/}"
    done <"$registrations"
    xargs nix-store --check-validity --print-invalid <"$work/deps" >"$work/missing"
    if [ -s "$work/missing" ]; then
        while read -r p; do
            found=$(ls -d "$NIXFRONT_DEPS/nix/store/${p##*/}" "$NIXFRONT_DEPS"/*/nix/store/"${p##*/}" \
                2>/dev/null | head -n1)
            [ -n "$found" ] || { echo "nixfront: no dependency layer holds $p" >&2; exit 1; }
            echo "$found"
        done <"$work/missing" | xargs cp -a -t /nix/store/ --
        while read -r p; do echo "$work/db/${p##*/}"; done <"$work/missing" | xargs cat | nix-store --load-db
        echo "nixfront: $(wc -l <"$work/missing") dependencies taken from BuildKit's cache" >&2
    fi
fi

mkdir "$work/links"
nixc_for "$system" build --no-write-lock-file --print-build-logs --out-link "$work/links/result" -- "$ref"
for link in "$work"/links/result*; do readlink -f "$link"; done >"$work/results"
. "$(dirname "$0")/roots.sh"

closure_of "$work/results" "$work/path-info.json" "$work/closure.unsorted"
sort "$work/closure.unsorted" >"$work/closure"

# The closure, minus the dependencies (their layers hold them): sources, then the rest.
sort "$work/deps" >"$work/deps.sorted"
sort "$NIXFRONT_SPEC/$NIXFRONT_SPEC_SOURCES" >"$work/sources.sorted"
comm -23 "$work/closure" "$work/deps.sorted" >"$work/own"
comm -12 "$work/own" "$work/sources.sorted" >"$work/part-sources"
comm -23 "$work/own" "$work/sources.sorted" >"$work/part-results"
lay_out "$work/part-results" "$NIXFRONT_RESULTS"
lay_out "$work/part-sources" "$NIXFRONT_SOURCES"

# BuildKit's own mkdir cannot set the sticky bit; the top layer copies this directory instead.
mkdir -p "$NIXFRONT_EXTRAS_DIR/tmp"
chmod 1777 "$NIXFRONT_EXTRAS_DIR/tmp"
touch -h -d @1 "$NIXFRONT_EXTRAS_DIR/tmp"

{
    printf '{"manifestVersion":2,"results":'
    json_lines "$work/results"
    printf ',"pathInfo":'
    cat "$work/path-info.json"
    printf '}\n'
} >"$NIXFRONT_META/$NIXFRONT_MANIFEST"
echo "nixfront: closure of $(wc -l <"$work/closure") store paths copied ($(wc -l <"$work/own") the package's own, the rest in dependency layers)" >&2
. "$(dirname "$0")/bound.sh"
# When the step held the store (ns since the epoch): two builds sharing it never overlap.
echo "nixfront: the build step ran from $started to $(date +%s%N)" >&2
