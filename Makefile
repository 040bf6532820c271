# eventproc — build, test and run. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

GO       ?= go
BUF      := $(GO) tool -modfile=tools/buf.mod buf
# Lint tools, each pinned in its own module file (like buf) so that it is
# built with the dependencies its authors released it with, and the main
# go.mod stays free of them. `go tool` downloads and builds them through
# the module proxy on first use. Upgrade with, e.g.,
#   go get -modfile=tools/staticcheck.mod -tool honnef.co/go/tools/cmd/staticcheck@vX.Y.Z
STATICCHECK := $(GO) tool -modfile=tools/staticcheck.mod staticcheck
DEADCODE    := $(GO) tool -modfile=tools/deadcode.mod deadcode
BIN      := bin
HTTP_ADDR ?= :8080
GRPC_ADDR ?= :8081
PROC_ADDR ?= :9090
# Extra flags for the test run, e.g. TESTFLAGS='-run TestSend -v'.
TESTFLAGS ?=
# Length of each `make bench` measurement.
BENCHTIME ?= 10s

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/eventproc (the sink) and bin/proc (the echo processor).
	$(GO) build -o $(BIN)/eventproc ./eventproc
	$(GO) build -o $(BIN)/proc ./proc

# Container images (`make image`): the target architecture and the
# image name prefix (images are $(IMAGE_REPO)/eventproc and $(IMAGE_REPO)/proc).
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_REPO ?= eventproc

.PHONY: image
image: ## Build the images of eventproc and proc, without Docker, into bin/eventproc-image.tar and bin/proc-image.tar (IMAGE_ARCH=arm64).
	$(GO) run ./internal/imagebuild -out $(BIN) -goarch $(IMAGE_ARCH) -repo $(IMAGE_REPO)

.PHONY: run
run: build ## Build, then run an echo processor and the sink on localhost (Ctrl-C stops both).
	@echo "echo processor on $(PROC_ADDR), sink HTTP on $(HTTP_ADDR), gRPC on $(GRPC_ADDR)"
	@trap 'kill $$(jobs -p) 2>/dev/null || true' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/proc --addr $(PROC_ADDR) --publish & \
	$(BIN)/eventproc --http-addr $(HTTP_ADDR) --grpc-addr $(GRPC_ADDR) \
		--route 'hello=localhost$(PROC_ADDR)' --route 'goodbye=localhost$(PROC_ADDR)' & \
	wait

.PHONY: test
test: ## Run all tests with the race detector.
	$(GO) test -race -count=1 -timeout 15m $(TESTFLAGS) ./...

.PHONY: generate
generate: ## Regenerate code from event/v1/*.proto, and the OpenAPI 3 spec served at /openapi.json.
	$(BUF) generate
	$(GO) run ./internal/openapigen
	$(GO) mod tidy

.PHONY: checkgenerate
checkgenerate: generate ## Fail when committed generated code is stale.
	@if [ -n "$$(git status --porcelain -- event docs/openapi go.mod go.sum)" ]; then \
		git status --porcelain -- event docs/openapi go.mod go.sum; \
		git --no-pager diff --stat; \
		echo "generated code is stale: run 'make generate' and commit" >&2; exit 1; \
	fi

# deadcode runs with -test: the roots are the programs (eventproc, proc,
# internal/bench) and every test binary. Without -test it would report
# the exported API of the event/... packages that only tests and users
# call (processor.HandlerFunc.Handle, processor.TraceContext,
# sink.CodecOption at the time of writing), and the helpers that API calls.
# With -test an exported function is reported only when no program, test or
# example reaches it: an untested SDK name, which rule 9 of STYLE.md asks to
# fix with a test or a runnable Example, not to hide. The one filter: an
# Example function without an "// Output:" comment is compiled (and vetted)
# but never run, so deadcode reports it by design; such an example is
# documentation (event/client's needs a sink on localhost:8081), not dead.
# The blind spot of -test: a package kept alive only by its own tests (as
# internal/workpool was) is not reported; run `$(DEADCODE) ./...` by hand
# now and then to look for those. deadcode exits 0 on findings, so the
# target fails when it prints anything.
.PHONY: lint
lint: ## buf lint, buf format check, gofmt, go vet, staticcheck and deadcode.
	$(BUF) lint
	$(BUF) format --diff --exit-code
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@echo '$(DEADCODE) -test ./...'; \
	dead=$$($(DEADCODE) -test ./... | { grep -vE '_test\.go:[0-9]+:[0-9]+: unreachable func: Example[A-Za-z0-9_]*$$' || true; }); \
	if [ -n "$$dead" ]; then echo "$$dead"; echo "deadcode: unreachable functions (delete them, or test them if they are API)" >&2; exit 1; fi

.PHONY: bench
bench: ## Run the benchmark suite and write docs/benchmarks.md.
	$(GO) run ./internal/bench -duration $(BENCHTIME) -out docs/benchmarks.md

# The git revision `make bench-compare` compares the working tree with.
BASE ?=

.PHONY: bench-compare
bench-compare: ## Compare the sink paths with git revision BASE, in alternating rounds; writes docs/bench-compare.md.
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=<git revision>" >&2; exit 2; }
	$(GO) run ./internal/bench -baseline '$(BASE)' -duration $(BENCHTIME) -out docs/bench-compare.md

# Profile-guided optimisation: eventproc/default.pgo and proc/default.pgo are
# CPU profiles of the sink and the echo processor under `make bench`'s three
# request paths, merged; `go build` uses them for those binaries
# (-pgo=auto). Regenerate them after large changes to the hot paths.
.PHONY: pgo
pgo: ## Re-profile sink and processor (REST, gRPC, Stream at 64 clients) into */default.pgo.
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	GOFLAGS=-pgo=off $(GO) run ./internal/bench profile -duration 10s -paths rest,grpc,stream -dir "$$dir"; \
	$(GO) tool pprof -proto "$$dir"/{rest,grpc,stream}.cpu.pprof > "$$dir"/sink.pgo; \
	$(GO) tool pprof -proto "$$dir"/{rest,grpc,stream}.proc.cpu.pprof > "$$dir"/proc.pgo; \
	mv "$$dir"/sink.pgo eventproc/default.pgo; mv "$$dir"/proc.pgo proc/default.pgo

# Length of the `make chaos` run (the short version runs in `make test`).
CHAOS_DURATION ?= 60s

.PHONY: chaos
chaos: ## Chaos test: kill/restart and freeze/thaw processor replicas under load (CHAOS_DURATION=60s).
	$(GO) test -race -count=1 -timeout 10m -v -run '^TestChaos$$' ./internal/chaos -chaos.duration=$(CHAOS_DURATION) $(TESTFLAGS)

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)
