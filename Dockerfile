# syntax=docker/dockerfile:1
# Container image for the example beat scheduler (celers-kube-lease-scheduler).
#
#   docker build -t celers-kube-lease-scheduler:dev .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts,
# which keep the cargo registry and the target directory between builds so a
# source change rebuilds only the workspace crates, not every dependency.

# ---- build ------------------------------------------------------------------
# Debian bookworm, like the runtime image below: same glibc (2.36).
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The whole workspace with its Cargo.lock: cargo needs the manifest and sources
# of every member (the library, testkit/, example-scheduler/, reliability/, bench/) to
# resolve it, even to build one package. .dockerignore keeps target/, .git/,
# deploy/ and hack/ out of the context; nothing in them is needed to build.
COPY . .

# --locked: build exactly the dependency versions in Cargo.lock.
# target/ is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p celers-kube-lease-scheduler \
 && install -D -m 0755 target/release/celers-kube-lease-scheduler /out/celers-kube-lease-scheduler

# ---- runtime ----------------------------------------------------------------
# distroless cc: glibc + libgcc + CA certificates, nothing else (no shell).
# TLS is rustls, so no OpenSSL is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/celers-kube-lease-scheduler /usr/local/bin/celers-kube-lease-scheduler
# 65532 is the "nonroot" user of distroless; numeric so runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/celers-kube-lease-scheduler"]
