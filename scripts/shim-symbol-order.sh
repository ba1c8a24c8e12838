#!/usr/bin/env bash
# Regenerates shim/symbol-order.txt: the functions a shim server runs in a container's life,
# recorded with valgrind (callgrind) through a private containerd. The link puts them first,
# so they share few 64 KB fault-around windows and the rest of the text is never mapped:
# each shim's RSS drops by the part of the binary it never runs (bench/shim.sh measures it).
# A stale list only costs memory, never correctness. Needs root, containerd, ctr, umoci,
# valgrind, busybox-static. Usage: scripts/shim-symbol-order.sh   (not run by CI)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
for t in containerd ctr umoci valgrind callgrind_annotate nsenter unshare /bin/busybox; do
  command -v "$t" >/dev/null || { echo "shim-symbol-order: needs $t" >&2; exit 2; }
done
T=${CARGO_TARGET_DIR:-/tmp/polis-order-target}
triple=$(rustc -vV | sed -n 's/^host: //p')
W=$(mktemp -d /tmp/polis-order.XXXXXX)
# Built exactly as `make build` links it: any other profile setting (strip included) changes
# the symbols' hashes, and the list would name symbols the shipped build does not have.
CARGO_TARGET_DIR=$T make -s -C "$here" --no-print-directory shim-static
shim=$T/$triple/release/containerd-shim-polis-v2
runc_bin=${POLIS_BIN_DIR:-$here/target/release}/polis-runc
[[ -x $runc_bin ]] || { echo "shim-symbol-order: $runc_bin is not built (make build)" >&2; exit 2; }

mkdir -p "$W/bin" "$W/ns" "$W/cg"
NS=polis-order
ctrd_pid=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n $ctrd_pid ]]; then
    for id in $(c containers ls -q 2>/dev/null); do
      c task kill -s SIGKILL "$id" >/dev/null 2>&1; c task delete -f "$id" >/dev/null 2>&1
      c containers rm "$id" >/dev/null 2>&1
    done
    kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null
  fi
  for p in $(pgrep -f -- "-address $W/containerd.sock" || true); do kill -9 "$p" 2>/dev/null; done
  umount "$W/ns/mnt" "$W/ns" 2>/dev/null
  rmdir /sys/fs/cgroup/*/$NS 2>/dev/null
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
c() { nsenter --mount="$W/ns/mnt" -- ctr -a "$W/containerd.sock" -n $NS "$@"; }

ln -s "$runc_bin" "$W/bin/polis-runc"
cat >"$W/bin/containerd-shim-polis-v2" <<SH
#!/bin/sh
exec valgrind -q --tool=callgrind --demangle=no --callgrind-out-file=$W/cg/cg.%p --trace-children=yes \
  --trace-children-skip='*polis-runc*' $shim "\$@"
SH
chmod +x "$W/bin/containerd-shim-polis-v2"

L=$W/oci
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
IMAGE=docker.io/library/busybox:latest

# A container's life in a group shim, the RPCs containerd and users send.
R=(--runtime io.containerd.polis.v2 --annotation io.containerd.polis.v2.group=order)
c run -d "${R[@]}" $IMAGE s1 sleep 600 >/dev/null
c task exec --exec-id e1 s1 /bin/echo exec >/dev/null
c task metrics s1 >/dev/null
c task ps s1 >/dev/null
c task pause s1 && c task resume s1
c run --rm "${R[@]}" $IMAGE s2 /bin/echo hi >/dev/null
c run --rm -t "${R[@]}" $IMAGE s3 /bin/true </dev/null >/dev/null 2>&1 || true
c task kill -s SIGKILL s1
sleep 1
c task delete s1 >/dev/null
c containers rm s1 >/dev/null
for _ in $(seq 100); do [[ -z $(pgrep -f -- "-address $W/containerd.sock" || true) ]] && break; sleep 0.2; done

# Every function any shim process ran, by its linkage name, in address order. callgrind names
# code by symbol (the binary keeps its symbol table), or by address where it finds none.
out=$here/shim/symbol-order.txt
ls "$W"/cg/cg.* >/dev/null
[[ -n ${KEEP_PROFILE:-} ]] && cp -r "$W/cg" "$KEEP_PROFILE"/
nm --defined-only "$shim" | awk '$2 ~ /^[tTwWiI]$/ {print $1, $3}' >"$W/syms.txt"
cat "$W"/cg/cg.* | sed -n 's/^c\?fn=([0-9]*) //p' | sort -u >"$W/ran.txt"
python3 - "$W/syms.txt" "$W/ran.txt" "$out" <<'PY'
import bisect, re, sys
starts, names = [], []
for line in open(sys.argv[1]):
    addr, name = line.split()
    starts.append(int(addr, 16)); names.append(name)
order = sorted(range(len(starts)), key=lambda i: starts[i])
starts = [starts[i] for i in order]; names = [names[i] for i in order]
index = {n: i for i, n in enumerate(names)}
hit, unknown = set(), []
for l in open(sys.argv[2]):
    name = l.strip().split("'")[0]
    if name == "(below main)":
        continue
    if name.startswith("0x"):
        i = bisect.bisect_right(starts, int(name, 16)) - 1
        if i >= 0: hit.add(i)
    elif name in index:
        hit.add(index[name])
    else:
        unknown.append(name)
if len(unknown) > len(hit) / 20:
    sys.exit(f"{len(unknown)} of the functions that ran are not in the link map, e.g. {unknown[:3]}")
# glibc picks its string functions' variant by CPU, and valgrind's CPU is not the host's (no
# AVX-512): when one variant ran, every variant of that function goes in.
variant = re.compile(r"^(__\w+?)_(sse2|ssse3|sse4_1|sse4_2|sse42|avx2|avx512\w*|avx|evex\w*)(_|$)")
families = {m.group(1) for i in hit if (m := variant.match(names[i]))}
hit |= {i for i, n in enumerate(names) if (m := variant.match(n)) and m.group(1) in families}
syms = [names[i] for i in sorted(hit)]
open(sys.argv[3], "w").write("".join(s + "\n" for s in dict.fromkeys(syms)))
print(f"{len(syms)} functions ran ({len(unknown)} names not in the map); written to {sys.argv[3]}")
PY
