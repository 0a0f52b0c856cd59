# syntax=docker/dockerfile:1
#
# relaygate container image: multi-stage build, small Debian runtime, fixed non-root UID.
#
#   docker build -t relaygate .
#   docker run --rm --name relaygate \
#     -p 2525:2525 -p 9025:9025 \
#     -v "$PWD/config/container.toml:/etc/relaygate/relaygate.toml:ro" \
#     -v "/path/to/tls:/etc/relaygate/tls:ro" \
#     --ulimit nofile=8192:8192 \
#     relaygate
#   docker stop -t 45 relaygate        # longer than server.shutdown_grace_secs (default 30)
#
# Mounts (read-only; the image ships no configuration and no keys):
#   /etc/relaygate/relaygate.toml   the configuration (config/container.toml is a template)
#   /etc/relaygate/tls/             gate.pem, gate.key, client-ca.pem as that file names them;
#                                   readable by UID 10025 or GID 10025 (e.g. root:10025, 0640)
# No VOLUME instruction on purpose: an anonymous volume would silently hide a missing mount,
# and the configuration is input, not data. /var/lib/relaygate (the working directory, owned
# by the relaygate user) is where an upstream of kind "directory" can write, if you mount a
# volume there.

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# 1. Dependencies only, in their own layer: with dummy sources the layer depends on
#    Cargo.toml and Cargo.lock alone, so editing src/ does not rebuild the dependencies.
#    (Cargo.toml's [[example]] and the tests/ and bench/ directories are not needed for
#    `cargo build --release`, which builds the library and the binary only.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. The real sources. COPY keeps the files' original modification times, which can be older
#    than the dummy build's fingerprints: touch them so cargo rebuilds the crate itself.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && strip target/release/relaygate \
    && install -D -m 0755 target/release/relaygate /out/relaygate \
    && /out/relaygate --version

# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------
# debian:bookworm-slim rather than gcr.io/distroless/cc-debian12: the HEALTHCHECK below needs
# a tiny HTTP client, and bash's /dev/tcp is one that costs nothing (no curl, no wget). On
# distroless there is no shell, so a HEALTHCHECK would need an HTTP client built into the
# binary; on Kubernetes that does not matter (the kubelet probes /health/* itself) and
# distroless would do.
# No ca-certificates: relaygate trusts the web PKI roots compiled into it (webpki-roots) for the
# upstream, and [upstream] ca names a PEM file for a private CA.
FROM debian:bookworm-slim

RUN groupadd --system --gid 10025 relaygate \
    && useradd --system --uid 10025 --gid relaygate \
        --home-dir /var/lib/relaygate --no-create-home --shell /usr/sbin/nologin relaygate \
    && install -d -o relaygate -g relaygate -m 0750 /var/lib/relaygate \
    && install -d -m 0755 /etc/relaygate

COPY --from=build /out/relaygate /usr/local/bin/relaygate

LABEL org.opencontainers.image.title="relaygate" \
      org.opencontainers.image.description="SMTP gate that enforces Exchange Online's relay-attribution rules before the cloud does" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

WORKDIR /var/lib/relaygate
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10025:10025

# 2525: SMTP (put a load balancer or `-p 25:2525` in front). 9025: [admin] listen, /metrics and
# /health/*. Both are what config/container.toml listens on.
EXPOSE 2525 9025

# Ready = listeners bound, configuration loaded, upstream answered a recent EHLO probe. Needs
# `[admin] listen` on port 9025 in the mounted configuration. Plain HTTP/1.1 over bash's
# /dev/tcp; the check's own --timeout bounds a server that never answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9025 && printf 'GET /health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [[ $code == 200* ]]"]

# SIGTERM drains: idle sessions get 421, transactions in flight finish within
# server.shutdown_grace_secs (default 30). `docker stop` waits only 10 s by default: use
# `docker stop -t 45` or compose's `stop_grace_period: 45s`. SIGHUP (`docker kill -s HUP`)
# reloads the configuration and certificates. relaygate handles these signals itself and starts
# no child processes, so it runs as PID 1 without an init.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/relaygate"]
CMD ["serve", "--config", "/etc/relaygate/relaygate.toml"]
