# The nixfront frontend image: one static binary on scratch.
#
# Real users (a registry is reachable):
#   docker buildx build -f frontend.Dockerfile -t org/nixfront .
# Offline (our machines): build the binaries on the host, then package them without any base
# image:
#   scripts/frontend-image.sh          # amd64, tagged org/nixfront:latest in the test engines
#   scripts/release.sh REGISTRY/REPO   # amd64 + arm64, pushed as one index with version tags
ARG BINARY_FROM=build
ARG RUST_IMAGE=rust:1-bookworm

# Built natively for each target platform (under emulation for the other one).
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN triple="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$triple" \
 && cp "target/$triple/release/nixfront" /nixfront

# Built beforehand, one binary per architecture (scripts/lib.sh's stage_frontend).
FROM scratch AS prebuilt
ARG TARGETARCH
COPY target/frontend/linux-${TARGETARCH}/nixfront /nixfront

FROM ${BINARY_FROM} AS binary

FROM scratch
ARG VERSION=unknown
COPY --from=binary /nixfront /nixfront
# The frontend needs no network; BuildKit runs it without one.
LABEL moby.buildkit.frontend.network.none="true"
# Gateway capabilities nixfront implements beyond the plain build: subrequests (outline,
# targets, lint, describe) and named contexts (--build-context, which replace flake inputs).
# Clients refuse those with a frontend whose image lacks this label (options::FRONTEND_CAPS).
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
LABEL org.opencontainers.image.title="nixfront" \
      org.opencontainers.image.description="BuildKit frontend: a Nix flake to a layered OCI image" \
      org.opencontainers.image.version="${VERSION}"
ENTRYPOINT ["/nixfront"]
