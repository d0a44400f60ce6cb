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
    if ! d20 image inspect "$NIX_IMAGE" >/dev/null 2>&1; then
        make_nix_image
    fi
}

# A Nix builder image from Debian's nix-bin (Nix 2.8); its /nix/store starts empty.
make_nix_image() {
    log "building the Nix builder image $NIX_IMAGE"
    if [ ! -f "$NIXROOT/.nixfront-ready" ]; then
        remove_root "$NIXROOT"
        debootstrap --variant=minbase --include=nix-bin,libdbi-perl,git,ca-certificates \
            bookworm "$NIXROOT" >"$CI_ROOT/debootstrap-nix.log" 2>&1
        mkdir -p "$NIXROOT/etc/nix"
        printf '%s\n' 'experimental-features = nix-command flakes' 'sandbox = false' \
            'build-users-group =' 'substituters =' >"$NIXROOT/etc/nix/nix.conf"
        rm -rf "$NIXROOT"/var/cache/apt/archives/*.deb "$NIXROOT"/var/lib/apt/lists/*
        touch "$NIXROOT/.nixfront-ready"
    fi
    tar -C "$NIXROOT" -c . | d20 import - "$NIX_IMAGE" >/dev/null
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
    if ! d26 image inspect "$NIX_IMAGE" >/dev/null 2>&1; then
        start_d20
        log "loading $NIX_IMAGE into dockerd 26"
        d20 save "$NIX_IMAGE" | d26 load >/dev/null
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
