#!/usr/bin/env bash
# Builds the guest of scripts/v2vm.sh into OUT: a Debian 12 root filesystem whose PID 1 is
# systemd on a pure cgroup v2 hierarchy (root.img, ext4), the kernel as an uncompressed
# vmlinux (QEMU boots it directly through its PVH entry: no firmware, no decompression, which
# under emulation saves most of the boot), and a small busybox initramfs that only loads the
# virtio disk and ext4 (Debian's own initramfs takes ~15 s longer under TCG).
#
#   scripts/v2vm-image.sh OUT
#
# This file is the guest's recipe: scripts/v2vm.sh rebuilds the image whenever its hash changes.
# Needs the Debian mirror once (debootstrap); POLIS_V2VM_MIRROR overrides the host's mirror.
set -euo pipefail

out=${1:?usage: v2vm-image.sh OUT}
suite=bookworm
# What the v2 suite runs in the guest: the reference runtimes, containerd (drives our shim),
# umoci + busybox (the tests build their images offline), the tools the tests call, and what
# bench/runtime.sh and bench/shim.sh need for their v2 mode (make bench-v2); CRI sets up a
# pod's loopback with the reference CNI plugin.
packages=(
  systemd-sysv udev dbus kmod linux-image-amd64
  runc crun containerd umoci busybox-static
  iproute2 nftables procps util-linux psmisc
  hyperfine jq time bc containernetworking-plugins
)

mirror=${POLIS_V2VM_MIRROR:-}
if [ -z "$mirror" ]; then
  # the first Debian (not -security) mirror this host uses, deb822 or one-line format
  mirror=$(find /etc/apt/sources.list /etc/apt/sources.list.d -maxdepth 1 -type f \
    \( -name '*.list' -o -name '*.sources' \) -exec cat {} + 2>/dev/null |
    awk '($1 == "URIs:" || $1 == "deb") { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

for tool in debootstrap mkfs.ext4 xz cpio; do
  command -v "$tool" >/dev/null || { echo "v2vm-image: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

mkdir -p "$out"
root=$out/rootfs
trap 'rm -rf "$root"' EXIT
rm -rf "$root"
echo "v2vm-image: debootstrap $suite from $mirror (a few minutes, once per machine)" >&2
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1; then
  tail -n 30 "$out/debootstrap.log" >&2
  echo "v2vm-image: debootstrap failed (full log: $out/debootstrap.log)" >&2
  exit 1
fi

kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n 1)")

# A throw-away test machine: no persistent journal, no timers, no login prompt, no first-boot
# questions; systemd's cgroup v2-only mode (bookworm's default) stated explicitly on the kernel
# command line by v2vm.sh.
echo polis-v2vm >"$root/etc/hostname"
printf '127.0.0.1 localhost polis-v2vm\n::1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/fstab"
chroot "$root" systemd-machine-id-setup >/dev/null
mkdir -p "$root/etc/systemd/journald.conf.d" "$root/etc/systemd/system.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$root/etc/systemd/journald.conf.d/polis.conf"
printf '[Manager]\nDefaultTimeoutStopSec=5s\nShowStatus=no\n' >"$root/etc/systemd/system.conf.d/polis.conf"
for unit in getty@tty1.service serial-getty@ttyS0.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
  e2scrub_reap.service systemd-pstore.service systemd-update-utmp.service \
  systemd-update-utmp-runlevel.service containerd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Hardware a VM never has: a smaller image is a faster mkfs and a faster depmod.
mods=$root/lib/modules/$kver/kernel
rm -rf "$mods"/drivers/{gpu,media,net/wireless,net/ethernet,infiniband,staging,bluetooth,usb,hid,iio,isdn} \
  "$mods/sound" "$root"/usr/share/{doc,man,locale} "$root"/var/cache/apt/archives/*.deb
chroot "$root" depmod -a "$kver"

# The guest's side of v2vm.sh: a unit started once the system is up, which mounts the host's
# folders (9p, tags and paths listed by the host), runs the command with its output on the
# second serial port (streamed by the host), leaves the exit status on the control share and
# powers the guest off, whatever happened.
cat >"$root/usr/local/sbin/polis-guest-run" <<'EOF'
#!/bin/bash
ctl=/run/polis-ctl
out=/dev/ttyS1
stty -F $out raw -echo 115200 2>/dev/null
finish() { echo "$1" >$ctl/status; sync; systemctl poweroff --force --force; }
mkdir -p $ctl
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 polisctl $ctl || finish 125
while read -r tag mode path; do
  mkdir -p "$path"
  cache=mmap; [ "$mode" = ro ] && cache=loose
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=524288,$mode,cache=$cache" "$tag" "$path" ||
    { echo "polis-guest-run: cannot mount $path" >$out; finish 125; }
done <$ctl/shares
echo "polis-guest-run: $(systemctl is-system-running), cgroup $(stat -fc %T /sys/fs/cgroup), kernel $(uname -r)" >$out
bash $ctl/command </dev/null >$out 2>&1
finish $?
EOF
chmod 0755 "$root/usr/local/sbin/polis-guest-run"
cat >"$root/etc/systemd/system/polis-guest.service" <<'EOF'
[Unit]
Description=the command v2vm.sh runs
After=multi-user.target
ConditionKernelCommandLine=polis.v2vm
[Service]
Type=simple
ExecStart=/usr/local/sbin/polis-guest-run
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../polis-guest.service "$root/etc/systemd/system/multi-user.target.wants/polis-guest.service"

# initramfs: busybox, the modules the root disk needs (with their dependencies, in load order).
ird=$(mktemp -d)
mkdir -p "$ird"/{bin,dev,proc,newroot,modules}
cp "$root/bin/busybox" "$ird/bin/busybox"
for m in virtio_pci virtio_blk ext4; do
  chroot "$root" modprobe --set-version "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
  cp "$root$ko" "$ird/modules/"
  basename "$ko" >>"$ird/modules/order"
done
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
bb=/bin/busybox
$bb mount -t proc none /proc
$bb mount -t devtmpfs none /dev
for m in $($bb cat /modules/order); do $bb insmod /modules/$m; done
n=0
until [ -b /dev/vda ]; do
  n=$((n + 1)); [ $n -gt 400 ] && { echo "initramfs: no /dev/vda"; $bb poweroff -f; }
  $bb usleep 25000
done
$bb mount -t ext4 /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; $bb poweroff -f; }
$bb umount /proc
$bb mount --move /dev /newroot/dev
exec $bb switch_root /newroot /sbin/init
EOF
chmod 0755 "$ird/init"
(cd "$ird" && find . | cpio --quiet -o -H newc) >"$out/initrd.new"
rm -rf "$ird"

# vmlinuz is a decompressor stub followed by the xz-compressed kernel: cut at the xz magic.
magic=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$root/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
[ -n "$magic" ] || { echo "v2vm-image: no xz payload in vmlinuz-$kver" >&2; exit 1; }
tail -c "+$((magic + 1))" "$root/boot/vmlinuz-$kver" | xz -dcq >"$out/vmlinux.new" 2>/dev/null || true
[ "$(head -c 4 "$out/vmlinux.new" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
  { echo "v2vm-image: could not extract vmlinux from vmlinuz-$kver" >&2; exit 1; }

# ext4 straight from the directory: no loop device, no mount; 1 GB free for the tests' writes
# (the guest runs on a copy-on-write snapshot of it, the image never changes).
size=$(($(du -sm "$root" | cut -f1) + 1024))
rm -f "$out/root.new"
truncate -s "${size}M" "$out/root.new"
mkfs.ext4 -q -F -L polisv2 -d "$root" "$out/root.new"
mv "$out/root.new" "$out/root.img"
mv "$out/initrd.new" "$out/initrd.img"
mv "$out/vmlinux.new" "$out/vmlinux"
echo "v2vm-image: ready in $out (kernel $kver)" >&2
