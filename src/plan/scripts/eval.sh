# nixfront's evaluation step: `/bin/sh eval.sh REF FLAKE SYSTEM METADATA [--override-input NAME
# FLAKE]...` in the builder image. Keyed by the context: it runs again after any edit.
#
# Evaluates the package once (its derivation, outputs, name and mainProgram; its .drv and those
# of its inputs land in the store), taking the locked inputs the fetch step fetched, and reads
# the flake's metadata only when METADATA is 1 (a flake that is not the build context: its
# lastModified dates the image). Builds nothing. Writes, as plan/output.rs says:
#   $NIXFRONT_META/$NIXFRONT_PLAN        the derivation with its direct inputs (JSON of `nix
#                                        derivation show`), its outputs, the closure of its
#                                        input sources, the package's facts, the flake's metadata
#   $NIXFRONT_PKG/nix/store/<base>       the derivation's closure (the derivations it is made
#                                        from, which Nix reads to build it, and the sources):
#                                        what the package step needs besides the dependencies
#   $NIXFRONT_PKG/db                     their registrations (`nix-store --dump-db`)
#   $NIXFRONT_DRVS                       a file:// binary cache (no compression) of the input
#                                        derivations' closure (content-addressed), from which
#                                        the steps that build them take what their store lacks
# FLAKE's further packages ($NIXFRONT_SPEC/$NIXFRONT_SPEC_EXTRAS: their flakes and attribute
# paths, as nixfront resolved them) are evaluated together, in one more Nix process, their
# flakes taken by their locked references; when flake inputs are replaced (--override-input)
# each is evaluated with the same overrides instead ($NIXFRONT_SPEC_EXTRA_REFS). Their
# derivations join the inputs.
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_META:?}" "${NIXFRONT_PLAN:?}" "${NIXFRONT_PKG:?}" "${NIXFRONT_DRVS:?}" \
    "${NIXFRONT_FETCHED:?}" "${NIXFRONT_PLAN_VERSION:?}"
ref=$1
flake=$2
system=$3
metadata=$4
shift 4
work=$(mktemp -d)
if [ -s "${NIXFRONT_SPEC:-/nonexistent}/$NIXFRONT_SPEC_NOTICES" ]; then
    while IFS= read -r notice; do echo "nixfront: warning: $notice" >&2; done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_NOTICES"
fi
prepare_store
if [ -s "$NIXFRONT_FETCHED/paths" ]; then
    copy_content_addressed "$NIXFRONT_FETCHED/cache" "$NIXFRONT_FETCHED/paths"
fi

nixc_for "$system" eval --json --no-write-lock-file "$@" --apply 'p: {
    drvPath = p.drvPath;
    name = p.name or null;
    mainProgram = (p.meta or {}).mainProgram or null;
    outputs = map (o: { name = o; path = p.${o}.outPath; }) (p.outputs or [ "out" ]);
  }' -- "$ref" >"$work/package.json"
drv=$(tr ',{}' '\n\n\n' <"$work/package.json" | grep '^"drvPath":' | cut -d'"' -f4)
case $drv in
    /nix/store/*.drv) ;;
    *) echo "nixfront: the evaluation gave no derivation for $ref" >&2; exit 1 ;;
esac
nix-store --query --references "$drv" >"$work/refs"
grep '\.drv$' "$work/refs" >"$work/inputs" || true
grep -v '\.drv$' "$work/refs" >"$work/srcs" || true

# The further packages: a derivation and the outputs it installs (as buildEnv takes them) each.
installs='p: { drvPath = p.drvPath; outputs = map (o: { name = o; path = p.${o}.outPath; })
    ((p.meta or {}).outputsToInstall or [ (p.outputName or "out") ]); }'
echo '[]' >"$work/extras.json"
if [ -s "${NIXFRONT_SPEC:-/nonexistent}/$NIXFRONT_SPEC_EXTRAS" ] && [ $# -eq 0 ]; then
    mkdir "$work/pick"
    {
        printf '{"flakes":['
        sep=
        while IFS= read -r base; do
            nixc flake metadata --json --no-write-lock-file -- "$base" >"$work/metadata.json"
            printf '%s"%s"' "$sep" "$(grep -o '"url":"[^"]*"' "$work/metadata.json" | tail -n 1 | cut -d'"' -f4)"
            sep=,
        done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_EXTRA_FLAKES"
        printf '],"wanted":'
        cat "$NIXFRONT_SPEC/$NIXFRONT_SPEC_EXTRAS"
        printf '}'
    } >"$work/pick/wanted.json"
    echo '{ outputs = { self }: { wanted = builtins.fromJSON (builtins.readFile ./wanted.json); }; }' \
        >"$work/pick/flake.nix"
    nixc_for "$system" eval --json --no-write-lock-file --apply "w: let
        flakes = map builtins.getFlake w.flakes;
        find = set: path: builtins.foldl' (v: name:
          if v != null && builtins.isAttrs v && v ? \${name} then v.\${name} else null) set path;
        pick = want: let
            found = builtins.filter (v: v != null) (map (find (builtins.elemAt flakes want.flake)) want.paths);
          in if found == [ ] then throw \"nixfront: \${want.ref} is not an attribute of its flake\"
             else ($installs) (builtins.head found);
      in map pick w.wanted" -- "path:$work/pick#wanted" >"$work/extras.json"
elif [ -s "${NIXFRONT_SPEC:-/nonexistent}/$NIXFRONT_SPEC_EXTRAS" ]; then
    {
        printf '['
        sep=
        while IFS= read -r extra; do
            printf '%s' "$sep"
            sep=,
            nixc_for "$system" eval --json --no-write-lock-file "$@" --apply "$installs" -- "$extra"
        done <"$NIXFRONT_SPEC/$NIXFRONT_SPEC_EXTRA_REFS"
        printf ']'
    } >"$work/extras.json"
fi
tr ',{}[]' '\n\n\n\n\n' <"$work/extras.json" | grep '^"drvPath":' | cut -d'"' -f4 >>"$work/inputs" || true
sort -u -o "$work/inputs" "$work/inputs"

nixc $derivation_show -- "$drv" $(cat "$work/inputs") >"$work/derivations.json"

: >"$work/src-closure"
if [ -s "$work/srcs" ]; then nix-store --query --requisites $(cat "$work/srcs") >"$work/src-closure"; fi

echo null >"$work/flake.json"
if [ "$metadata" = 1 ]; then
    nixc flake metadata --json --no-write-lock-file "$@" -- "$flake" >"$work/flake.json" 2>/dev/null \
        || echo null >"$work/flake.json"
fi

# What the package step takes: the derivation's closure (every derivation it is made from,
# which Nix reads to build it, and every source) as a tree, with its registrations. The input
# derivations' closure also goes to a binary cache the dependency steps take what their store
# lacks from (content-addressed: a store takes a path only if its content matches its name).
nix-store --query --requisites "$drv" | sort >"$work/package"
lay_out "$work/package" "$NIXFRONT_PKG"
xargs nix-store --dump-db <"$work/package" >"$NIXFRONT_PKG/db"
mkdir -p "$NIXFRONT_DRVS"
if [ -s "$work/inputs" ]; then
    nix-store --query --requisites $(cat "$work/inputs") | sort >"$work/input-closure"
    copy_paths "$work/input-closure" --to "file://$NIXFRONT_DRVS?compression=none"
fi

write_plan "$drv" "$work/derivations.json" "$work/src-closure" "$work/package.json" "$work/extras.json" \
    "$work/flake.json" "$NIXFRONT_META/$NIXFRONT_PLAN"
