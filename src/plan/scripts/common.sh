# Shared by nixfront's steps (sourced, never run alone): the one way every step calls Nix.
#
# The contract (paths, exit codes) comes from the environment nixfront sets for the step
# (plan/output.rs); user data (flake references, the system) only ever come as arguments of
# the step's script, quoted, after `--` or as an option's value. This text is fixed and part
# of the frontend binary; a change to it changes the steps' cache keys.
set -eu
: "${NIXFRONT_SECRETS:?}" "${NIXFRONT_EXIT_NO_NIX:?}" "${TMPDIR:?}"

if ! command -v nix >/dev/null 2>&1; then
    echo "nixfront: the builder image has no 'nix' on its PATH ($PATH)" >&2
    exit "$NIXFRONT_EXIT_NO_NIX"
fi

# Derivations never run as root: Nix runs each builder as one of the build users of group
# nixbld (the official image has them; others get them here, in this step's own /etc). The
# store, its database, nixfront's directories and the secrets stay root's, out of their reach.
build_group=nixbld
if ! grep -q "^$build_group:" /etc/group 2>/dev/null; then
    mkdir -p /etc
    members=
    for i in $(seq 1 32); do
        echo "nixbld$i:x:$((30000 + i)):30000:Nix build user $i:/var/empty:/bin/false" >>/etc/passwd
        members="$members${members:+,}nixbld$i"
    done
    echo "$build_group:x:30000:$members" >>/etc/group
fi

# Secrets from the client (`--secret id=netrc`, `--secret id=access-tokens`), when given.
# Their contents are never printed; access tokens reach Nix through NIX_CONFIG only.
secret_opts=
if [ -s "$NIXFRONT_SECRETS/netrc" ]; then
    secret_opts="--option netrc-file $NIXFRONT_SECRETS/netrc"
    echo "nixfront: using the netrc from --secret id=netrc" >&2
fi
if [ -s "$NIXFRONT_SECRETS/access-tokens" ]; then
    NIX_CONFIG="${NIX_CONFIG:-}
access-tokens = $(tr '\n' ' ' <"$NIXFRONT_SECRETS/access-tokens")"
    export NIX_CONFIG
    echo "nixfront: using access tokens from --secret id=access-tokens" >&2
fi
[ -S "${SSH_AUTH_SOCK:-}" ] && echo "nixfront: forwarding the SSH agent from --ssh default" >&2

# The builder's own system: Nix builds for the target system and can still build
# derivations for this one.
native=$(nix --extra-experimental-features nix-command eval --impure --raw --expr builtins.currentSystem)

# Nix's own sandbox where the step may run it (NIX_SANDBOX=true: BuildKit's insecure mode);
# never a silent fallback to no sandbox.
sandbox=false
[ "${NIXFRONT_SANDBOX:-}" = 1 ] && sandbox=true

# nix and nix-store with nixfront's settings; `nixc_for SYSTEM ...` also targets SYSTEM. These
# come after NIX_CONFIG and the image's nix.conf on the command line, so they win.
nix_opts="--option filter-syscalls false --option sandbox $sandbox --option sandbox-fallback false \
    --option build-users-group $build_group --option accept-flake-config false \
    --option extra-platforms $native $secret_opts"
nixc() {
    # shellcheck disable=SC2086
    nix --extra-experimental-features 'nix-command flakes' $nix_opts "$@"
}
nixc_for() {
    system=$1
    shift
    nixc --option system "$system" "$@"
}
nixstore_for() {
    system=$1
    shift
    # shellcheck disable=SC2086
    nix-store $nix_opts --option system "$system" "$@"
}

# The package's name and meta.mainProgram (for the entrypoint) and the flake's metadata (its
# lastModified dates the image) as JSON files in DIR; `null` where Nix cannot tell.
package_facts() { # SYSTEM REF FLAKE DIR
    nixc_for "$1" eval --json --no-write-lock-file \
        --apply 'p: { name = p.name or null; mainProgram = (p.meta or {}).mainProgram or null; }' \
        -- "$2" >"$4/package.json" 2>/dev/null || echo null >"$4/package.json"
    nixc flake metadata --json --no-write-lock-file -- "$3" >"$4/flake.json" 2>/dev/null \
        || echo null >"$4/flake.json"
}

# The lines of FILE as a JSON array of strings (store paths: no quotes or backslashes).
json_lines() {
    printf '['
    sep=
    while read -r line; do printf '%s"%s"' "$sep" "$line"; sep=,; done <"$1"
    printf ']'
}

# Fails with what to do when the persistent store lacks PATH, which an earlier, cached step
# made (WHAT it did): the store was dropped while BuildKit kept that step's cache.
require_in_store() { # PATH WHAT
    [ -e "$1" ] && return 0
    echo "nixfront: the persistent store lacks $1, which an earlier (cached) step $2;" \
        "build again with --no-cache (the store is kept)" >&2
    exit 1
}

# The runtime closure of the store paths listed in FILE: `nix path-info --json` into JSON and
# the paths, one a line, into LIST. Store paths contain no blanks or glob characters, so the
# unquoted expansion is a plain list.
closure_of() { # FILE JSON LIST
    # shellcheck disable=SC2046
    nixc path-info --json --recursive -- $(cat "$1") >"$2"
    # shellcheck disable=SC2046
    nixc path-info --recursive -- $(cat "$1") >"$3"
}

# The store paths listed in FILE as DIR/nix/store/<base>, with nixfront's fixed times on the
# directories it makes: the same paths give a byte-identical tree.
lay_out() { # FILE DIR
    mkdir -p "$2/nix/store"
    [ -s "$1" ] && xargs cp -a -t "$2/nix/store/" -- <"$1"
    touch -h -d @1 "$2/nix/store" "$2/nix"
}
