#!/usr/bin/env bash
# Builds a Debian 12 base image here, for machines that reach Debian's mirror but no image registry:
# debootstrap --variant=minbase bookworm, then docker import. The tag is keyed by this script's content (suite,
# variant, mirror), so a second run builds nothing. Prints the tag on stdout (progress goes to stderr):
#   make docker-build BASE_IMAGE=$(src/tools/docker/debian-base.sh)
set -euo pipefail
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tag="natgate/debian:${suite}-$(cat "$0" | sha256sum | cut -c1-12)"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "debian base: $tag cached" >&2
  echo "$tag"
  exit 0
fi
command -v debootstrap >/dev/null || {
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
start=$(date +%s)
root=$(mktemp -d /tmp/natgate-debian-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debian base: debootstrap $suite into $root..." >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# What debian:12-slim leaves out: downloaded packages and apt lists.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' - "$tag" >/dev/null
echo "debian base: $tag built in $(( $(date +%s) - start ))s, $(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=si)B" >&2
echo "$tag"
