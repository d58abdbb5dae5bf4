#!/usr/bin/env bash
# A runc that works where root's bounding set lacks CAP_SYS_RESOURCE: privileged containers ask for every
# capability and runc fails with "unable to apply caps". Removes that one capability from the container's
# config.json (create/run) and from the --process file (exec), then runs the real runc with the same arguments.
# Also containerd's runc inside the kind node image (src/tools/kindnode). Where the capability is there, it only
# runs runc.
set -euo pipefail
capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
(( (0x$capbnd >> 24) & 1 )) && exec runc "$@"
drop() { # $1: jq path of the capabilities object, $2: file
  jq "$1 |= with_entries(.value |= map(select(. != \"CAP_SYS_RESOURCE\")))" "$2" > "$2.tmp" && mv "$2.tmp" "$2"
}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --bundle | -b) f="${args[$((i + 1))]}/config.json"; [ -f "$f" ] && drop '(.process.capabilities // {})' "$f" ;;
    --bundle=*) f="${args[$i]#--bundle=}/config.json"; [ -f "$f" ] && drop '(.process.capabilities // {})' "$f" ;;
    --process | -p) f="${args[$((i + 1))]}"; [ -f "$f" ] && drop '(.capabilities // {})' "$f" ;;
    --process=*) f="${args[$i]#--process=}"; [ -f "$f" ] && drop '(.capabilities // {})' "$f" ;;
  esac
done
exec runc "$@"
