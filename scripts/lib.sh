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
NIXROOT_CURRENT=$CI_ROOT/nixroot-2.26
OFFICIAL_ROOT=$CI_ROOT/official
# The pidfile of dockerd 20.10.
D20_PIDFILE=/var/run/docker.pid
# The socket and pidfile of dockerd 26, as paths inside the chroot.
D26_SOCK=/run/d26/docker.sock
D26_PIDFILE=/run/d26/docker.pid
# The Nix builder images of the tests and the benchmark (scripts/engines.sh makes them):
#   NIX_IMAGE           Debian 13's nix-bin, Nix 2.26: the builder of every test that names
#                       no other, and of the benchmark
#   NIX_IMAGE_OLDEST    Debian 12's nix-bin, Nix 2.8: the oldest Nix nixfront supports
#   NIX_IMAGE_OFFICIAL  a replica of the official nixos/nix image (Nix and every tool in
#                       /nix/store; scripts/official-image.sh), tagged as nixfront's default
#                       builder, so that a Nixfile without NIX_IMAGE builds on it as users' do
NIX_IMAGE=localnix/nix:2.26
NIX_IMAGE_OLDEST=localnix/nix:2.8
NIX_IMAGE_OFFICIAL=docker.io/nixos/nix:2.24.10
# The frontend image `# syntax=org/nixfront` resolves to.
FRONTEND_TAG=org/nixfront:latest
# The tests' hostile client (examples/raw_client.rs), built beside the frontend.
RAW_CLIENT_TAG=org/raw-client:latest

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

# Installs the Debian packages (PKG or PKG:ARCH) that are missing; the package lists are
# refreshed when older than a day or when an architecture was added since.
apt_install() {
    local missing=() p lists=/var/lib/apt/lists
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] \
        || { [ -n "${APT_ARCH:-}" ] && [ -z "$(find "$lists" -maxdepth 1 -name "*binary-${APT_ARCH}_Packages*" 2>/dev/null | head -1)" ]; }; then
        apt-get update -q >/dev/null
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

# Runs CMD until it succeeds, once a second, for at most SECONDS.
wait_for() { # wait_for SECONDS CMD...
    local n=$1; shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    return 1
}

# Puts a built frontend binary where frontend.Dockerfile's `prebuilt` stage takes it for
# TARGETARCH ARCH: target/frontend/linux-ARCH/nixfront.
stage_frontend() { # ARCH BINARY
    mkdir -p "target/frontend/linux-$1"
    cp "$2" "target/frontend/linux-$1/nixfront.new"
    mv "target/frontend/linux-$1/nixfront.new" "target/frontend/linux-$1/nixfront"
}

# The frontend's amd64 binary, built with rustup's toolchain, staged.
build_frontend_amd64() {
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target x86_64-unknown-linux-gnu >&2
    stage_frontend amd64 target/x86_64-unknown-linux-gnu/release/nixfront
}

# The release: the version in Cargo.toml.
nixfront_version() {
    grep -m1 '^version = ' Cargo.toml | cut -d'"' -f2
}

# Ends the process named by a pidfile and waits for it; nothing when it is not running.
stop_pidfile() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$pidfile"
}
