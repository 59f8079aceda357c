# Signet's developer entry points. `make help` lists them.
#
# Tools are built from source once, cached per user under
# ~/.cache/signet/tools/<tool>-<version> (or $SIGNET_TOOLS_CACHE), and linked
# into ./bin. Every target builds the tools it runs.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
STACK_ENV := $(CURDIR)/.stack/env
# -count=1: some tests (depcheck, generated-file checks) read files through
# subprocesses, which the Go test cache cannot see.
GO_TEST_FLAGS ?= -count=1 -timeout 40m
# Tools the tests need beyond the stack: the real cosign and notation CLIs
# for the interoperability tests.
TEST_TOOLS := cosign cosign3 notation
# Tools the demo runs beyond the stack: it signs images with both cosign CLIs.
DEMO_TOOLS := cosign cosign3

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Main jobs

.PHONY: demo
demo: tools demo-tools ## Bring up the local stack, install the CRD, apply a sample policy, show it, stop.
	go run ./hack/demo

.PHONY: test
test: tools test-tools stack-up ## Run every test (unit, integration, e2e) against the local stack, then stop it and check that its node leaves the machine as it found it.
	source $(STACK_ENV) && go test $(GO_TEST_FLAGS) -skip '^TestMachineNode$$' ./...
	@# The machine has one node: the shared stack's goes before the test starts its own.
	$(MAKE) --no-print-directory stack-down
	go test $(GO_TEST_FLAGS) -run '^TestMachineNode$$' ./hack/stack/

.PHONY: e2e-kind
e2e-kind: tools test-tools ## The same test/e2e suite against Signet installed with Helm in a kind cluster (needs Docker).
	hack/e2e-kind.sh

##@ Development

.PHONY: unit
unit: ## Every test that needs no local stack (go test -short): seconds, no tools to build.
	go test -short $(GO_TEST_FLAGS) ./...

# Every fuzz target, as package:Target. Their seed corpora run as ordinary
# tests in `make unit` and `make test`; `make fuzz` explores beyond them.
FUZZ_TARGETS := \
	./pkg/admission:FuzzAdmissionReview \
	./pkg/policy:FuzzImageMeetsPolicies \
	./pkg/policy/manifest:FuzzDecodePolicyFile \
	./pkg/policy/verify/cosign:FuzzVerify \
	./pkg/policy/verify/awssigner:FuzzVerify \
	./internal/oci:FuzzReferrers
FUZZTIME ?= 30s
# Minimising each new input for go's default 60s stalls the count of
# executions; a second keeps the corpus small enough.
FUZZMINIMIZETIME ?= 1s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s), one worker each; a crash is written under the package's testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$pkg $$name ($(FUZZTIME))"; \
	  go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) -parallel 1 $$pkg || exit 1; \
	done

.PHONY: bench
bench: ## Go benchmarks of the hot paths (warm admission, glob matching, cached verification).
	go test -run '^$$' -bench . -benchmem -count 5 ./pkg/policy/ ./pkg/admission/

.PHONY: bench-load
bench-load: stack-up ## Load harness: real AdmissionReviews to the webhook on the local stack; writes docs/performance.md.
	source $(STACK_ENV) && go run ./test/bench/load -pprof .stack/profiles -write docs/performance.md $(BENCH_LOAD_FLAGS)

.PHONY: build
build: ## Build the webhook binary into ./bin.
	CGO_ENABLED=0 go build -o $(BIN)/webhook ./cmd/webhook

# The image: IMAGE_CMD is webhook or signet (the CLI). IMAGE defaults to
# signet/$(IMAGE_CMD) on the local stack's registry (SIGNET_REGISTRY in
# .stack/env) when the stack runs; set it to push elsewhere.
IMAGE_CMD ?= webhook
STACK_REGISTRY = $(shell sed -n 's/^export SIGNET_REGISTRY=//p' $(STACK_ENV) 2>/dev/null)
IMAGE ?= $(if $(STACK_REGISTRY),$(STACK_REGISTRY)/)signet/$(IMAGE_CMD)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: image
image: ## Build the image IMAGE:VERSION with Docker (IMAGE_CMD=signet for the CLI).
	@command -v docker >/dev/null || { echo "make image: docker is not on PATH. Build and push the same image without Docker: make image-push"; exit 1; }
	DOCKER_BUILDKIT=1 docker build --target $(IMAGE_CMD) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE):$(VERSION) .

.PHONY: image-push
image-push: ## Build the image without Docker for PLATFORMS and push it to IMAGE:VERSION; prints IMAGE@sha256:…
	go run ./hack/image --image $(IMAGE) --tag $(VERSION) --version $(VERSION) --revision $(REVISION) --cmd $(IMAGE_CMD) --platforms $(PLATFORMS)

.PHONY: generate
generate: tools ## Regenerate deepcopy code, the CRD and RBAC (controller-gen markers), the chart's CRD copies (with the OpenReports module's Report CRD) and the webhook configurations (pkg/admission's table of kinds).
	$(BIN)/controller-gen object:headerFile=hack/boilerplate.go.txt paths=./pkg/policy/api/...
	$(BIN)/controller-gen crd paths=./pkg/policy/api/... output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/*.yaml charts/signet/files/crds/
	install -m 644 "$$(go list -m -f '{{.Dir}}' github.com/openreports/reports-api)/config/crd/openreports.io_reports.yaml" charts/signet/files/openreports/
	$(BIN)/controller-gen rbac:roleName=signet-webhook paths=./pkg/... output:rbac:artifacts:config=config/rbac
	go run ./hack/webhookgen

.PHONY: chart-lint
chart-lint: ## helm lint --strict charts/signet, and its tests that need no cluster (render matrix, schema, values docs).
	hack/tools.sh helm
	$(BIN)/helm lint --strict charts/signet
	go test -count=1 -run 'TestChartRenders|TestChartCRDIsCurrent|TestValues|TestHelmLint|TestUninstall|TestWebhookAcceptsChartFlags' ./charts/

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet, and fail on unformatted files or a go.mod that go mod tidy would change.
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run make fmt"; exit 1; }
	@go mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }

.PHONY: lint
lint: vet ## golangci-lint (pinned, .golangci.yml) after make vet.
	hack/tools.sh golangci-lint
	bin/golangci-lint run ./...

##@ Local stack

.PHONY: tools
tools: ## Build the stack's pinned tools (cached; minutes the first time).
	hack/tools.sh

.PHONY: test-tools
test-tools: ## Build the cosign and notation CLIs the interop tests run.
	hack/tools.sh $(TEST_TOOLS)

.PHONY: demo-tools
demo-tools: ## Build the cosign CLIs the demo signs with.
	hack/tools.sh $(DEMO_TOOLS)

.PHONY: stack-up
stack-up: tools ## Start etcd, kube-apiserver, kube-controller-manager, registries, the KMS test server and a node (SIGNET_STACK_NODE=false: none).
	go run ./hack/stack up

.PHONY: stack-down
stack-down: ## Stop exactly the processes stack-up started.
	go run ./hack/stack down

.PHONY: stack-status
stack-status: ## Show the stack's processes.
	go run ./hack/stack status

.PHONY: clean
clean: stack-down ## Stop the stack and remove ./bin links and stack logs (the tool cache stays).
	rm -rf $(BIN) .stack
