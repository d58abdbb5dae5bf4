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
t0=$(date +%s)
make --no-print-directory docker-build-local IMG="$1" AGENT_IMG="$2" >&2
t1=$(date +%s)
eval "$(src/tools/kindnode/build.sh)"
echo "kind: operator and agent images in $((t1 - t0)) s, node image in $(($(date +%s) - t1)) s" >&2
echo "-Dnatgate.kind.cli=$KIND -Dnatgate.kind.node-image=$NODE_IMAGE -Dnatgate.kind.etcd-tag=$ETCD_TAG" \
  "-Dnatgate.kind.test-image=$TEST_IMAGE -Dnatgate.kind.operator-image=$1 -Dnatgate.kind.agent-image=$2"
