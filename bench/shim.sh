#!/usr/bin/env bash
# Benchmark of containerd-shim-polis-v2 (+ polis-runc) against containerd's Go runc shim
# (io.containerd.runc.v2 + runc), in one run, through one private containerd:
#   1. `ctr run --rm busybox /bin/true` latency, rotated runs (polis shim, Go shim + runc, Go shim + polis-runc)
#   2. RSS and PSS of each shim process with $SLEEPERS sleeping containers per shim type
# Prints medians and ratios. Needs root, containerd, ctr, runc, umoci, busybox-static.
#   RUNS=30 SLEEPERS=10 bench/shim.sh   (BUILD=0: measure the binaries in target/release as they are)
# RSS_MAX_KB=N: fail (exit 1) when a polis shim's average RSS is over N KiB (`make check-shim-rss`)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-30} SLEEPERS=${SLEEPERS:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
for t in containerd ctr runc umoci unshare nsenter /bin/busybox; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (scripts/install-deps.sh)" >&2; exit 2; }
done

if [[ ${BUILD:-1} != 0 ]]; then
  echo "building (release)..." >&2
  # make build, not a bare cargo build: it links polis-runc statically, as it is shipped.
  make -s -C "$here" build >/dev/null
fi
W=$(mktemp -d /tmp/polis-shimbench.XXXXXX)
mkdir -p "$W/bin" "$W/ns"
ln -s "$CARGO_TARGET_DIR/release/containerd-shim-polis-v2" "$W/bin/"
ln -s "$CARGO_TARGET_DIR/release/polis-runc" "$W/bin/"
NS=polis-shimbench
. "$here/bench/private-containerd.sh"
trap pc_exit EXIT
pc_start

# ---- 1. ctr run --rm latency ----
now() { date +%s%N; }
declare -a tp tr tg
run_one() { # id runtime-flags... ; prints microseconds
  local id=$1; shift
  local t0; t0=$(now)
  c run --rm "$@" $IMAGE "$id" /bin/true >/dev/null
  echo $(( ($(now) - t0) / 1000 ))
}
polis() { tp+=("$(run_one "p$1" --runtime io.containerd.polis.v2)"); }
gorunc() { tr+=("$(run_one "r$1" --runtime io.containerd.runc.v2)"); }
# The Go shim driving polis-runc separates the shim's share from the runtime's.
gopolis() { tg+=("$(run_one "g$1" --runtime io.containerd.runc.v2 --runc-binary "$W/bin/polis-runc")"); }
echo "ctr run --rm /bin/true, $RUNS rotated runs each..." >&2
for i in $(seq "$RUNS"); do
  case $((i % 3)) in
    0) polis "$i"; gorunc "$i"; gopolis "$i" ;;
    1) gorunc "$i"; gopolis "$i"; polis "$i" ;;
    2) gopolis "$i"; polis "$i"; gorunc "$i" ;;
  esac
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.0f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
if (( RUNS > 0 )); then
  mp=$(median "${tp[@]}") mr=$(median "${tr[@]}") mg=$(median "${tg[@]}")
  printf 'ctr run latency, median of %d (ms): polis-shim+polis-runc %.1f  go-shim+runc %.1f  go-shim+polis-runc %.1f\n' \
    "$RUNS" "$(echo "$mp / 1000" | bc -l)" "$(echo "$mr / 1000" | bc -l)" "$(echo "$mg / 1000" | bc -l)"
  printf 'ratio polis/go+runc %.2f (target <= 0.70); polis shim vs Go shim, both on polis-runc: %.2f\n' \
    "$(echo "$mp / $mr" | bc -l)" "$(echo "$mp / $mg" | bc -l)"
fi

# ---- 2. memory per shim with sleeping containers ----
mem_of() { # runtime -> "avg_rss_kb avg_pss_kb count"
  local rt=$1 tag=$2
  for i in $(seq "$SLEEPERS"); do c run -d --runtime "$rt" $IMAGE "$tag$i" sleep 600 >/dev/null; done
  sleep 1
  # Per shim server; a helper process a shim forks (same command line, parent a shim) is
  # counted with its shim, not as one more shim.
  local rss=0 pss=0 n=0 pids
  pids=" $(shim_pids | tr '\n' ' ') "
  for p in $pids; do
    rss=$((rss + $(awk '/^Rss:/ {print $2}' /proc/$p/smaps_rollup)))
    pss=$((pss + $(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup)))
    [[ $pids == *" $(awk '{print $4}' /proc/$p/stat) "* ]] || n=$((n + 1))
    if [[ -n ${SMAPS:-} && $n == 1 ]]; then
      awk '/^[0-9a-f]+-/ {name=$6} /^Rss:/ {r[name]+=$2} END {for (k in r) print r[k], k}' /proc/$p/smaps | sort -rn | head -8 >&2
      # Each mapping of the shim's own binary: perms, size and resident KiB.
      awk -v b="containerd-shim-polis-v2" '/^[0-9a-f]+-/ {m=($6 ~ b); perms=$2} m && /^Size:/ {s=$2} m && /^Rss:/ {print "  " perms, s " KiB mapped,", $2 " KiB resident"}' /proc/$p/smaps >&2
      # SMAPS_HOOK=cmd: runs `cmd PID` on the first shim (e.g. a page residency dump).
      [[ -n ${SMAPS_HOOK:-} ]] && $SMAPS_HOOK "$p" >&2
      [[ ${SMAPS} == 2 ]] && awk '/^[0-9a-f]+-/ {r=$1; n=$6} /^Size:/ {s=$2} /^Rss:/ && $2 > 0 && n == "" {print "  anon", r, s, $2}' /proc/$p/smaps >&2
      cat /proc/$p/task/*/comm | sort | uniq -c | tr "\n" " " >&2; echo >&2
    fi
  done
  for i in $(seq "$SLEEPERS"); do
    c task kill -s SIGKILL "$tag$i" >/dev/null; done
  sleep 1
  for i in $(seq "$SLEEPERS"); do
    c task delete "$tag$i" >/dev/null 2>&1 || c task delete -f "$tag$i" >/dev/null 2>&1
    c containers rm "$tag$i" >/dev/null; done
  for _ in $(seq 50); do [[ -z $(shim_pids) ]] && break; sleep 0.1; done
  echo "$((rss / n)) $((pss / n)) $n"
}
read -r prss ppss pn < <(mem_of io.containerd.polis.v2 mp)
read -r rrss rpss rn < <(mem_of io.containerd.runc.v2 mr)
printf 'shim memory with %d sleeping containers (per shim, KiB): polis RSS %d PSS %d (%d shims)  go RSS %d PSS %d (%d shims)\n' \
  "$SLEEPERS" "$prss" "$ppss" "$pn" "$rrss" "$rpss" "$rn"
printf 'ratios polis/go: RSS %.2f  PSS %.2f (target RSS <= 2048 KiB)\n' \
  "$(echo "$prss / $rrss" | bc -l)" "$(echo "$ppss / $rpss" | bc -l)"
if [[ -n ${RSS_MAX_KB:-} ]] && (( prss > RSS_MAX_KB )); then
  echo "shim RSS ${prss} KiB is over ${RSS_MAX_KB} KiB: shim/symbol-order.txt no longer matches the" \
       "code (re-record it with 'make shim-symbol-order'), or the shim grew" >&2
  exit 1
fi
