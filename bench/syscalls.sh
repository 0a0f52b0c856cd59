#!/usr/bin/env bash
# System calls relaygate makes per message on one persistent plain connection (smtp-source -d),
# counted by strace, to smtp-sink:
#
#   bash bench/syscalls.sh [messages] [binary]     (default 2000, target/release/relaygate)
#   SESSIONS=20 bash bench/syscalls.sh 10000       (20 parallel sessions, as bench/run.sh)
#   STRACE_SET=all bash bench/syscalls.sh          (every call: epoll_wait, futex, eventfd too)
#
# Prints strace's table for the network, read and write calls of the whole run (STRACE_SET: the
# calls strace counts, an -e trace= set) and the count per message. A non-pipelining client
# and a pass-through relay need, per message, 4 reads and 4 writes on the client's side (MAIL, RCPT, DATA, text; their replies) and 3 writes and 3 reads
# upstream (MAIL+RCPT pipelined, DATA, text): 14. Nothing here is asserted by a test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
messages="${1:-2000}"
bin="${2:-target/release/relaygate}"
[ "$#" -ge 2 ] || cargo build --release --locked --quiet
work=$(mktemp -d /tmp/relaygate-syscalls.XXXXXX)
SINK=127.0.0.1:26101 GATE=127.0.0.1:26102
ports_free "$SINK" "$GATE"
smtp-sink -u nobody -m 5000 "$SINK" 1024 & sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
wait_port "$SINK"
relaygate_conf "$GATE" "$SINK" >"$work/relaygate.toml"
strace -f -c -o "$work/strace.txt" -e trace=${STRACE_SET:-network,read,write,readv,writev} \
  "$bin" serve --config "$work/relaygate.toml" & tracer=$!
wait_port "$GATE"
smtp-source -d -s "${SESSIONS:-1}" -m "$messages" -l 1000 -f app@contoso.com -t bob@example.org "$GATE"
# The gate is strace's child: its end makes strace write the table.
kill -INT "$(pgrep -P "$tracer")"
wait "$tracer" || true
cat "$work/strace.txt"
total=$(awk '$NF == "total" { print $4 }' "$work/strace.txt")
echo "$total system calls for $messages messages: $(awk -v t="$total" -v m="$messages" 'BEGIN { printf "%.1f", t / m }') per message"
