# volley in a container, for sharded runs on Kubernetes (see deploy/kubernetes/README.md).
# Build from the repository root:  docker build -t volley:latest .

# The builder compiles the release binary. The code uses Rust 2024 and let chains, which
# need Rust 1.88 or later; this pins the version the project was last built with.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin volley

# The runtime holds the binary, CA certificates for https targets, and /bin/sh for the
# merge Job's folder pattern.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 volley \
    && useradd --system --uid 10001 --gid volley --home-dir /work --create-home volley
COPY --from=builder /src/target/release/volley /usr/local/bin/volley
USER 10001:10001
# Without --out, reports go to ./reports, which is writable here.
WORKDIR /work
ENTRYPOINT ["volley"]
CMD ["--help"]
