# syntax=docker/dockerfile:1
# One image for both roles: "code-runner api" (the default command) and
# "code-runner worker". Build and import into k3s as docs/k3s.md shows:
#   docker build -t code-runner-api:0.1.0 .

# The builder and the runtime use the same Debian release (bookworm), so the
# binary links against the glibc it finds at run time.
ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src

# Cargo loads the whole workspace before it builds one binary, so the
# manifest of the test-support member must be here too (its sources are
# small, and it is never compiled for this image).
COPY Cargo.toml Cargo.lock ./
COPY tests/support/kube-testbed tests/support/kube-testbed
COPY src src
# The UI is embedded into the binary at compile time.
COPY ui ui

# The cache mounts keep downloaded crates and compiled dependencies between
# builds. The target folder is a cache mount, so the binary is copied out of
# it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin code-runner \
    && install -D -m 0755 target/release/code-runner /out/code-runner

FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# CA certificates let the binary verify TLS endpoints that are not covered by
# the in-cluster service account CA, such as a kubeconfig's API server.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 code-runner \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin code-runner

COPY --from=builder /out/code-runner /usr/local/bin/code-runner

# A numeric user lets Kubernetes verify runAsNonRoot without reading
# /etc/passwd. The manifests set the same UID.
USER 10001:10001

# 8080: the api (HTTP, UI and /metrics). 9090: the worker's /metrics and
# /health.
EXPOSE 8080 9090

ENTRYPOINT ["/usr/local/bin/code-runner"]
CMD ["api"]

LABEL org.opencontainers.image.title="code-runner" \
      org.opencontainers.image.description="Runs submitted source code as Kubernetes Jobs, queued in Redis" \
      org.opencontainers.image.licenses="Apache-2.0"
