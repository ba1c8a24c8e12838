#!/usr/bin/env bash
# Regenerates shim/symbol-order.txt: the functions a shim server runs in a container's life,
# recorded with valgrind (callgrind) through a private containerd. The link puts them first,
# so they share few 64 KB fault-around windows and the rest of the text is never mapped:
# each shim's RSS drops by the part of the binary it never runs (bench/shim.sh measures it).
# A stale list only costs memory, never correctness. Needs root, containerd, ctr, umoci,
# valgrind, busybox-static (perf optional). Usage: [FRESH=1] [PERF_LIVES=40]
# scripts/shim-symbol-order.sh   (not run by CI; each run adds to the list, FRESH=1 restarts it)
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
shim=$T/$triple/shim/containerd-shim-polis-v2
runc_bin=${POLIS_BIN_DIR:-$here/target/release}/polis-runc
[[ -x $runc_bin ]] || { echo "shim-symbol-order: $runc_bin is not built (make build)" >&2; exit 2; }

mkdir -p "$W/bin" "$W/ns" "$W/cg"
NS=polis-order
. "$here/bench/private-containerd.sh"
trap pc_exit EXIT
ln -s "$runc_bin" "$W/bin/polis-runc"
cat >"$W/bin/containerd-shim-polis-v2" <<SH
#!/bin/sh
exec valgrind -q --tool=callgrind --demangle=no --callgrind-out-file=$W/cg/cg.%p --trace-children=yes \
  --trace-children-skip='*polis-runc*' $shim "\$@"
SH
chmod +x "$W/bin/containerd-shim-polis-v2"

pc_start

# A container's life in a group shim, the RPCs containerd and users send; then containers
# alone in their shims, as most are.
life() { # suffix
  local R=(--runtime io.containerd.polis.v2 --annotation "io.containerd.polis.v2.group=order$1")
  c run -d "${R[@]}" $IMAGE "s1$1" sleep 600 >/dev/null
  c task exec --exec-id e1 "s1$1" /bin/echo exec >/dev/null
  c task metrics "s1$1" >/dev/null
  c task ps "s1$1" >/dev/null
  c task pause "s1$1" && c task resume "s1$1"
  c run --rm "${R[@]}" $IMAGE "s2$1" /bin/echo hi >/dev/null
  c run --rm -t "${R[@]}" $IMAGE "s3$1" /bin/true </dev/null >/dev/null 2>&1 || true
  c run --rm --runtime io.containerd.polis.v2 $IMAGE "s4$1" /bin/true >/dev/null
  c run -d --runtime io.containerd.polis.v2 $IMAGE "s5$1" sleep 600 >/dev/null
  c task kill -s SIGKILL "s1$1"
  c task kill -s SIGKILL "s5$1"
  sleep 0.5
  for id in "s1$1" "s5$1"; do c task delete "$id" >/dev/null; c containers rm "$id" >/dev/null; done
  for _ in $(seq 100); do [[ -z $(shim_pids) ]] && break; sleep 0.2; done
}
life ""

# valgrind's CPU is not the host's, and threads interleave otherwise under it: the same life,
# run natively many times under perf, adds the functions that run only there. Only the first
# function to touch each 64 KB window faults, so each run of this script finds more of them
# (the list grows from run to run).
: >"$W/sampled.txt"
if command -v perf >/dev/null; then
  cat >"$W/bin/containerd-shim-polis-v2" <<SH
#!/bin/sh
exec $shim "\$@"
SH
  # Every page fault (not a sample): a fault on the shim's text names the function that
  # touched a window no other function had mapped yet.
  perf record -q -e page-faults -c 1 -a -o "$W/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 1
  for i in $(seq "${PERF_LIVES:-40}"); do life "-$i"; done
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  perf script -i "$W/perf.data" -F pid,comm,ip,sym,dso --no-demangle 2>/dev/null |
    awk -v b="($shim)" '$NF == b && $(NF-1) != "[unknown]" {print $1, $2, $(NF-1)}' |
    sort -u >"$W/sampled.txt"
else
  echo "shim-symbol-order: perf is missing; the list has only what valgrind recorded" >&2
fi

# Every function that ran, by its linkage name: first what the shim servers ran (they stay),
# then what only `start`, `delete` and exits ran, each in address order. callgrind names code
# by symbol (the binary keeps its symbol table), or by address where it finds none.
out=$here/shim/symbol-order.txt
ls "$W"/cg/cg.* >/dev/null
[[ -n ${KEEP_PROFILE:-} ]] && cp -r "$W/cg" "$W/sampled.txt" "$KEEP_PROFILE"/
nm --defined-only "$shim" | awk '$2 ~ /^[tTwWiI]$/ {print $1, $3}' >"$W/syms.txt"
python3 - "$W/syms.txt" "$out" "$W/sampled.txt" "$W"/cg/cg.* <<'PY'
import bisect, os, re, sys
starts, names = [], []
for line in open(sys.argv[1]):
    addr, name = line.split()
    starts.append(int(addr, 16)); names.append(name)
order = sorted(range(len(starts)), key=lambda i: starts[i])
starts = [starts[i] for i in order]; names = [names[i] for i in order]
index = {n: i for i, n in enumerate(names)}

def lookup(name):
    name = name.split("'")[0]
    if name.startswith("0x"):
        i = bisect.bisect_right(starts, int(name, 16)) - 1
        return i if i >= 0 else None
    return index.get(name)

server, other, unknown = set(), set(), []
for path in sys.argv[4:]:
    text = open(path).read()
    cmd = re.search(r"^cmd: (.*)$", text, re.M).group(1).split()
    into = other if ("start" in cmd or "delete" in cmd) else server
    for name in re.findall(r"^c?fn=\(\d+\) (.+)$", text, re.M):
        if name == "(below main)":
            continue
        i = lookup(name)
        if i is None:
            unknown.append(name)
        else:
            into.add(i)
if len(unknown) > (len(server) + len(other)) / 20:
    sys.exit(f"{len(unknown)} of the functions that ran are not in the symbol table, e.g. {unknown[:3]}")

# perf samples: a shim server is a process with threads of its own names.
samples = [l.split() for l in open(sys.argv[3])]
servers = {pid for pid, comm, _ in samples if comm != "containerd-shim"}
sampled = set()
for pid, _, name in samples:
    i = index.get(name)
    if i is not None:
        (sampled if pid in servers else other).add(i)

# glibc picks its string functions' variant by CPU, and valgrind's CPU is not the host's (no
# AVX-512): when one variant ran, every variant of that function goes in.
variant = re.compile(r"^(__\w+?)_(sse2|ssse3|sse4_1|sse4_2|sse42|avx2|avx512\w*|avx|evex\w*)(_|$)")
for group in (sampled, server, other):
    families = {m.group(1) for i in group if (m := variant.match(names[i]))}
    group |= {i for i, n in enumerate(names) if (m := variant.match(n)) and m.group(1) in families}
sampled -= server
other -= sampled | server
syms = [names[i] for g in (server, sampled, other) for i in sorted(g)]
# What ran is partly chance (perf samples; which paths block depends on timing), so each run
# adds to the list instead of replacing it: entries that still name a function keep their
# place and new ones follow. FRESH=1 starts over.
kept = []
if os.environ.get("FRESH") != "1" and os.path.exists(sys.argv[2]):
    kept = [l.strip() for l in open(sys.argv[2]) if l.strip() in index]
new = [n for n in dict.fromkeys(syms) if n not in set(kept)]
open(sys.argv[2], "w").write("".join(s + "\n" for s in kept + new))
print(f"{len(server)} functions ran in shim servers under valgrind, {len(sampled)} more sampled, "
      f"{len(other)} more only elsewhere; {len(kept)} kept from the last list, {len(new)} added: "
      f"{sys.argv[2]}")
PY
