#!/usr/bin/env bash
# A Nix build host for the remote-builder tests (issue 27): Debian 13's nix-bin and
# openssh-server in a chroot under $CI_ROOT/buildhost, its sshd run in each engine's network
# namespace on port 22, where builds reach it at ssh-ng://root@172.17.0.1 (the engine's
# docker0) and nothing else does. Its Nix builds as root without a sandbox and lists the system
# feature `remote-only`, which no builder image has. Each sshd runs in a mount namespace of its
# own (private /proc and /dev for the chroot), so stopping it leaves no mount behind.
#
# Writes $CI_ROOT/buildhost/host.env: the builder URI, the host's public key (base64, as
# Nix's machine specs take it), and the paths (as dockerd 26's chroot sees them, and as this
# host does) of a key the host accepts and one it refuses, and of a binary cache signing key
# (with its public key). The host is also the machine a user runs a plain `nix build` on.
#
# Usage: scripts/buildhost.sh [start|stop]   (default start; the engines must be running)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
want=${1:-start}
HOST=$CI_ROOT/buildhost
ROOT=$HOST/root
# The client keys live in the d26 chroot, where buildx reads `--secret src=`; d20's client reads
# the same files from the host side.
KEYS_INNER=/var/lib/nixfront-buildhost
KEYS=$TRIXIE$KEYS_INNER

stop_hosts() {
    local e
    for e in d20 d26; do stop_pidfile "$HOST/run/sshd-$e.pid"; done
}

if [ "$want" = stop ]; then
    stop_hosts
    exit 0
fi

apt_install debootstrap
if [ ! -f "$ROOT/.nixfront-ready" ]; then
    log "debootstrapping the build host (nix-bin, openssh-server) in $ROOT"
    case $ROOT in "$CI_ROOT"/?*) rm -rf --one-file-system -- "$ROOT" ;; esac
    mkdir -p "$ROOT"
    debootstrap --variant=minbase --include=nix-bin,libdbi-perl,openssh-server \
        trixie "$ROOT" >"$HOST/debootstrap.log" 2>&1 || { tail -20 "$HOST/debootstrap.log" >&2; exit 1; }
    touch "$ROOT/.nixfront-ready"
fi

# Nix on the host: root builds, no build users, no sandbox, the extra feature.
mkdir -p "$ROOT/etc/nix"
cat >"$ROOT/etc/nix/nix.conf" <<'CONF'
build-users-group =
sandbox = false
experimental-features = nix-command
extra-system-features = remote-only
CONF
# sshd: root by key only, from one authorized_keys file, no PAM.
ssh_config=/etc/ssh/sshd_config.nixfront
cat >"$ROOT$ssh_config" <<'CONF'
Port 22
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile /etc/ssh/nixfront_authorized_keys
PidFile none
CONF
[ -f "$ROOT/etc/ssh/ssh_host_ed25519_key" ] || chroot "$ROOT" ssh-keygen -A >/dev/null
mkdir -p "$ROOT/run/sshd" "$KEYS"
for k in accepted refused; do
    [ -f "$KEYS/$k" ] && continue
    rm -f "$ROOT/tmp/key" "$ROOT/tmp/key.pub"
    chroot "$ROOT" ssh-keygen -q -t ed25519 -N '' -C "nixfront-tests-$k" -f /tmp/key
    mv "$ROOT/tmp/key.pub" "$KEYS/$k.pub"
    mv "$ROOT/tmp/key" "$KEYS/$k"
done
cp "$KEYS/accepted.pub" "$ROOT/etc/ssh/nixfront_authorized_keys"
# The key pair that signs what a build uploads to a fleet's binary cache (NIX_CACHE_TO).
if [ ! -f "$KEYS/fleet.sk" ]; then
    unshare -m --propagation slave sh -c 'mount -t proc proc "$1/proc" &&
        chroot "$1" nix-store --generate-binary-cache-key fleet-1 /tmp/fleet.sk /tmp/fleet.pk' sh "$ROOT" 2>/dev/null
    mv "$ROOT/tmp/fleet.pk" "$KEYS/fleet.pk"
    mv "$ROOT/tmp/fleet.sk" "$KEYS/fleet.sk"
fi

mkdir -p "$HOST/run"
for e in d20 d26; do
    pidfile=$HOST/run/sshd-$e.pid
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
    # Each step execs the next (no fork), so $! is sshd's pid, which stop_hosts ends.
    nsenter -t "$(engine_pid "$e")" -n unshare -m --propagation slave sh -c '
        mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && mount --make-rslave "$1/dev" &&
        exec chroot "$1" /usr/sbin/sshd -D -e -f "$2"' sh "$ROOT" "$ssh_config" >"$HOST/sshd-$e.log" 2>&1 &
    echo $! >"$pidfile"
done
for e in d20 d26; do
    wait_for 20 in_engine_netns "$e" bash -c 'exec 3<>/dev/tcp/172.17.0.1/22' \
        || { tail -20 "$HOST/sshd-$e.log" >&2; exit 1; }
done
cat >"$HOST/host.env" <<ENV
BUILDHOST_URI=ssh-ng://root@172.17.0.1
BUILDHOST_HOST_KEY=$(base64 -w0 <"$ROOT/etc/ssh/ssh_host_ed25519_key.pub")
BUILDHOST_KEY_INNER=$KEYS_INNER/accepted
BUILDHOST_KEY=$KEYS/accepted
BUILDHOST_REFUSED_KEY_INNER=$KEYS_INNER/refused
BUILDHOST_REFUSED_KEY=$KEYS/refused
BUILDHOST_SIGNING_KEY_INNER=$KEYS_INNER/fleet.sk
BUILDHOST_SIGNING_KEY=$KEYS/fleet.sk
BUILDHOST_PUBLIC_KEY=$(cat "$KEYS/fleet.pk")
BUILDHOST_ROOT=$ROOT
ENV
log "build host at ssh-ng://root@172.17.0.1 in both engines' network namespaces"
