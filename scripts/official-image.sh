#!/usr/bin/env bash
# Builds offline the root of an image laid out like the official nixos/nix one (see
# ../shared/docs/nix-world.md, "The official image"), from a Debian 13 root with Debian's
# nix-bin (Nix 2.26.3): Nix, bash, coreutils, findutils, grep, tar, gzip, xz, git, openssh (and
# less and wget when SRC has them) and the CA bundle, each in a /nix/store path of its own
# running from the store only (the store's glibc and libraries, no /usr, no /lib64), the
# root-profile-env profile, /bin/sh and /usr/bin/env, root, nobody and nixbld1..32, the official
# /etc/nix/nix.conf, and the store database with every path registered valid.
#
# Usage: scripts/official-image.sh SRC DEST
#   SRC   a root made by `debootstrap --variant=minbase
#         --include=nix-bin,libdbi-perl,git,ca-certificates,openssh-client trixie SRC`; only read
#   DEST  the image root to make, below $CI_ROOT (an old one is removed)
# Prints on stdout the --change lines of the image config, one per line, for
#   tar -C DEST -c . | docker import $(each line as --change 'LINE') - TAG
#
# The store itself is laid out by scripts/official_image.py (paths named from their contents:
# two runs give the same paths). Runs as root: DEST's /proc is mounted while DEST's own
# nix-store registers the paths, and unmounted again whatever happens.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 SRC DEST" >&2
    exit 2
fi
SRC=$(realpath -e "$1")
DEST=$(realpath -m "$2")
case $DEST in
    "$CI_ROOT"/?*) ;;
    *) log "refusing DEST '$DEST': not below $CI_ROOT"; exit 1 ;;
esac
[ -x "$SRC/usr/bin/nix" ] || { log "no Nix in $SRC (/usr/bin/nix)"; exit 1; }

IMAGE_PATH=/root/.nix-profile/bin:/nix/var/nix/profiles/default/bin:/nix/var/nix/profiles/default/sbin
CA_BUNDLE=/nix/var/nix/profiles/default/etc/ssl/certs/ca-bundle.crt
CHANGES=(
    "ENV USER=root"
    "ENV PATH=$IMAGE_PATH"
    "ENV MANPATH=/root/.nix-profile/share/man:/nix/var/nix/profiles/default/share/man"
    "ENV SSL_CERT_FILE=$CA_BUNDLE"
    "ENV GIT_SSL_CAINFO=$CA_BUNDLE"
    "ENV NIX_SSL_CERT_FILE=$CA_BUNDLE"
    "ENV NIX_PATH=/nix/var/nix/profiles/per-user/root/channels:/root/.nix-defexpr/channels"
    'CMD ["/root/.nix-profile/bin/bash"]'
)

# The mount points at or below $1, deepest first.
mounts_below() {
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r
}

# What this script mounted, unmounted on exit whatever happens (deepest first).
MOUNTED=()
unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" || umount -l "${MOUNTED[i]}" || log "could not unmount ${MOUNTED[i]}"
    done
    MOUNTED=()
}
trap unmount_all EXIT
trap "exit 130" INT TERM

# A command run inside DEST with the image's environment.
in_image() {
    env -i PATH="$IMAGE_PATH" HOME=/root USER=root NIX_SSL_CERT_FILE="$CA_BUNDLE" \
        "$(command -v chroot)" "$DEST" "$@"
}

apt_install patchelf

if [ -e "$DEST" ]; then
    # Only an earlier output (or an empty directory): never SRC or another chroot.
    if [ -e "$DEST/var/lib/dpkg" ] || [ -e "$DEST/usr/lib" ] \
        || { [ ! -d "$DEST/nix/store" ] && [ -n "$(ls -A "$DEST")" ]; }; then
        log "refusing to remove $DEST: not an image root this script made"
        exit 1
    fi
    if [ -n "$(mounts_below "$DEST")" ]; then
        log "refusing to remove $DEST: something is mounted below it:"
        mounts_below "$DEST" >&2
        exit 1
    fi
    log "removing the old $DEST"
    rm -rf --one-file-system -- "$DEST"
fi
mkdir -p "$DEST"
start=$SECONDS

log "laying out the store from $SRC"
declare -A P
paths=$(python3 "$HERE/official_image.py" store "$SRC" "$DEST")
while read -r key path; do P[$key]=$path; done <<<"$paths"

log "the rest of the root"
install -d -m 0755 "$DEST"/{bin,usr/bin,etc/nix,etc/ssl/certs,root,proc}
install -d -m 1777 "$DEST/tmp" "$DEST/var/tmp"
install -d -m 0755 "$DEST"/nix/var/nix/{gcroots,profiles/per-user/root}
ln -s "${P[bash]}/bin/sh" "$DEST/bin/sh"
ln -s "${P[coreutils]}/bin/env" "$DEST/usr/bin/env"
ln -s "${P[profile]}" "$DEST/nix/var/nix/profiles/default-1-link"
ln -s /nix/var/nix/profiles/default-1-link "$DEST/nix/var/nix/profiles/default"
ln -s /nix/var/nix/profiles "$DEST/nix/var/nix/gcroots/profiles"
ln -s /nix/var/nix/profiles/default "$DEST/root/.nix-profile"
ln -s "$CA_BUNDLE" "$DEST/etc/ssl/certs/ca-bundle.crt"
{
    echo "root:x:0:0:System administrator:/root:${P[bash]}/bin/bash"
    echo "nobody:x:65534:65534:Unprivileged account (don't use!):/var/empty:/bin/false"
    for n in $(seq 32); do echo "nixbld$n:x:$((30000 + n)):30000:Nix build user $n:/var/empty:/bin/false"; done
} >"$DEST/etc/passwd"
{
    echo "root:x:0:root"
    echo "nixbld:x:30000:$(seq -f 'nixbld%g' -s, 32)"
    echo "nobody:x:65534:nobody"
} >"$DEST/etc/group"
cut -d: -f1 "$DEST/etc/passwd" | sed 's/$/:!:1::::::/' >"$DEST/etc/shadow"
chmod 0600 "$DEST/etc/shadow"
printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files dns' >"$DEST/etc/nsswitch.conf"
printf '%s\n' 'sandbox = false' 'build-users-group = nixbld' \
    'trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=' \
    >"$DEST/etc/nix/nix.conf"

log "registering the store paths with the image's own nix-store"
mount -t proc proc "$DEST/proc"
MOUNTED+=("$DEST/proc")
python3 "$HERE/official_image.py" registration "$DEST" \
    | in_image "${P[nix]}/bin/nix-store" --register-validity

# As in a store Nix made: read-only, every mtime 1 s after the epoch.
chmod -R a-w "$DEST"/nix/store/*-*
find "$DEST/nix/store" -exec touch -h -d @1 {} +

log "checking the image"
python3 "$HERE/official_image.py" check "$DEST"
in_image sh -c 'nix --version && nix-store --verify --check-contents \
    && nix-store -q --requisites /nix/var/nix/profiles/default' >&2
unmount_all
rmdir "$DEST/proc"
# Nix left the database checkpointed: its empty write-ahead log and index need not ship.
db=$DEST/nix/var/nix/db/db.sqlite
[ -s "$db-wal" ] || rm -f "$db-wal" "$db-shm"
log "$DEST is ready ($(du -sh "$DEST" | cut -f1), $((SECONDS - start)) s)"
printf '%s\n' "${CHANGES[@]}"
