# Makes the offline Nix world, inside the Nix builder image (Nix 2.8), its server reachable at
# $SERVER: `sh make-world.sh` with the sources (tests/nixworld) at /src and the world at /world.
#   /world/www/pkgs.tar.gz        the nixpkgs-shaped input, as a tarball
#   /world/www/utils.git          the second input, a git repository served as dumb HTTP
#   /world/www/cache              a signed binary cache of every package of pkgs
#   /world/www/private/cache      the same cache, behind basic auth
#   /world/keys/{sk,pk}           the signing key and its public half
#   /world/apps/<name>            the apps, each with the flake.lock Nix wrote for it
set -eu
: "${SERVER:?}"
nixw() { nix --extra-experimental-features 'nix-command flakes' --option substituters '' --option filter-syscalls false "$@"; }
work=/world/work
rm -rf "$work" /world/www /world/apps /world/keys
mkdir -p "$work" /world/www/private /world/apps /world/keys
cp -r /src/pkgs /src/utils "$work/"
mkdir -p "$work/pkgs/tools"
cp /busybox "$work/pkgs/tools/busybox"

# The inputs, as the server serves them.
tar -C "$work" -czf /world/www/pkgs.tar.gz pkgs
(
    cd "$work/utils"
    git init -q -b main
    git add -A
    git -c user.name=world -c user.email=world@example.invalid commit -q -m utils
    git clone -q --bare . /world/www/utils.git
    cd /world/www/utils.git && git update-server-info
)

# Every package of pkgs, built and signed, in the binary cache (and behind auth).
nix-store --generate-binary-cache-key world-1 /world/keys/sk /world/keys/pk
paths=
for pkg in toolchain libcore libnet libdata cacert tzdata iana-etc; do
    nixw build --no-link "path:$work/pkgs#$pkg"
    paths="$paths $(nixw path-info "path:$work/pkgs#$pkg")"
done
nixw store sign --key-file /world/keys/sk --recursive $paths
nixw copy --to 'file:///world/www/cache?compression=zstd' $paths
cp -r /world/www/cache /world/www/private/cache

# The apps, locked against the server.
key=$(cat /world/keys/pk)
for app in /src/apps/*; do
    name=${app##*/}
    cp -r "$app" "/world/apps/$name"
    if [ -f "/world/apps/$name/flake.nix.in" ]; then
        while IFS= read -r line; do
            case $line in *@KEY@*) printf '%s%s%s\n' "${line%%@KEY@*}" "$key" "${line#*@KEY@}" ;; *) printf '%s\n' "$line" ;; esac
        done <"/world/apps/$name/flake.nix.in" >"/world/apps/$name/flake.nix"
        rm "/world/apps/$name/flake.nix.in"
    fi
    (cd "/world/apps/$name" && nixw flake lock)
done
chmod -R a+rX /world
