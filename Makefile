# Gatehouse developer entry points. Only Go and make are needed: every tool
# is pinned in hack/tools/go.mod and built into ./bin on first use.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN       := $(CURDIR)/bin
, := ,
TOOLS_MOD := hack/tools/go.mod
export PATH := $(BIN):$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/gatehouse-dev/gatehouse/services/internal/platform/buildinfo.Version=$(VERSION)
# grpcnotrace drops grpc-go's golang.org/x/net/trace (and html/template):
# 3 MB of binary nobody uses, the difference between a 26 and a 23 MB image.
GO_TAGS := grpcnotrace
GO_TEST_FLAGS ?=
FUZZTIME ?= 30000x

TOOL_BINS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/golangci-lint $(BIN)/grpcurl $(BIN)/gojq $(BIN)/helm

##@ Run

.PHONY: run
run: build $(BIN)/grpcurl $(BIN)/gojq ## Build and start both services on 127.0.0.1 (SQLite under .data/, generated key); prints grpcurl examples. USER_GRPC_ADDR, AUTH_GRPC_ADDR, USER_HTTP_ADDR, AUTH_HTTP_ADDR move them; TLS=1: TLS with a development CA
	@# In the terminal's foreground, run.sh gets the foreground to itself (bash -m:
	@# a process group of its own), so Ctrl-C reaches it alone: it stops the
	@# services, which drain, and exits 0, and make, which never saw the SIGINT,
	@# exits 0 too instead of dying of it. In the background (make run &) or
	@# without a terminal, it runs as it is.
	@if [ -t 0 ] && [ $$(ps -o tpgid= -p $$$$) -eq $$(ps -o pgid= -p $$$$) ]; then \
		exec bash -m -c hack/run.sh; else exec hack/run.sh; fi

.PHONY: walkthrough
walkthrough: $(BIN)/grpcurl ## Run the README's grpcurl walk-through against `make run`, every answer checked (USER_ADDR, AUTH_ADDR: where it runs)
	hack/walkthrough.sh

.PHONY: keys
keys: ## Add a new Ed25519 signing key to KEYS_DIR (default .data/keys), named KID (default today's date)
	go run ./hack/keygen -dir $(or $(KEYS_DIR),.data/keys) $(if $(KID),-kid $(KID))

.PHONY: build
build: ## Build the service binaries into ./bin
	CGO_ENABLED=0 go build -trimpath -tags $(GO_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./services/user ./services/auth

##@ Test

.PHONY: test
test: proto-check fmt-check vet lint test-go test-examples test-release abuse-short chart-lint chart-test manifests-check ## Everything CI runs: format, vet, lint, stale-proto check, tests with -race (every fuzz target's committed corpus included), the release tool's tests, the short abuse replay, chart and manifest validation

.PHONY: check
check: fmt-check vet lint $(BIN)/grpcurl $(BIN)/gojq ## The inner loop, about 30 s warm: format, vet, lint and go test -short without -race (make test before pushing)
	GRPCURL=$(abspath $(BIN)/grpcurl) GOJQ=$(abspath $(BIN)/gojq) go test -short -count=1 $(GO_TEST_FLAGS) ./...

.PHONY: test-go
test-go: $(BIN)/grpcurl $(BIN)/gojq ## go test -race ./... (PostgreSQL halves run when GATEHOUSE_TEST_POSTGRES_URL is set; grpcurl tests use ./bin/grpcurl; hack/readme pastes the README's walk-through into bash against hack/run.sh)
	GRPCURL=$(abspath $(BIN)/grpcurl) GOJQ=$(abspath $(BIN)/gojq) go test -race -count=1 $(GO_TEST_FLAGS) ./...

.PHONY: test-examples
test-examples: ## The example service (examples/greeter, its own module) against Gatehouse's real binaries
	cd examples/greeter && go test -race -count=1 ./...

.PHONY: test-release
test-release: ## The release tool (hack/release, its own module) against an in-process registry: multi-arch push, verification and its refusals
	cd hack/release && go vet ./... && go test -race -count=1 ./...

.PHONY: fuzz
fuzz: ## Explore: every fuzz target on fresh random inputs for FUZZTIME each (default 30000x; 60s works too). Not in CI, which must not hinge on a random draw: run it before you push, fix a finding at its root and commit its input under testdata/fuzz
	hack/fuzz.sh $(FUZZTIME)

.PHONY: abuse-short
abuse-short: build ## Replay the hostile floods against both services on loopback, small (about 20 s)
	go run ./hack/abuse -short -bin $(BIN)

.PHONY: abuse
abuse: build ## Replay the hostile floods against both services on loopback, full size (about a minute)
	go run ./hack/abuse -bin $(BIN)

.PHONY: fmt-check
fmt-check: ## Fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^services/api/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet ./... (the example module too)
	go vet ./...
	cd examples/greeter && go vet ./...

.PHONY: lint
lint: $(BIN)/golangci-lint ## golangci-lint (pinned v2), the example module and the release tool too
	golangci-lint run ./...
	cd examples/greeter && golangci-lint run ./...
	cd hack/release && golangci-lint run ./...

##@ Kubernetes

.PHONY: images
images: ## Build both container images (AIRGAPPED=1: compile with the local Go, pull nothing)
	hack/images.sh

.PHONY: chart-lint
chart-lint: $(BIN)/helm ## helm lint --strict the chart with default values and every charts/gatehouse/ci/*.yaml
	helm lint --strict charts/gatehouse
	for f in charts/gatehouse/ci/*.yaml; do helm lint --strict charts/gatehouse -f $$f; done

.PHONY: chart-test
chart-test: ## promtool check and unit-test the alert rules (promtool: Debian's prometheus package; skipped without it unless GATEHOUSE_REQUIRE_PROMTOOL=1)
	@if ! command -v promtool >/dev/null; then \
		if [ "$${GATEHOUSE_REQUIRE_PROMTOOL:-}" = 1 ]; then echo "promtool not found (apt-get install prometheus)"; exit 1; fi; \
		echo "chart-test: SKIPPED, promtool not found (apt-get install prometheus to run the alert unit tests)"; exit 0; fi
	promtool check rules charts/gatehouse/files/prometheus-rules.yaml
	cd charts/gatehouse/files && promtool test rules prometheus-rules.test.yaml

.PHONY: manifests-check
manifests-check: ## Offline validation of chart, kustomize and skaffold output: strict API types, Pod Security restricted, PromQL, drift
	cd hack/validate && go vet ./... && go test -count=1 ./...

$(BIN)/helm: hack/validate/go.mod
	@mkdir -p $(BIN)
	cd hack/validate && GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm
	@touch $@

##@ kind (end to end)

# Built node/add-on artifacts, the kind CLI, kubectl and the cluster's
# kubeconfig. CI points it outside the clone so a warm machine stays warm.
KIND_CACHE ?= $(CURDIR)/.cache/kind
export KIND_CACHE
# `make e2e` and friends use the current kube context; without a KUBECONFIG
# of your own that is the kind cluster's, which kind-up writes here.
export KUBECONFIG ?= $(KIND_CACHE)/kubeconfig
E2E_TIMEOUT ?= 30m
# A regexp of test names, e.g. E2E_RUN=TestKeyRotation; empty runs all.
E2E_RUN ?=

.PHONY: kind-up
kind-up: ## Create the kind cluster `gatehouse` (AIRGAPPED=1: node and component images built locally, nothing pulled)
	hack/kind/up.sh

.PHONY: kind-load
kind-load: ## Build (AIRGAPPED=1) or pull every image of the e2e stack and load it into the kind node
	hack/kind/load.sh

.PHONY: deploy
deploy: kind-load ## Install Prometheus Operator + Prometheus and the chart (Jaeger, PostgreSQL, 2 replicas, restricted namespace)
	hack/kind/deploy.sh

.PHONY: e2e
e2e: $(BIN)/grpcurl $(BIN)/helm ## End-to-end tests and guarantees (build tag e2e) on the kind cluster, which they disrupt; another context only if E2E_CONTEXT names it (E2E_RUN selects tests)
	PATH=$(KIND_CACHE)/bin:$$PATH hack/kind/e2e-guard.sh
	PATH=$(KIND_CACHE)/bin:$$PATH E2E_IMAGES_ENV=$(KIND_CACHE)/images-gatehouse.env go test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) $(if $(E2E_RUN),-run '$(E2E_RUN)') -v ./services/e2e/ || \
		{ hack/kind/diagnose.sh e2e; exit 1; }

.PHONY: kind-smoke
kind-smoke: $(BIN)/grpcurl ## Chart defaults (SQLite, 1 replica) in a restricted namespace: helm test + walk-through (KEEP=1 keeps it)
	hack/kind/smoke.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	hack/kind/down.sh

##@ Release

.PHONY: release
release: $(BIN)/cosign $(BIN)/syft $(BIN)/helm ## Cut release VERSION=vX.Y.Z to REGISTRY=host[/path], signed with COSIGN_KEY: multi-arch images (PLATFORMS, default linux/amd64,linux/arm64), SBOMs, signatures, the chart as an OCI artifact, the git tag (hack/release.sh)
	hack/release.sh

.PHONY: release-verify
release-verify: $(BIN)/cosign $(BIN)/helm ## Verify release VERSION in REGISTRY from the registry alone: signatures (COSIGN_PUB), SBOM attestations, platforms, the chart's defaults (hack/release-verify.sh)
	hack/release-verify.sh

##@ Performance

.PHONY: bench
bench: ## Side-by-side benchmark: bare grpc-go vs Gatehouse (QPS, p50/p99, CPU/call, RSS); writes bench-results/
	go run ./hack/bench $(BENCH_FLAGS)

.PHONY: bench-scale
bench-scale: ## Cost against data size: seeds SCALE_SIZES (users:families, default 1k:10k, 100k:1M, 1M:10M) into SQLite and, with SCALE_POSTGRES=URL, PostgreSQL, and times each operation's store queries, then its gRPC calls to the User and Auth services run on the seeded databases (p50/p99, QPS, ratio to the smallest), with bytes per user and per family. Tens of minutes; not in CI
	go run ./services/internal/seeding/cmd/scale -sizes $(or $(SCALE_SIZES),1000:10000$(,)100000:1000000$(,)1000000:10000000) $(if $(SCALE_POSTGRES),-postgres '$(SCALE_POSTGRES)') $(SCALE_FLAGS)

.PHONY: bench-conns
bench-conns: ## What connections cost the User service: RSS per idle HTTP/2 connection (CONNBENCH_FLAGS, default -idle 0,1000,5000,10000) and per open stream (-streams 1000), and GetUser's p99 beside them; writes bench-results/connbench.{md,json}
	go run ./hack/connbench $(CONNBENCH_FLAGS)

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of the hot paths (token verify, interceptor, stores)
	go test -run '^$$' -bench . -benchmem ./services/...

##@ Contracts

.PHONY: proto
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Lint the .proto files, regenerate the Go code and the descriptors reflection serves (api/apidesc)
	cd services/api && buf lint && buf generate && buf build --as-file-descriptor-set -o apidesc/descriptors.binpb
	cd examples/greeter/api && buf lint && buf generate

.PHONY: proto-check
proto-check: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Fail if the contract breaks the released one (buf breaking) or the committed generated code differs from a fresh generation (made in a temporary directory; the work tree is left alone)
	hack/proto-check.sh

.PHONY: proto-baseline
proto-baseline: $(BIN)/buf ## At release time: record the contract as released (api/contract/released.binpb), what proto-check's buf breaking compares with
	cd services/api && buf build -o contract/released.binpb

##@ Tools

.PHONY: tools
tools: $(TOOL_BINS) ## Build the pinned dev tools into ./bin

$(BIN)/%: $(TOOLS_MOD)
	@mkdir -p $(BIN)
	cd hack/tools && GOBIN=$(BIN) go install $$(go list -modfile=go.mod -f '{{.ImportPath}}' tool | grep '/$*$$')
	@touch $@

# The release tools, pinned in the release tool's own module (their
# dependency graphs are large and have no business in hack/tools').
$(BIN)/cosign $(BIN)/syft: hack/release/go.mod
	@mkdir -p $(BIN)
	cd hack/release && GOBIN=$(BIN) CGO_ENABLED=0 go install $$(go list -f '{{.ImportPath}}' tool | grep '/$(@F)$$')
	@touch $@

# The same by relative name, so `make bin/helm` works as typed. Precious:
# make would otherwise delete a tool reached only through this chain.
bin/%: $(BIN)/% ;
.PRECIOUS: $(BIN)/%

.PHONY: clean
clean: ## Remove built binaries and local data
	rm -rf $(BIN) .data

##@ Help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z0-9_.-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
