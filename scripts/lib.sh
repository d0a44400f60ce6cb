# Shared facts of nixfront's scripts, sourced by them (never run alone): where the engines
# live and how to reach them. Everything that drives an engine (scripts, the e2e harness,
# the benchmark) goes through scripts/docker.sh, which reads these.
#
#   d20: Debian 12's dockerd 20.10 (BuildKit 0.8) on /var/run/docker.sock, client
#        /usr/bin/docker with DOCKER_BUILDKIT=1
#   d26: Debian 13's dockerd 26.1 + buildx 0.13 (BuildKit 0.13, containerd image store) in a
#        chroot at $TRIXIE, in its own network namespace, on $TRIXIE$D26_SOCK

CI_ROOT=${NIXFRONT_CI_ROOT:-/var/lib/nixfront-ci}
TRIXIE=$CI_ROOT/trixie
NIXROOT=$CI_ROOT/nixroot
# The pidfile of dockerd 20.10.
D20_PIDFILE=/var/run/docker.pid
# The socket and pidfile of dockerd 26, as paths inside the chroot.
D26_SOCK=/run/d26/docker.sock
D26_PIDFILE=/run/d26/docker.pid
# The Nix builder image the tests and the benchmark use.
NIX_IMAGE=localnix/nix:2.8
# The frontend image `# syntax=org/nixfront` resolves to.
FRONTEND_TAG=org/nixfront:latest

d20() { DOCKER_BUILDKIT=1 /usr/bin/docker "$@"; }
d26() { chroot "$TRIXIE" docker -H "unix://$D26_SOCK" "$@"; }

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }

# The pid of each engine's dockerd, whose network namespace its builds use.
engine_pid() { # d20|d26
    case $1 in
        d20) cat "$D20_PIDFILE" ;;
        d26) cat "$TRIXIE$D26_PIDFILE" ;;
    esac
}

# A command in ENGINE's network namespace (where its builds reach 172.17.0.1, its docker0).
in_engine_netns() { # ENGINE CMD...
    local engine=$1
    shift
    nsenter -t "$(engine_pid "$engine")" -n "$@"
}
