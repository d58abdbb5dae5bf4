#!/bin/sh
# The entrypoint of the iptables-legacy node image (build.sh): Docker's rules in this node's network namespace (its
# embedded DNS) moved from iptables-nft to iptables-legacy, as on a host whose Docker uses legacy. kind's entrypoint,
# run next, then sets the node's iptables to legacy as it does there (the backend with more rules), and the kubelet
# writes its chains there, which kube-proxy, flannel and natgate's agent follow. Runs again at each container start
# (Docker writes its rules anew into a new namespace).
set -eu
rules=$(iptables-nft-save || true)
if [ -n "$rules" ]; then
  echo "$rules" | iptables-legacy-restore
  nft flush ruleset
fi
exec "$@"
