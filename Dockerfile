# syntax=docker/dockerfile:1

# --- Build --------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Build the dependencies alone first so this layer is cached until
# Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
# (Stubs for every target the manifest declares: the library, the service, the bench tool.)
RUN mkdir -p src/bin \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/bin/chat-api-bench.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin chat-api \
    && rm -rf src target/release/.fingerprint/chat-api-*

# Now the real sources (migrations are embedded into the binary at compile time).
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin chat-api

# --- Runtime ------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin chat

WORKDIR /app
# The default SQLite database lives at ./data/chat.db; mount a volume here to keep it.
RUN mkdir -p /app/data && chown chat:chat /app/data

COPY --from=builder /build/target/release/chat-api /usr/local/bin/chat-api

ENV BIND=0.0.0.0:8080 \
    APP_ENV=production \
    LOG_FORMAT=json
EXPOSE 8080

# No HEALTHCHECK: the slim image has no curl/wget. The service exposes
# GET /health (liveness) and GET /ready (readiness) for orchestrators
# (e.g. Kubernetes httpGet probes) to use instead.

USER chat
ENTRYPOINT ["/usr/local/bin/chat-api"]
