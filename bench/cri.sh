#!/usr/bin/env bash
# Pod start and teardown through containerd's CRI, the way kubelet drives it: handler `polis`
# (containerd-shim-polis-v2 + polis-runc) against io.containerd.runc.v2 + runc, and the Go shim
# driving polis-runc, interleaved in one run, medians and ratios; then the RSS of each pod shim
# with PODS pods of 2 containers. Everything runs in a private containerd inside a network
# namespace the benchmark creates, and is removed after.
#   bench/cri.sh [ROUNDS] [PODS]      (defaults: 20, 10; as root, after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
export POLIS_BIN_DIR=${POLIS_BIN_DIR:-$PWD/target/release}
cargo build --release -q -p polis-integration --bin polis-cri-bench
exec target/release/polis-cri-bench "${1:-20}" "${2:-10}"
