# natgate — `make help` lists the targets.
SHELL := /bin/bash
MVN ?= mvn -B
KUBE_VERSION := $(shell awk '$$1=="k8s.io/kubernetes" && $$2 ~ /^v/ {print substr($$2,2); exit}' src/tools/controlplane/go.mod)
KUBE_API_TEST_DIR ?= $(HOME)/.kubeapitest
KUBECTL := $(KUBE_API_TEST_DIR)/k8s/$(KUBE_VERSION)-linux-amd64/kubectl
# Images: the manifests in config/ are where they are set; these read them (override to build your own).
IMG ?= $(shell awk '$$1=="image:" {print $$2; exit}' config/manager/manager.yaml)
AGENT_IMG ?= $(shell awk '$$1=="image:" {print $$2; exit}' config/agent/daemonset.yaml)
BUNDLE_IMG ?= $(subst natgate-operator:,natgate-operator-bundle:,$(IMG))
CONTAINER_TOOL ?= docker
# The images' base: any Debian 12. docker-build-local builds one here (no image registry needed).
BASE_IMAGE ?= debian:12-slim
BUNDLE_VALIDATE := $(KUBE_API_TEST_DIR)/tools/bundlevalidate
# The chained CNI plugin, and libcni's cnitool that runs a conflist as a kubelet's runtime would (CniLabIT).
CNI_PLUGIN := $(KUBE_API_TEST_DIR)/tools/natgate-cni
CNITOOL := $(KUBE_API_TEST_DIR)/tools/cnitool
KUBE_SCORE := $(KUBE_API_TEST_DIR)/tools/kube-score
# kube-score checks left out on purpose, each with why in README (Running against a real cluster: kube-score); the
# agent's own exceptions are annotations on its DaemonSet.
KUBE_SCORE_FLAGS := --ignore-container-cpu-limit --ignore-test container-image-pull-policy
# Prometheus's rule checker, for config/prometheus/rules.yaml (PrometheusRulesTest).
PROMTOOL := $(KUBE_API_TEST_DIR)/tools/promtool

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Run
.PHONY: demo
demo: setup-lab controlplane ## (root) Control plane, operator, an agent per lab node: real NAT, then a gateway cut off and the failover (KEEP=1: stay up)
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.testing.Demo -Dexec.classpathScope=test \
	  -Dnatgate.kube.version=$(KUBE_VERSION) -Dnatgate.kubectl=$(KUBECTL) $(if $(KEEP),-Dnatgate.demo.keep=true)

##@ Benchmarks (print numbers, never fail on timing; see docs/benchmarks.md)
.PHONY: bench-failover
bench-failover: controlplane ## (root) Operator and agents as processes: failover and new-pod-to-SNAT times, p50/p95/max
	$(MVN) -q package -DskipTests
	$(MVN) -q exec:java -Dexec.mainClass=io.natgate.bench.FailoverBenchmark -Dexec.classpathScope=test \
	  -Dnatgate.kube.version=$(KUBE_VERSION) $(if $(ROUNDS),-Drounds=$(ROUNDS))

# BENCH=throughput, BENCH=programming, BENCH=connections, BENCH=allow or BENCH=dns runs one part; BENCH_OPTS="-Dbench.runs=7 -Dbench.seconds=5 -Dbench.repeats=5"
.PHONY: bench-dataplane
bench-dataplane: ## Data-path throughput (iperf3), agent programming time, connections/s with the connection log off and on and with an allow list of 128 or none, DNS latency through the DNS path vs direct (root; docs/benchmarks.md)
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.bench.DataplaneBenchmark -Dexec.classpathScope=test \
	  -Dexec.args="$(BENCH)" $(BENCH_OPTS)

# BENCH_IMAGES: operator=agent image pairs, compared side by side (default: the images docker-build makes)
.PHONY: bench-footprint
BENCH_IMAGES ?= $(IMG)=$(AGENT_IMG)
bench-footprint: controlplane ## (root, Docker) The images as their manifests run them: sizes, start to ready/applied, idle RSS [BENCH_IMAGES=op=agent,...]
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.bench.FootprintBenchmark -Dexec.classpathScope=test \
	  -Dnatgate.kube.version=$(KUBE_VERSION) -Dbench.images=$(BENCH_IMAGES) $(BENCH_OPTS)

.PHONY: bench-controlplane
HEARTBEAT_MS ?= 900
bench-controlplane: controlplane build ## The packaged operator with 100 gateways, 5,000 pods, 50 nodes on a real API server [HEARTBEAT_MS=900]
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.bench.ControlPlaneBenchmark -Dexec.classpathScope=test \
	  -Dnatgate.kube.version=$(KUBE_VERSION) -Dbench.heartbeat-timeout-ms=$(HEARTBEAT_MS) $(BENCH_OPTS)

##@ Test
.PHONY: test
# KindE2E in make test: auto (the default) runs it when a Docker engine answers (building its images first; the node
# image is cached) and reports it skipped with the reason when none does; off reports each of its tests skipped with
# the reason "KIND_TESTS=off".
KIND_TESTS ?= auto
test: setup controlplane bundle-validate kube-score cni-test cni promtool ## Unit tests (*Test), real-API-server tests (*IT), OLM's checks of bundle/, KindE2E with KIND_TESTS=auto [KIND_TESTS=off|auto]
	props=$$($(KIND_PROPS)) && $(MVN) verify -Dnatgate.kube.version=$(KUBE_VERSION) $$props
	@# A class that cannot run reports each test skipped with the reason; one that reports no test at all vanished.
	@if grep -l 'tests="0"' target/surefire-reports/TEST-*.xml target/failsafe-reports/TEST-*.xml; then \
	  echo "make test: FAILED: the classes above report no test, not even a skipped one" >&2; exit 1; fi

.PHONY: kube-score
kube-score: $(KUBE_SCORE) controlplane ## kube-score on config/default: the manifests' security and resource checks
	$(KUBECTL) kustomize config/default | $(KUBE_SCORE) score $(KUBE_SCORE_FLAGS) -

.PHONY: cni-test
cni-test: ## The CNI plugin's Go unit tests (src/cni)
	cd src/cni && go vet ./... && go test ./...

.PHONY: kind-test
# Images of their own for the Kind tests: another build of the manifests' tags cannot change what they install.
KIND_IMG ?= natgate.local/natgate-operator:kind-test
KIND_AGENT_IMG ?= natgate.local/natgate-agent:kind-test
ifeq ($(KIND_TESTS),off)
KIND_PROPS := echo -Dnatgate.kind.skip=KIND_TESTS=off
else ifeq ($(KIND_TESTS),auto)
KIND_PROPS := src/tools/docker/kind-props.sh $(KIND_IMG) $(KIND_AGENT_IMG)
else
$(error KIND_TESTS=$(KIND_TESTS): auto or off)
endif
kind-test: controlplane docker-engine ## (root) KindE2E alone: a Kind cluster of images built here (node image cached), natgate installed as users do
	props=$$(src/tools/docker/kind-props.sh $(KIND_IMG) $(KIND_AGENT_IMG)) && \
	  $(MVN) verify -Dnatgate.kube.version=$(KUBE_VERSION) -Dit.test=KindE2E -Dtest=NoUnitTests \
	    -Dsurefire.failIfNoSpecifiedTests=false $$props $(KIND_OPTS)

.PHONY: bundle-validate
bundle-validate: $(BUNDLE_VALIDATE) ## Check bundle/ with operator-framework's bundle validators
	$(BUNDLE_VALIDATE) bundle

.PHONY: unit
unit: ## Unit tests only (no control plane needed)
	$(MVN) test

##@ Build
.PHONY: promtool
promtool: ## Build promtool from its Go module (config/prometheus's rule tests; they skip, saying so, without it)
	@$(MAKE) -s $(PROMTOOL) || echo "make promtool: promtool could not be built: PrometheusRulesTest will be skipped" >&2

$(PROMTOOL): src/tools/promtool/go.mod src/tools/promtool/go.sum src/tools/promtool/tools.go
	cd src/tools/promtool && CGO_ENABLED=0 go build -trimpath -o $(PROMTOOL) github.com/prometheus/prometheus/cmd/promtool

.PHONY: setup setup-lab
setup: ## Install the network lab's tools (iptables, ipset, arping, ...) with apt-get as root, or say what is missing
	src/tools/setup/setup.sh

setup-lab: # as setup, but fails unless the lab can run (make demo)
	src/tools/setup/setup.sh --lab

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver, kubectl from Go modules into $(KUBE_API_TEST_DIR) (cached)
	src/tools/controlplane/build.sh

.PHONY: build
build: ## Build the operator (target/quarkus-app)
	$(MVN) package -DskipTests

.PHONY: crds
crds: ## Regenerate the CRDs from the api classes into crds/
	$(MVN) -q process-classes
	cp target/classes/META-INF/fabric8/*.yml crds/

.PHONY: bundle
bundle: $(BUNDLE_VALIDATE) ## Generate the OLM bundle (bundle/, bundle.Dockerfile) from config/ and crds/, then validate it
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.packaging.BundleGenerator -Dexec.classpathScope=test
	$(BUNDLE_VALIDATE) bundle

.PHONY: cni
cni: $(CNI_PLUGIN) $(CNITOOL) ## Build the natgate-cni plugin (static) and cnitool into $(KUBE_API_TEST_DIR)/tools

$(CNI_PLUGIN): src/cni/go.mod src/cni/go.sum src/cni/main.go
	cd src/cni && CGO_ENABLED=0 go build -trimpath -o $(CNI_PLUGIN) .

$(CNITOOL): src/cni/go.mod src/cni/go.sum
	cd src/cni && CGO_ENABLED=0 go build -trimpath -o $(CNITOOL) github.com/containernetworking/cni/cnitool

$(KUBE_SCORE): src/tools/kubescore/go.mod src/tools/kubescore/go.sum
	cd src/tools/kubescore && CGO_ENABLED=0 go build -trimpath -o $(KUBE_SCORE) github.com/zegl/kube-score/cmd/kube-score

# Built from its Go module like the control plane, cached outside the work tree.
$(BUNDLE_VALIDATE): src/tools/bundlevalidate/go.mod src/tools/bundlevalidate/go.sum src/tools/bundlevalidate/main.go
	cd src/tools/bundlevalidate && CGO_ENABLED=0 go build -trimpath -o $(BUNDLE_VALIDATE) .

##@ Images (need Docker or Podman: CONTAINER_TOOL=podman)
.PHONY: docker-build
docker-build: build $(CNI_PLUGIN) ## Build the operator image $(IMG) and the agent image $(AGENT_IMG) (on $(IMG)-application)
	cp $(CNI_PLUGIN) target/natgate-cni
	$(CONTAINER_TOOL) build --force-rm -f src/main/docker/Dockerfile.operator --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMG) .
	$(CONTAINER_TOOL) build --force-rm -f src/main/docker/Dockerfile.operator --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  --target application -t $(IMG)-application .
	$(CONTAINER_TOOL) build --force-rm -f src/main/docker/Dockerfile.agent --build-arg APPLICATION_IMAGE=$(IMG)-application \
	  -t $(AGENT_IMG) .

.PHONY: docker-engine
docker-engine: ## (root) Install and start Docker when missing (docker.io from Debian; addresses in 198.18.128.0/17)
	src/tools/docker/ensure-docker.sh

.PHONY: docker-build-local
docker-build-local: docker-engine ## docker-build on a Debian 12 base built here with debootstrap (cached); prints sizes
	$(MAKE) docker-build BASE_IMAGE=$$(src/tools/docker/debian-base.sh)
	@$(CONTAINER_TOOL) image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F -e $(IMG) -e $(AGENT_IMG)

.PHONY: docker-push
docker-push: ## Push the operator and agent images
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(AGENT_IMG)

.PHONY: bundle-build
bundle-build: ## Build the OLM bundle image $(BUNDLE_IMG) from bundle/
	$(CONTAINER_TOOL) build --force-rm -f bundle.Dockerfile -t $(BUNDLE_IMG) .
