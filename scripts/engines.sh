#!/usr/bin/env bash
# Installs and starts the two real BuildKits nixfront is tested on, offline, and the Nix
# builder image both of them use. Idempotent: what already runs or exists is kept.
#
#   d20: Debian 12's dockerd 20.10 (BuildKit 0.8) on /var/run/docker.sock
#   d26: Debian 13's dockerd 26.1 + buildx 0.13 (BuildKit 0.13, containerd image store) in a
#        chroot at $NIXFRONT_CI_ROOT/trixie, in its own network namespace, on
#        $NIXFRONT_CI_ROOT/trixie/run/d26/docker.sock
#
# Usage: scripts/engines.sh [d20|d26|all|stop]   (default all; stop ends d26 and unmounts)
# Recipes: ../shared/docs/offline-buildkit.md
set -euo pipefail

CI_ROOT=${NIXFRONT_CI_ROOT:-/var/lib/nixfront-ci}
TRIXIE=$CI_ROOT/trixie
NIXROOT=$CI_ROOT/nixroot
NIX_IMAGE=localnix/nix:2.8
D20="/usr/bin/docker"
D26_SOCK=/run/d26/docker.sock
want=${1:-all}

log() { printf '[engines] %s\n' "$*" >&2; }

# The mount points at or below $1, deepest first.
mounts_below() {
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r
}

# Unmounts everything at or below a chroot: the host's /dev, /sys and /proc are bound there.
unmount_root() {
    local m
    for m in $(mounts_below "$1"); do umount -R "$m" 2>/dev/null || umount -l "$m"; done
    if [ -n "$(mounts_below "$1")" ]; then
        log "cannot unmount everything below $1"; exit 1
    fi
}

# Deletes a chroot. Unmounts first and never crosses a filesystem boundary, so nothing bound
# into it from the host can be touched.
remove_root() {
    local root=$1
    case $root in
        "$CI_ROOT"/?*) ;;
        *) log "refusing to remove '$root': not below $CI_ROOT"; exit 1 ;;
    esac
    unmount_root "$root"
    rm -rf --one-file-system -- "$root"
}

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ ! -f /var/lib/nixfront-ci.apt-updated ]; then
        apt-get update -q >/dev/null && mkdir -p "$CI_ROOT" && touch /var/lib/nixfront-ci.apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

wait_for() { # wait_for SECONDS CMD...
    local n=$1; shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    return 1
}

start_d20() {
    apt_install docker.io debootstrap busybox-static iproute2
    if ! $D20 info >/dev/null 2>&1; then
        log "starting dockerd 20.10"
        mkdir -p "$CI_ROOT"
        # From /: BuildKit runs git (remote contexts) in dockerd's working directory, which must
        # outlive the caller's (a CI clone may be deleted while the daemon runs).
        (cd / && exec nohup dockerd >"$CI_ROOT/dockerd20.log" 2>&1) &
        wait_for 60 $D20 info || { tail -20 "$CI_ROOT/dockerd20.log" >&2; exit 1; }
    fi
    if ! $D20 image inspect $NIX_IMAGE >/dev/null 2>&1; then
        make_nix_image
    fi
}

# A Nix builder image from Debian's nix-bin (Nix 2.8); its /nix/store starts empty.
make_nix_image() {
    log "building the Nix builder image $NIX_IMAGE"
    if [ ! -f "$NIXROOT/.nixfront-ready" ]; then
        remove_root "$NIXROOT"
        debootstrap --variant=minbase --include=nix-bin,libdbi-perl,git,ca-certificates \
            bookworm "$NIXROOT" http://deb.debian.org/debian >"$CI_ROOT/debootstrap-nix.log" 2>&1
        mkdir -p "$NIXROOT/etc/nix"
        printf '%s\n' 'experimental-features = nix-command flakes' 'sandbox = false' \
            'build-users-group =' 'substituters =' >"$NIXROOT/etc/nix/nix.conf"
        rm -rf "$NIXROOT"/var/cache/apt/archives/*.deb "$NIXROOT"/var/lib/apt/lists/*
        touch "$NIXROOT/.nixfront-ready"
    fi
    tar -C "$NIXROOT" -c . | $D20 import - $NIX_IMAGE >/dev/null
}

d26() { chroot "$TRIXIE" docker -H "unix://$D26_SOCK" "$@"; }

stop_d26() {
    if pkill -f "dockerd --host unix://$D26_SOCK"; then
        for _ in $(seq 30); do pgrep -f "dockerd --host unix://$D26_SOCK" >/dev/null || break; sleep 1; done
    fi
    [ -d "$TRIXIE" ] && unmount_root "$TRIXIE"
    return 0
}

start_d26() {
    apt_install debootstrap iproute2
    if [ ! -f "$TRIXIE/.nixfront-ready" ]; then
        log "debootstrapping Debian 13 with docker.io 26 + buildx"
        stop_d26
        remove_root "$TRIXIE"
        mkdir -p "$CI_ROOT"
        debootstrap --variant=minbase \
            --include=docker.io,docker-cli,docker-buildx,git,ca-certificates,iproute2 \
            trixie "$TRIXIE" http://deb.debian.org/debian >"$CI_ROOT/debootstrap-trixie.log" 2>&1
        touch "$TRIXIE/.nixfront-ready"
    fi
    mountpoint -q "$TRIXIE" || mount --bind "$TRIXIE" "$TRIXIE"
    mountpoint -q "$TRIXIE/proc" || mount -t proc proc "$TRIXIE/proc"
    mountpoint -q "$TRIXIE/sys" || mount --rbind /sys "$TRIXIE/sys"
    mountpoint -q "$TRIXIE/dev" || mount --rbind /dev "$TRIXIE/dev"
    mkdir -p "$TRIXIE/etc/docker" "$TRIXIE/run/d26"
    echo '{"features":{"containerd-snapshotter":true}}' >"$TRIXIE/etc/docker/daemon.json"
    if ! d26 info >/dev/null 2>&1; then
        log "starting dockerd 26.1 (own network namespace)"
        rm -f "$TRIXIE$D26_SOCK" "$TRIXIE/run/d26/docker.pid"
        (cd / && exec nohup unshare -n sh -c "ip link set lo up; exec chroot '$TRIXIE' dockerd \
            --host unix://$D26_SOCK --data-root /var/lib/docker26 \
            --exec-root /run/d26/exec --pidfile /run/d26/docker.pid" \
            >"$CI_ROOT/dockerd26.log" 2>&1) &
        wait_for 90 d26 info || { tail -20 "$CI_ROOT/dockerd26.log" >&2; exit 1; }
    fi
    if ! d26 image inspect $NIX_IMAGE >/dev/null 2>&1; then
        start_d20
        log "loading $NIX_IMAGE into dockerd 26"
        $D20 save $NIX_IMAGE | d26 load >/dev/null
    fi
}

case $want in
    d20) start_d20 ;;
    d26) start_d26 ;;
    all) start_d20; start_d26 ;;
    stop) stop_d26 ;;
    *) echo "usage: $0 [d20|d26|all|stop]" >&2; exit 2 ;;
esac
log "ready: $want"
