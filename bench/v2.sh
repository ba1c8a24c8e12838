#!/usr/bin/env bash
# `make bench-v2`: bench/runtime.sh and bench/shim.sh in the nested cgroup v2 + systemd guest
# (scripts/v2vm.sh), on the binaries in target/release. The guest emulates its CPU (TCG), so
# absolute times mean nothing there; the ratios, taken within one run, are indicative.
#   RUNS=20 SHIM_RUNS=10 SLEEPERS=5 bench/v2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20} shim_runs=${SHIM_RUNS:-10} sleepers=${SLEEPERS:-5}
exec scripts/v2vm.sh -s "$PWD" -t "${POLIS_V2_TIMEOUT:-2400}" \
  -e POLIS_BIN_DIR="$PWD/target/release" \
  -- bash -c "bench/runtime.sh $runs && BUILD=0 RUNS=$shim_runs SLEEPERS=$sleepers bench/shim.sh"
