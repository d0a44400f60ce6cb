# nixfront's package listing for the `frontend.targets` subrequest:
# `/bin/sh packages.sh FLAKE#packages.SYSTEM` in the builder image, with the same Nix settings,
# secrets and NIX_CONFIG as a build. Writes $NIXFRONT_META/$NIXFRONT_PACKAGES:
# {"name": "meta.description or empty", ...}
. "$(dirname "$0")/common.sh"
setup_step
: "${NIXFRONT_META:?}" "${NIXFRONT_PACKAGES:?}"
prepare_store
nixc eval --json --no-write-lock-file \
    --apply 'ps: builtins.mapAttrs (n: p: (p.meta or {}).description or "") ps' \
    -- "$1" >"$NIXFRONT_META/$NIXFRONT_PACKAGES"
