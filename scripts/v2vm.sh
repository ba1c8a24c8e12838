#!/usr/bin/env bash
# Runs one command as root in a throw-away Debian 12 guest with systemd as PID 1 and a pure
# cgroup v2 hierarchy (these machines are cgroup v1 hybrid without systemd), streams its
# output, powers the guest off and exits with the command's status.
#
#   scripts/v2vm.sh [-s DIR]... [-w DIR]... [-e VAR=VALUE]... [-t SECS] [-m MB] -- CMD [ARG]...
#   scripts/v2vm.sh --build        # build (or refresh) the cached guest only
#
#   -s DIR   share a host folder read-only, at the same path in the guest (-w: read-write)
#   -e       set a variable for CMD;  -t  hard timeout (default 1200 s);  -m  guest memory
#
# Exit status: CMD's; 124 on timeout; 125 when the guest never ran CMD (its console is shown).
# The guest is built once per machine by scripts/v2vm-image.sh (debootstrap + Debian's kernel)
# into $POLIS_V2VM_CACHE (default /var/cache/polis-v2vm), rebuilt when that recipe changes. It
# boots from a copy-on-write snapshot, so a run never changes it. No network device: whatever
# a test needs comes in through the shares. /dev/kvm on these machines only runs PVM guest
# kernels, so QEMU emulates (TCG): ~40 s to boot, programs 20-50x slower than on the host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${POLIS_V2VM_CACHE:-/var/cache/polis-v2vm}
shares=() envs=() timeout=1200 mem=2048 build_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -s | -w) shares+=("$([ "$1" = -s ] && echo ro || echo rw) $(realpath -e -- "$2")"); shift 2 ;;
    -e) envs+=("$2"); shift 2 ;;
    -t) timeout=$2; shift 2 ;;
    -m) mem=$2; shift 2 ;;
    --build) build_only=1; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "v2vm: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ "$build_only" = 1 ] || [ $# -gt 0 ] || { echo "v2vm: no command given (see --help)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "v2vm: must run as root" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null ||
  { echo "v2vm: qemu-system-x86_64 is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }

# The cached guest, keyed by its recipe; one build at a time per machine.
recipe=$(sha256sum "$here/v2vm-image.sh" | cut -c1-16)
image=$cache/$recipe
mkdir -p "$cache"
exec 8>"$cache/.lock"
flock 8
if [ ! -f "$image/root.img" ]; then
  find "$cache" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  "$here/v2vm-image.sh" "$image"
fi
flock -u 8
[ "$build_only" = 0 ] || exit 0

work=$(mktemp -d /tmp/polis-v2vm.XXXXXX)
qemu=""
cleanup() {
  if [ -n "$qemu" ]; then kill -9 "$qemu" 2>/dev/null || true; wait "$qemu" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$work/ctl"
: >"$work/ctl/shares"
: >"$work/out"
fs=()
for i in "${!shares[@]}"; do
  read -r mode path <<<"${shares[$i]}"
  [ -d "$path" ] || { echo "v2vm: $path is not a directory" >&2; exit 2; }
  case $path in
    / | /bin* | /boot* | /dev* | /etc* | /lib* | /proc* | /run* | /sbin* | /sys* | /usr* | /var | /var/lib*)
      echo "v2vm: will not share $path over the guest's own system folder" >&2; exit 2 ;;
  esac
  ro=""; [ "$mode" = ro ] && ro=,readonly=on
  fs+=(-fsdev "local,id=fs$i,path=$path,security_model=none$ro" -device "virtio-9p-pci,fsdev=fs$i,mount_tag=share$i")
  echo "share$i $mode $path" >>"$work/ctl/shares"
done
{
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8'
  for e in ${envs[@]+"${envs[@]}"}; do printf 'export %q\n' "$e"; done
  printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  printf 'exec'; printf ' %q' "$@"; echo
} >"$work/ctl/command"

cpus=$(nproc); [ "$cpus" -gt 4 ] && cpus=4
started=$SECONDS
# cpu max without 5-level paging: cheaper to emulate; quiet boot; cgroup v1 off entirely.
qemu-system-x86_64 -machine pc,accel=tcg -cpu max,la57=off -smp "$cpus" -m "$mem" \
  -nodefaults -no-user-config -display none -no-reboot -nic none \
  -kernel "$image/vmlinux" -initrd "$image/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw quiet loglevel=3 panic=-1 mitigations=off tsc=reliable systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all polis.v2vm" \
  -drive "file=$image/root.img,format=raw,if=virtio,snapshot=on,cache=unsafe" \
  -serial "file:$work/console" -serial "file:$work/out" \
  -fsdev "local,id=ctl,path=$work/ctl,security_model=none" -device virtio-9p-pci,fsdev=ctl,mount_tag=polisctl \
  ${fs[@]+"${fs[@]}"} \
  -object rng-random,filename=/dev/urandom,id=rng -device virtio-rng-pci,rng=rng \
  </dev/null >"$work/qemu.log" 2>&1 &
qemu=$!
tail -n +1 -F --pid="$qemu" "$work/out" 2>/dev/null &
tailer=$!
timed_out=0
while kill -0 "$qemu" 2>/dev/null; do
  if [ $((SECONDS - started)) -ge "$timeout" ]; then
    timed_out=1
    kill -9 "$qemu" 2>/dev/null || true
    break
  fi
  sleep 1
done
wait "$qemu" 2>/dev/null || true
qemu=""
wait "$tailer" 2>/dev/null || true

if [ -s "$work/ctl/status" ]; then
  status=$(cat "$work/ctl/status")
  echo "v2vm: command exited $status; guest up for $((SECONDS - started)) s" >&2
  exit "$status"
fi
if [ "$timed_out" = 1 ]; then
  echo "v2vm: timed out after $timeout s; the guest's console:" >&2
  tail -n 40 "$work/console" >&2
  exit 124
fi
echo "v2vm: the guest ended without running the command; qemu and console:" >&2
cat "$work/qemu.log" >&2
tail -n 60 "$work/console" >&2
exit 125
