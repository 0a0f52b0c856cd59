# Shared by bench/wan.sh, bench/soak.sh and bench/tls-sessions.sh (sourced after bench/lib.sh).

# work_for_postfix WORK: Postfix's daemons run as `postfix`: they must reach the work directory
# and read their certificates (the relay's and the upstream's) from it.
work_for_postfix() {
  chmod 755 "$1"
  cp certs/gate.pem certs/gate.key certs/ca.pem "$1/" && chmod 644 "$1"/*.pem "$1"/*.key
}

# upstream_start WORK SINK UP: the TLS-speaking upstream. Postfix smtpd on UP from its own
# configuration directory (WORK/upstream, bench/lib.sh's postfix_start), offering STARTTLS with
# the gate's development certificate, with smtp-sink on SINK as its before-queue proxy filter
# (smtpd_proxy_filter): Postfix answers the final dot only once smtp-sink has the message and
# queues nothing itself, so smtp-sink's running count (WORK/sink.out) is "the upstream has it".
# Adds smtp-sink's pid to the caller's `pids`. Further arguments are more main.cf lines.
upstream_start() {
  local work=$1 sink=$2 up=$3
  shift 3
  work_for_postfix "$work"
  smtp-sink -u nobody -m 5000 -c "$sink" 1024 >"$work/sink.out" 2>&1 & pids+=($!)
  wait_port "$sink"
  postfix_start "$work/upstream" "$up" \
    "myhostname = upstream.bench" "mynetworks = 127.0.0.0/8" \
    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtpd_proxy_filter = $sink" "smtpd_peername_lookup = no" \
    "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $work/gate.pem" \
    "smtpd_tls_key_file = $work/gate.key" \
    "smtpd_tls_session_cache_database = btree:$work/upstream/data/tls_cache" \
    "default_process_limit = 600" "smtpd_client_connection_rate_limit = 0" \
    "smtpd_client_connection_count_limit = 0" "anvil_rate_time_unit = 60s" "$@"
}

# upstream_start_sink WORK SINK UP: the lightest TLS-speaking upstream, for telling the relay's
# time from the upstream's: smtp-sink on SINK behind bench/tlsfront.rs on UP, which offers
# STARTTLS with the gate's development certificate and splices each session to smtp-sink (no
# CHUNKING: smtp-sink takes DATA only). Further arguments go to tlsfront (`--chunking`: it
# offers CHUNKING as Exchange Online does, and passes BDAT on to smtp-sink as DATA). Adds both
# pids to the caller's `pids`.
upstream_start_sink() {
  local work=$1 sink=$2 up=$3
  shift 3
  work_for_postfix "$work"
  smtp-sink -u nobody -m 5000 -c "$sink" 1024 >"$work/sink.out" 2>&1 & pids+=($!)
  wait_port "$sink"
  ./target/release/examples/tlsfront --listen "$up" --upstream "$sink" \
    --cert certs/gate.pem --key certs/gate.key "$@" >"$work/tlsfront.out" 2>&1 & pids+=($!)
  wait_port "$up"
}

# sink_count WORK: messages smtp-sink has received so far (its -c counter, \r-separated).
sink_count() {
  local c
  c=$(tail -c 200 "$1/sink.out" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1)
  echo "${c:-0}"
}

# delay_start LOG ARGS...: bench/delayproxy.rs with ARGS, ready when this returns; its pid in
# $delay_pid.
delay_start() {
  local log=$1; shift
  ./target/release/examples/delayproxy "$@" >"$log" 2>&1 &
  delay_pid=$!
  for _ in $(seq 200); do grep -q ready "$log" 2>/dev/null && return 0; sleep 0.05; done
  echo "delayproxy did not start: $(cat "$log")" >&2
  return 1
}

