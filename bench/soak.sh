#!/usr/bin/env bash
# The soak (issue 14): relaygate at half its measured capacity for MINUTES, TLS on both legs,
# with upstream faults sprinkled in, loopback only.
#
#   bash bench/soak.sh [minutes]      (default 30; 2 for a quick check)
#
#   loadgen (STARTTLS, client certificate) -> relaygate -> delayproxy -> upstream
# The upstream is bench/wan-lib.sh's: Postfix smtpd with STARTTLS, smtp-sink behind it as its
# before-queue filter, counting. The delay proxy adds SOAK_RTT ms (default 20) and resets about
# one connection in 1000 (--drop-one-in 1000, seeded by SOAK_SEED). relaygate keeps
# SOAK_POOL (default 0) idle upstream connections: with its pool a handful of connections
# carry the whole run (a connection returns to the pool after each transaction), so one
# connection in a thousand would never fault; without it every message opens an upstream
# connection (TCP, greeting, EHLO, STARTTLS) and about one message in a thousand meets a reset.
# SOAK_POOL=32 soaks the pool instead, with few faults.
#
# First a short full-speed run measures capacity; then loadgen paces messages at half of it
# for the duration. Every SOAK_EVERY seconds (default 5) the script samples relaygate's VmRSS
# (/proc/PID/status), its open descriptors (/proc/PID/fd) and the sink's count into
# bench/soak.csv. At the end (bench/soak-report.py): PASS/FAIL for memory and descriptors flat
# after warm-up (the first quarter) within 5%, and for the messages the clients were told 250
# equal, exactly, to the messages the sink counted; and the plot, bench/soak.svg. Exits 1 on
# any FAIL.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck source=bench/wan-lib.sh
. bench/wan-lib.sh
minutes="${1:-30}"
rtt="${SOAK_RTT:-20}" pool="${SOAK_POOL:-0}" every="${SOAK_EVERY:-5}"
clients="${SOAK_CLIENTS:-20}" per_session="${SOAK_PER_SESSION:-1}" seed="${SOAK_SEED:-1}"
command -v smtp-sink >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; }
cargo build --release --locked --quiet --bins --example loadgen --example delayproxy
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d /tmp/relaygate-soak.XXXXXX)
SINK=127.0.0.1:26600 UP=127.0.0.1:26601 DELAY=127.0.0.1:26602 GATE=127.0.0.1:26603
ports_free "$SINK" "$UP" "$DELAY" "$GATE"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  postfix_stop "$work/upstream"
}
trap cleanup EXIT

upstream_start "$work" "$SINK" "$UP"
delay_start "$work/delay.out" --listen "$DELAY" --upstream "$UP" --rtt-ms "$rtt" \
  --drop-one-in 1000 --seed "$seed"
pids+=("$delay_pid")
relaygate_conf "$GATE" "$DELAY" tls=client upstream_tls=required pool="$pool" >"$work/relaygate.toml"
# Its warnings (each upstream fault) go to a log, counted at the end.
./target/release/relaygate serve --config "$work/relaygate.toml" >"$work/gate.log" 2>&1 & gate=$!
pids+=("$gate")
wait_port "$GATE"

kv() { sed -n 's/^kv //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
lg() { ./target/release/examples/loadgen "$GATE" "$@" cert --per-session "$per_session" --pipeline; }

# settle WORK: wait (bounded, 60 s) until the sink's count has not moved for 2 s.
settle() {
  local last=-1 now
  for _ in $(seq 30); do
    now=$(sink_count "$work")
    [ "$now" = "$last" ] && return 0
    last=$now
    sleep 2
  done
}

# --- capacity ---------------------------------------------------------------------------
lg $((1000 / per_session)) "$clients" >"$work/capacity.out" 2>&1 || true
capacity=$(kv "$work/capacity.out" msgs_per_s)
rate=$(awk -v c="${capacity:-0}" 'BEGIN { printf "%.1f", c / 2 }')
echo "capacity at $clients clients, $rtt ms RTT: $capacity msgs/s; soaking at $rate msgs/s for $minutes min" >&2
awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || { echo "no capacity measured: $(cat "$work/capacity.out")" >&2; exit 1; }
settle

# --- the soak ---------------------------------------------------------------------------
base=$(sink_count "$work")
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
lg 1000000 "$clients" --rate "$rate" --duration "$secs" >"$work/soak.out" 2>&1 &
loadgen=$!
pids+=("$loadgen")
csv=bench/soak.csv
echo "seconds,rss_kib,fds,sink_messages,msgs_per_s" >"$csv"
start=$(date +%s.%N) prev=$base prev_t=$start
# Bounded: the soak's own length in samples, plus a minute for the last sessions to finish.
for _ in $(seq $((secs / every + 60 / every + 2))); do
  kill -0 "$loadgen" 2>/dev/null || break
  sleep "$every"
  now=$(date +%s.%N) count=$(sink_count "$work")
  # Only samples under the paced load: after --duration the sessions wind down.
  awk -v t="$now" -v s="$start" -v d="$secs" 'BEGIN { exit !(t - s <= d) }' || break
  rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$gate/status")
  fds=$(find "/proc/$gate/fd" -mindepth 1 -maxdepth 1 | wc -l)
  awk -v t="$now" -v s="$start" -v r="$rss" -v f="$fds" -v c="$count" -v b="$base" -v p="$prev" -v pt="$prev_t" \
    'BEGIN { printf "%.1f,%s,%s,%d,%.1f\n", t - s, r, f, c - b, (c - p) / (t - pt) }' >>"$csv"
  prev=$count prev_t=$now
done
wait "$loadgen" || true
settle
accepted=$(kv "$work/soak.out" accepted)
sunk=$(($(sink_count "$work") - base))
resets=$(grep -c "reset connection" "$work/delay.out" || true)
echo "loadgen: $(grep -v '^kv' "$work/soak.out" | tail -1)" >&2
echo "delay proxy: $resets upstream connections reset; relaygate logged $(grep -c WARN "$work/gate.log" || true) warnings" >&2
python3 bench/soak-report.py "$csv" "${accepted:-0}" "$sunk" bench/soak.svg \
  "relaygate soak: $minutes min at $rate msgs/s, $rtt ms RTT, $resets upstream resets"
