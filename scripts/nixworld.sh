#!/usr/bin/env bash
# The offline copy of the Nix world users build in (shared/docs/nix-world.md), for the tests
# and the benchmark: made once (again when tests/nixworld changes) under $CI_ROOT/nixworld by
# the oldest supported Nix's builder image (its locks every later Nix reads) on dockerd 20.10, and served in each engine's network namespace at
# http://172.17.0.1:18080 (its docker0, where builds reach it and nothing else does).
#
#   tests/nixworld/make-world.sh   what the world holds (inputs, a signed binary cache, apps)
#   tests/nixworld/serve.py        the server: files, /private/ behind basic auth, a request log
#
# Usage: scripts/nixworld.sh [start|stop]   (default start; the engines must be running).
# NIXWORLD_BIG=1 adds a 1 GiB toolchain (pkgs-big.tar.gz and the app web-big), for the
# benchmark's long rows.
# Writes $CI_ROOT/nixworld/world.env: the URL, the cache's public key, the netrc credentials,
# and each engine's request log.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
want=${1:-start}
WORLD=$CI_ROOT/nixworld
PORT=18080
SERVER=http://172.17.0.1:$PORT
CREDENTIALS=nixworld:world-secret-3f1a

stop_servers() {
    local e pidfile pid
    for e in d20 d26; do
        pidfile=$WORLD/run/serve-$e.pid
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        rm -f "$pidfile"
    done
}

start_servers() {
    local e
    mkdir -p "$WORLD/run" "$WORLD/log"
    for e in d20 d26; do
        if [ -s "$WORLD/run/serve-$e.pid" ] && kill -0 "$(cat "$WORLD/run/serve-$e.pid")" 2>/dev/null; then
            continue
        fi
        # nsenter itself in the background (not a function's subshell): it execs the server,
        # so $! is the server's pid, which stop_servers ends.
        nsenter -t "$(engine_pid "$e")" -n python3 tests/nixworld/serve.py "$WORLD/www" "$PORT" \
            "$WORLD/log/$e.jsonl" "$CREDENTIALS" >"$WORLD/log/serve-$e.err" 2>&1 &
        echo $! >"$WORLD/run/serve-$e.pid"
    done
    for e in d20 d26; do
        for _ in $(seq 50); do
            in_engine_netns "$e" python3 -c "import urllib.request as u; u.urlopen('$SERVER/pkgs.tar.gz', timeout=2)" \
                >/dev/null 2>&1 && break
            sleep 0.2
        done
    done
}

if [ "$want" = stop ]; then
    stop_servers
    exit 0
fi

# A world made with the 1 GiB toolchain serves a build that does not ask for it too.
BIG=${NIXWORLD_BIG:-0}
[ -f "$WORLD/big" ] && [ "$BIG" = 0 ] && BIG=1
stamp=$( (echo "big=$BIG $NIX_IMAGE_OLDEST"; cat $(find tests/nixworld -type f | sort)) | sha256sum | cut -c1-16)
if [ "$(cat "$WORLD/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "making the Nix world in $WORLD"
    stop_servers
    rm -rf --one-file-system -- "${WORLD:?}/www" "$WORLD/work" "$WORLD/apps"
    mkdir -p "$WORLD/www"
    start_servers
    d20 run --rm -v "$PWD/tests/nixworld:/src:ro" -v "$WORLD:/world" -v /bin/busybox:/busybox:ro \
        -e SERVER="$SERVER" -e BIG="$BIG" "$NIX_IMAGE_OLDEST" sh /src/make-world.sh >"$WORLD/make.log" 2>&1 \
        || { tail -30 "$WORLD/make.log" >&2; exit 1; }
    echo "$stamp" >"$WORLD/stamp"
    if [ "$BIG" = 1 ]; then touch "$WORLD/big"; else rm -f "$WORLD/big"; fi
fi
start_servers
cat >"$WORLD/world.env" <<ENV
NIXWORLD_URL=$SERVER
NIXWORLD_KEY=$(cat "$WORLD/keys/pk")
NIXWORLD_NETRC_LOGIN=${CREDENTIALS%%:*}
NIXWORLD_NETRC_PASSWORD=${CREDENTIALS#*:}
NIXWORLD_ROOT=$WORLD
ENV
log "serving $WORLD/www at $SERVER in both engines' network namespaces"
