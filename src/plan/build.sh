# nixfront's build step, run as `/bin/sh build.sh REF` inside the builder image.
#
# $1 is the flake reference, $2 the same without its #fragment, $3 the Nix system to build
# for (from --platform). They are data: they only ever appear quoted, after `--` or as an
# option's value, so nothing the user wrote is parsed as shell or as a Nix option. This text is fixed and part of the
# frontend binary; a change to it changes the step's cache key.
#
# In:  the build context at /nixfront/src (read-only, when the reference uses it).
# Out: /nixfront/out/<base>/nix/store/<base>   each store path of the runtime closure as its
#                                             own tree, copied with modes and times kept
#      /nixfront/out/.nixfront-root/tmp       what nixfront adds to the image (mode 1777)
#      /nixfront/meta/manifest.json  results, package name and mainProgram, path-info
set -eu
ref=$1
flake=$2
system=$3
out=/nixfront/out
meta=/nixfront/meta
work=$(mktemp -d)

# Secrets from the client (`--secret id=netrc`, `--secret id=access-tokens`), when given.
# Their contents are never printed; access tokens go to Nix through this process's
# NIX_CONFIG only.
secret_opts=
if [ -s /run/secrets/netrc ]; then
    secret_opts="--option netrc-file /run/secrets/netrc"
    echo "nixfront: using the netrc from --secret id=netrc" >&2
fi
if [ -s /run/secrets/access-tokens ]; then
    NIX_CONFIG="${NIX_CONFIG:-}
access-tokens = $(tr '\n' ' ' </run/secrets/access-tokens)"
    export NIX_CONFIG
    echo "nixfront: using access tokens from --secret id=access-tokens" >&2
fi
[ -S "${SSH_AUTH_SOCK:-}" ] && echo "nixfront: forwarding the SSH agent from --ssh default" >&2

nixc() {
    # shellcheck disable=SC2086
    nix --extra-experimental-features 'nix-command flakes' \
        --option filter-syscalls false --option sandbox false --option build-users-group '' \
        --option system "$system" --option extra-platforms "$native" \
        $secret_opts "$@"
}

# The builder runs natively; Nix builds for $system (the flake's packages.$system) and can
# still build derivations for the builder's own system.
native=$(nix --extra-experimental-features nix-command eval --impure --raw --expr builtins.currentSystem)
[ "$system" = "$native" ] || echo "nixfront: building for $system on a $native builder" >&2

if [ "${NIXFRONT_VERIFY_STORE:-}" = 1 ]; then
    echo "nixfront: verifying the Nix store (NIX_VERIFY_STORE=true)" >&2
    if ! nix-store --verify --check-contents; then
        echo "nixfront: the persistent Nix store is damaged; drop it with" \
            "'docker builder prune --filter type=exec.cachemount' and build again" >&2
        exit 1
    fi
    echo "nixfront: the Nix store is consistent" >&2
fi

mkdir "$work/links"
nixc build --no-write-lock-file --print-build-logs --out-link "$work/links/result" -- "$ref"

for link in "$work"/links/result*; do readlink -f "$link"; done >"$work/results"

# The closure of every output, as JSON for the manifest and as a list to copy. Store paths
# contain no blanks or glob characters, so the unquoted expansion is a plain list.
results=$(cat "$work/results")
# shellcheck disable=SC2086
nixc path-info --json --recursive -- $results >"$work/path-info.json"
# shellcheck disable=SC2086
nixc path-info --recursive -- $results >"$work/closure"

# Name and meta.mainProgram, for the image's entrypoint. Optional: null when not evaluable.
nixc eval --json --no-write-lock-file \
    --apply 'p: { name = p.name or null; mainProgram = (p.meta or {}).mainProgram or null; }' \
    -- "$ref" >"$work/package.json" 2>/dev/null || echo null >"$work/package.json"

while read -r p; do
    tree="$out/${p##*/}/nix/store"
    mkdir -p "$tree"
    cp -a -- "$p" "$tree/"
done <"$work/closure"

# BuildKit's own mkdir cannot set the sticky bit; the top layer copies this directory instead.
# The flake's lastModified dates the image when SOURCE_DATE_EPOCH is not given.
nixc flake metadata --json --no-write-lock-file -- "$flake" >"$work/flake.json" 2>/dev/null \
    || echo null >"$work/flake.json"

mkdir -p "$out/.nixfront-root/tmp"
chmod 1777 "$out/.nixfront-root/tmp"

{
    printf '{"manifestVersion":1,"results":['
    sep=
    while read -r p; do printf '%s"%s"' "$sep" "$p"; sep=,; done <"$work/results"
    printf '],"package":'
    cat "$work/package.json"
    printf ',"flake":'
    cat "$work/flake.json"
    printf ',"pathInfo":'
    cat "$work/path-info.json"
    printf '}\n'
} >"$meta/manifest.json"
echo "nixfront: closure of $(wc -l <"$work/closure") store paths copied" >&2
