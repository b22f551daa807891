# berth — build, test and lint.
GO      ?= go
BINDIR  ?= bin
GOFLAGS ?= -trimpath
LDFLAGS ?= -s -w

.PHONY: all build test test-unit test-integration lint clean

all: build

build:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BINDIR)/berth-runtime ./cmd/berth-runtime
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BINDIR)/berth ./cmd/berth

# The whole suite: unit tests, then integration tests that run real containers (root required).
test: build
	$(GO) test -count=1 -p 1 -timeout 20m ./...

lint:
	gofmt -l . | (! grep .) || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	staticcheck ./...

clean:
	rm -rf $(BINDIR)

# cgroup v2 lane: the packages' tests run as root in a QEMU VM whose /sys/fs/cgroup is pure
# cgroup v2 (this host is hybrid). Installs its deps first (hack/deps-cgroups.sh).
.PHONY: test-v2
test-v2:
	bash hack/deps-cgroups.sh
	bash tests/v2vm/run-go-tests.sh ./internal/cgroups
