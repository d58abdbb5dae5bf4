#!/usr/bin/env bash
# Builds the kind node image for the Kubernetes release of ../controlplane, every part here (no image registry):
#  - kubelet, kubeadm, kubectl and the control-plane, kube-proxy and etcd images from go.mod (the same
#    k8s.io/kubernetes release and replaces as ../controlplane); pause from the C source in that module;
#  - flannel's image and the kind CLI from addons/go.mod, CoreDNS's image from coredns/go.mod;
#  - containerd, runc and the CNI plugins from Debian, on the Debian base of ../docker/debian-base.sh;
#  - kind's node files (entrypoint, systemd units) from the sigs.k8s.io/kind module.
# The image tag is keyed by the Kubernetes version and a hash of every input, so a second run builds nothing.
# Also builds the same node on iptables-legacy (its own entrypoint first: legacy-node-entrypoint.sh), for a cluster
# with nodes of both backends.
# Prints NODE_IMAGE=<tag>, LEGACY_NODE_IMAGE=<tag>, KIND=<path of the kind CLI>, ETCD_TAG=<tag> and TEST_IMAGE=<tag>
# (test pods and the external host: Debian with the network tools and socat) on stdout, for eval; progress on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=$(dirname "$here")
k8s_version() { awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print substr($2,2); exit}' "$1"; }
version=$(k8s_version "$here/go.mod")
[ "$version" = "$(k8s_version "$tools/controlplane/go.mod")" ] \
  || { echo "kind node: go.mod has Kubernetes $version, ../controlplane another: align them" >&2; exit 1; }
mod_version() { awk -v m="$1" '$1==m && $2 ~ /^v/ {print $2; exit}' "$2"; }
etcd_tag=$(mod_version go.etcd.io/etcd/server/v3 "$here/go.mod" | sed 's/^v//')-0
kind_version=$(mod_version sigs.k8s.io/kind "$here/addons/go.mod")
coredns_version=$(mod_version github.com/coredns/coredns "$here/coredns/go.mod")
flannel_version=$(mod_version github.com/flannel-io/flannel "$here/addons/go.mod")
cache=${KUBE_API_TEST_DIR:-$HOME/.kubeapitest}/tools
kind_bin="$cache/kind-$kind_version"

base=$("$tools/docker/debian-base.sh")
stamp=$( (cd "$here" && find . -type f | LC_ALL=C sort | xargs cat; cat "$tools/docker/runc-no-sys-resource.sh" \
  "$tools/controlplane/kube-ldflags.sh"; echo "$base") | sha256sum | cut -c1-12)
tag="natgate.local/kind-node:v$version-$stamp"
legacy="$tag-legacy"
netbase="natgate.local/netbase:$stamp"
report() {
  echo "NODE_IMAGE=$tag"; echo "LEGACY_NODE_IMAGE=$legacy"; echo "KIND=$kind_bin"; echo "ETCD_TAG=$etcd_tag"
  echo "TEST_IMAGE=$netbase"
}
if docker image inspect "$tag" "$legacy" "$netbase" >/dev/null 2>&1 && [ -x "$kind_bin" ]; then
  echo "kind node: $tag cached" >&2
  report
  exit 0
fi

start=$(date +%s)
work=$(mktemp -d /tmp/natgate-kind-node.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$cache"
step() { echo "kind node: $1 (at $(( $(date +%s) - start ))s)" >&2; }
# Output only on failure (docker's legacy builder warns on every build).
quiet() { "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log" >&2; return 1; }; }

step "building Kubernetes $version binaries"
(cd "$here" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$("$tools/controlplane/kube-ldflags.sh" "$version")" \
  -o "$work/bin/" go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl)
for n in server v3; do [ -f "$work/bin/$n" ] && mv "$work/bin/$n" "$work/bin/etcd"; done
step "building CoreDNS $coredns_version, flannel $flannel_version, kind $kind_version"
# flannel's udp backend is cgo: flanneld links against the netbase image's glibc.
(cd "$here/addons" && CGO_ENABLED=1 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/bin/" \
  github.com/flannel-io/flannel)
(cd "$here/addons" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/bin/" sigs.k8s.io/kind)
(cd "$here/coredns" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/bin/" \
  github.com/coredns/coredns)
mv "$work/bin/flannel" "$work/bin/flanneld"
pause_src=$(cd "$here" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
pause_version=$("$work/bin/kubeadm" config images list --kubernetes-version "v$version" | awk -F: '/\/pause:/ {print $2}')
gcc -Os -static -DVERSION="v$pause_version" -o "$work/bin/pause" "$pause_src"

step "building the component images"
image() { # $1: tag, $2: base image, $3: the binary (its entrypoint)
  printf 'FROM %s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCOPY bin/%s /usr/local/bin/%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' "$2" "$3" "$3" "$3" \
    | quiet docker build -q --force-rm -t "$1" -f - "$work"
}
# kube-proxy and flanneld drive iptables: a Debian base with the tools (one layer for both, and the tests'), and
# the wrapper that runs the node's backend.
mkdir -p "$work/netbase"
cp "$here/iptables-wrapper.sh" "$work/netbase/"
wrapped="iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore"
printf '%s\n' "FROM $base" \
  "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables nftables ipset conntrack iproute2 kmod socat && rm -rf /var/lib/apt/lists/*" \
  "COPY iptables-wrapper.sh /usr/local/sbin/iptables-wrapper" \
  "RUN for n in $wrapped; do ln -s iptables-wrapper /usr/local/sbin/\$n; done" \
  | quiet docker build -q --force-rm -t "$netbase" -f - "$work/netbase"
images=()
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  image "registry.k8s.io/$c:v$version" scratch "$c"; images+=("registry.k8s.io/$c:v$version")
done
image "registry.k8s.io/kube-proxy:v$version" "$netbase" kube-proxy; images+=("registry.k8s.io/kube-proxy:v$version")
image "registry.k8s.io/etcd:$etcd_tag" scratch etcd; images+=("registry.k8s.io/etcd:$etcd_tag")
image "registry.k8s.io/pause:$pause_version" scratch pause; images+=("registry.k8s.io/pause:$pause_version")
image "registry.k8s.io/coredns/coredns:$coredns_version" scratch coredns
images+=("registry.k8s.io/coredns/coredns:$coredns_version")
image "natgate.local/flannel:$flannel_version" "$netbase" flanneld; images+=("natgate.local/flannel:$flannel_version")
docker save -o "$work/images.tar" "${images[@]}"

step "building the node image"
kind_dir=$(cd "$here/addons" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files
mkdir -p "$work/kind-files"
cp -r "$kind_dir/usr" "$kind_dir/etc" "$kind_dir/kind" "$work/kind-files/"
rm -f "$work/kind-files/etc/containerd/config.toml"
chmod -R u+w "$work/kind-files"
cp "$here/Dockerfile.node" "$here/containerd.toml" "$here/containerd-oom.conf" "$here/natgate-images.service" "$work/"
cp "$tools/docker/runc-no-sys-resource.sh" "$work/"
quiet docker build -q --force-rm --build-arg BASE_IMAGE="$base" --build-arg KUBE_VERSION="$version" -t "$tag" \
  -f "$work/Dockerfile.node" "$work"
mkdir -p "$work/legacy"
cp "$here/legacy-node-entrypoint.sh" "$work/legacy/"
printf '%s\n' "FROM $tag" "COPY legacy-node-entrypoint.sh /usr/local/bin/legacy-node-entrypoint" \
  'ENTRYPOINT ["/usr/local/bin/legacy-node-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' \
  | quiet docker build -q --force-rm -t "$legacy" -f - "$work/legacy"
install -m 0755 "$work/bin/kind" "$kind_bin"
# Earlier builds' node images are 1.5 GB each: keep only this one.
docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^natgate.local/(kind-node|netbase):' \
  | grep -v -x -e "$tag" -e "$legacy" -e "$netbase" | xargs -r docker rmi >/dev/null || true
step "built $tag, $(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=si)B"
report
