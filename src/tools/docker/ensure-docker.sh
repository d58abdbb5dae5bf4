#!/usr/bin/env bash
# Makes a Docker engine reachable on this machine (root), idempotently:
#  - installs Debian's docker.io (and jq, which the runtime wrapper uses) when dockerd is missing;
#  - where root's bounding set lacks CAP_SYS_RESOURCE (which --privileged asks for), registers
#    runc-no-sys-resource.sh as dockerd's default runtime; machines that have the capability never get it;
#  - keeps Docker's addresses inside the reserved test range: bridge 198.18.200.0/24, networks from
#    198.18.208.0/20 (both in 198.18.128.0/17, clear of the netns lab's 198.18.0.0/24 and 198.19.0.0/16);
#  - starts dockerd when no engine answers.
# An engine that already answers is used as it is (e.g. one that /work/shared/tools/fresh-machine started with
# the same addresses); an existing /etc/docker/daemon.json is never rewritten. Exits non-zero with the reason
# when no engine can be reached. The same facts are in docs/DESIGN.md ("Docker and a kubelet").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log=${DOCKERD_LOG:-/var/log/natgate-dockerd.log}
wrapper=/usr/local/sbin/natgate-runc-no-sys-resource

# CAP_SYS_RESOURCE is capability 24.
capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
needs_wrapper=$(( ((0x$capbnd >> 24) & 1) == 0 ))
# Kept current even under a running engine: a new version applies to the next container.
if [ "$needs_wrapper" = 1 ] && [ -f "$wrapper" ] && [ -w "$wrapper" ]; then
  install -m 0755 "$here/runc-no-sys-resource.sh" "$wrapper"
fi

if docker info >/dev/null 2>&1; then
  echo "docker: engine $(docker version -f '{{.Server.Version}}') already running"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "docker: no engine reachable, and starting one needs root" >&2; exit 1; }

if ! command -v dockerd >/dev/null || ! command -v jq >/dev/null; then
  echo "docker: installing docker.io from Debian..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null
fi

if [ "$needs_wrapper" = 1 ]; then
  install -m 0755 "$here/runc-no-sys-resource.sh" "$wrapper"
fi

config=/etc/docker/daemon.json
if [ ! -f "$config" ]; then
  mkdir -p /etc/docker
  runtime='{}'
  if [ "$needs_wrapper" = 1 ]; then
    runtime=$(jq -n --arg p "$wrapper" '{runtimes: {"no-sys-resource": {path: $p}}, "default-runtime": "no-sys-resource"}')
  fi
  jq -n --argjson rt "$runtime" \
    '{bip: "198.18.200.1/24", "default-address-pools": [{base: "198.18.208.0/20", size: 24}]} + $rt' > "$config"
  echo "docker: wrote $config"
fi

echo "docker: starting dockerd (log: $log)"
# A session of its own: dockerd must outlive the job that started it (a runner that ends a job kills its whole
# process group, and a dockerd killed that way took a running Kind cluster with it).
setsid nohup dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && break
  sleep 1
done
if ! docker info >/dev/null 2>&1; then
  echo "docker: dockerd did not answer within 60 s; last lines of $log:" >&2
  tail -20 "$log" >&2
  exit 1
fi
echo "docker: engine $(docker version -f '{{.Server.Version}}') started"
