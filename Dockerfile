# syntax=docker/dockerfile:1
# wxpilot: one binary, run as `wxpilot serve | api | worker | migrate | …`.
#   docker build -t wxpilot .
#   docker run --rm -p 8080:8080 wxpilot            # embedded default (SQLite in /var/lib/wxpilot)
# The Helm chart (helm/wxpilot) mounts its own /etc/wxpilot/wxpilot.toml over the one below.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin wxpilot \
    && install -D -m 0755 target/release/wxpilot /out/wxpilot

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wxpilot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/wxpilot --shell /usr/sbin/nologin wxpilot \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/wxpilot \
    && install -d -m 0755 /etc/wxpilot \
    && printf '%s\n' \
        '# Image default; the Helm chart mounts its own file here.' \
        'listen = "0.0.0.0:8080"' \
        'data_dir = "/var/lib/wxpilot"' \
        > /etc/wxpilot/wxpilot.toml
COPY --from=builder /out/wxpilot /usr/local/bin/wxpilot
ENV WXPILOT_CONFIG=/etc/wxpilot/wxpilot.toml
USER 10001:10001
WORKDIR /var/lib/wxpilot
EXPOSE 8080
ENTRYPOINT ["wxpilot"]
CMD ["serve"]
