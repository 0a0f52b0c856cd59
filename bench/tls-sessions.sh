#!/usr/bin/env bash
# TLS session figures (issue 14), loopback only, with relaygate's load generator:
#  (a) STARTTLS sessions per second with a client certificate: relaygate against nginx's mail
#      proxy, both presenting the same certificate (certs/gate.pem, EC P-256) and requesting a
#      client certificate from the same CA; the client presents certs/client-mail.contoso.com.pem.
#      A session: banner, EHLO, STARTTLS, handshake, EHLO, QUIT (no mail, so neither proxy
#      contacts its upstream; smtp-sink stands there all the same).
#  (b) 10,000 concurrent TLS sessions held on relaygate: its resident memory before and while
#      holding them, and per session.
#
#   bash bench/tls-sessions.sh [sessions] [held]   (defaults 4000 and 10000; results to
#                                                   stdout and bench/tls-sessions-results.md)
#
# RELAYGATE_BIN=PATH measures another build of the gate (a before/after pair: build the older
# commit, copy its binary away, run once with it and once without); TLS_SESSIONS_OUT=FILE
# writes the table there instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck source=bench/wan-lib.sh
. bench/wan-lib.sh
n="${1:-4000}" held="${2:-10000}"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need smtp-sink || ! need nginx || [ ! -e /usr/lib/nginx/modules/ngx_mail_module.so ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postfix nginx libnginx-mod-mail >/dev/null
fi
cargo build --release --locked --quiet --bins --example loadgen
# Each held session is a descriptor in relaygate and one in the load generator.
ulimit -n 65536 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((held + 1000)) ]; then
  echo "the open-files limit ($(ulimit -n)) is below $((held + 1000)): raise it for $held sessions" >&2
  exit 1
fi

work=$(mktemp -d /tmp/relaygate-tlssess.XXXXXX)
SINK=127.0.0.1:26700 GATE=127.0.0.1:26701 NGINX=127.0.0.1:26702 AUTH=127.0.0.1:26703
ports_free "$SINK" "$GATE" "$NGINX" "$AUTH"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
}
trap cleanup EXIT

smtp-sink -u nobody -m 5000 "$SINK" 1024 & pids+=($!)
wait_port "$SINK"
relaygate_conf "$GATE" "$SINK" tls=client pool=32 max=$((held + 100)) >"$work/gate.toml"
"${RELAYGATE_BIN:-./target/release/relaygate}" serve --config "$work/gate.toml" >"$work/gate.log" 2>&1 & gate=$!
pids+=("$gate")
wait_port "$GATE"

nginx_mail_start "$work/nginx" "$NGINX" "$AUTH" "$SINK" "  ssl_certificate $PWD/certs/gate.pem;
  ssl_certificate_key $PWD/certs/gate.key;
  ssl_client_certificate $PWD/certs/ca.pem;
  ssl_verify_client optional;
  ssl_session_cache off;
  starttls on;"

kv() { sed -n 's/^kv //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
rate() { # ADDR CONCURRENCY [--no-resume]: STARTTLS sessions per second with a client certificate
  ./target/release/examples/loadgen "$1" "$n" "$2" cert --per-session 0 ${3:+"$3"} >"$work/lg.out" 2>&1 || true
  echo "$1, $2 at a time ${3:-}: $(head -1 "$work/lg.out")" >&2
  echo "$(kv "$work/lg.out" sessions_per_s) $(kv "$work/lg.out" errors)"
}
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$gate/status"; }

{
  echo "### STARTTLS sessions and held TLS sessions ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "(a) $n sessions per run (EHLO, STARTTLS with a client certificate, EHLO, QUIT), EC P-256 on both sides."
  echo
  echo "| handshakes | concurrency | relaygate sessions/s | nginx sessions/s | relaygate / nginx | errors (relaygate, nginx) |"
  echo "|---|---|---|---|---|---|"
  # Full handshakes (--no-resume), then with resumption as the client's TLS library allows it
  # (relaygate: rustls' session cache; nginx: its session tickets, on by default).
  for resume in --no-resume ""; do
    for c in 20 200; do
      read -r g ge < <(rate "$GATE" "$c" "$resume")
      read -r x xe < <(rate "$NGINX" "$c" "$resume")
      awk -v h="${resume:+full}" -v c="$c" -v g="$g" -v x="$x" -v ge="$ge" -v xe="$xe" \
        'BEGIN { printf "| %s | %s | %s | %s | %.2fx | %s, %s |\n", (h == "") ? "resumption allowed" : h, c, g, x, (x > 0) ? g / x : 0, ge, xe }'
    done
  done
  echo
  # (b) A fresh gate's memory after the rate runs is not a fresh gate's: measure before and
  # while holding, on this gate, after one warm-up session.
  ./target/release/examples/loadgen "$GATE" 1 1 cert --per-session 1 >/dev/null 2>&1 || true
  before=$(rss)
  ./target/release/examples/loadgen "$GATE" "$held" 200 cert --hold 10 >"$work/hold.out" 2>&1 &
  holder=$!
  pids+=("$holder")
  for _ in $(seq 3000); do grep -q '^holding' "$work/hold.out" && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
  holding=$(sed -n 's/^holding \([0-9]*\) sessions.*/\1/p' "$work/hold.out")
  during=$(rss)
  wait "$holder" || true
  echo "(b) $held TLS sessions (client certificate, idle after EHLO) held on relaygate: $(grep '^holding' "$work/hold.out" || echo 'never all up')."
  echo
  awk -v b="$before" -v d="$during" -v h="${holding:-0}" 'BEGIN {
    printf "| relaygate RSS before | while holding %d | growth | per session |\n|---|---|---|---|\n", h
    printf "| %.1f MiB | %.1f MiB | %.1f MiB | %.0f bytes |\n", b / 1024, d / 1024, (d - b) / 1024, (h > 0) ? (d - b) * 1024 / h : 0 }'
} | tee "${TLS_SESSIONS_OUT:-bench/tls-sessions-results.md}"
