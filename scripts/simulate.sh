#!/usr/bin/env bash
# The long fault simulation, for before a release: a million seeded scenarios (README, "What 250
# means") in release mode, from a fresh random first seed each run so every run explores new
# ground. Usage: scripts/simulate.sh [scenarios] [first-seed]
# A failing seed is printed with its trace; replay it with
#   RELAYGATE_SIM_SEED=<seed> cargo test --release --test simulation -- --nocapture
# and keep it as a named test in tests/simulation.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
first=${2:-$(( ($(date +%s%N) / 1000) % 1000000000000 ))}
echo "simulate: $count scenarios from seed $first"
RELAYGATE_SIM_SCENARIOS=$count RELAYGATE_SIM_FIRST_SEED=$first \
  cargo test --locked --release --test simulation -- --nocapture
