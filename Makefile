# berth — build, test and lint.
GO      ?= go
BINDIR  ?= bin
GOFLAGS ?= -trimpath
LDFLAGS ?= -s -w
# berth and berth-runtime of one build share a stamp: the engine then makes the small static
# berth-runtime next to it its containers' init (internal/runtime/stamp.go).
ifndef STAMP
STAMP := $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)-$(shell date +%s)
endif
STAMPFLAG = -X github.com/berth-containers/berth/internal/runtime.BuildStamp=$(STAMP)

.PHONY: all build test lint clean deps ci demo

all: build

# berth-runtime and berth are linked statically, against musl where musl-gcc is installed:
# why, and what it measured, is in hack/build-static.sh, which the test harnesses use too.
build:
	bash hack/build-static.sh $(BINDIR)/berth-runtime ./cmd/berth-runtime $(STAMP)
	bash hack/build-static.sh $(BINDIR)/berth ./cmd/berth $(STAMP)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BINDIR)/berth-monitor ./cmd/berth-monitor

# The whole suite: unit tests, then integration tests that run real containers (root required).
test: build
	$(GO) test -count=1 -p 1 -timeout 20m ./...

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...
	# bin/berth is the lean build (internal/image/lean.go); its tests are the full build's.
	$(GO) vet -tags berth_lean ./cmd/berth ./internal/engine/...
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck -tags berth_lean ./cmd/berth ./internal/engine/...

# Install what the build, the tests and lint need (Debian 12, as root).
deps:
	bash hack/deps.sh

# What CI runs (the README's test command): dependencies, lint, the whole suite on this host,
# then the cgroup v2 lane in a VM.
ci: deps lint test test-v2

# The main job on a fresh machine: install, build, and run a container that shows its
# isolation. Needs root.
demo: deps build
	bash hack/demo.sh

clean:
	rm -rf $(BINDIR)

# cgroup v2 lane: the packages' tests run as root in a QEMU VM whose /sys/fs/cgroup is pure
# cgroup v2 (this host is hybrid). Installs its deps first (hack/deps-cgroups.sh).
.PHONY: test-v2
test-v2:
	bash hack/deps-cgroups.sh
	bash tests/v2vm/run-go-tests.sh ./internal/cgroups
	@# The VM's busybox userland has no useradd or newuidmap: TestRootlessContainers runs on
	@# this host's lane only; the rootless engine's delegated cgroup test runs here, for a
	@# made-up uid with the single-id map.
	V2_BINS="./cmd/berth-runtime ./tests/integration/probe ./cmd/berth ./cmd/berth-monitor" V2VM_ENV="BERTH_TEST_PREBUILT BERTH_TEST_TMPDIR" BERTH_TEST_PREBUILT=1 BERTH_TEST_TMPDIR=/var/tmp/berth-tests \
		V2_TESTFLAGS="-test.v -test.timeout 15m -test.skip TestRootlessContainers" bash tests/v2vm/run-go-tests.sh ./tests/integration

# Benchmarks: berth against runc, crun (and later Podman, Docker, containerd) and lsns, each
# command measured from outside its process. Installs its contenders (hack/deps-bench.sh),
# prints the tables and rewrites the generated part of docs/benchmarks.md and
# docs/benchmarks.png. Needs root; about 3.5 minutes on 2 cores.
.PHONY: bench
bench: build
	bash hack/deps-bench.sh
	$(GO) run ./bench/cmd/berth-bench -bin $(BINDIR)

# OCI conformance: the runtime-tools v0.9.0 validation suite (built from the Go module proxy in
# its own module, tests/conformance/suite) against runc, crun and berth-runtime, per program;
# rewrites docs/conformance.md and fails on a berth-runtime failure it cannot explain. Root;
# about three minutes.
.PHONY: conformance
conformance: build
	bash hack/deps-conformance.sh
	$(GO) run ./tests/conformance/runner -bin $(BINDIR) -out docs/conformance.md

# End-to-end tests with the real clients (containerd's ctr, dockerd, Podman) running busybox
# containers through berth-runtime; each test starts its daemon on unix sockets in temporary
# directories and removes everything after. Root.
.PHONY: test-clients
test-clients: build
	bash hack/deps-conformance.sh
	$(GO) test -count=1 -v -timeout 15m ./tests/clients/
