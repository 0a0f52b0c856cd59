#!/usr/bin/env bash
# Fire N swaks sessions, P at a time, at a gate on this machine and count the final replies
# by code. Loopback only: the gate must be on 127.0.0.0/8 or ::1.
#
#   scripts/swaks-load.sh [-n 200] [-p 20] [-s 127.0.0.1:2525] [-m plain|starttls|cert]
#                         [-f app@contoso.com] [-t bob@example.org] [-P]
#
# -m cert presents certs/client-mail.contoso.com.pem over STARTTLS (the development certificate).
# -P pipelines MAIL, RCPT and DATA (swaks --pipeline) as Postfix and most MTAs do: to an
# upstream offering CHUNKING a one-recipient message then goes with its envelope sent ahead.
set -euo pipefail
cd "$(dirname "$0")/.."
n=200 p=20 server=127.0.0.1:2525 mode=plain from=app@contoso.com to=bob@example.org
pipeline=()
while getopts "n:p:s:m:f:t:P" o; do
  case $o in
    n) n=$OPTARG ;; p) p=$OPTARG ;; s) server=$OPTARG ;; m) mode=$OPTARG ;;
    f) from=$OPTARG ;; t) to=$OPTARG ;; P) pipeline=(--pipeline) ;; *) exit 2 ;;
  esac
done
case "$server" in
  127.*|localhost:*|\[::1\]:*) ;;
  *) echo "swaks-load: only loopback targets (127.0.0.0/8, [::1])" >&2; exit 2 ;;
esac
[ "$n" -le 100000 ] || { echo "swaks-load: at most 100000 sessions" >&2; exit 2; }
tls=()
case "$mode" in
  plain) ;;
  starttls) tls=(--tls) ;;
  cert) tls=(--tls --tls-cert certs/client-mail.contoso.com.pem --tls-key certs/client-mail.contoso.com.key) ;;
  *) echo "swaks-load: -m plain|starttls|cert" >&2; exit 2 ;;
esac
export server from to
one() {
  # The last server reply swaks printed before QUIT is the transaction's final answer.
  swaks --server "$server" --from "$from" --to "$to" --timeout 30 "$@" 2>&1 \
    | grep -E '^(<-|<~|<\*\*|<~\*) +[0-9]{3}' | grep -v ' 221 ' | tail -n 1 \
    | sed -E 's/^[<~*-]+ +([0-9]{3}( [0-9]\.[0-9]+\.[0-9]+)?).*/\1/' || echo "no reply"
}
export -f one
start=$(date +%s.%N)
seq "$n" | xargs -P "$p" -I{} bash -c 'one "$@"' _ "${tls[@]}" "${pipeline[@]}" | sort | uniq -c | sort -rn
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%d sessions in %.2f s, %.1f sessions/s\n", n, e - s, n / (e - s) }'
