# Makes the offline Nix world, inside the oldest supported Nix's builder image (NIX_IMAGE_OLDEST, whose
# lock files every later Nix reads: 2.26 locks a relative path input in a way 2.8 refuses), its server
# reachable at $SERVER: `sh make-world.sh` with the sources (tests/nixworld) at /src and the world at /world.
#   /world/www/pkgs.tar.gz        the nixpkgs-shaped input, as a tarball
#   /world/www/utils.git          the second input, a git repository served as dumb HTTP
#   /world/www/cache              a signed binary cache of every package of pkgs (NARs
#                                 uncompressed: what a build downloads is what it gets)
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
nixw copy --to 'file:///world/www/cache?compression=none' $paths
cp -r /world/www/cache /world/www/private/cache

# With BIG=1, the same world with a 1 GiB toolchain: pkgs-big.tar.gz and the app web-big.
if [ "${BIG:-0}" = 1 ]; then
    cp -r "$work/pkgs" "$work/pkgs-big"
    echo 1024 >"$work/pkgs-big/scale"
    tar -C "$work" -czf /world/www/pkgs-big.tar.gz pkgs-big
    nixw build --no-link "path:$work/pkgs-big#toolchain"
    big=$(nixw path-info "path:$work/pkgs-big#toolchain")
    nixw store sign --key-file /world/keys/sk $big
    nixw copy --to 'file:///world/www/cache?compression=none' $big
fi

# Writes FILE with every FROM in it replaced by TO (line by line, plain shell).
replace_in() { # FILE FROM TO
    while IFS= read -r line; do
        out=
        while :; do
            case $line in
                *"$2"*) out="$out${line%%"$2"*}$3"; line=${line#*"$2"} ;;
                *) out="$out$line"; break ;;
            esac
        done
        printf '%s\n' "$out"
    done <"$1" >"$1.new"
    mv "$1.new" "$1"
}

# The apps, locked against the server.
key=$(cat /world/keys/pk)
for app in /src/apps/*; do
    name=${app##*/}
    cp -r "$app" "/world/apps/$name"
    if [ -f "/world/apps/$name/flake.nix.in" ]; then
        mv "/world/apps/$name/flake.nix.in" "/world/apps/$name/flake.nix"
        replace_in "/world/apps/$name/flake.nix" @KEY@ "$key"
    fi
done
if [ "${BIG:-0}" = 1 ]; then
    cp -r /world/apps/web /world/apps/web-big
    replace_in /world/apps/web-big/flake.nix pkgs.tar.gz pkgs-big.tar.gz
fi
for app in /world/apps/*; do
    (cd "$app" && nixw flake lock)
done
chmod -R a+rX /world
