#!/usr/bin/env bash
# Soak of the shim stack through a private containerd (bench/private-containerd.sh), Polis
# (containerd-shim-polis-v2 + polis-runc) against containerd's Go shim + runc in the same run
# (issue 13). Parts, each optionally followed by its size:
#   churn [N]   N `ctr run --rm` of busybox per runtime, $PAR in parallel (default 1000, 4):
#               errors and error rate, wall times, ratio polis/go
#   exec [M]    M execs into one running container through the Polis shim (Exec, Start, Wait,
#               Delete with stdout/stderr fifos, as containerd does for a probe; driven by
#               polis-exec-probe, no process per exec): the shim's VmRSS, fds and threads at 0,
#               1000 and the end (default 10000); target RSS(end) within 5 % of RSS(1000);
#               then the same against the Go shim (EXEC_GO=0 skips it)
#   idle [S]    CPU time (utime+stime) of a shim with one sleeping container over S seconds,
#               Polis and Go side by side (default 600)
#   pods [P]    P groups of 2 containers per shim started concurrently, per runtime (default
#               50): all must reach RUNNING with one shim per group, then removed
#   all         every part with its default size
# After each part nothing may be left: shim processes, mounts, cgroup dirs, state dirs, fifos,
# sockets (printed, and the script fails). It also fails on Polis errors (churn, exec, pods).
#   bench/soak.sh churn 100 exec 1000       (BUILD=0: take target/release as it is)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
PAR=${PAR:-4}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
for t in containerd ctr runc umoci unshare nsenter /bin/busybox bc; do
  command -v "$t" >/dev/null || { echo "soak: needs $t (scripts/install-deps.sh)" >&2; exit 2; }
done

declare -a parts=() sizes=()
while (($#)); do
  case $1 in
    churn | exec | idle | pods)
      parts+=("$1")
      if [[ ${2:-} =~ ^[0-9]+$ ]]; then sizes+=("$2"); shift; else sizes+=(""); fi ;;
    all) parts+=(churn exec idle pods); sizes+=("" "" "" "") ;;
    *) echo "usage: bench/soak.sh [churn [N]] [exec [M]] [idle [S]] [pods [P]] | all" >&2; exit 2 ;;
  esac
  shift
done
((${#parts[@]})) || { parts=(churn exec idle pods); sizes=("" "" "" ""); }

if [[ ${BUILD:-1} != 0 ]]; then
  echo "building (release)..." >&2
  make -s -C "$here" build >/dev/null
fi
(cd "$here" && cargo build --release -q -p polis-integration --bin polis-exec-probe)
probe=$CARGO_TARGET_DIR/release/polis-exec-probe

W=$(mktemp -d /tmp/polis-soak.XXXXXX)
mkdir -p "$W/bin" "$W/ns" "$W/out"
# Copies, not links: a build writing target/release during a long soak would make every exec
# of polis-runc fail with ETXTBSY.
cp "$CARGO_TARGET_DIR/release/containerd-shim-polis-v2" "$CARGO_TARGET_DIR/release/polis-runc" "$W/bin/"
NS=polis-soak-$$
# shellcheck source=bench/private-containerd.sh
. "$here/bench/private-containerd.sh"
trap pc_exit EXIT
# A signal (^C, timeout) also goes through the cleanup.
trap 'exit 130' INT TERM
pc_start

POLIS=io.containerd.polis.v2 GO=io.containerd.runc.v2
failed=0
now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
fail() { echo "FAIL: $*" >&2; failed=1; }
in_ns() { nsenter --mount="$W/ns/mnt" -- "$@"; }

# The shim process serving container $1 (its command line names the container).
shim_of() {
  local p
  for p in $(shim_pids); do
    [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == *" -id $1 "* ]] && { echo "$p"; return; }
  done
}
# utime+stime of a process, in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Kills and removes every container, a few at a time.
remove_all() {
  local id pids=()
  for id in $(c containers ls -q); do
    { c task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
      for _ in $(seq 50); do
        c task delete "$id" >/dev/null 2>&1 && break
        c task ls -q 2>/dev/null | grep -qx "$id" || break
        sleep 0.1
      done
      c containers rm "$id" >/dev/null 2>&1 || true; } &
    pids+=($!)
    if ((${#pids[@]} >= 8)); then wait "${pids[@]}"; pids=(); fi
  done
  # Only our own jobs: containerd is a job of this shell too.
  ((${#pids[@]} == 0)) || wait "${pids[@]}"
}

# Everything the containers of this instance may leave, one line each.
leftovers() {
  local p
  for p in $(shim_pids); do echo "shim process $p: $(tr '\0' ' ' <"/proc/$p/cmdline")"; done
  c containers ls -q | sed 's/^/container /'
  find /sys/fs/cgroup/*/"$NS" -mindepth 1 -type d 2>/dev/null | sed 's/^/cgroup dir /' || true
  in_ns cat /proc/self/mountinfo | grep -F "$W/state" | sed 's/^/mount /' || true
  find "$W/state/io.containerd.runtime.v2.task/$NS" -mindepth 1 -maxdepth 1 2>/dev/null |
    sed 's/^/state dir /' || true
  in_ns sh -c "ls -d /run/containerd/polis/$NS/* /run/containerd/runc/$NS/* 2>/dev/null" |
    sed 's/^/runtime state /' || true
  in_ns sh -c 'find /run/containerd/fifo -mindepth 1 2>/dev/null' | sed 's/^/fifo /' || true
  in_ns sh -c 'find /run/containerd/s -mindepth 1 2>/dev/null' | sed 's/^/socket /' || true
}

# After a part: nothing of it may remain (shims and cgroups trail the last exit: up to 20 s).
check_clean() {
  local left=""
  for _ in $(seq 100); do
    left=$(leftovers)
    [[ -z $left ]] && break
    sleep 0.2
  done
  if [[ -n $left ]]; then
    fail "$1 left behind:"; echo "$left" | head -40 >&2
    remove_all
  else
    echo "$1: nothing left (shims, mounts, cgroups, state dirs, fifos, sockets)"
  fi
}

# ---- churn ----
churn_worker() { # runtime tag first step count -> one line per run: "ok MS" or "err ..."
  local rt=$1 tag=$2 i out t0
  for ((i = $3; i < $5; i += $4)); do
    t0=$(now)
    if out=$(c run --rm --runtime "$rt" "$IMAGE" "$tag-$i" echo "hi-$i" 2>&1) && [[ $out == "hi-$i" ]]; then
      echo "ok $(ms_since "$t0")"
    else
      echo "err $tag-$i: ${out//$'\n'/ }"
      c task delete -f "$tag-$i" >/dev/null 2>&1 || true
      c containers rm "$tag-$i" >/dev/null 2>&1 || true
    fi
  done
}
churn_block() { # runtime tag from to -> wall ms; results appended to $W/out/tag
  local t0 w pids=()
  t0=$(now)
  for ((w = 0; w < PAR; w++)); do
    churn_worker "$1" "$2" $(($3 + w)) "$PAR" "$4" >"$W/out/$2.$w" &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "$W/out/$2".[0-9]* >>"$W/out/$2" && rm -f "$W/out/$2".[0-9]*
  ms_since "$t0"
}
part_churn() {
  local n=${1:-1000} block from tp=0 tg=0
  block=$((n < 100 ? n : 100))
  echo "== churn: $n ctr run --rm per runtime, $PAR in parallel, alternating blocks of $block"
  : >"$W/out/polis"; : >"$W/out/go"
  for ((from = 0; from < n; from += block)); do
    local to=$((from + block > n ? n : from + block))
    if (((from / block) % 2)); then
      tg=$((tg + $(churn_block $GO go "$from" "$to"))); tp=$((tp + $(churn_block $POLIS polis "$from" "$to")))
    else
      tp=$((tp + $(churn_block $POLIS polis "$from" "$to"))); tg=$((tg + $(churn_block $GO go "$from" "$to")))
    fi
  done
  local ep eg medp medg
  ep=$(grep -c '^err' "$W/out/polis" || true) eg=$(grep -c '^err' "$W/out/go" || true)
  median() { awk '$1 == "ok" {print $2}' "$1" | sort -n | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : 0}'; }
  medp=$(median "$W/out/polis") medg=$(median "$W/out/go")
  printf 'churn polis: %d runs, %d errors (%.3f %%), wall %.1f s, %.1f runs/s, median run %d ms\n' \
    "$n" "$ep" "$(echo "100 * $ep / $n" | bc -l)" "$(echo "$tp / 1000" | bc -l)" "$(echo "$n * 1000 / $tp" | bc -l)" "$medp"
  printf 'churn go:    %d runs, %d errors (%.3f %%), wall %.1f s, %.1f runs/s, median run %d ms\n' \
    "$n" "$eg" "$(echo "100 * $eg / $n" | bc -l)" "$(echo "$tg / 1000" | bc -l)" "$(echo "$n * 1000 / $tg" | bc -l)" "$medg"
  printf 'churn wall ratio polis/go %.2f, median run ratio %.2f\n' "$(echo "$tp / $tg" | bc -l)" "$(echo "$medp / $medg" | bc -l)"
  grep -h '^err' "$W/out/polis" "$W/out/go" | head -10 >&2 || true
  # Target: no error, < 0.1 % at worst.
  ((ep * 1000 < n)) || fail "churn: polis error rate $ep/$n"
  check_clean churn
}

# ---- exec probes ----
part_exec() {
  local m=${1:-10000} id=soak-exec shim addr
  echo "== exec: $m execs into one container through the polis shim"
  c run -d --runtime $POLIS "$IMAGE" "$id" sleep 100000 >/dev/null
  shim=$(shim_of "$id")
  addr=$(cat "$W/state/io.containerd.runtime.v2.task/$NS/$id/address")
  mkdir -p "$W/fifo"
  in_ns "$probe" "$addr" "$id" "$shim" "$m" 1000 "$W/fifo" | tee "$W/out/exec"
  local r0 f0 t0 a0 b0 h0 r1 f1 t1 a1 b1 h1 re fe te ae be he errs secs
  read -r _ r0 f0 t0 a0 b0 h0 < <(awk '$1 == 0' "$W/out/exec")
  read -r _ r1 f1 t1 a1 b1 h1 < <(awk '$1 == 1000' "$W/out/exec")
  read -r _ re fe te ae be he < <(awk '$1 ~ /^[0-9]+$/' "$W/out/exec" | tail -1)
  errs=$(awk '$1 == "errors" {print $2}' "$W/out/exec") secs=$(awk '$1 == "seconds" {print $2}' "$W/out/exec")
  printf 'exec: %d execs in %s s (%.0f/s), %d errors\n' "$m" "$secs" "$(echo "$m / $secs" | bc -l)" "$errs"
  printf 'exec shim at 0 / 1000 / %d execs: RSS kB %s / %s / %s (anon %s / %s / %s, file %s / %s / %s, heap %s / %s / %s); fds %s / %s / %s; threads %s / %s / %s\n' \
    "$m" "$r0" "${r1:-?}" "$re" "$a0" "${a1:-?}" "$ae" "$b0" "${b1:-?}" "$be" "$h0" "${h1:-?}" "$he" \
    "$f0" "${f1:-?}" "$fe" "$t0" "${t1:-?}" "$te"
  if [[ -n ${r1:-} ]] && ((m > 1000)); then
    local pct; pct=$(echo "100 * ($re - $r1) / $r1" | bc -l)
    printf 'exec RSS end vs 1000: %+.1f %% (target within 5 %%)\n' "$pct"
    if (($(echo "$pct > 5 || $pct < -5" | bc))); then fail "exec: RSS grew $pct % after 1000 execs"; fi
    # The first execs start the ttrpc connection and method threads: compare from 1000 on.
    [[ $fe == "$f1" && $te == "$t1" ]] || fail "exec: fds $f1 -> $fe or threads $t1 -> $te after 1000 execs"
  fi
  ((errs == 0)) || fail "exec: $errs errors"
  # The reference: the same execs through containerd's Go shim (+ runc), which serves the
  # same Task API. EXEC_GO=0 skips it.
  if [[ ${EXEC_GO:-1} != 0 ]]; then
    c run -d --runtime $GO "$IMAGE" soak-exec-go sleep 100000 >/dev/null
    shim=$(shim_of soak-exec-go)
    addr=$(cat "$W/state/io.containerd.runtime.v2.task/$NS/soak-exec-go/address")
    in_ns "$probe" "$addr" soak-exec-go "$shim" "$m" 1000 "$W/fifo" >"$W/out/exec-go"
    read -r _ r0 f0 t0 _ < <(awk '$1 == 0' "$W/out/exec-go")
    read -r _ r1 f1 t1 _ < <(awk '$1 == 1000' "$W/out/exec-go")
    read -r _ re fe te _ < <(awk '$1 ~ /^[0-9]+$/' "$W/out/exec-go" | tail -1)
    errs=$(awk '$1 == "errors" {print $2}' "$W/out/exec-go") secs=$(awk '$1 == "seconds" {print $2}' "$W/out/exec-go")
    printf 'exec go shim: %d execs in %s s (%.0f/s), %d errors; RSS kB %s / %s / %s; fds %s / %s / %s; threads %s / %s / %s\n' \
      "$m" "$secs" "$(echo "$m / $secs" | bc -l)" "$errs" "$r0" "${r1:-?}" "$re" "$f0" "${f1:-?}" "$fe" "$t0" "${t1:-?}" "$te"
  fi
  remove_all
  rm -rf "$W/fifo"
  check_clean exec
}

# ---- idle cost ----
part_idle() {
  local s=${1:-600} pp pg cp0 cg0 cp1 cg1 hz
  hz=$(getconf CLK_TCK)
  echo "== idle: one sleeping container per shim for $s s"
  c run -d --runtime $POLIS "$IMAGE" idle-polis sleep 100000 >/dev/null
  c run -d --runtime $GO "$IMAGE" idle-go sleep 100000 >/dev/null
  pp=$(shim_of idle-polis) pg=$(shim_of idle-go)
  sleep 2
  cp0=$(cpu_ticks "$pp") cg0=$(cpu_ticks "$pg")
  sleep "$s"
  cp1=$(cpu_ticks "$pp") cg1=$(cpu_ticks "$pg")
  printf 'idle CPU over %d s: polis shim %d ms (%.4f %% of a core), go shim %d ms (%.4f %%)\n' \
    "$s" $(((cp1 - cp0) * 1000 / hz)) "$(echo "100 * ($cp1 - $cp0) / $hz / $s" | bc -l)" \
    $(((cg1 - cg0) * 1000 / hz)) "$(echo "100 * ($cg1 - $cg0) / $hz / $s" | bc -l)"
  remove_all
  check_clean idle
}

# ---- pods ----
pods_of() { # runtime tag count -> "ms running shims errors"
  local rt=$1 tag=$2 n=$3 g t0 errs=0 pids=()
  t0=$(now)
  for ((g = 0; g < n; g++)); do
    {
      for k in a b; do
        c run -d --runtime "$rt" --annotation "$4=$tag-$g" "$IMAGE" "$tag-$g-$k" sleep 100000 >/dev/null 2>"$W/out/pod-$tag-$g-$k" ||
          echo "pod $tag-$g-$k: $(cat "$W/out/pod-$tag-$g-$k")" >&2
      done
    } &
    pids+=($!)
  done
  wait "${pids[@]}"
  local ms running shims
  ms=$(ms_since "$t0")
  running=$(c task ls | awk -v t="$tag-" 'index($1, t) == 1 && $3 == "RUNNING"' | wc -l)
  shims=0
  for p in $(shim_pids); do [[ $(tr '\0' ' ' <"/proc/$p/cmdline") == *" -id $tag-"* ]] && shims=$((shims + 1)); done
  errs=$((2 * n - running))
  echo "$ms $running $shims $errs"
}
part_pods() {
  local n=${1:-50}
  echo "== pods: $n groups of 2 containers started concurrently, per runtime"
  local pm pr ps pe gm gr gs t0
  read -r pm pr ps pe < <(pods_of $POLIS ppod "$n" io.containerd.polis.v2.group)
  t0=$(now); remove_all; local prm; prm=$(ms_since "$t0")
  check_clean "pods (polis)"
  read -r gm gr gs _ < <(pods_of $GO gpod "$n" io.containerd.runc.v2.group)
  t0=$(now); remove_all; local grm; grm=$(ms_since "$t0")
  printf 'pods polis: %d/%d running, %d shims, all started in %.1f s, removed in %.1f s\n' \
    "$pr" $((2 * n)) "$ps" "$(echo "$pm / 1000" | bc -l)" "$(echo "$prm / 1000" | bc -l)"
  printf 'pods go:    %d/%d running, %d shims, all started in %.1f s, removed in %.1f s\n' \
    "$gr" $((2 * n)) "$gs" "$(echo "$gm / 1000" | bc -l)" "$(echo "$grm / 1000" | bc -l)"
  ((pe == 0 && ps == n)) || fail "pods: polis $pr of $((2 * n)) running, $ps shims for $n groups"
  check_clean "pods (go)"
}

for i in "${!parts[@]}"; do
  "part_${parts[$i]}" "${sizes[$i]}"
done
((failed == 0)) || { echo "soak: FAILED" >&2; exit 1; }
echo "soak: ok"
