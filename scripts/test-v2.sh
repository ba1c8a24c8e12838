#!/usr/bin/env bash
# `make test-v2`: the cgroup v2 + systemd suite, in the nested guest of scripts/v2vm.sh.
# The release binaries (make build) and the test binaries, built here on the host, are shared
# into the guest read-only at their own paths; nothing is compiled in the guest.
#
#   scripts/test-v2.sh [TEST-BINARY]...     (POLIS_V2_FILTER=NAME: only the tests matching it)
#
# Default: every integration/tests/v2_*.rs (v2 and systemd only), then the host suite's shim
# tests again, which read the v2 files when they find a v2 host: containerd 1.6 in the guest
# drives the Polis shim and the Go shim (with polis-runc), OOM events, metrics, shim cgroup.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cargo=${CARGO:-cargo}

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in integration/tests/v2_*.rs; do names+=("$(basename "$f" .rs)"); done
  names+=(shim_events shim_ctr shim_options)
fi
args=()
for n in "${names[@]}"; do args+=(--test "$n"); done
mapfile -t bins < <("$cargo" test -p polis-integration "${args[@]}" --no-run --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.kind == ["test"]) | .executable')
[ "${#bins[@]}" -eq "${#names[@]}" ] || { echo "test-v2: expected ${#names[@]} test binaries, got: ${bins[*]}" >&2; exit 1; }
for b in polis-runc containerd-shim-polis-v2 polis-bridge polis-ipam polis-snapshotter; do
  [ -x "target/release/$b" ] || { echo "test-v2: target/release/$b is missing (make build)" >&2; exit 1; }
done

# The pod sandbox image's /pause, built here (the guest has no compiler).
pause_dir=$(mktemp -d /tmp/polis-v2pause.XXXXXX)
trap 'rm -rf "$pause_dir"' EXIT
cc -static -Os -s -o "$pause_dir/pause" integration/fixtures/pause.c

# One test binary after another, each test in it after another: the guest has 2 emulated
# CPUs, and the runtimes' start-up is what the emulation makes slow.
script='rc=0
for b in "$@"; do
  echo "== ${b##*/}"
  "$b" --test-threads 1 $POLIS_V2_FILTER || rc=1
done
exit $rc'
scripts/v2vm.sh -s "$repo" -s "$pause_dir" -t "${POLIS_V2_TIMEOUT:-1200}" \
  -e POLIS_BIN_DIR="$repo/target/release" -e POLIS_PAUSE_BIN="$pause_dir/pause" -e RUST_BACKTRACE=1 \
  -e POLIS_V2_FILTER="${POLIS_V2_FILTER:-}" \
  -- bash -c "$script" test-v2 "${bins[@]}"
