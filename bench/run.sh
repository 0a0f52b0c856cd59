#!/usr/bin/env bash
# relaygate side by side with the relays admins use today, on this machine, loopback only.
#
#   bash bench/run.sh [repeats]        (default 3; results to stdout and bench/results.md)
#   BENCH_ONLY="1000 msg/conn" BENCH_OUT=FILE bash bench/run.sh 5
#                                      (only the scenarios whose name matches the regex; the
#                                       table to FILE instead of bench/results.md)
#
# Installs what it needs from Debian's packages (postfix for smtp-source/smtp-sink and as a
# relay peer, nginx with its mail module as a proxy peer), builds relaygate in release mode,
# and for each path runs smtp-source with 20 parallel sessions, bounded message counts:
#   direct   smtp-source -> smtp-sink                       (the tools' ceiling here)
#   relaygate smtp-source -> relaygate -> smtp-sink
#   postfix  smtp-source -> Postfix relay -> smtp-sink     (counted when the queue is empty;
#            a private instance in the work directory, never the system's /etc/postfix)
#   nginx    smtp-source -> nginx mail proxy -> smtp-sink
# Timings are noisy: each figure is the median of the repeats, and ratios are taken within the
# same run. Nothing here is asserted by a test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
repeats="${1:-3}"
work=$(mktemp -d /tmp/relaygate-bench.XXXXXX)
SINK=127.0.0.1:26001 GATE=127.0.0.1:26002 POSTFIX=127.0.0.1:26003 NGINX=127.0.0.1:26004 AUTH=127.0.0.1:26005
NOPOOL=127.0.0.1:26006
ports_free "$SINK" "$GATE" "$POSTFIX" "$NGINX" "$AUTH" "$NOPOOL"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need smtp-source || ! need nginx || [ ! -e /usr/lib/nginx/modules/ngx_mail_module.so ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postfix nginx libnginx-mod-mail >/dev/null
fi
cargo build --release --locked --quiet

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  postfix_stop "$work/postfix"
}
trap cleanup EXIT


# --- the sink ---------------------------------------------------------------------------
smtp-sink -u nobody -m 5000 "$SINK" 1024 & pids+=($!)
wait_port "$SINK"

# --- relaygate --------------------------------------------------------------------------
relaygate_conf "$GATE" "$SINK" >"$work/relaygate.toml"
./target/release/relaygate serve --config "$work/relaygate.toml" & pids+=($!)
wait_port "$GATE"
# The same gate without the upstream connection pool.
relaygate_conf "$NOPOOL" "$SINK" pool=0 >"$work/relaygate-nopool.toml"
./target/release/relaygate serve --config "$work/relaygate-nopool.toml" & pids+=($!)
wait_port "$NOPOOL"

# --- Postfix as a relay -----------------------------------------------------------------
# A private instance of the benchmark's own (bench/lib.sh, postfix_start): the system's
# /etc/postfix is left alone. Its daemons run as `postfix`: they must reach the work directory.
chmod 755 "$work"
postfix_start "$work/postfix" "$POSTFIX" \
  "myhostname = postfix.bench" "mynetworks = 127.0.0.0/8" "relayhost = [${SINK%:*}]:${SINK#*:}" \
  "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
  "smtp_destination_concurrency_limit = 20" "default_process_limit = 200" \
  "smtpd_client_connection_rate_limit = 0" "anvil_rate_time_unit = 60s"

# --- nginx mail proxy -------------------------------------------------------------------
nginx_mail_start "$work/nginx" "$NGINX" "$AUTH" "$SINK"

# --- measurements -----------------------------------------------------------------------
queue_empty() { postqueue -c "$work/postfix/etc" -p 2>/dev/null | grep -q "Mail queue is empty"; }

# one PATH ADDR MESSAGES SIZE [extra smtp-source flags]: messages per second, one run.
one() {
  local path=$1 addr=$2 count=$3 size=$4; shift 4
  # Postfix is 2 to 30 times slower than the others: a tenth of the messages (at least 20)
  # keeps its runs about as long as theirs.
  if [ "$path" = postfix ]; then count=$(( count / 10 > 20 ? count / 10 : 20 )); fi
  local start end
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  $SOURCE_PREFIX smtp-source -s 20 -m "$count" -l "$size" -f app@contoso.com -t bob@example.org "$@" "$addr"
  if [ "$path" = postfix ]; then
    for _ in $(seq 6000); do queue_empty && break; sleep 0.05; done
  fi
  end=$(date +%s.%N)
  awk -v n="$count" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", n / (e - s) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Counts large enough that every run lasts a second or more: at a few thousand messages per
# second, a run of 2,000 lasts a third of a second and its connection set-up and the scheduler's
# whims move the median by a third (the figures before 2026-12-01 were taken so). 20 sessions:
# "1000 msg/conn" is 20,000 messages over 20 connections kept open (smtp-source -d).
scenarios=("2KB, 1 msg/conn|10000|2048|" "2KB, 1000 msg/conn|20000|2048|-d" "1MB, 1 msg/conn|400|1048576|")
paths=("direct|$SINK" "relaygate|$GATE" "nopool|$NOPOOL" "postfix|$POSTFIX" "nginx|$NGINX")

# measure TITLE: every scenario on every path, then the table.
measure() {
  local title=$1
  declare -A result
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r name count size flags <<<"$sc"
    [[ $name =~ ${BENCH_ONLY:-.} ]] || continue
    for p in "${paths[@]}"; do
      IFS='|' read -r path addr <<<"$p"
      runs=()
      for _ in $(seq "$repeats"); do
        # shellcheck disable=SC2086
        runs+=("$(one "$path" "$addr" "$count" "$size" $flags)")
      done
      result["$name|$path"]=$(printf '%s\n' "${runs[@]}" | median)
      echo "$title, $name $path: ${runs[*]} -> median ${result["$name|$path"]} msg/s" >&2
    done
  done
  echo "### $title"
  echo
  echo "| scenario | direct (ceiling) | relaygate | relaygate, no pool | Postfix | nginx | relaygate / ceiling | relaygate / Postfix | relaygate / nginx |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for sc in "${scenarios[@]}"; do
    IFS='|' read -r name _ <<<"$sc"
    [[ $name =~ ${BENCH_ONLY:-.} ]] || continue
    d=${result["$name|direct"]} g=${result["$name|relaygate"]} np=${result["$name|nopool"]}
    p=${result["$name|postfix"]} n=${result["$name|nginx"]}
    awk -v name="$name" -v d="$d" -v g="$g" -v np="$np" -v p="$p" -v n="$n" \
      'BEGIN { printf "| %s | %s | %s | %s | %s | %s | %.0f%% | %.1fx | %.2fx |\n", name, d, g, np, p, n, 100 * g / d, g / p, g / n }'
  done
  echo
}

{
  echo "Messages per second, median of $repeats runs, 20 parallel sessions, $(nproc) cores, $(date -u +%Y-%m-%d)."
  echo
  SOURCE_PREFIX="" measure "Shared: every process on every core"
  # The same again with the load generator and the sink on core 0 and the relay under test
  # alone on core 1 (relaygate's threads, every Postfix process, nginx's workers): the tools
  # get the same CPU budget on every path, so the ratio to the ceiling says whether the relay
  # keeps up with them, not how much of the tools' CPU it takes away.
  if [ "$(nproc)" -ge 2 ]; then
    taskset -a -p -c 0 "${pids[0]}" >/dev/null                   # smtp-sink
    for p in "${pids[@]:1}" $(postfix_pids "$work/postfix") $(pgrep nginx); do
      taskset -a -p -c 1 "$p" >/dev/null
    done
    SOURCE_PREFIX="taskset -c 0" measure "Pinned: smtp-source and smtp-sink on core 0, the relay on core 1"
  fi
} | tee "${BENCH_OUT:-bench/results.md}"
