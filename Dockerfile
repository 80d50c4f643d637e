# es-inference-operator: a static musl binary on distroless, for linux/amd64 and linux/arm64.
#
#   docker buildx build --platform linux/amd64 -t es-inference-operator:dev --load .
#
# The release workflow (.github/workflows/release.yml) builds both platforms at once. The build
# stage runs on the target platform (a foreign one under QEMU emulation), so each architecture
# compiles natively for its own musl target; BuildKit sets TARGETARCH from --platform.
#
# Base images are pinned by the digest of their multi-arch index; Dependabot
# (.github/dependabot.yml) proposes new digests. BuildKit (the default builder of Docker 23 and
# newer) is required for TARGETARCH and the cache mounts.

# Build stage: the official Rust image, pinned to the toolchain in Cargo.toml (rust-version).
FROM docker.io/library/rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder
ARG TARGETARCH
# musl-tools provides musl-gcc for the C parts of dependencies (ring). The cc crate would look for
# aarch64-linux-musl-gcc on arm64, which Debian does not ship; musl-gcc is the native musl compiler
# on both architectures.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH': build for linux/amd64 or linux/arm64" >&2; exit 1 ;; \
    esac \
    && echo "$target" >/rust-target \
    && apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$target"
# cargo-auditable (pinned) embeds the dependency tree of the binary (the crates of Cargo.lock that
# are compiled in, with their versions) in a section of the binary. BuildKit's SBOM scanner
# (syft) reads it from the final stage, so the image's SBOM lists every Rust crate although the
# runtime stage holds only a static, stripped binary (docs/release.md, "Reading the SBOM").
RUN --mount=type=cache,id=cargo-registry-${TARGETARCH},target=/usr/local/cargo/registry \
    cargo install --locked cargo-auditable@0.7.7
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Build settings (jemalloc's configuration).
COPY .cargo ./.cargo
COPY src ./src
# Cargo reads the test and bench targets declared in Cargo.toml, so they must exist; they are not
# built.
COPY tests ./tests
COPY benches ./benches
# One cache per architecture: the two platforms of a release build run at the same time. arm64
# kernels use 4, 16 or 64 KiB pages, and jemalloc (the allocator) refuses to start on pages
# larger than it was built for: arm64 builds for 64 KiB, which works on all three.
RUN --mount=type=cache,id=cargo-registry-${TARGETARCH},target=/usr/local/cargo/registry \
    --mount=type=cache,id=cargo-target-${TARGETARCH},target=/src/target \
    TARGET="$(cat /rust-target)" \
    && if [ "$TARGETARCH" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi \
    && cargo auditable build --locked --release --target "$TARGET" --bin es-inference-operator \
    && cp "target/$TARGET/release/es-inference-operator" /es-inference-operator

# Runtime: no shell, no package manager; CA certificates, /etc/passwd with nonroot (65532), tzdata.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:b7bb25d9f7c31d2bdd1982feb4dafcaf137703c7075dbe2febb41c24212b946f
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="es-inference-operator" \
      org.opencontainers.image.description="Kubernetes operator that makes Elasticsearch inference endpoints declarative" \
      org.opencontainers.image.source="https://github.com/es-inference-operator/es-inference-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /es-inference-operator /es-inference-operator
# Numeric, so that the kubelet can verify runAsNonRoot (a user name cannot be checked).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/es-inference-operator"]
CMD ["run"]
