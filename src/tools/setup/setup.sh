#!/usr/bin/env bash
# What `make demo` and `make test` need on this machine, in one place (`make setup`; both targets run it first,
# and so does .ci/run through them). The build tools (Java 17+, Maven, Go) are prerequisites: missing ones stop here.
# The network lab's tools are installed with apt-get when this runs as root; otherwise it says which are missing:
#   setup.sh         for `make test`: as root, missing tools that cannot be installed fail the run; without root
#                    the lab and end-to-end tests cannot run anyway, and are reported skipped with the reason
#   setup.sh --lab   for `make demo`: fails unless the lab can run (root and every tool)
set -euo pipefail
need_lab=false
[ "${1:-}" = "--lab" ] && need_lab=true

# command (or absolute path):Debian package, for the network lab (src/test/java/io/natgate/lab/NetworkLab.java checks the same) and
# the agent (the data plane it drives).
lab_tools=(ip:iproute2 iptables:iptables iptables-save:iptables iptables-restore:iptables iptables-nft-save:iptables
  iptables-legacy:iptables iptables-legacy-save:iptables ipset:ipset arping:arping
  conntrack:conntrack python3:python3 bash:bash timeout:coreutils
  /usr/lib/cni/ptp:containernetworking-plugins /usr/lib/cni/host-local:containernetworking-plugins)
build_tools=(java mvn go)

# A command on the PATH (or in sbin), or a program given by its absolute path (the CNI reference plugins).
have() {
  if [[ $1 == /* ]]; then [ -x "$1" ]; else command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; fi
}
missing_lab() {
  missing=() packages=()
  for t in "${lab_tools[@]}"; do
    if ! have "${t%%:*}"; then
      missing+=("${t%%:*}")
      [[ " ${packages[*]} " == *" ${t#*:} "* ]] || packages+=("${t#*:}")
    fi
  done
}

missing_build=()
for t in "${build_tools[@]}"; do have "$t" || missing_build+=("$t"); done
if [ ${#missing_build[@]} -gt 0 ]; then
  echo "setup: FAILED: missing ${missing_build[*]}: install Java 17 or newer, Maven and Go first (see README)" >&2
  exit 1
fi

missing_lab
root=false
[ "$(id -u)" = 0 ] && root=true
if [ ${#missing[@]} -gt 0 ] && $root && have apt-get; then
  echo "setup: installing ${packages[*]} (missing: ${missing[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  missing_lab
fi
if [ ${#missing[@]} -gt 0 ]; then
  what="the network lab needs ${missing[*]} (Debian packages: ${packages[*]})"
  if $root || $need_lab; then
    echo "setup: FAILED: $what: install them, or run \`make setup\` as root on Debian/Ubuntu" >&2
    exit 1
  fi
  echo "setup: WARNING: $what and root: the lab and end-to-end tests will be reported SKIPPED" >&2
elif $need_lab && ! $root; then
  echo "setup: FAILED: the network lab needs root (network namespaces, iptables): run as root" >&2
  exit 1
elif ! $root; then
  echo "setup: WARNING: not root: the lab and end-to-end tests will be reported SKIPPED" >&2
else
  echo "setup: network lab tools present"
fi
