# Sourced by bench/shim.sh and scripts/shim-symbol-order.sh: a private containerd in a pinned
# mount namespace with its own /run, root, state and sockets, and a busybox image built offline.
# The caller sets W (its temp dir, with W/bin first on containerd's PATH) and NS (the
# namespace), sets `trap pc_exit EXIT` (or calls `pc_cleanup` from its own), then `pc_start`.
# Afterwards: `c ARGS` runs ctr against it, IMAGE names the imported image.
ctrd_pid=""
IMAGE=docker.io/library/busybox:latest

c() { nsenter --mount="$W/ns/mnt" -- ctr -a "$W/containerd.sock" -n "$NS" "$@"; }
shim_pids() { pgrep -f -- "-address $W/containerd.sock" || true; }

# Removes every container, stops containerd and the shims it left, and removes W.
pc_cleanup() {
  if [[ -n $ctrd_pid ]]; then
    for id in $(c containers ls -q 2>/dev/null); do
      c task kill -s SIGKILL "$id" >/dev/null 2>&1; c task delete -f "$id" >/dev/null 2>&1
      c containers rm "$id" >/dev/null 2>&1
    done
    kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null
  fi
  for p in $(shim_pids); do kill -9 "$p" 2>/dev/null; done
  umount "$W/ns/mnt" "$W/ns" 2>/dev/null
  rmdir /sys/fs/cgroup/*/"$NS" 2>/dev/null
  rm -rf "$W"
}

# An EXIT trap: cleans up and keeps the script's exit status.
pc_exit() {
  local rc=$?
  set +e
  pc_cleanup
  exit "$rc"
}

pc_start() {
  mkdir -p "$W/ns"
  local L=$W/oci
  umoci init --layout "$L" && umoci new --image "$L:latest"
  umoci unpack --image "$L:latest" "$W/bundle" >/dev/null
  mkdir -p "$W/bundle/rootfs/bin"
  cp /bin/busybox "$W/bundle/rootfs/bin/"
  for a in sh true sleep echo; do ln -s busybox "$W/bundle/rootfs/bin/$a"; done
  umoci repack --image "$L:latest" "$W/bundle" >/dev/null
  umoci config --image "$L:latest" --config.cmd /bin/sh --config.env PATH=/bin \
    --architecture amd64 --os linux >/dev/null
  umoci gc --layout "$L"
  tar -C "$L" -cf "$W/busybox.tar" oci-layout index.json blobs

  mount --bind "$W/ns" "$W/ns" && mount --make-private "$W/ns" && touch "$W/ns/mnt"
  unshare --mount="$W/ns/mnt" --propagation private sh -c 'mount -t tmpfs -o mode=755 polis-run /run'
  cat >"$W/config.toml" <<CFG
version = 2
root = "$W/root"
state = "$W/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
CFG
  PATH="$W/bin:$PATH" nsenter --mount="$W/ns/mnt" -- containerd --config "$W/config.toml" \
    >"$W/containerd.log" 2>&1 &
  ctrd_pid=$!
  for _ in $(seq 100); do [[ -S $W/containerd.sock ]] && break; sleep 0.1; done
  c images import --base-name docker.io/library/busybox "$W/busybox.tar" >/dev/null
}
