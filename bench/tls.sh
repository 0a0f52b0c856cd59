#!/usr/bin/env bash
# STARTTLS figures with relaygate's own load generator (bench/loadgen.rs), loopback only:
#  - sessions/s and p50/p99 of a whole transaction: direct to smtp-sink (plain) against
#    through relaygate plain, with STARTTLS, and with STARTTLS and a client certificate;
#  - the upstream connection pool when the upstream speaks STARTTLS: relaygate in front of a
#    second relaygate (the STARTTLS upstream) in front of smtp-sink, with and without the pool.
#
#   bash bench/tls.sh [sessions]       (default 2000; 20 at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
n="${1:-2000}"
command -v smtp-source >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; }
cargo build --release --locked --quiet --bins --example loadgen
work=$(mktemp -d /tmp/relaygate-tls.XXXXXX)
SINK=127.0.0.1:26301 GATE=127.0.0.1:26302 INNER=127.0.0.1:26303 POOLED=127.0.0.1:26304 UNPOOLED=127.0.0.1:26305
ports_free "$SINK" "$GATE" "$INNER" "$POOLED" "$UNPOOLED"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

gate() { # name listen upstream-address upstream-tls pool
  local upstream_tls=none
  [ "$4" = none ] || upstream_tls=$4
  relaygate_conf "$2" "$3" name="$1" tls=client upstream_tls="$upstream_tls" pool="$5" >"$work/$1.toml"
  ./target/release/relaygate serve --config "$work/$1.toml" & pids+=($!)
  wait_port "$2"
}

smtp-sink -u nobody -m 5000 "$SINK" 1024 & pids+=($!)
wait_port "$SINK"
gate gate "$GATE" "$SINK" none 32
gate inner "$INNER" "$SINK" none 32
gate pooled "$POOLED" "$INNER" required 64
gate unpooled "$UNPOOLED" "$INNER" required 0

lg() { ./target/release/examples/loadgen "$@"; }
echo "## Sessions per second and latency ($n sessions, 20 at a time, 2 KB)"
lg "$SINK" "$n" 20 plain
lg "$GATE" "$n" 20 plain
lg "$GATE" "$n" 20 starttls
lg "$GATE" "$n" 20 cert
echo "## STARTTLS upstream, with and without the connection pool (client side plain)"
lg "$POOLED" "$n" 20 plain
lg "$UNPOOLED" "$n" 20 plain
