# healthrouter — build, test and measure.
# `make test` is the whole suite (CI runs it through .ci/run).

GO      ?= go
BIN     := bin/healthrouter
PKGS    := ./...

.PHONY: all build run test test-short vet fmt fmt-check bench fuzz headline scenarios clean

all: fmt-check vet build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/healthrouter

run:
	$(GO) run ./cmd/healthrouter serve

# The whole suite: unit, HTTP, crash and end-to-end tests, fuzz seeds included.
test: fmt-check vet e2e-deps
	HEALTHROUTER_E2E=required $(GO) test -race -count=1 -timeout 20m $(PKGS)

# The end-to-end test runs a real Prometheus: Debian's package, installed
# when missing (sudo when not root). It only needs the binary; on a machine
# with systemd the package also starts a prometheus service on :9090, which
# the test does not use.
.PHONY: e2e-deps
e2e-deps:
	@command -v prometheus >/dev/null 2>&1 || { \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing Debian's prometheus package for the end-to-end test"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	}

# Everything but the slow end-to-end and crash tests.
test-short:
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Benchmarks (figures, never timed tests).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/...

# Run the decoder fuzzer for a while (CI runs its seed corpus in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./pkg/ingest

# The README's headline table: every scenario replayed, direct routing beside
# healthrouter (a test fails while the README disagrees).
headline:
	$(GO) run ./pkg/scenario/headline -w

# Regenerate testdata/scenarios from pkg/scenario (a test fails while stale).
scenarios:
	$(GO) generate ./pkg/scenario

clean:
	rm -rf bin
