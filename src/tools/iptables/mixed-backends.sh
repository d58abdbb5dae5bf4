#!/bin/bash
# Which source address leaves a node whose own masquerade is in one iptables backend and an egress SNAT in the other
# (or the same), with the two nat tables created in either order: why the agent writes the node's backend (README,
# "iptables backend"). Root; three network namespaces of its own (prefix iptmix<pid>), removed at the end.
# Usage: src/tools/iptables/mixed-backends.sh
set -u
p=iptmix$$
cleanup() { for n in pod node ext; do ip netns del ${p}$n 2>/dev/null; done; }
trap cleanup EXIT

# $1: backend of the node's MASQUERADE, $2: backend of the SNAT to the egress IP, $3: snat-first to create that first
run() {
  ip netns add ${p}pod; ip netns add ${p}node; ip netns add ${p}ext
  ip link add ${p}a type veth peer name ${p}b
  ip link set ${p}a netns ${p}pod; ip link set ${p}b netns ${p}node
  ip link add ${p}c type veth peer name ${p}d
  ip link set ${p}c netns ${p}node; ip link set ${p}d netns ${p}ext
  ip netns exec ${p}pod sh -c "ip link set lo up; ip addr add 198.19.1.11/24 dev ${p}a; ip link set ${p}a up
    ip route add default via 198.19.1.1"
  ip netns exec ${p}node sh -c "ip addr add 198.19.1.1/24 dev ${p}b; ip link set ${p}b up
    ip addr add 198.18.0.11/24 dev ${p}c; ip addr add 198.18.0.120/32 dev ${p}c; ip link set ${p}c up
    echo 1 > /proc/sys/net/ipv4/ip_forward"
  ip netns exec ${p}ext sh -c "ip addr add 198.18.0.200/24 dev ${p}d; ip link set ${p}d up"
  local masq=(iptables-$1 -t nat -A POSTROUTING -s 198.19.0.0/16 -j MASQUERADE)
  local snat=(iptables-$2 -t nat -I POSTROUTING 1 -s 198.19.1.11 -j SNAT --to-source 198.18.0.120)
  if [ "${3:-}" = snat-first ]; then
    ip netns exec ${p}node "${snat[@]}"; ip netns exec ${p}node "${masq[@]}"
  else
    ip netns exec ${p}node "${masq[@]}"; ip netns exec ${p}node "${snat[@]}"
  fi
  # The external host counts the SYNs by source (it has no route back: each attempt is one SYN, then a timeout).
  ip netns exec ${p}ext iptables-nft -A INPUT -p tcp --dport 9 -s 198.18.0.120
  ip netns exec ${p}ext iptables-nft -A INPUT -p tcp --dport 9 -s 198.18.0.11
  for i in $(seq 1 20); do ip netns exec ${p}pod timeout 0.5 bash -c 'exec 3<>/dev/tcp/198.18.0.200/9' 2>/dev/null; done
  printf 'masquerade in %-6s SNAT in %-6s %-10s: ' "$1," "$2," "${3:-}"
  ip netns exec ${p}ext iptables-nft -L INPUT -v -n -x | awk '/dpt:9/ {printf "%s from %s  ", $1, $7} END {print ""}'
  cleanup
}
run legacy legacy
run nft nft
run legacy nft
run nft legacy
run legacy nft snat-first
run nft legacy snat-first
