#!/usr/bin/env bash
# ADD and DEL latency of polis-bridge (bridge + IPAM + masquerade + one port
# mapping, one process) against the reference chain bridge + host-local +
# portmap (containernetworking-plugins, /usr/lib/cni), in the same network
# namespaces, interleaved A/B so both see the same load.
#
# Usage: bench/cni.sh [ITERATIONS]   (default 60; run as root)
# Env:   POLIS_BRIDGE=path   use this binary instead of building it
#        REF_CNI_DIR=dir     reference plugins (default /usr/lib/cni)
# Everything runs in namespaces this script creates and deletes.
set -euo pipefail

N=${1:-60}
REF=${REF_CNI_DIR:-/usr/lib/cni}
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in ip nsenter jq awk; do
  command -v "$tool" >/dev/null || { echo "bench/cni.sh needs $tool" >&2; exit 1; }
done
for p in bridge host-local portmap; do
  [ -x "$REF/$p" ] || { echo "reference plugin $REF/$p missing (apt-get install containernetworking-plugins)" >&2; exit 1; }
done
if [ -z "${POLIS_BRIDGE:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
  (cd "$here" && cargo build --release -q -p polis-bridge)
  POLIS_BRIDGE=$CARGO_TARGET_DIR/release/polis-bridge
fi

tag=pbb$$
host=$tag-host
ctr=$tag-ctr
work=$(mktemp -d /tmp/polis-cni-bench.XXXXXX)
cleanup() {
  ip netns del "$ctr" 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$host"
ip netns add "$ctr"
ip -n "$host" link set lo up

ports='[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]'
cat >"$work/polis.json" <<JSON
{"cniVersion":"1.0.0","name":"benchpolis","type":"polis-bridge","bridge":"polisbr0",
 "isGateway":true,"ipMasq":true,"runtimeConfig":{"portMappings":$ports},
 "ipam":{"type":"polis-ipam","dataDir":"$work/polis-ipam","ranges":[[{"subnet":"10.201.0.0/24"}]]}}
JSON
cat >"$work/bridge.json" <<JSON
{"cniVersion":"1.0.0","name":"benchref","type":"bridge","bridge":"refbr0",
 "isGateway":true,"ipMasq":true,
 "ipam":{"type":"host-local","dataDir":"$work/ref-ipam","ranges":[[{"subnet":"10.202.0.0/24"}]]}}
JSON

# The timing loop runs inside the host namespace, as a runtime would: each
# plugin is exec'd directly, with no nsenter in the measured path.
export N REF POLIS_BRIDGE work ctr ports
nsenter --net=/run/netns/"$host" bash -euo pipefail -c '
# run CMD PLUGIN CONF_FILE -> stdout of the plugin in $out; elapsed ms in $ms.
run() {
  local cmd=$1 plugin=$2 conf=$3 t0 t1
  t0=$EPOCHREALTIME
  out=$(CNI_COMMAND=$cmd CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$ctr CNI_IFNAME=eth0 \
        CNI_PATH=$REF "$plugin" <"$conf") || {
    echo "$plugin $cmd failed: $out" >&2; exit 1; }
  t1=$EPOCHREALTIME
  ms=$(awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.3f\", (b-a)*1000}")
}
sum() { awk -v a="$1" -v b="$2" "BEGIN{printf \"%.3f\n\", a+b}"; }

: >"$work/polis-add"; : >"$work/polis-del"; : >"$work/ref-add"; : >"$work/ref-del"
for i in $(seq "$N"); do
  run ADD "$POLIS_BRIDGE" "$work/polis.json"; echo "$ms" >>"$work/polis-add"
  run DEL "$POLIS_BRIDGE" "$work/polis.json"; echo "$ms" >>"$work/polis-del"

  # Reference chain as libcni runs it: bridge, then portmap with prevResult.
  run ADD "$REF/bridge" "$work/bridge.json"; a=$ms; prev=$out
  jq -c --argjson prev "$prev" --argjson pm "$ports" \
    "{cniVersion, name, type:\"portmap\", capabilities:{portMappings:true}, runtimeConfig:{portMappings:\$pm}, prevResult:\$prev}" \
    "$work/bridge.json" >"$work/portmap.json"
  run ADD "$REF/portmap" "$work/portmap.json"
  sum "$a" "$ms" >>"$work/ref-add"
  run DEL "$REF/portmap" "$work/portmap.json"; d=$ms
  run DEL "$REF/bridge" "$work/bridge.json"
  sum "$d" "$ms" >>"$work/ref-del"
done
'

# Nothing may be left: no veth, no allocation, no rule of either side.
leftover=$(ip -n "$host" -o link show | grep -c veth || true)
[ "$leftover" = 0 ] || { echo "LEAK: $leftover veths left in $host" >&2; exit 1; }
if ls "$work/polis-ipam/benchpolis" | grep -q '^10\.'; then echo "LEAK: polis allocation left" >&2; exit 1; fi
if nsenter --net=/run/netns/$host nft list ruleset 2>/dev/null | grep -q 'polis/benchpolis'; then
  echo "LEAK: polis nft rule left" >&2; exit 1
fi

median() { sort -n "$1" | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
minimum() { sort -n "$1" | head -1; }
pa=$(median "$work/polis-add"); pd=$(median "$work/polis-del")
ra=$(median "$work/ref-add"); rd=$(median "$work/ref-del")
echo "CNI ADD/DEL latency, $N iterations each, interleaved (ms; median, min)"
printf '%-42s %8s %8s\n' "" median min
printf '%-42s %8s %8s\n' "polis-bridge ADD (+portmap, masq)" "$pa" "$(minimum "$work/polis-add")"
printf '%-42s %8s %8s\n' "reference bridge+host-local+portmap ADD" "$ra" "$(minimum "$work/ref-add")"
printf '%-42s %8s %8s\n' "polis-bridge DEL" "$pd" "$(minimum "$work/polis-del")"
printf '%-42s %8s %8s\n' "reference portmap+bridge DEL" "$rd" "$(minimum "$work/ref-del")"
awk -v pa="$pa" -v ra="$ra" -v pd="$pd" -v rd="$rd" \
  'BEGIN{printf "ratio polis/reference: ADD %.3fx  DEL %.3fx  (target <= 0.1x)\n", pa/ra, pd/rd}'
