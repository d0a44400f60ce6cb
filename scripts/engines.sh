#!/usr/bin/env bash
# Installs and starts the two real BuildKits nixfront is tested on, offline, and the Nix
# builder image both of them use. Idempotent: what already runs or exists is kept.
# Where they live and how to reach them: scripts/lib.sh. Recipes: ../shared/docs/offline-buildkit.md
#
# Usage: scripts/engines.sh [d20|d26|all|stop]   (default all; stop ends d26 and unmounts)
#
# Runs as root over chroots: bind mounts are made rslave (unmounting inside never reaches the
# host), daemons are ended by their pidfile, and a chroot is deleted only below $CI_ROOT,
# after everything below it is unmounted, without crossing a filesystem boundary.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
want=${1:-all}

# The mount points at or below $1, deepest first.
mounts_below() {
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r
}

# Unmounts everything at or below a chroot; fails if anything stays mounted.
unmount_root() {
    local m
    for m in $(mounts_below "$1"); do umount -R "$m" 2>/dev/null || true; done
    if [ -n "$(mounts_below "$1")" ]; then
        log "cannot unmount everything below $1:"
        mounts_below "$1" >&2
        exit 1
    fi
}

# Deletes a chroot: only below $CI_ROOT, after unmounting, never across a filesystem boundary.
remove_root() {
    local root=$1
    case $root in
        "$CI_ROOT"/?*) ;;
        *) log "refusing to remove '$root': not below $CI_ROOT"; exit 1 ;;
    esac
    unmount_root "$root"
    rm -rf --one-file-system -- "$root"
}

# Whether the process of PIDFILE runs in a network namespace other than this shell's.
in_own_netns() { # PIDFILE
    [ -s "$1" ] && [ "$(readlink "/proc/$(cat "$1")/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ]
}

start_d20() {
    apt_install docker.io debootstrap busybox-static iproute2 git
    # dockerd 20.10 runs in a network namespace of its own, as 26 does: test traffic (the Nix
    # world's server, git daemons) stays inside namespaces these scripts make.
    if d20 info >/dev/null 2>&1 && ! in_own_netns "$D20_PIDFILE"; then
        log "restarting dockerd 20.10 in a network namespace of its own"
        stop_pidfile "$D20_PIDFILE"
        ip link del docker0 2>/dev/null || true
    fi
    if ! d20 info >/dev/null 2>&1; then
        log "starting dockerd 20.10 (own network namespace)"
        mkdir -p "$CI_ROOT"
        stop_pidfile "$D20_PIDFILE"
        # From /: BuildKit runs git (remote contexts) in dockerd's working directory, which must
        # outlive the caller's (a CI clone may be deleted while the daemon runs).
        (cd / && exec nohup unshare -n sh -c "ip link set lo up; exec dockerd --pidfile $D20_PIDFILE" \
            >"$CI_ROOT/dockerd20.log" 2>&1) &
        wait_for 60 d20 info || { tail -20 "$CI_ROOT/dockerd20.log" >&2; exit 1; }
    fi
    make_nix_images
}

# The Nix builder images (scripts/lib.sh names them), made once in dockerd 20.10.
make_nix_images() {
    d20 image inspect "$NIX_IMAGE" >/dev/null 2>&1 || debian_nix_image "$NIX_IMAGE" trixie "$NIXROOT_CURRENT"
    d20 image inspect "$NIX_IMAGE_OLDEST" >/dev/null 2>&1 || debian_nix_image "$NIX_IMAGE_OLDEST" bookworm "$NIXROOT"
    d20 image inspect "$NIX_IMAGE_OFFICIAL" >/dev/null 2>&1 || official_nix_image
}

# A Nix builder image from a Debian suite's nix-bin (bookworm: Nix 2.8, trixie: 2.26), with
# git and an ssh client; nix is /usr/bin/nix and its /nix/store starts empty.
debian_nix_image() { # IMAGE SUITE ROOT
    local image=$1 suite=$2 root=$3
    log "building the Nix builder image $image (Debian $suite's nix-bin)"
    if [ ! -f "$root/.nixfront-ready" ]; then
        remove_root "$root"
        # libdbi-perl must be named: debootstrap cannot resolve nix-bin's virtual dependency
        # perl-dbdabi-94 by itself.
        debootstrap --variant=minbase --include=nix-bin,libdbi-perl,git,ca-certificates,openssh-client \
            "$suite" "$root" >"$CI_ROOT/debootstrap-nix-$suite.log" 2>&1
        mkdir -p "$root/etc/nix"
        printf '%s\n' 'experimental-features = nix-command flakes' 'sandbox = false' \
            'build-users-group =' 'substituters =' >"$root/etc/nix/nix.conf"
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        touch "$root/.nixfront-ready"
    fi
    tar -C "$root" --exclude=./proc --exclude=./sys --exclude=./dev/* -c . | d20 import - "$image" >/dev/null
}

# The replica of the official nixos/nix image, made from the trixie root's Nix and tools by
# scripts/official-image.sh, with the official image's config (Env).
official_nix_image() {
    # Its source is the trixie root (kept after its image is made, or made again).
    [ -f "$NIXROOT_CURRENT/.nixfront-ready" ] || debian_nix_image "$NIX_IMAGE" trixie "$NIXROOT_CURRENT"
    log "building the official image's replica $NIX_IMAGE_OFFICIAL"
    local config changes=() line
    config=$(bash "$(dirname "$0")/official-image.sh" "$NIXROOT_CURRENT" "$OFFICIAL_ROOT")
    while IFS= read -r line; do changes+=(--change "$line"); done <<<"$config"
    tar -C "$OFFICIAL_ROOT" -c . | d20 import "${changes[@]}" - "$NIX_IMAGE_OFFICIAL" >/dev/null
}

stop_d26() {
    [ -d "$TRIXIE" ] || return 0
    stop_pidfile "$TRIXIE$D26_PIDFILE"
    unmount_root "$TRIXIE"
}

# Binds a host directory into the chroot, recursively, as a slave: nothing unmounted inside
# propagates back to the host.
bind_slave() {
    mountpoint -q "$TRIXIE$1" && return 0
    mount --rbind "$1" "$TRIXIE$1"
    mount --make-rslave "$TRIXIE$1"
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
            trixie "$TRIXIE" >"$CI_ROOT/debootstrap-trixie.log" 2>&1
        touch "$TRIXIE/.nixfront-ready"
    fi
    mountpoint -q "$TRIXIE" || { mount --bind "$TRIXIE" "$TRIXIE"; mount --make-private "$TRIXIE"; }
    mountpoint -q "$TRIXIE/proc" || mount -t proc proc "$TRIXIE/proc"
    bind_slave /sys
    bind_slave /dev
    mkdir -p "$TRIXIE/etc/docker" "$TRIXIE/run/d26"
    # The containerd image store (attestations, multi-platform, local cache export) and the
    # security.insecure entitlement, so that NIX_SANDBOX=true can be tested (a client still
    # has to ask for it with --allow security.insecure).
    local config='{"features":{"containerd-snapshotter":true},"builder":{"Entitlements":{"security-insecure":true}}}'
    if [ "$(cat "$TRIXIE/etc/docker/daemon.json" 2>/dev/null)" != "$config" ]; then
        echo "$config" >"$TRIXIE/etc/docker/daemon.json"
        stop_pidfile "$TRIXIE$D26_PIDFILE"
    fi
    if ! d26 info >/dev/null 2>&1; then
        log "starting dockerd 26.1 (own network namespace)"
        stop_pidfile "$TRIXIE$D26_PIDFILE"
        rm -f "$TRIXIE$D26_SOCK"
        (cd / && exec nohup unshare -n sh -c "ip link set lo up; exec chroot '$TRIXIE' dockerd \
            --host unix://$D26_SOCK --data-root /var/lib/docker26 \
            --exec-root /run/d26/exec --pidfile $D26_PIDFILE" \
            >"$CI_ROOT/dockerd26.log" 2>&1) &
        wait_for 90 d26 info || { tail -20 "$CI_ROOT/dockerd26.log" >&2; exit 1; }
    fi
    local image
    for image in "$NIX_IMAGE" "$NIX_IMAGE_OLDEST" "$NIX_IMAGE_OFFICIAL"; do
        d26 image inspect "$image" >/dev/null 2>&1 && continue
        start_d20
        log "loading $image into dockerd 26"
        d20 save "$image" | d26 load >/dev/null
    done
}

case $want in
    d20) start_d20 ;;
    d26) start_d26 ;;
    all) start_d20; start_d26 ;;
    stop) stop_d26 ;;
    *) echo "usage: $0 [d20|d26|all|stop]" >&2; exit 2 ;;
esac
log "ready: $want"
