# relaygate: multi-stage build, small runtime image, non-root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/relaygate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates netcat-openbsd \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10025 --home /var/lib/relaygate --create-home relaygate
COPY --from=build /src/target/release/relaygate /usr/local/bin/relaygate
# Mount the configuration at /etc/relaygate/relaygate.toml and certificates beside it.
WORKDIR /var/lib/relaygate
USER relaygate
EXPOSE 2525
HEALTHCHECK --interval=30s --timeout=5s CMD nc -z 127.0.0.1 2525 || exit 1
ENTRYPOINT ["relaygate"]
CMD ["serve", "--config", "/etc/relaygate/relaygate.toml"]
