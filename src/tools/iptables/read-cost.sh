#!/bin/bash
# What reading each iptables backend costs on a node whose N rules (kube-proxy-like, default 10,000) are in one of
# them: the agent reads the backend the node does not use at each repair, to remove chains a previous run left there.
# Prints p50/p95/max of RUNS reads (default 15) and the load average. Root; a network namespace of its own per case.
# Usage: [N=10000] [RUNS=15] src/tools/iptables/read-cost.sh
set -eu
N=${N:-10000}; RUNS=${RUNS:-15}
for node in nft legacy; do
  ns=iptbench$$-$node; ip netns add $ns
  trap "ip netns del $ns 2>/dev/null" EXIT
  { echo '*nat'; echo ':KUBE-SERVICES - [0:0]'; for i in $(seq 1 $N); do echo "-A KUBE-SERVICES -d 198.19.$((i/250)).$((i%250)) -p tcp --dport 80 -j RETURN"; done; echo COMMIT; } \
    | ip netns exec $ns iptables-$node-restore
  for b in nft legacy; do
    ts=()
    for r in $(seq 1 $RUNS); do
      s=$(date +%s%N); ip netns exec $ns iptables-$b-save >/dev/null 2>&1; e=$(date +%s%N); ts+=($(( (e-s)/1000000 )))
    done
    sorted=($(printf '%s\n' "${ts[@]}" | sort -n))
    echo "node rules in $node ($N rules): iptables-$b-save p50 ${sorted[$((RUNS/2))]} ms p95 ${sorted[$((RUNS*95/100))]} ms max ${sorted[$((RUNS-1))]} ms"
  done
  ip netns del $ns
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
