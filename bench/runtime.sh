#!/usr/bin/env bash
# polis-runc vs runc vs crun on the same busybox bundle running /bin/true, in one run.
# crun 1.8 refuses the hybrid cgroup layout, so on a hybrid host the whole benchmark runs in a
# private mount namespace with the empty cgroup2 mount removed: every runtime sees the same
# (v1) layout. On a pure v2 host (make bench-v2 runs it in the v2 guest) it runs as it is.
# Usage: bench/runtime.sh [RUNS]   (prints medians and ratios; not a test)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-${RUNS:-60}}
polis=${POLIS_BIN_DIR:-$here/target/release}/polis-runc
for t in hyperfine runc crun jq busybox /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$polis" ] || { echo "bench: $polis is not built (make build)" >&2; exit 1; }

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  echo "== cgroup v2 host"
elif [ "${POLIS_BENCH_INNER:-}" != 1 ]; then
  exec unshare -m --propagation private env POLIS_BENCH_INNER=1 "$0" "$@"
fi
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || umount /sys/fs/cgroup/unified 2>/dev/null || true

work=$(mktemp -d /tmp/polis-bench.XXXXXX)
trap 'for r in polis runc crun; do for id in $("$(bin $r)" --root "$work/$r" list -q 2>/dev/null); do "$(bin $r)" --root "$work/$r" delete -f "$id"; done; done 2>/dev/null; rm -rf "$work"; rmdir /sys/fs/cgroup/*/polis-bench /sys/fs/cgroup/polis-bench 2>/dev/null || true' EXIT
bin() { case $1 in polis) echo "$polis";; runc) command -v runc;; crun) command -v crun;; esac; }

rootfs=$work/bundle/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$rootfs/bin/"
ln -s busybox "$rootfs/bin/true"
(cd "$work/bundle" && runc spec && jq '.process.terminal=false | .process.args=["/bin/true"] | .linux.cgroupsPath="/polis-bench/c"' config.json > c.json && mv c.json config.json)
B=$work/bundle

cmd() { echo "$(bin "$1") --root $work/$1 $2"; }

# hyperfine runs one command's runs back to back, so a burst of load from elsewhere lands on one
# runtime only. The runs are split into rounds, each of which runs all three, and the median is
# taken over every round's times: load then hits the runtimes alike.
rounds=$(( runs >= 50 ? 5 : 1 ))
echo "== run (create + start + wait + delete) of /bin/true, $runs runs each in $rounds rounds"
for round in $(seq "$rounds"); do
  hyperfine -N -w 3 -r $(( (runs + rounds - 1) / rounds )) --export-json "$work/run-$round.json" \
    -n polis "$(cmd polis "run -b $B b1")" \
    -n runc "$(cmd runc "run -b $B b1")" \
    -n crun "$(cmd crun "run -b $B b1")" >/dev/null 2>&1
done
jq -s '{results: [.[0].results[].command as $c | {command: $c,
  median: ([.[].results[] | select(.command == $c) | .times[]] | sort | if length % 2 == 1
    then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end)}]}' \
  "$work"/run-*.json > "$work/run.json"

echo "== create / start / delete separately"
for r in polis runc crun; do
  c=$(cmd $r "")
  # hyperfine 1.15 has no --conclude: each prepare step first removes what the last run left.
  hyperfine -N -w 3 -r "$runs" --export-json "$work/create-$r.json" \
    --prepare "sh -c '$c delete -f b2 2>/dev/null || true'" -n create "$c create -b $B b2" >/dev/null 2>&1
  hyperfine -N -w 3 -r "$runs" --export-json "$work/start-$r.json" \
    --prepare "sh -c '$c delete -f b2 2>/dev/null; $c create -b $B b2 </dev/null >/dev/null 2>&1'" \
    -n start "$c start b2" >/dev/null
  hyperfine -N -w 3 -r "$runs" --export-json "$work/delete-$r.json" \
    --prepare "sh -c '$c delete -f b2 2>/dev/null; $c create -b $B b2 </dev/null >/dev/null 2>&1'" -n delete "$c delete -f b2" >/dev/null
  $c delete -f b2 2>/dev/null || true
done

median() { jq -r ".results[] | select(.command == \"$2\") | .median * 1000" "$1"; }
one() { jq -r '.results[0].median * 1000' "$1"; }
rss() { /usr/bin/time -f %M $(cmd "$1" "run -b $B b3") 2>&1 >/dev/null | tail -1; }

printf '\n%-8s %10s %10s %10s %10s %10s\n' runtime run_ms create_ms start_ms delete_ms peak_rss_kb
for r in polis runc crun; do
  printf '%-8s %10.2f %10.2f %10.2f %10.2f %10s\n' $r "$(median "$work/run.json" $r)" \
    "$(one "$work/create-$r.json")" "$(one "$work/start-$r.json")" "$(one "$work/delete-$r.json")" "$(rss $r)"
done
p=$(median "$work/run.json" polis); rn=$(median "$work/run.json" runc); cr=$(median "$work/run.json" crun)
echo
awk -v p="$p" -v r="$rn" -v c="$cr" 'BEGIN {
  printf "run median: polis/runc = %.2f (target <= 0.50), polis/crun = %.2f (target <= 1.20)\n", p / r, p / c }'
