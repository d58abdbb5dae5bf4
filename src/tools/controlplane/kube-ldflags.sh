#!/usr/bin/env bash
# Prints the go build -ldflags that stamp Kubernetes version $1 (e.g. 1.34.4) into its binaries, as Kubernetes'
# own build does; without them clients, kubeadm and the kubelet see v0.0.0.
set -euo pipefail
version=$1
minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "$ldflags"
