# Sourced by the build steps: with NIX_VERIFY_STORE=true, check every path of the store
# against the hash its database records before building. Catches accidental damage.
if [ "${NIXFRONT_VERIFY_STORE:-}" = 1 ]; then
    echo "nixfront: verifying the Nix store (NIX_VERIFY_STORE=true)" >&2
    if ! nix-store --verify --check-contents; then
        echo "nixfront: the persistent Nix store is damaged; drop it with" \
            "'docker builder prune --filter type=exec.cachemount' and build again" >&2
        exit 1
    fi
    echo "nixfront: the Nix store is consistent" >&2
fi
