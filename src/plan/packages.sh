# nixfront's package listing, run as `/bin/sh packages.sh REF#packages.SYSTEM` in the builder
# image for the `frontend.targets` subrequest. $1 is data: quoted, after `--`.
# Out: /nixfront/meta/packages.json  {"name": "meta.description or empty", ...}
set -eu
nix --extra-experimental-features 'nix-command flakes' --option filter-syscalls false \
    eval --json --no-write-lock-file \
    --apply 'ps: builtins.mapAttrs (n: p: (p.meta or {}).description or "") ps' \
    -- "$1" >/nixfront/meta/packages.json
