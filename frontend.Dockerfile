# The nixfront frontend image: one static binary on scratch.
#
# Real users (a registry is reachable):
#   docker buildx build -f frontend.Dockerfile -t org/nixfront .
# Offline (our machines): build the binary on the host, then package it without any base image:
#   scripts/frontend-image.sh          # = cargo build + this file with BINARY_FROM=prebuilt
ARG BINARY_FROM=build
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/nixfront /nixfront

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/nixfront /nixfront

FROM ${BINARY_FROM} AS binary

FROM scratch
COPY --from=binary /nixfront /nixfront
# The frontend needs no network; BuildKit runs it without one.
LABEL moby.buildkit.frontend.network.none="true"
# Gateway capabilities nixfront implements beyond the plain build: subrequests (outline,
# targets, lint, describe) and named contexts (--build-context, which replace flake inputs).
# Clients refuse those with a frontend whose image lacks this label (options::FRONTEND_CAPS).
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
LABEL org.opencontainers.image.title="nixfront" \
      org.opencontainers.image.description="BuildKit frontend: a Nix flake to a layered OCI image"
ENTRYPOINT ["/nixfront"]
