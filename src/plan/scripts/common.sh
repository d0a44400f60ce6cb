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

# nix with nixfront's settings; `nixc_for SYSTEM ...` also targets SYSTEM.
nixc() {
    # shellcheck disable=SC2086
    nix --extra-experimental-features 'nix-command flakes' \
        --option filter-syscalls false --option sandbox false --option build-users-group '' \
        --option extra-platforms "$native" \
        $secret_opts "$@"
}
nixc_for() {
    system=$1
    shift
    nixc --option system "$system" "$@"
}
