# natgate — `make help` lists the targets.
SHELL := /bin/bash
MVN ?= mvn -B
KUBE_VERSION := $(shell awk '$$1=="k8s.io/kubernetes" && $$2 ~ /^v/ {print substr($$2,2); exit}' src/tools/controlplane/go.mod)
KUBE_API_TEST_DIR ?= $(HOME)/.kubeapitest
KUBECTL := $(KUBE_API_TEST_DIR)/k8s/$(KUBE_VERSION)-linux-amd64/kubectl

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Run
.PHONY: demo
demo: controlplane ## Local control plane + operator: apply the sample gateway, show status and a failover
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.testing.Demo -Dexec.classpathScope=test \
	  -Dnatgate.kube.version=$(KUBE_VERSION) -Dnatgate.kubectl=$(KUBECTL)

##@ Test
.PHONY: test
test: controlplane ## Unit tests (*Test) and real-API-server tests (*IT)
	$(MVN) verify -Dnatgate.kube.version=$(KUBE_VERSION)

.PHONY: unit
unit: ## Unit tests only (no control plane needed)
	$(MVN) test

##@ Benchmarks
# BENCH=throughput or BENCH=programming runs one part; BENCH_OPTS="-Dbench.runs=7 -Dbench.seconds=5 -Dbench.repeats=5"
.PHONY: bench-dataplane
bench-dataplane: ## Data-path throughput (iperf3) and agent programming time in the network lab (root; docs/benchmarks.md)
	$(MVN) -q test-compile exec:java -Dexec.mainClass=io.natgate.bench.DataplaneBenchmark -Dexec.classpathScope=test \
	  -Dexec.args="$(BENCH)" $(BENCH_OPTS)

##@ Build
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
