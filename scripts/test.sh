#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests over real sockets and TLS, swaks against
# the real binary, HAProxy (PROXY protocol) in front of it, Postfix's smtp-sink and a private
# Postfix instance (never the machine's /etc/postfix) behind it, and the HTML report in headless
# Chromium. Installs the peers first when they are missing (Debian/Ubuntu, as root).
# Ends with one line "tests: N passed, N failed" summing every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v swaks >/dev/null 2>&1 || missing+=(swaks libio-socket-ssl-perl libnet-ssleay-perl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# smtp-sink and postfix itself: real upstream SMTP servers (the tests need root for postfix).
{ [ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/postfix ]; } || missing+=(postfix)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: the tests need: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --features peers "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log" | tee "${RELAYGATE_TEST_SUMMARY:-/dev/null}"
exit "$status"
