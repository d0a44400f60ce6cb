# Sourced by the build steps at their end: a bounded store (NIX_STORE_MAX). Past the bound,
# drop the roots of all but the most recent builds and collect garbage, keeping their closures
# and build-time inputs, and say so.
if [ -n "${NIXFRONT_STORE_MAX:-}" ]; then
    store_bytes() { echo $(($(du -sxk /nix/store | cut -f1) * 1024)); }
    size=$(store_bytes)
    if [ "$size" -gt "$NIXFRONT_STORE_MAX" ]; then
        for keep in 3 1; do
            echo "nixfront: the Nix store holds $size bytes, over NIX_STORE_MAX=$NIXFRONT_STORE_MAX:" \
                "collecting garbage, keeping the $keep most recent builds" >&2
            # shellcheck disable=SC2012
            ls -1 "$roots" | sort -r | tail -n "+$((keep + 1))" | while read -r old; do
                rm -rf -- "${roots:?}/$old"
            done
            nix-store --gc --option keep-outputs true --option keep-derivations true >/dev/null 2>&1
            size=$(store_bytes)
            [ "$size" -le "$NIXFRONT_STORE_MAX" ] && break
        done
        echo "nixfront: the Nix store holds $size bytes after collecting garbage" >&2
        [ "$size" -le "$NIXFRONT_STORE_MAX" ] || echo "nixfront: warning: this build's own closure" \
            "and inputs exceed NIX_STORE_MAX=$NIXFRONT_STORE_MAX" >&2
    fi
fi
