# stream-relay container image: a Rust build stage and a slim Debian runtime stage.
#
#   docker build -t stream-relay .
#   docker run --rm --network=host stream-relay srt -i 'srt://:9000' -o 'srt://:9001'
#
# Host networking is the recommended way to run it: SRT and RIST are UDP, and Docker's port
# mapping rewrites UDP source ports, which breaks peers behind it unless every port is mapped
# 1:1 (see README, "Deployment", "Container image").
#
# scripts/build-image.sh builds and runs this file offline with podman, against locally made
# base images; it builds the binary outside and hands it in as the `build` stage (said there).

# Build stage. The official Rust image on the same Debian release as the runtime stage, so the
# binary is built against the same libsrt/librist/glibc it will find at run time.
FROM rust:1.95-bookworm AS toolchain

# Debian's package versions are not pinned: bookworm's security updates replace them (and old
# versions leave the mirror), so a pin would break the build instead of protecting it. The
# release (bookworm) is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      pkg-config libclang-dev libsrt-openssl-dev librist-dev \
 && rm -rf /var/lib/apt/lists/*

# Dependency caching without a hard-coded list of workspace members (cargo-chef's idea, in
# shell): keep only Cargo.toml/Cargo.lock and empty stand-ins for the sources. This stage reruns
# on every source change, but its output is byte-identical until a manifest or the lock file
# changes, so the COPY --from below, and the dependency build after it, stay cached.
FROM toolchain AS skeleton
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY . /tree
WORKDIR /tree
RUN set -eu; \
    mkdir -p /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    find . -name Cargo.toml -not -path ./Cargo.toml -not -path './target/*' | while read -r m; do \
      d="$(dirname "$m")"; \
      mkdir -p "/skeleton/$d/src"; \
      cp "$m" "/skeleton/$d/"; \
      : > "/skeleton/$d/src/lib.rs"; \
      if [ -f "$d/src/main.rs" ]; then echo 'fn main() {}' > "/skeleton/$d/src/main.rs"; fi; \
      if [ -f "$d/build.rs" ]; then echo 'fn main() {}' > "/skeleton/$d/build.rs"; fi; \
    done

FROM toolchain AS build
WORKDIR /src
COPY --from=skeleton /skeleton /src
RUN cargo build --release --locked -p stream-relay

# The real sources. Touch them so cargo sees them as newer than the stand-ins it just built.
COPY . /src
RUN find /src -path /src/target -prune -o -type f -exec touch {} + \
 && cargo build --release --locked -p stream-relay \
 && install -D -m 0755 target/release/stream-relay /out/stream-relay

# Runtime stage: only the shared libraries the binary opens (libsrt with OpenSSL and librist,
# each at run time by the first route of its protocol) and what they pull in: libssl3,
# libstdc++6, libmbedcrypto7, libcjson1.
FROM debian:bookworm-slim AS runtime

# Same reason as above for not pinning Debian versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsrt1.5-openssl librist4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 stream-relay \
 && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin stream-relay

COPY --from=build /out/stream-relay /usr/local/bin/stream-relay

# Listen on every interface inside the container so Prometheus and the probes can reach
# /metrics and /health (the binary's own default is 127.0.0.1:9710).
ENV HTTP_ADDR=0.0.0.0:9710 \
    LOG_FORMAT=json \
    RUST_LOG=info

# 9710/tcp: /health and /metrics. The SRT/RIST ports depend on the routes you give it; the
# README's examples use 9000-9001/udp.
EXPOSE 9710/tcp 9000/udp 9001/udp

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# The image has no curl or wget: bash's /dev/tcp sends the request and the status line is
# checked for 200 (503 means stopping or failed). The port follows HTTP_ADDR.
# The binary asks its own /health at HTTP_ADDR (loopback when bound to every address).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/stream-relay", "health"]

ENTRYPOINT ["/usr/local/bin/stream-relay"]
CMD ["--help"]
