#!/usr/bin/env bash
# A bounded fuzzing run of every target in fuzz/ (cargo-fuzz, libFuzzer). Usage:
#   bash scripts/fuzz.sh [seconds-per-target]      (default 20)
# cargo-fuzz runs on the stable toolchain here with --sanitizer none. Anything found is left in
# fuzz/artifacts/<target>/; add it to the target's regression inputs and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
for target in smtp_command data_codec header_sender proxy_header; do
  echo "fuzz: $target for ${secs}s"
  log=$(mktemp)
  # The whole output is kept until the run ends: a crash, a build failure (a full disk once
  # showed up as a linker bus error) or a found input is printed in full, a clean run as its
  # last two lines.
  if (cd fuzz && cargo fuzz run "$target" --sanitizer none -- -max_total_time="$secs" -rss_limit_mb=2048) >"$log" 2>&1; then
    tail -n 2 "$log"
    rm -f "$log"
  else
    grep -v '^#[0-9]' "$log" | tail -n 80
    rm -f "$log"
    echo "fuzz: $target failed (anything found is in fuzz/artifacts/$target/)"
    exit 1
  fi
done
