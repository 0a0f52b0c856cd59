#!/usr/bin/env bash
# TLS on both legs and a WAN between the relay and its upstream (issue 14), side by side in one
# run, loopback only. For each round-trip time (0, 20, 50 ms) and each client count (20, 200):
#   direct    loadgen -> delayproxy -> upstream                   (the ceiling)
#   relaygate loadgen -> relaygate -> delayproxy -> upstream      (TLS both legs, pooled)
#   postfix   loadgen -> Postfix relay -> delayproxy -> upstream  (TLS both legs, connection
#             cache on with TLS connection reuse; answers from its queue)
#   nginx     loadgen -> nginx mail proxy -> delayproxy -> upstream (STARTTLS to clients;
#             nginx cannot speak TLS upstream, so that leg is plain)
# The clients (bench/loadgen.rs) use STARTTLS with a client certificate and pipeline MAIL, RCPT
# and DATA. The upstream is a real TLS-speaking SMTP server: Postfix smtpd from its own
# configuration directory (bench/lib.sh), STARTTLS offered, with smtp-sink as its before-queue
# proxy filter (smtpd_proxy_filter): it answers the final dot only once smtp-sink has the
# message and queues nothing, so smtp-sink's running count is "the upstream has it".
# The delay proxy (bench/delayproxy.rs) delays each direction by RTT/2.
#
#   bash bench/wan.sh [messages]     (default 2000 per run; results to bench/wan-results.md)
#   WAN_PER_SESSION=5 WAN_RTTS="0 20 50" WAN_CLIENTS="20 200" bash bench/wan.sh 400
#   WAN_DATA_ONLY=1 WAN_OUT=bench/wan-results-data-only.md bash bench/wan.sh   (no CHUNKING upstream)
#   WAN_PATHS="direct relaygate nginx postfix" bash bench/wan.sh   (which paths, in which order)
#   WAN_UPSTREAM=sink WAN_OUT=bench/wan-results-sink.md bash bench/wan.sh
#       (the upstream is smtp-sink behind bench/tlsfront.rs, a STARTTLS front: the lightest
#        TLS-speaking upstream, DATA only, so the upstream's own time is as small as it gets)
#   WAN_UPSTREAM=sink-chunking WAN_OUT=bench/wan-results-sink-chunking.md bash bench/wan.sh
#       (the same, the front offering CHUNKING after STARTTLS as Exchange Online does; BDAT
#        goes on to smtp-sink as DATA over loopback)
#
# Reported per run: client msgs/s (250s over the client's run), end-to-end msgs/s (messages over
# the time until the sink counted the last one), p50/p99 from MAIL to the final reply and from
# the end of the text to the final reply, the drain (sink's last count after the client's last
# 250: Postfix's queue), and p50 of MAIL-to-final-reply in upstream RTTs against the pass-through
# floor of 2 (MAIL+RCPT pipelined, then the text). Every wait is bounded; nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck source=bench/wan-lib.sh
. bench/wan-lib.sh
messages="${1:-2000}"
per_session="${WAN_PER_SESSION:-5}"
rtts="${WAN_RTTS:-0 20 50}"
clients_list="${WAN_CLIENTS:-20 200}"
# The order of the paths in each block; direct first, as the others are shown against it.
paths="${WAN_PATHS:-direct relaygate postfix nginx}"
out="${WAN_OUT:-bench/wan-results.md}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need smtp-sink || ! need nginx || [ ! -e /usr/lib/nginx/modules/ngx_mail_module.so ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postfix nginx libnginx-mod-mail >/dev/null
fi
cargo build --release --locked --quiet --bins --example loadgen --example delayproxy --example tlsfront
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d /tmp/relaygate-wan.XXXXXX)
SINK=127.0.0.1:26500 UP=127.0.0.1:26501 DELAY=127.0.0.1:26502 GATE=127.0.0.1:26503
PFX=127.0.0.1:26504 NGINX=127.0.0.1:26505 AUTH=127.0.0.1:26506
ports_free "$SINK" "$UP" "$DELAY" "$GATE" "$PFX" "$NGINX" "$AUTH"

pids=()
per_rtt=()
stop_rtt() {
  for p in "${per_rtt[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  per_rtt=()
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  postfix_stop "$work/relay"
}
cleanup() {
  stop_rtt
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  postfix_stop "$work/upstream"
}
trap cleanup EXIT

# WAN_DATA_ONLY=1: the upstream does not offer CHUNKING (BDAT), as an upstream that only takes
# DATA: a relay then pays the DATA/354 round trip as well.
if [ "${WAN_UPSTREAM:-postfix}" = sink ]; then
  upstream_start_sink "$work" "$SINK" "$UP"
elif [ "${WAN_UPSTREAM:-postfix}" = sink-chunking ]; then
  upstream_start_sink "$work" "$SINK" "$UP" --chunking
else
  upstream_start "$work" "$SINK" "$UP" ${WAN_DATA_ONLY:+"smtpd_discard_ehlo_keywords = chunking"}
fi

# --- the relays under test, started fresh for each RTT -----------------------------------
start_rtt() { # rtt
  delay_start "$work/delay.out" --listen "$DELAY" --upstream "$UP" --rtt-ms "$1"
  per_rtt+=("$delay_pid")

  relaygate_conf "$GATE" "$DELAY" tls=client upstream_tls=required pool=256 >"$work/relaygate.toml"
  ./target/release/relaygate serve --config "$work/relaygate.toml" >>"$work/gate.log" 2>&1 & per_rtt+=($!)
  wait_port "$GATE"

  postfix_start "$work/relay" "$PFX" \
    "myhostname = postfix.bench" "mynetworks = 127.0.0.0/8" "relayhost = [${DELAY%:*}]:${DELAY#*:}" \
    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtpd_peername_lookup = no" "smtpd_tls_security_level = may" \
    "smtpd_tls_cert_file = $work/gate.pem" "smtpd_tls_key_file = $work/gate.key" \
    "smtpd_tls_ask_ccert = yes" "smtpd_tls_CAfile = $work/ca.pem" \
    "smtp_tls_security_level = encrypt" "smtp_tls_CAfile = $work/ca.pem" \
    "smtp_tls_connection_reuse = yes" "smtp_connection_cache_on_demand = yes" \
    "smtp_destination_concurrency_limit = 100" "initial_destination_concurrency = 20" \
    "default_process_limit = 600" "smtpd_client_connection_rate_limit = 0" \
    "smtpd_client_connection_count_limit = 0" "anvil_rate_time_unit = 60s"
  # TLS connection reuse needs the tlsproxy service, which bench/lib.sh's master.cf lacks.
  echo "tlsproxy  unix  - - n -    0 tlsproxy" >>"$work/relay/etc/master.cf"
  postfix -c "$work/relay/etc" reload >/dev/null 2>&1

  nginx_mail_start "$work/nginx" "$NGINX" "$AUTH" "$DELAY" '  smtp_capabilities PIPELINING 8BITMIME "SIZE 36700160";
  ssl_certificate '"$work"'/gate.pem;
  ssl_certificate_key '"$work"'/gate.key;
  ssl_client_certificate '"$work"'/ca.pem;
  ssl_verify_client optional;
  ssl_session_cache off;
  starttls on;'
}

# wait_sink TARGET: until smtp-sink has counted TARGET (bounded: 120 s); prints when, or "".
wait_sink() {
  for _ in $(seq 2400); do
    [ "$(sink_count "$work")" -ge "$1" ] && { date +%s.%N; return 0; }
    sleep 0.05
  done
  echo ""
}

kv() { sed -n 's/^kv //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
direct_p50=""

# one RTT CLIENTS PATH ADDR: one run, one table row.
one() {
  local rtt=$1 clients=$2 path=$3 addr=$4
  local sessions=$(((messages + per_session - 1) / per_session))
  local base start end sink_at accepted
  base=$(sink_count "$work")
  start=$(date +%s.%N)
  ./target/release/examples/loadgen "$addr" "$sessions" "$clients" cert --per-session "$per_session" \
    --pipeline >"$work/lg.out" 2>&1 || true
  end=$(date +%s.%N)
  accepted=$(kv "$work/lg.out" accepted)
  sink_at=$(wait_sink $((base + ${accepted:-0})))
  echo "rtt $rtt, $clients clients, $path: $(grep -v '^kv' "$work/lg.out" | tail -1)" >&2
  # The direct path runs first at each RTT and client count: the others are also shown against
  # it, as the upstream's own time (TLS, Postfix, the sink) is in every path's figure.
  [ "$path" != direct ] || direct_p50=$(kv "$work/lg.out" txn_p50)
  awk -v rtt="$rtt" -v c="$clients" -v path="$path" -v s="$start" -v e="$end" -v k="$sink_at" \
    -v n="${accepted:-0}" -v err="$(kv "$work/lg.out" errors)" -v mps="$(kv "$work/lg.out" msgs_per_s)" \
    -v m50="$(kv "$work/lg.out" txn_p50)" -v m99="$(kv "$work/lg.out" txn_p99)" \
    -v t50="$(kv "$work/lg.out" text_p50)" -v t99="$(kv "$work/lg.out" text_p99)" -v d50="$direct_p50" 'BEGIN {
      e2e = (k == "") ? "sink short" : sprintf("%.1f", n / (k - s));
      drain = (k == "") ? "-" : sprintf("%.2f", (k > e) ? k - e : 0);
      floor = (rtt > 0) ? sprintf("%.2f RTT (%+.1f ms)", m50 / rtt, m50 - 2 * rtt) : "-";
      if (path == "postfix") floor = "- (answers from its queue)";
      else if (path != "direct" && d50 != "") floor = floor sprintf("; direct %+.1f ms", m50 - d50);
      printf "| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s |\n",
        rtt, c, path, mps, e2e, m50, m99, t50, t99, drain, floor, err }'
}

{
  # This block is a subshell (the pipe to tee): the relays it starts are in its per_rtt, which
  # the script's own trap cannot see. Its own trap stops them if a step fails.
  trap stop_rtt EXIT
  echo "### TLS both legs over a WAN ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "$messages messages per run, $per_session per session, 2 KB, clients on STARTTLS with a client"
  if [ "${WAN_UPSTREAM:-postfix}" = sink ]; then
    echo "certificate, pipelining; upstream: smtp-sink behind bench/tlsfront.rs (STARTTLS, DATA only)."
  elif [ "${WAN_UPSTREAM:-postfix}" = sink-chunking ]; then
    echo "certificate, pipelining (DATA); upstream: smtp-sink behind bench/tlsfront.rs --chunking"
    echo "(STARTTLS, CHUNKING offered as Exchange Online does; BDAT goes on to smtp-sink as DATA)."
  else
    echo "certificate, pipelining; upstream: Postfix smtpd (STARTTLS) with smtp-sink as its before-queue"
    echo "filter${WAN_DATA_ONLY:+, not offering CHUNKING (DATA only)}."
  fi
  echo "nginx's upstream leg is plain. Latencies in ms; the floor is 2 upstream RTT; \"direct\" is the p50 against the direct path's in the same run."
  echo
  echo "| RTT ms | clients | path | client msgs/s | end-to-end msgs/s | MAIL to final reply p50 / p99 | end of text to final reply p50 / p99 | drain s | p50 vs floor; vs direct | session errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for rtt in $rtts; do
    start_rtt "$rtt"
    for clients in $clients_list; do
      for path in $paths; do
        case $path in
          direct) one "$rtt" "$clients" direct "$DELAY" ;;
          relaygate) one "$rtt" "$clients" relaygate "$GATE" ;;
          postfix) one "$rtt" "$clients" postfix "$PFX" ;;
          nginx) one "$rtt" "$clients" nginx "$NGINX" ;;
          *) echo "unknown path $path" >&2; exit 2 ;;
        esac
      done
    done
    stop_rtt
  done
} | tee "$out"
