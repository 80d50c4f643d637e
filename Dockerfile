# es-inference-operator: a static musl binary on distroless.
#
#   docker build -t es-inference-operator .
#
# Build stage: the official Rust image, pinned to the toolchain in Cargo.toml (rust-version).
# BuildKit cache mounts keep the registry and target/ between builds (the default builder of
# Docker 23 and newer).
FROM docker.io/library/rust:1.95-bookworm AS builder
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools provides musl-gcc for the C parts of dependencies (ring).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$TARGET"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo reads the test targets declared in Cargo.toml, so they must exist; they are not built.
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --target "$TARGET" --bin es-inference-operator \
    && cp "target/$TARGET/release/es-inference-operator" /es-inference-operator

# Runtime: no shell, no package manager; CA certificates, /etc/passwd with nonroot (65532), tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
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
