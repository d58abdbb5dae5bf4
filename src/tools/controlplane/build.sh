#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from the Go modules pinned in go.mod into the layout that
# fabric8's kube-api-test reads offline: $KUBE_API_TEST_DIR/k8s/<version>-linux-amd64/{etcd,kube-apiserver,kubectl}.
# The cache is keyed by the Kubernetes version and a hash of go.mod/go.sum, so a second run builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print substr($2,2); exit}' "$here/go.mod")
cache_root=${KUBE_API_TEST_DIR:-$HOME/.kubeapitest}
target="$cache_root/k8s/${k8s_version}-linux-amd64"
stamp=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)

if [ -f "$target/.stamp" ] && [ "$(cat "$target/.stamp")" = "$stamp" ] \
   && [ -x "$target/etcd" ] && [ -x "$target/kube-apiserver" ] && [ -x "$target/kubectl" ]; then
  echo "control plane $k8s_version: cached in $target"
  exit 0
fi

ldflags=$("$here/kube-ldflags.sh" "$k8s_version")

echo "control plane $k8s_version: building etcd, kube-apiserver, kubectl (first run: about 4 min on a quiet 2-core machine, more under load)..."
tmp=$(mktemp -d "$cache_root/build.XXXXXX" 2>/dev/null || { mkdir -p "$cache_root"; mktemp -d "$cache_root/build.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
cd "$here"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
# go names the etcd binary after its module path (server, or v3 on older toolchains).
for n in server v3; do [ -f "$tmp/$n" ] && mv "$tmp/$n" "$tmp/etcd"; done
mkdir -p "$target"
mv "$tmp/etcd" "$tmp/kube-apiserver" "$tmp/kubectl" "$target/"
echo "$stamp" > "$target/.stamp"
echo "control plane $k8s_version: built in $(( $(date +%s) - start ))s into $target"
