#!/usr/bin/env bash
# A flame graph of the gate's hot path under TLS (issue 14), sampled by perf from the gate
# process only, while relaygate's load generator runs STARTTLS sessions with a client
# certificate (resumed where the gate allows it) against it, smtp-sink upstream:
#
#   bash bench/flame.sh [out.svg] [messages-per-session]
#       defaults: bench/flame-tls.svg, 0 (handshakes only: banner, EHLO, STARTTLS, EHLO, QUIT);
#       with messages, 5 per session is what bench/wan.sh sends, pipelined, 2 KB each.
#   RELAYGATE_BIN=PATH profiles another build (a before/after pair).
#
# Needs perf (linux-perf) and inferno's two commands (`cargo install inferno`). Loopback
# only; the run is bounded (4,000 sessions, or 1,000 with messages). Nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
out="${1:-bench/flame-tls.svg}" per="${2:-0}"
for tool in perf inferno-collapse-perf inferno-flamegraph smtp-sink; do
  command -v "$tool" >/dev/null || { echo "bench/flame.sh needs $tool" >&2; exit 1; }
done
cargo build --release --locked --quiet --bins --example loadgen
bin="${RELAYGATE_BIN:-./target/release/relaygate}"
work=$(mktemp -d /tmp/relaygate-flame.XXXXXX)
SINK=127.0.0.1:26801 GATE=127.0.0.1:26802
ports_free "$SINK" "$GATE"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
smtp-sink -u nobody -m 5000 "$SINK" 1024 & pids+=($!)
wait_port "$SINK"
relaygate_conf "$GATE" "$SINK" tls=client pool=64 >"$work/gate.toml"
"$bin" serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 & gate=$!
pids+=("$gate")
wait_port "$GATE"
sessions=4000 opts=(--per-session 0)
[ "$per" = 0 ] || { sessions=1000; opts=(--per-session "$per" --pipeline); }
# A warm-up, so that the graph is of the steady state (tickets issued, pool filled).
./target/release/examples/loadgen "$GATE" 200 20 cert "${opts[@]}" >/dev/null 2>&1
perf record -F 1999 -g --call-graph dwarf,16384 -p "$gate" -o "$work/perf.data" 2>"$work/perf.err" &
perf=$!
sleep 1
./target/release/examples/loadgen "$GATE" "$sessions" 20 cert "${opts[@]}" 2>&1 | grep -v -e "^kv" -e " 0 messages answered"
kill -INT "$perf"
wait "$perf" || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
inferno-flamegraph --title "relaygate under TLS: $sessions sessions, $per messages each ($(date -u +%Y-%m-%d))" \
  --minwidth 1.5 <"$work/folded" >"$out"
echo "flame graph: $out ($(wc -l <"$work/folded") distinct stacks)"
# The ten heaviest functions by self time, for the text of BENCHMARKS.md.
perf report -i "$work/perf.data" --no-children --percent-limit 2 --stdio -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -10
