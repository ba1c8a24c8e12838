#!/usr/bin/env bash
# The main job. Part 1: a busybox container run by polis-runc directly from a bundle built
# offline. Part 2 (scripts/demo-containerd.sh): the same through the whole stack — a private
# containerd with the Polis shim, runtime, snapshotter and CNI plugin.
# Everything it makes lives under temp dirs and one --root, and is removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${POLIS_BIN_DIR:-$here/target/release}
runc_bin=$bin/polis-runc
[ -x "$runc_bin" ] || { echo "demo: $runc_bin is not built; run 'make build'" >&2; exit 1; }

work=$(mktemp -d /tmp/polis-demo.XXXXXX)
root=$work/state
id=polis-demo-$$
cleanup() {
  "$runc_bin" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  rm -rf "$work"
  # The parent cgroup of our cgroupsPath, in every hierarchy (only removed when empty).
  rmdir /sys/fs/cgroup/*/polis-demo /sys/fs/cgroup/polis-demo 2>/dev/null || true
}
trap cleanup EXIT

echo "== building a busybox bundle offline in $work/bundle"
rootfs=$work/bundle/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
cd "$work/bundle"
"$runc_bin" spec
jq --arg cg "/polis-demo/$id" '.process.terminal = false | .hostname = "polis"
    | .process.args = ["/bin/sh", "-c", "echo Hello from a Polis container: $(hostname), pid $$, kernel $(uname -r)"]
    | .linux.cgroupsPath = $cg' config.json > config.json.new
mv config.json.new config.json

echo "== polis-runc run (foreground)"
"$runc_bin" --root "$root" run "$id"

echo "== polis-runc run -d, then state, exec, ps, pause/resume, kill, delete"
jq '.process.args = ["/bin/sleep", "600"]' config.json > config.json.new && mv config.json.new config.json
"$runc_bin" --root "$root" run -d "$id" </dev/null >/dev/null 2>&1
"$runc_bin" --root "$root" state "$id" | jq -c '{id, status, pid}'
"$runc_bin" --root "$root" exec "$id" /bin/sh -c 'echo exec says: $(cat /proc/1/cmdline | tr "\0" " ")'
echo "processes: $("$runc_bin" --root "$root" ps --format json "$id")"
"$runc_bin" --root "$root" pause "$id"
"$runc_bin" --root "$root" list
"$runc_bin" --root "$root" resume "$id"
"$runc_bin" --root "$root" kill "$id" KILL
for _ in $(seq 50); do
  [ "$("$runc_bin" --root "$root" state "$id" | jq -r .status)" = stopped ] && break
  sleep 0.1
done
"$runc_bin" --root "$root" delete "$id"
echo "== done: container $id ran and was removed"
echo
"$here/scripts/demo-containerd.sh"
