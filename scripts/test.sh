#!/usr/bin/env bash
# The whole test suite: unit tests, end-to-end tests over real sockets and TLS, and swaks
# against the real binary. Installs swaks first when it is missing (Debian/Ubuntu, as root).
# Ends with one line "tests: N passed, N failed" summing every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swaks >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq swaks libio-socket-ssl-perl libnet-ssleay-perl >/dev/null
  else
    echo "scripts/test.sh: swaks is needed (apt-get install swaks)" >&2
    exit 1
  fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log" | tee "${RELAYGATE_TEST_SUMMARY:-/dev/null}"
exit "$status"
