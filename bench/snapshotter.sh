#!/usr/bin/env bash
# Benchmark of polis-snapshotter against containerd's built-in overlayfs snapshotter, in one
# run, through one private containerd (the proxy adds a gRPC hop that the built-in one has not):
#   1. import + unpack of an offline-generated image with $LAYERS layers (ctr images import)
#   2. Prepare+Commit+Remove cycles per second through containerd's Snapshots API
# Runs alternate (polis, overlayfs, overlayfs, polis, ...; a rotation with a baseline) and the
# script prints medians and ratios. Needs root, containerd, ctr, umoci, busybox-static.
#   ROUNDS=5 LAYERS=24 CYCLES=300 bench/snapshotter.sh
# PARTS="cycles" (or "import") runs one part only. BASELINE=/path/to/an/older/polis-snapshotter
# adds it as a third contender (`polis-base`) in the same containerd, for before/after figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5} LAYERS=${LAYERS:-24} CYCLES=${CYCLES:-300} PARTS=${PARTS:-import cycles}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
for t in containerd ctr umoci /bin/busybox; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (scripts/install-deps.sh)" >&2; exit 2; }
done

echo "building (release)..." >&2
cargo build -q --release -p polis-snapshotter --bin polis-snapshotter --example snapbench
bin=$CARGO_TARGET_DIR/release/polis-snapshotter
client=$CARGO_TARGET_DIR/release/examples/snapbench

W=$(mktemp -d /tmp/polis-snapbench.XXXXXX)
snap_pid="" base_pid="" ctrd_pid=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n $ctrd_pid ]]; then kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null; fi
  if [[ -n $snap_pid ]]; then kill "$snap_pid" 2>/dev/null; wait "$snap_pid" 2>/dev/null; fi
  if [[ -n $base_pid ]]; then kill "$base_pid" 2>/dev/null; wait "$base_pid" 2>/dev/null; fi
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT

# ---- an image with $LAYERS layers, built offline: busybox, then one layer of files each ----
echo "generating a $LAYERS-layer image..." >&2
L=$W/oci
umoci init --layout "$L" && umoci new --image "$L:latest"
umoci unpack --image "$L:latest" "$W/bundle" >/dev/null
mkdir -p "$W/bundle/rootfs/bin" && cp /bin/busybox "$W/bundle/rootfs/bin/"
for t in sh ls cat true; do ln -s busybox "$W/bundle/rootfs/bin/$t"; done
umoci repack --image "$L:latest" "$W/bundle"
for i in $(seq 2 "$LAYERS"); do
  d=$W/layer$i/data/layer$i && mkdir -p "$d"
  for f in $(seq 1 40); do head -c $((2048 + f * 512)) /dev/urandom >"$d/f$f"; done
  umoci insert --image "$L:latest" "$W/layer$i/data/layer$i" "/data/layer$i"
done
umoci config --image "$L:latest" --config.cmd /bin/sh --architecture amd64 --os linux
umoci gc --layout "$L"
tar -C "$L" -cf "$W/image.tar" oci-layout index.json blobs
layers=$(jq '.layers | length' "$L"/blobs/sha256/$(jq -r '.manifests[0].digest' "$L/index.json" | cut -d: -f2))
echo "image: $layers layers, $(du -h "$W/image.tar" | cut -f1)" >&2

# ---- the snapshotter and a private containerd using it as proxy plugin `polis` ----
"$bin" --root "$W/snap" --address "$W/snap.sock" --log-level warn &
snap_pid=$!
contenders="polis overlayfs" base_plugin=""
if [[ -n ${BASELINE:-} ]]; then
  "$BASELINE" --root "$W/base" --address "$W/base.sock" --log-level warn &
  base_pid=$!
  contenders="polis overlayfs polis-base"
  base_plugin=$(printf '[proxy_plugins.polis-base]\n  type = "snapshot"\n  address = "%s"' "$W/base.sock")
fi
cat >"$W/config.toml" <<EOF
version = 2
root = "$W/ctrd-root"
state = "$W/ctrd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
[proxy_plugins.polis]
  type = "snapshot"
  address = "$W/snap.sock"
$base_plugin
EOF
unshare -m --propagation private sh -c \
  "mount -t tmpfs -o mode=755 polis-run /run && exec containerd --config $W/config.toml" \
  >"$W/containerd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do
  [[ -S $W/containerd.sock && -S $W/snap.sock && (-z $base_pid || -S $W/base.sock) ]] && break
  sleep 0.1
done
ctr() { command ctr -a "$W/containerd.sock" -n polis-bench "$@"; }

now() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

import_once() { # $1 snapshotter; prints milliseconds
  local t0 t1
  t0=$(now)
  ctr images import --snapshotter "$1" --base-name docker.io/library/bench "$W/image.tar" >/dev/null
  t1=$(now)
  echo $(((t1 - t0) / 1000000))
  ctr images rm --sync docker.io/library/bench:latest >/dev/null
  for _ in $(seq 200); do # containerd's GC removes the unpacked snapshots
    [[ $(ctr snapshots --snapshotter "$1" ls | wc -l) -le 1 ]] && return 0
    sleep 0.05
  done
  echo "bench: GC left snapshots of $1" >&2
}

declare -A imp cyc
for r in $(seq "$ROUNDS"); do
  # each round starts one further along the list: polis overlayfs, overlayfs polis, ...
  order=$(awk -v r="$r" '{for (i = 0; i < NF; i++) printf "%s ", $((i + r - 1) % NF + 1)}' <<<"$contenders")
  for sn in $order; do
    ms=0 cps=0
    [[ $PARTS == *import* ]] && ms=$(import_once "$sn") && imp[$sn]+="$ms "
    [[ $PARTS == *cycles* ]] && cps=$("$client" "$W/containerd.sock" "$sn" "$CYCLES" | cut -d= -f2) && cyc[$sn]+="$cps "
    echo "round $r $sn: import+unpack ${ms} ms, ${cps} prepare+commit+remove/s" >&2
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "polis-snapshotter vs containerd overlayfs, $ROUNDS alternating rounds, medians:"
for sn in $contenders; do
  [[ $sn == overlayfs ]] && continue
  if [[ $PARTS == *import* ]]; then
    mi_p=$(med "${imp[$sn]}") mi_o=$(med "${imp[overlayfs]}")
    printf '  %-10s import+unpack (%s layers):      %6s ms   overlayfs %6s ms   time ratio %s/overlayfs %.2f\n' \
      "$sn" "$layers" "$mi_p" "$mi_o" "$sn" "$(echo "$mi_p / $mi_o" | bc -l)"
  fi
  if [[ $PARTS == *cycles* ]]; then
    mc_p=$(med "${cyc[$sn]}") mc_o=$(med "${cyc[overlayfs]}")
    printf '  %-10s prepare+commit+remove cycles/s: %6s      overlayfs %6s      time ratio %s/overlayfs %.2f\n' \
      "$sn" "$mc_p" "$mc_o" "$sn" "$(echo "$mc_o / $mc_p" | bc -l)"
  fi
done
