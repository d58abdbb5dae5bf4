#!/bin/sh
# iptables, iptables-save, iptables-restore and ip6tables' three in the kube-proxy and flannel images (build.sh links
# them here, ahead of Debian's in PATH), as kube-proxy's upstream image has them: they run the backend the node's
# rules are in. Decided at the first call and kept for the container's life: the kubelet's chains in iptables-nft,
# else in iptables-legacy, else the backend with more rules (nft on a tie). io.natgate.dataplane.IptablesBackend
# decides the same way for the agent.
set -eu
state=/var/lib/natgate-iptables-mode
if [ ! -s "$state" ]; then
  kubelet='^:KUBE-(IPTABLES-HINT|KUBELET-CANARY) '
  if iptables-nft-save -t mangle 2>/dev/null | grep -Eq "$kubelet"; then
    mode=nft
  elif iptables-legacy-save -t mangle 2>/dev/null | grep -Eq "$kubelet"; then
    mode=legacy
  else
    rules() { (iptables-"$1"-save; ip6tables-"$1"-save) 2>/dev/null | grep -c '^-' || true; }
    if [ "$(rules legacy)" -gt "$(rules nft)" ]; then mode=legacy; else mode=nft; fi
  fi
  # Calls at once may each decide; they decide alike, and the rename keeps the file whole.
  echo "$mode" >"$state.$$" && mv -f "$state.$$" "$state"
fi
name=$(basename "$0")
exec "/usr/sbin/$(echo "$name" | sed "s/tables/tables-$(cat "$state")/")" "$@"
