#!/usr/bin/env bash
# The main job through the whole stack: a private containerd (own root, state, sockets and /run
# in a pinned private mount namespace) runs a busybox web server with the Polis shim and runtime,
# on the Polis snapshotter, networked by polis-bridge inside network namespaces this script
# creates (one plays the host). Traffic goes only to those namespaces' addresses and loopback.
# Everything is removed at the end, also on failure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${POLIS_BIN_DIR:-$here/target/release}
for b in polis-runc containerd-shim-polis-v2 polis-bridge polis-snapshotter; do
  [ -x "$bin/$b" ] || { echo "demo: $bin/$b is not built; run 'make build'" >&2; exit 1; }
done
for t in containerd ctr umoci busybox ip nsenter unshare jq; do
  command -v "$t" >/dev/null || { echo "demo: $t is missing; run scripts/install-deps.sh" >&2; exit 1; }
done

tag=polis-demo-$$
work=$(mktemp -d /tmp/$tag.XXXXXX)
hostns=$tag-host
ctrns=$tag-web
sock=$work/containerd.sock
snap_pid= ; ctd_pid=
netconf=$work/net.json

log() { printf '== %s\n' "$*"; }
in_mnt() { nsenter --mount="$work/mnt" -- "$@"; }
ctr_() { in_mnt ctr -a "$sock" -n polis-demo "$@"; }
cni() { # cni VERB: runs polis-bridge as a runtime would, inside the host-playing namespace
  nsenter --net=/run/netns/$hostns env CNI_COMMAND="$1" CNI_CONTAINERID=$tag CNI_NETNS=/run/netns/$ctrns \
    CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/polis-bridge" < "$netconf"
}
cleanup() {
  set +e
  if [ -S "$sock" ]; then
    ctr_ task kill -s KILL web >/dev/null 2>&1; sleep 0.3
    ctr_ task delete web >/dev/null 2>&1; ctr_ container delete web >/dev/null 2>&1
    ctr_ image remove docker.io/library/busybox:latest >/dev/null 2>&1
  fi
  [ -e "$netconf" ] && cni DEL >/dev/null 2>&1
  [ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
  # Shims this containerd started, by the PID files it keeps in our state dir.
  for f in "$work"/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  [ -n "$snap_pid" ] && kill "$snap_pid" 2>/dev/null && wait "$snap_pid" 2>/dev/null
  ip netns del "$ctrns" 2>/dev/null; ip netns del "$hostns" 2>/dev/null
  umount "$work/mnt" 2>/dev/null; umount "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

log "building a busybox OCI image offline (umoci) in $work"
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$work/unpacked" >/dev/null
rootfs=$work/unpacked/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc,www}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
echo "Hello from a Polis container" > "$rootfs/www/index.html"
umoci repack --image "$layout:latest" "$work/unpacked" >/dev/null
umoci config --image "$layout:latest" --config.cmd /bin/sh --config.env PATH=/bin --architecture amd64 --os linux
umoci gc --layout "$layout"
tar -C "$layout" -cf "$work/busybox.tar" oci-layout index.json blobs

log "starting polis-snapshotter and a private containerd (own root, state, sockets, /run)"
mkdir -p "$work/bin"
ln -s "$bin/containerd-shim-polis-v2" "$bin/polis-runc" "$work/bin/"
cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[proxy_plugins.polis]
  type = "snapshot"
  address = "$work/snap.sock"
TOML
# The namespaces must exist before the private mount namespace is made: it keeps them reachable
# at $work/netns after its own tmpfs hides the host's /run.
ip netns add "$hostns"; ip netns add "$ctrns"
ip -n "$hostns" link set lo up
mount --bind "$work" "$work" && mount --make-private "$work" && touch "$work/mnt" && mkdir "$work/netns"
unshare --mount="$work/mnt" --propagation private sh -c \
  "mount --rbind /run/netns '$work/netns' && mount -t tmpfs -o mode=755 polis-run /run"
"$bin/polis-snapshotter" --root "$work/snap" --address "$work/snap.sock" --log-level warn &
snap_pid=$!
PATH="$work/bin:$PATH" nsenter --mount="$work/mnt" -- containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && [ -S "$work/snap.sock" ] && break; sleep 0.1; done
ctr_ version >/dev/null

log "importing the image into the polis snapshotter"
ctr_ images import --snapshotter polis --base-name docker.io/library/busybox "$work/busybox.tar" >/dev/null
ctr_ snapshots --snapshotter polis ls

log "network: namespaces $hostns (the host) and $ctrns (the container), polis-bridge ADD"
cat > "$netconf" <<JSON
{"cniVersion": "1.1.0", "name": "polis-demo", "type": "polis-bridge", "bridge": "polisdemo0",
 "isGateway": true, "ipMasq": true, "hairpinMode": true,
 "ipam": {"type": "polis-ipam", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.250.77.0/24"}]]},
 "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}
JSON
ip_addr=$(cni ADD | jq -r '.ips[0].address' | cut -d/ -f1)
echo "container address: $ip_addr, host port 8080 -> 80"

log "ctr run with runtime io.containerd.polis.v2: a one-shot echo, then a web server"
ctr_ run --rm --runtime io.containerd.polis.v2 --snapshotter polis docker.io/library/busybox:latest hello \
  sh -c 'echo "Hello from $(hostname), running on Polis"'
ctr_ run -d --runtime io.containerd.polis.v2 --snapshotter polis --with-ns "network:$work/netns/$ctrns" \
  docker.io/library/busybox:latest web httpd -f -p 80 -h /www
for _ in $(seq 50); do
  out=$(nsenter --net=/run/netns/$hostns sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc 127.0.0.1 8080" 2>/dev/null || true)
  case $out in *Hello*) break;; esac; sleep 0.1
done
echo "GET http://127.0.0.1:8080/ from the host namespace: $(echo "$out" | tail -1)"
echo "$out" | grep -q 'Hello from a Polis container'
ctr_ task exec --exec-id demo-exec web sh -c 'echo "exec in web: $(ps | wc -l) lines of ps"'
ctr_ task ls
ctr_ task metrics web | sed -n 1,5p  # sed reads it all: head would leave ctr a SIGPIPE

log "stopping and removing everything"
ctr_ task kill -s KILL web
for _ in $(seq 50); do ctr_ task ls | grep -q 'web.*STOPPED' && break; sleep 0.1; done
ctr_ task delete web >/dev/null
ctr_ container delete web
cni DEL
echo "demo done"
