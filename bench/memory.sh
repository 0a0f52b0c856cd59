#!/usr/bin/env bash
# relaygate's memory: RSS per idle plain session (10,000), per idle STARTTLS session (1,000),
# and peak RSS growth while one 200 MB message streams through. Loopback only, bounded.
#
#   bash bench/memory.sh          (needs smtp-source/smtp-sink from postfix, and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v smtp-source >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; }
cargo build --release --locked --quiet
work=$(mktemp -d /tmp/relaygate-mem.XXXXXX)
SINK=127.0.0.1:26201 GATE=127.0.0.1:26202
ports_free "$SINK" "$GATE"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

smtp-sink -u nobody -m 5000 "$SINK" 1024 & pids+=($!)
relaygate_conf "$GATE" "$SINK" tls=client max=20000 max_message_size=300000000 >"$work/gate.toml"
wait_port "$SINK"
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
# Each measurement gets a fresh gate: freed memory stays with the allocator, and would hide
# what the next measurement allocates.
fresh_gate() {
  [ -n "${gate:-}" ] && { kill "$gate"; wait "$gate" 2>/dev/null || true; }
  ./target/release/relaygate serve --config "$work/gate.toml" & gate=$!; pids+=($gate)
  wait_port "$GATE"
  # Warm up with one real transaction, so lazily built state is not counted per session.
  smtp-source -m 1 -l 2048 -f app@contoso.com -t bob@example.org "$GATE"
}

idle() { # count tls
  python3 - "$GATE" "$1" "$2" "$gate" <<'PY'
import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
count, tls, pid = int(sys.argv[2]), sys.argv[3] == "tls", sys.argv[4]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
before, held = rss(), []
for _ in range(count):
    s = socket.create_connection((host, int(port)), timeout=20)
    f = s.makefile("rb")
    f.readline()
    if tls:
        s.sendall(b"EHLO bench\r\n")
        while f.readline()[3:4] == b"-": pass
        s.sendall(b"STARTTLS\r\n"); f.readline()
        s = ctx.wrap_socket(s, server_hostname="localhost")
    held.append(s)
time.sleep(0.5)
after = rss()
kind = "TLS" if tls else "plain"
print(f"{count} idle {kind} sessions: {before} KiB -> {after} KiB, {(after - before) * 1024 // count} bytes per session")
for s in held: s.close()
PY
}
fresh_gate; idle 10000 plain
fresh_gate; idle 1000 tls

# One 200 MB message streaming through: peak RSS before and after.
fresh_gate; sleep 1
hwm_before=$(kib "$gate" VmHWM); rss_before=$(kib "$gate" VmRSS)
smtp-source -m 1 -l 209715200 -f app@contoso.com -t bob@example.org "$GATE"
hwm_after=$(kib "$gate" VmHWM)
echo "200 MB message: RSS ${rss_before} KiB before, peak ${hwm_before} KiB -> ${hwm_after} KiB, peak growth $(( (hwm_after - (hwm_before > rss_before ? hwm_before : rss_before)) )) KiB"
