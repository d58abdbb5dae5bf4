#!/usr/bin/env bash
# KindE2E's Maven properties on stdout, for make test and make kind-test. With a Docker engine: builds the images it
# installs ($1: operator tag, $2: agent tag; make docker-build-local) and the node image (build.sh, cached), then
# names them all; a build that fails fails this script. Without one: nothing, and KindE2E reports itself skipped with
# the reason. Progress and times on stderr.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! docker info >/dev/null 2>&1; then
  echo "kind: no Docker engine answers: KindE2E will report itself skipped" >&2
  exit 0
fi
trap 'echo "kind: stage image build failed (its output above): KindE2E cannot run" >&2' ERR
t0=$(date +%s)
make --no-print-directory docker-build-local IMG="$1" AGENT_IMG="$2" >&2
t1=$(date +%s)
node=$(src/tools/kindnode/build.sh) # a failure stops here (eval would hide it)
eval "$node"
echo "kind: stage image build took $(($(date +%s) - t0)) s (operator and agent images $((t1 - t0)) s, node image" \
  "$(($(date +%s) - t1)) s)" >&2
echo "-Dnatgate.kind.cli=$KIND -Dnatgate.kind.node-image=$NODE_IMAGE -Dnatgate.kind.legacy-node-image=$LEGACY_NODE_IMAGE" \
  "-Dnatgate.kind.etcd-tag=$ETCD_TAG -Dnatgate.kind.test-image=$TEST_IMAGE -Dnatgate.kind.operator-image=$1 -Dnatgate.kind.agent-image=$2"
