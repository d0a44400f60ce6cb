#!/usr/bin/env bash
# A local OCI registry for the release test: Debian's docker-registry, installed in the d26
# chroot and run in dockerd 26's network namespace, where it is localhost:5000 to that
# engine's builds and pushes (Docker treats loopback registries as plain HTTP). Its storage is
# under the chroot's /var/lib/nixfront-registry, emptied by `start`.
#
# Usage: scripts/registry.sh start|stop     (dockerd 26 must be running: scripts/engines.sh d26)
# Reaching it from here: scripts/registry.sh get PATH (curl in that namespace, body to stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CONFIG=/etc/nixfront-registry.yml
STORAGE=/var/lib/nixfront-registry
PIDFILE=$CI_ROOT/run/registry.pid
ADDR=127.0.0.1:5000

start() {
    stop
    if ! chroot "$TRIXIE" dpkg -s docker-registry >/dev/null 2>&1; then
        log "installing docker-registry in the d26 chroot"
        chroot "$TRIXIE" sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry curl >/dev/null'
    fi
    rm -rf --one-file-system -- "${TRIXIE:?}$STORAGE"
    mkdir -p "$TRIXIE$STORAGE" "$CI_ROOT/run"
    cat >"$TRIXIE$CONFIG" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STORAGE
http:
  addr: $ADDR
YAML
    (cd / && exec nohup nsenter -t "$(engine_pid d26)" -n chroot "$TRIXIE" docker-registry serve "$CONFIG" \
        >"$CI_ROOT/registry.log" 2>&1) &
    echo $! >"$PIDFILE"
    wait_for 30 get /v2/ || { tail -20 "$CI_ROOT/registry.log" >&2; exit 1; }
    log "registry at $ADDR in dockerd 26's network namespace"
}

stop() { stop_pidfile "$PIDFILE"; }

get() { # PATH [CURL ARGS...]
    local path=$1
    shift
    in_engine_netns d26 chroot "$TRIXIE" curl -fsS "$@" "http://$ADDR$path"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    get) shift; get "$@" ;;
    *) echo "usage: $0 start|stop|get PATH [CURL ARGS...]" >&2; exit 2 ;;
esac
