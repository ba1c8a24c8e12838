#!/usr/bin/env bash
# The shim's Task API as containerd calls it (ttrpc, containerd.task.v2.Task), against one
# running container per shim, in one run: containerd-shim-polis-v2 + polis-runc against
# containerd's Go shim io.containerd.runc.v2 + runc. State round trip p50/p99 (sequential
# calls) and State/Pids calls per second with 1, 10 and 50 concurrent clients (one connection
# each), through a private containerd (bench/private-containerd.sh), removed after.
# Targets (issue 13): State p50 < 1 ms; > 1,000 State/s with 10 clients; both better than Go.
#   bench/rpc.sh [SECONDS_PER_MEASURE] [CALLS]   (defaults 2, 5000; BUILD=0 to skip the build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-2} CALLS=${2:-5000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
for t in containerd ctr runc umoci unshare nsenter /bin/busybox; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (scripts/install-deps.sh)" >&2; exit 2; }
done
if [[ ${BUILD:-1} != 0 ]]; then
  echo "building (release)..." >&2
  make -s -C "$here" build >/dev/null
fi
(cd "$here" && cargo build --release -q -p polis-integration --bin polis-rpc-bench)
client=$CARGO_TARGET_DIR/release/polis-rpc-bench

W=$(mktemp -d /tmp/polis-rpcbench.XXXXXX)
mkdir -p "$W/bin" "$W/ns"
ln -s "$CARGO_TARGET_DIR/release/containerd-shim-polis-v2" "$W/bin/"
ln -s "$CARGO_TARGET_DIR/release/polis-runc" "$W/bin/"
NS=polis-rpcbench
. "$here/bench/private-containerd.sh"
trap pc_exit EXIT
pc_start

c run -d --runtime io.containerd.polis.v2 $IMAGE rpc-polis sleep 3600 >/dev/null
c run -d --runtime io.containerd.runc.v2 $IMAGE rpc-go sleep 3600 >/dev/null
# The shim sockets live in containerd's private /run: the client runs in its mount namespace.
measure() { # id -> "key value" lines
  local addr; addr=$(cat "$W/state/io.containerd.runtime.v2.task/$NS/$1/address")
  nsenter --mount="$W/ns/mnt" -- "$client" "$addr" "$1" "$SECS" "$CALLS"
}
declare -A P G
while read -r k v; do P[$k]=$v; done < <(measure rpc-polis)
while read -r k v; do G[$k]=$v; done < <(measure rpc-go)
printf '%-16s %12s %12s %8s\n' measure polis go polis/go
for k in state_p50_us state_p99_us state_per_s_1 state_per_s_10 state_per_s_50 pids_per_s_1 pids_per_s_10 pids_per_s_50; do
  printf '%-16s %12s %12s %8.2f\n' "$k" "${P[$k]}" "${G[$k]}" "$(echo "${P[$k]} / ${G[$k]}" | bc -l)"
done
