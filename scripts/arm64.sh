#!/usr/bin/env bash
# arm64 on this x86_64 machine, offline, from Debian's packages:
#
#   scripts/arm64.sh frontend      the frontend's static aarch64 binary, cross-built with Debian's
#                                  rustc-web and its Rust standard library for arm64, at
#                                  target/frontend/linux-arm64/nixfront
#   scripts/arm64.sh busybox       a static arm64 busybox for the tests' flakes, at
#                                  $CI_ROOT/arm64/busybox
#   scripts/arm64.sh binfmt on|off|status
#                                  emulation of aarch64 programs on the builder's host: Debian's
#                                  qemu-user-static registered in binfmt_misc (with the F flag,
#                                  so that containers and chroots use it), or every aarch64
#                                  handler disabled
#
# binfmt_misc is the host kernel's, shared by every engine and container: `off` and `on` change
# it for everything on this machine. Runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

BINFMT=/proc/sys/fs/binfmt_misc
# How binfmt_misc recognises an aarch64 ELF executable, as its entries print it.
AARCH64_MAGIC=7f454c460201010000000000000000000200b700
# Debian's registration line for qemu-user-static (fix-binary, credentials, preserve argv0).
QEMU_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

install_cross() {
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    APT_ARCH=arm64 apt_install rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
        libc6-dev-arm64-cross
}

frontend() {
    install_cross
    # Debian's toolchain, not rustup's (which has no aarch64 standard library offline), in a
    # target directory of its own.
    CARGO_TARGET_DIR=target/cross \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        RUSTFLAGS="-C target-feature=+crt-static" RUSTC=/usr/bin/rustc \
        /usr/bin/cargo build --release --locked --target aarch64-unknown-linux-gnu >&2
    stage_frontend arm64 target/cross/aarch64-unknown-linux-gnu/release/nixfront
}

busybox() {
    local dir=$CI_ROOT/arm64 deb
    [ -x "$dir/busybox" ] && return 0
    install_cross
    mkdir -p "$dir/deb"
    deb=$(cd "$dir/deb" && apt-get download busybox-static:arm64 >/dev/null 2>&1 && ls ./*.deb | head -1)
    dpkg-deb -x "$dir/deb/$deb" "$dir/root"
    cp "$dir/root/bin/busybox" "$dir/busybox.new"
    mv "$dir/busybox.new" "$dir/busybox"
    log "arm64 busybox at $dir/busybox"
}

# The binfmt_misc entries that handle aarch64 executables (ours or any other's).
aarch64_handlers() {
    local e
    for e in "$BINFMT"/*; do
        case ${e##*/} in register | status) continue ;; esac
        grep -q "^magic $AARCH64_MAGIC" "$e" 2>/dev/null && echo "$e"
    done
    return 0
}

binfmt() {
    mountpoint -q "$BINFMT" || mount -t binfmt_misc binfmt_misc "$BINFMT"
    local e handlers
    case ${1:-status} in
        on)
            handlers=$(aarch64_handlers)
            if [ -z "$handlers" ]; then
                apt_install qemu-user-static
                cat "$QEMU_CONF" >"$BINFMT/register"
                handlers=$(aarch64_handlers)
            fi
            for e in $handlers; do echo 1 >"$e"; done
            ;;
        off)
            for e in $(aarch64_handlers); do echo 0 >"$e"; done
            ;;
        status) ;;
        *) echo "usage: $0 binfmt on|off|status" >&2; exit 2 ;;
    esac
    for e in $(aarch64_handlers); do
        if grep -qx enabled "$e"; then echo "on"; return 0; fi
    done
    echo "off"
}

case ${1:-} in
    frontend) frontend ;;
    busybox) busybox ;;
    binfmt) binfmt "${2:-status}" ;;
    *) echo "usage: $0 frontend|busybox|binfmt on|off|status" >&2; exit 2 ;;
esac
